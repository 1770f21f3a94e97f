/**
 * The emulator's fault modes, in a module of their own so `--help` needs no emulator code.
 * Each has one line for `emulate --help` ("delay": --fault-delay-ms, its default in brackets).
 * The last four reproduce a state of a real vLLM as measured (../shared/reference/vllm-states.md),
 * other clients' load included, so the daemon can be shown each state without a GPU.
 */
export const FAULTS = {
  none: 'serve normally',
  slow_first_token: 'first token --fault-delay-ms late (default 5000)',
  never_headers: 'accept inference requests and never answer',
  stall_after_headers: 'streaming: 200 headers, then no token',
  stall_mid_stream: 'streaming: two tokens, then nothing',
  die_mid_stream: 'streaming: two tokens, then the connection drops',
  http_500: 'inference gets HTTP 500 (a generic error)',
  http_503: 'inference gets HTTP 503 (a generic error)',
  error_chunk: 'streaming: two tokens, then an error chunk',
  no_done: 'streaming: no data: [DONE] at the end',
  garbled_sse: 'streaming: unparsable SSE',
  empty_completion: 'streaming: no token at all, then [DONE]',
  wedge: 'engine hung: /health 200, headers and no token, requests stay running',
  health_503: '/health answers 503',
  metrics_garbled: '/metrics is not Prometheus text',
  metrics_empty: '/metrics is empty',
  metrics_huge: '/metrics is 40 MB',
  metrics_slow: '/metrics answers --fault-delay-ms late (default 10000)',
  engine_dead: 'engine died: HTTP 500 "EngineCore encountered an issue…", /health 503, port closed after delay (1400)',
  kv_pressure: 'KV cache full: preemptions rise, ~60 wait for capacity, tokens flow; new requests wait delay (30000)',
  saturated: 'running at --max-num-seqs, the queue grows, tokens flow; new requests wait delay (1000)',
  shedding: 'inference gets the 503 of --max-num-queued-reqs, admission rejections grow; Retry-After: delay',
} as const;

export const FAULT_MODES = Object.keys(FAULTS) as Array<keyof typeof FAULTS>;
export type FaultMode = keyof typeof FAULTS;

export interface Fault {
  mode: FaultMode;
  /**
   * slow_first_token / metrics_slow: extra delay in ms; engine_dead: ms until the listener
   * closes; kv_pressure / saturated: a new request's wait for its first token; shedding: the
   * Retry-After sent, rounded up to seconds.
   */
  delayMs?: number;
}
