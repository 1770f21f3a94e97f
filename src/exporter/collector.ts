/**
 * The collector contract and its runner. Each collector (vLLM /metrics, nvidia-smi, host)
 * refreshes its own gauges on its own interval schedule; the runner applies the timeout and
 * records source up / duration / last success / errors by reason. A failing collector never
 * stops the others or the daemon.
 */
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import { NoDataError, SourceError, type SourceErrorReason } from '../errors.js';
import type { Metrics } from '../metrics.js';
import { oneLine } from '../reason.js';
import { every } from '../schedule.js';

/** How often one unchanged collection failure is logged again. */
const FAILURE_LOG_EVERY_MS = 60_000;

/**
 * Decides whether a repeated log line is written: the first time a key is seen (or after a
 * different key or a reset), then once per `everyMs`. Returns undefined to stay quiet, else how
 * many times the key was suppressed since it was last written.
 */
export function repeatLimiter(everyMs: number, now: () => number = Date.now): ((key: string) => number | undefined) & { reset(): void } {
  let last: { key: string; at: number; suppressed: number } | undefined;
  const check = (key: string): number | undefined => {
    const t = now();
    if (last && last.key === key && t - last.at < everyMs) {
      last.suppressed++;
      return undefined;
    }
    const suppressed = last?.key === key ? last.suppressed : 0;
    last = { key, at: t, suppressed: 0 };
    return suppressed;
  };
  return Object.assign(check, { reset: () => (last = undefined) });
}

export interface Collector {
  /** The `source` label: "vllm_metrics", "nvidia_smi", "host". */
  readonly name: string;
  /** Refreshes this collector's metrics. Throws SourceError / NoDataError on expected failures. */
  collect(signal: AbortSignal): Promise<void>;
  /** Called after a failed collect: drop series that would otherwise go stale. */
  markStale?(error: Error): void;
  /** Reasons this collector can fail with; their error counters start at 0. */
  readonly errorReasons?: readonly SourceErrorReason[];
}

export interface CollectorRun {
  readonly firstRun: Promise<void>;
  runNow(): Promise<void>;
  stop(): Promise<void>;
}

export interface CollectorHooks {
  onSuccess?(): void;
  onFailure?(error: Error): void;
}

export function startCollector(
  collector: Collector,
  opts: { interval: number; timeout: number },
  metrics: Metrics,
  log: Logger,
  shutdown: AbortSignal,
  hooks: CollectorHooks = {},
): CollectorRun {
  const source = collector.name;
  const clog = log.child({ component: 'collector', source });
  let current: Promise<void> | undefined;
  let noDataReported = false;
  const failureLog = repeatLimiter(FAILURE_LOG_EVERY_MS);
  metrics.sourceUp.labels({ source }).set(0);
  for (const reason of collector.errorReasons ?? ['timeout', 'internal']) metrics.sourceErrors.labels({ source, reason }).inc(0);

  const runOnce = async () => {
    if (shutdown.aborted) return;
    const timeout = AbortSignal.timeout(Math.round(opts.timeout * 1000));
    const signal = AbortSignal.any([shutdown, timeout]);
    const started = performance.now();
    let failed = true;
    try {
      await collector.collect(signal);
      failed = false;
      metrics.sourceUp.labels({ source }).set(1);
      metrics.sourceLastSuccess.labels({ source }).set(Date.now() / 1000);
      hooks.onSuccess?.();
    } catch (caught) {
      if (shutdown.aborted) return;
      let err = caught as Error;
      if (timeout.aborted && !(err instanceof SourceError && err.reason === 'timeout')) {
        err = new SourceError('timeout', `${source} did not answer within ${opts.timeout}s`, { cause: err });
      }
      const reason: SourceErrorReason = err instanceof SourceError ? err.reason : err instanceof NoDataError ? err.reason : 'internal';
      metrics.sourceUp.labels({ source }).set(0);
      metrics.sourceErrors.labels({ source, reason }).inc();
      collector.markStale?.(err);
      hooks.onFailure?.(err);
      if (err instanceof NoDataError) {
        if (!noDataReported) clog.info({ reason: err.message }, 'nothing to collect; will keep checking quietly');
        noDataReported = true;
      } else if (reason === 'internal') clog.error({ err }, 'collector threw: this is a bug in vllm-probe');
      else {
        // The same failure every scrape (a broken /metrics stays broken) is logged once a
        // minute with how often it repeated, not once per second: its text comes from the target.
        const message = oneLine(err.message);
        const repeated = failureLog(`${reason}\0${message}`);
        if (repeated !== undefined) clog.warn({ reason, err: message, ...(repeated > 0 ? { repeated } : {}) }, 'collection failed');
      }
    } finally {
      metrics.sourceDuration.labels({ source }).set((performance.now() - started) / 1000);
    }
    if (!failed) failureLog.reset();
  };
  // Single-flight: a run that is still going is shared, never doubled.
  const runNow = () => (current ??= runOnce().finally(() => (current = undefined)));
  const task = every(opts.interval, () => runNow());
  const firstRun = runNow();
  return {
    firstRun,
    runNow,
    async stop() {
      task.stop();
      await current?.catch(() => undefined);
    },
  };
}
