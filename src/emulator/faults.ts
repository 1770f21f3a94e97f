/** The emulator's fault modes, in a module of their own so `--help` needs no emulator code. */
export const FAULT_MODES = [
  'none',
  'slow_first_token',
  'never_headers',
  'stall_after_headers',
  'stall_mid_stream',
  'die_mid_stream',
  'http_500',
  'http_503',
  'error_chunk',
  'no_done',
  'garbled_sse',
  'empty_completion',
  'wedge',
  'health_503',
  'metrics_garbled',
  'metrics_empty',
  'metrics_huge',
  'metrics_slow',
] as const;
export type FaultMode = (typeof FAULT_MODES)[number];

export interface Fault {
  mode: FaultMode;
  /** slow_first_token / metrics_slow: extra delay in ms. */
  delayMs?: number;
}

