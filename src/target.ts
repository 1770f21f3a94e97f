/**
 * What we know about the vLLM server being watched: the served model name and its lifecycle
 * (reachable or not, restarts, cold/warm phase). The HTTP client is src/vllm/client.ts.
 */
import type { Logger } from 'pino';
import type { Metrics } from './metrics.js';
import type { VllmClient } from './vllm/client.js';

export type Phase = 'cold' | 'warm';

/** Restart signals closer together than this are one restart (vLLM takes longer to restart twice). */
const RESTART_DEDUP_MS = 60_000;

/**
 * Lifecycle knowledge shared by probes and collectors. A restart is either a changed
 * `process_start_time_seconds` on vLLM's /metrics or "reachable again after being unreachable";
 * the next `coldProbes` TTFT probes after it are labelled phase="cold".
 */
export class TargetTracker {
  reachable: boolean | undefined;
  unreachableSince: Date | undefined;
  lastError: string | undefined;
  processStartTime: number | undefined;
  lastRestartAt: Date | undefined;
  discoveredModel: string | undefined;
  version: string | undefined;
  /** Restarts seen so far (probes re-prime caches when it changes). */
  restarts = 0;
  /** Told of each restart (the diagnosis's evidence). */
  onRestart: (at: Date, why: string) => void = () => undefined;
  private coldRemaining = 0;

  constructor(
    private readonly metrics: Metrics,
    private readonly coldProbes: number,
    private readonly log: Logger,
    readonly configuredModel: string,
  ) {}

  /** The `model` sent in requests: configured, else discovered, else '' (vLLM's default model). */
  get requestModel(): string {
    return this.configuredModel || this.discoveredModel || '';
  }

  /** The `model` label value: configured name, else discovered name, else "unknown". */
  get model(): string {
    return this.configuredModel || this.discoveredModel || 'unknown';
  }

  observeReachable(ok: boolean, detail: string | undefined, at = new Date()): void {
    if (!ok) {
      if (this.reachable !== false) this.unreachableSince = at;
      this.reachable = false;
      this.lastError = detail;
      return;
    }
    const wasDown = this.reachable === false;
    this.reachable = true;
    this.unreachableSince = undefined;
    this.lastError = undefined;
    if (wasDown) this.markRestart('reachable again after being unreachable');
  }

  observeProcessStart(startTime: number | undefined): void {
    if (startTime === undefined) return;
    const previous = this.processStartTime;
    this.processStartTime = startTime;
    if (previous !== undefined && Math.abs(previous - startTime) > 0.5) {
      this.markRestart('process_start_time_seconds changed');
    }
  }

  private markRestart(why: string): void {
    // Both signals report the same restart, in either order and possibly after the cold probe
    // already ran (probe sees "reachable again", the next scrape a new start time): one restart.
    const now = new Date();
    if (this.lastRestartAt && now.getTime() - this.lastRestartAt.getTime() < RESTART_DEDUP_MS) return;
    this.lastRestartAt = now;
    this.coldRemaining = this.coldProbes;
    this.restarts++;
    this.metrics.targetRestarts.inc();
    this.log.info({ why }, 'vLLM restart detected');
    this.onRestart(now, why);
  }

  /** Phase for the next TTFT probe; consumes one cold slot when a restart is pending. */
  takePhase(): Phase {
    if (this.coldRemaining > 0) {
      this.coldRemaining--;
      return 'cold';
    }
    return 'warm';
  }

  /** Names the served model from /v1/models when none is configured or known yet. */
  async discoverModel(client: VllmClient, signal: AbortSignal): Promise<void> {
    if (this.configuredModel || this.discoveredModel) return;
    this.discoveredModel = (await client.models(signal).catch(() => []))[0]?.id;
  }

  /** Gives a cold slot back when the probe that took it did not produce a token. */
  returnColdSlot(): void {
    this.coldRemaining++;
  }
}
