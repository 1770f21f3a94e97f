/**
 * Runs each enabled probe on its own interval schedule (no overlap, small jitter) and is the
 * only code that times a probe: it applies the timeout, catches throws as reason "internal",
 * records the generic series from the ProbeResult (requests, durations, tokens, success, last
 * success) and feeds /status: the probe's hysteresis line and the verdicts of its own checks,
 * which turn `unknown` when a run fails (a check is never judged on data we could not get).
 */
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import { preinitialiseProbeSeries, type Metrics } from '../metrics.js';
import { oneLine } from '../reason.js';
import { every, type Schedule } from '../schedule.js';
import type { StatusBoard } from '../status.js';
import type { TargetTracker } from '../target.js';
import type { VllmClient } from '../vllm/client.js';
import { PROBE_KINDS, probers, type ProbeKind } from './index.js';
import type { ProbeInstance, ProbeResult, RequestWatcher } from './prober.js';

export interface ProbeScheduler {
  /** Resolves when every enabled probe has finished its first run (for /readyz). */
  readonly firstCycle: Promise<void>;
  /** Runs one probe now, outside the schedule (tests, the soak). */
  runNow(kind: ProbeKind): Promise<void>;
  /** Stops the schedules and waits for in-flight probes (which see the aborted signal). */
  stop(): Promise<void>;
}

export interface ProbeDeps {
  config: Config;
  client: VllmClient;
  tracker: TargetTracker;
  metrics: Metrics;
  status: StatusBoard;
  log: Logger;
  watcher: RequestWatcher;
}

/** The kinds enabled in `config`, in map order. */
export function enabledKinds(config: Config): ProbeKind[] {
  return PROBE_KINDS.filter((k) => config.probes[k].enabled);
}

/** Creates the generic and the kind's own series at 0 for `model`. */
export function preinitialise(metrics: Metrics, kind: ProbeKind, model: string): void {
  preinitialiseProbeSeries(metrics, kind, model);
  probers[kind].preinitialise?.(metrics, model);
}

/** Records what every probe run has in common. Shared with the fleet endpoint's fresh registries. */
export function recordGeneric(metrics: Metrics, kind: ProbeKind, model: string, result: ProbeResult, seconds: number): void {
  const labels = { probe: kind, model };
  for (const r of result.requests) {
    metrics.requests.labels({ ...labels, outcome: r.outcome }).inc();
    metrics.requestDuration.labels({ ...labels, outcome: r.outcome }).observe(r.seconds);
    if (r.usage?.prompt_tokens !== undefined) metrics.probeTokens.labels({ ...labels, token_type: 'input' }).inc(r.usage.prompt_tokens);
    if (r.usage?.completion_tokens !== undefined) metrics.probeTokens.labels({ ...labels, token_type: 'output' }).inc(r.usage.completion_tokens);
  }
  metrics.probeSuccess.labels(labels).set(result.success ? 1 : 0);
  metrics.probeDuration.labels(labels).set(seconds);
  if (result.success) metrics.lastSuccess.labels(labels).set(Date.now() / 1000);
}

const clock = (ms: number) => new Date(ms).toISOString().slice(11, 19);

export function startProbes(deps: ProbeDeps, shutdown: AbortSignal): ProbeScheduler {
  const { config, metrics, status, tracker } = deps;
  const tasks: Schedule[] = [];
  const inFlight = new Set<Promise<void>>();
  const running = new Set<ProbeKind>();
  const instances = new Map<ProbeKind, ProbeInstance>();
  const lastSuccessAt = new Map<ProbeKind, number>();
  const notBefore = new Map<ProbeKind, number>();
  const enabled = enabledKinds(config);
  for (const kind of enabled) {
    instances.set(kind, (probers[kind].create as (c: unknown) => ProbeInstance)(config.probes[kind]));
    status.set(`probe_${kind}`, 'unknown', 'no probe has finished yet');
    // At 0 from the start, so increase() sees the first skip.
    if (probers[kind].sendsInference) metrics.probesSkipped.labels({ probe: kind, reason: 'asleep' }).inc(0);
    if (tracker.model !== 'unknown') preinitialise(metrics, kind, tracker.model);
  }

  const judgeChecks = (kind: ProbeKind, result: ProbeResult) => {
    const cfg = config.probes[kind];
    const staleAfter = cfg.interval * 3 + cfg.timeout;
    if (result.success) {
      for (const c of result.checks ?? []) status.set(c.name, c.status, c.reason, staleAfter);
      return;
    }
    const since = lastSuccessAt.get(kind);
    for (const name of probers[kind].checks) {
      status.set(name, 'unknown', `cannot judge ${probers[kind].describe}: the last ${kind} probe failed (${result.outcome})${since ? `; last success at ${clock(since)}` : '; no success yet'}`);
    }
  };

  const runOnce = async (kind: ProbeKind): Promise<void> => {
    if (shutdown.aborted || running.has(kind)) return; // at most one in flight per probe
    const wait = notBefore.get(kind);
    if (wait !== undefined && Date.now() < wait) return; // the server asked us to come back later
    // A sleeping engine queues inference until it wakes: the probe would measure the sleep.
    if (probers[kind].sendsInference && status.currentState() === 'asleep') {
      metrics.probesSkipped.labels({ probe: kind, reason: 'asleep' }).inc();
      return;
    }
    running.add(kind);
    const log = deps.log.child({ component: 'probe', probe: kind });
    const timeoutMs = Math.round(config.probes[kind].timeout * 1000);
    const signal = AbortSignal.any([shutdown, AbortSignal.timeout(timeoutMs)]);
    const started = performance.now();
    try {
      const result = await instances.get(kind)!.run({ config, client: deps.client, tracker, metrics, log, signal, shutdown, timeoutMs, watcher: deps.watcher });
      if (result.aborted || shutdown.aborted) return;
      const seconds = (performance.now() - started) / 1000;
      const model = tracker.model; // discovery may have named the model during the run
      preinitialise(metrics, kind, model);
      recordGeneric(metrics, kind, model, result, seconds);
      if (result.success) lastSuccessAt.set(kind, Date.now());
      else log.warn({ outcome: result.outcome, detail: result.detail, ...(result.requestId ? { requestId: result.requestId } : {}) }, 'probe failed');
      if (result.retryAfterSeconds !== undefined) notBefore.set(kind, Date.now() + Math.min(result.retryAfterSeconds, 300) * 1000);
      else notBefore.delete(kind);
      status.recordProbe(kind, result.success, result.outcome, result.detail, result.ttftSeconds, {
        startedAt: Date.now() - seconds * 1000,
        ...(result.status !== undefined ? { status: result.status } : {}),
        ...(result.retryAfterSeconds !== undefined ? { retryAfterSeconds: result.retryAfterSeconds } : {}),
      });
      judgeChecks(kind, result);
    } catch (err) {
      if (shutdown.aborted) return;
      log.error({ err }, 'probe threw: this is a bug in vllm-probe');
      const result: ProbeResult = { success: false, outcome: 'bad_response', requests: [] };
      metrics.probeSuccess.labels({ probe: kind, model: tracker.model }).set(0);
      status.recordProbe(kind, false, 'internal', `internal error: ${oneLine((err as Error).message)}`);
      judgeChecks(kind, result);
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
    const seconds = config.probes[kind].interval;
    // Spread probes of many sidecars without pushing a run past its slot; runOnce skips a slot
    // whose previous run of the same kind is still going.
    tasks.push(every(seconds, () => track(kind), { maxRandomDelayMs: Math.min(1000, seconds * 100) }));
  }
  // Run every probe once at start so /readyz and /status do not wait a whole interval.
  const firstCycle = Promise.all(enabled.map((k) => track(k))).then(() => undefined);

  return {
    firstCycle,
    runNow: track,
    async stop() {
      for (const t of tasks) t.stop();
      await Promise.allSettled([...inFlight]);
    },
  };
}
