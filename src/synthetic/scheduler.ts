/**
 * Runs each enabled probe on its own node-cron schedule (no overlap, small jitter) and is the
 * only code that times a probe: it applies the timeout, catches throws as reason "internal",
 * and records probe_success / probe_duration / last_success plus the /status hysteresis.
 */
import { performance } from 'node:perf_hooks';
import cron, { type ScheduledTask } from 'node-cron';
import type { Logger } from 'pino';
import { intervalToCron } from '../config.js';
import { cronLogger } from '../cron-logger.js';
import { probers, type ProbeContext, type ProbeKind } from './prober.js';

export interface ProbeScheduler {
  /** Resolves when every enabled probe has finished its first run (for /readyz). */
  readonly firstCycle: Promise<void>;
  /** Runs one probe now, outside the schedule (tests, `?probe=now`). */
  runNow(kind: ProbeKind): Promise<void>;
  /** Stops the schedules and waits for in-flight probes (which see the aborted signal). */
  stop(): Promise<void>;
}

type Shared = Omit<ProbeContext, 'signal' | 'timeoutSignal' | 'log'> & { log: Logger };

export function startProbes(shared: Shared, shutdown: AbortSignal): ProbeScheduler {
  const tasks: ScheduledTask[] = [];
  const inFlight = new Set<Promise<void>>();
  const running = new Set<ProbeKind>();
  const enabled = (Object.keys(probers) as ProbeKind[]).filter((k) => shared.config.probes[k].enabled);

  const runOnce = async (kind: ProbeKind): Promise<void> => {
    if (shutdown.aborted || running.has(kind)) return; // at most one in flight per probe
    running.add(kind);
    const log = shared.log.child({ component: 'probe', probe: kind });
    const timeoutSignal = AbortSignal.timeout(Math.round(shared.config.probes[kind].timeout * 1000));
    const signal = AbortSignal.any([shutdown, timeoutSignal]);
    const labels = { probe: kind, model: shared.tracker.model };
    const started = performance.now();
    try {
      const result = await probers[kind]({ ...shared, log, signal, timeoutSignal });
      if (result.aborted) return;
      const seconds = (performance.now() - started) / 1000;
      const finalLabels = { probe: kind, model: shared.tracker.model }; // discovery may have named the model
      shared.metrics.probeSuccess.labels(finalLabels).set(result.success ? 1 : 0);
      shared.metrics.probeDuration.labels(finalLabels).set(seconds);
      if (result.success) shared.metrics.lastSuccess.labels(finalLabels).set(Date.now() / 1000);
      else log.warn({ outcome: result.outcome, detail: result.detail }, 'probe failed');
      shared.status.recordProbe(kind, result.success, result.outcome, result.detail, result.ttftSeconds);
    } catch (err) {
      if (shutdown.aborted) return;
      log.error({ err }, 'probe threw: this is a bug in vllm-probe');
      shared.metrics.probeSuccess.labels(labels).set(0);
      shared.status.recordProbe(kind, false, 'internal', `internal error: ${(err as Error).message}`);
    } finally {
      running.delete(kind);
    }
  };

  const track = (kind: ProbeKind): Promise<void> => {
    const p = runOnce(kind);
    inFlight.add(p);
    void p.finally(() => inFlight.delete(p));
    return p;
  };

  for (const kind of enabled) {
    const seconds = shared.config.probes[kind].interval;
    const task = cron.schedule(intervalToCron(seconds)!, () => track(kind), {
      name: `probe-${kind}`,
      noOverlap: true,
      logger: cronLogger(shared.log),
      // Spread probes of many sidecars without pushing a run past its slot.
      maxRandomDelay: Math.min(1000, seconds * 100),
    });
    tasks.push(task);
  }
  // Run every probe once at start so /readyz and /status do not wait a whole interval.
  const firstCycle = Promise.all(enabled.map((k) => track(k))).then(() => undefined);

  return {
    firstCycle,
    runNow: track,
    async stop() {
      await Promise.all(tasks.map((t) => t.destroy()));
      await Promise.allSettled([...inFlight]);
    },
  };
}
