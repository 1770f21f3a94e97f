/**
 * The probe contract. A probe kind is one file, one entry in `probers` and one config block;
 * the scheduler times it, applies its timeout and records the generic metrics.
 */
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import type { Metrics, Outcome } from '../metrics.js';
import type { StatusBoard } from '../status.js';
import type { TargetClient, TargetTracker } from '../target.js';
import { probePrefixCache } from './prefix-cache.js';
import { probeTtft } from './ttft.js';

export interface ProbeContext {
  /** Aborts on shutdown or timeout; the probe must stop promptly. */
  signal: AbortSignal;
  /** Fires only on timeout, so a probe can tell "too slow" from "shutting down". */
  timeoutSignal: AbortSignal;
  log: Logger;
  config: Config;
  client: TargetClient;
  tracker: TargetTracker;
  metrics: Metrics;
  status: StatusBoard;
}

/**
 * Resolves with success=false for anything the server did wrong; throws only for bugs in
 * this daemon. `aborted` means shutdown interrupted it and nothing should be counted.
 */
export interface ProbeResult {
  success: boolean;
  outcome: Outcome;
  detail?: string;
  aborted?: boolean;
  /** Client TTFT in seconds of the probe's main request, for the latency check. */
  ttftSeconds?: number;
}

export type Prober = (ctx: ProbeContext) => Promise<ProbeResult>;
export type ProbeKind = keyof Config['probes'];

export const probers = {
  ttft: probeTtft,
  prefix: probePrefixCache,
} satisfies Record<ProbeKind, Prober>;
