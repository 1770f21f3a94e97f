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
import { realTraffic, trafficWords, type OwnRun } from '../diagnosis/traffic.js';
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

/** Own runs kept for subtraction: longer than any window they are subtracted from. */
const OWN_KEPT_MS = 10 * 60_000;

/** The traffic-aware settings of a kind; `always` for kinds without them (models). */
function trafficSettings(config: Config, kind: ProbeKind): { mode: 'always' | 'when_idle'; maxInterval: number; maxTokens: number } {
  const c = config.probes[kind] as { mode?: 'always' | 'when_idle'; max_interval?: number; max_tokens?: number };
  return { mode: c.mode ?? 'always', maxInterval: c.max_interval ?? Infinity, maxTokens: c.max_tokens ?? 0 };
}

export function startProbes(deps: ProbeDeps, shutdown: AbortSignal): ProbeScheduler {
  const { config, metrics, status, tracker } = deps;
  const tasks: Schedule[] = [];
  const inFlight = new Set<Promise<void>>();
  const running = new Set<ProbeKind>();
  const instances = new Map<ProbeKind, ProbeInstance>();
  const lastSuccessAt = new Map<ProbeKind, number>();
  const notBefore = new Map<ProbeKind, number>();
  const enabled = enabledKinds(config);
  /** The inference this daemon sent, subtracted from vLLM's counters before they count as real traffic. */
  const own: Array<OwnRun & { kind: ProbeKind }> = [];
  /** When each kind last sent a run (the max_interval clock). */
  const lastSentAt = new Map<ProbeKind, number>();
  /** Kinds whose last scheduled slot was skipped for traffic: they run as soon as it stops. */
  const skipping = new Set<ProbeKind>();
  /** The kinds' own check verdicts of their last run, kept current while runs are skipped. */
  const lastChecks = new Map<ProbeKind, { at: number; checks: NonNullable<ProbeResult['checks']> }>();
  const watchTraffic = enabled.filter((k) => probers[k].sendsInference && trafficSettings(config, k).mode === 'when_idle');
  for (const kind of enabled) {
    instances.set(kind, (probers[kind].create as (c: unknown) => ProbeInstance)(config.probes[kind]));
    status.set(`probe_${kind}`, 'unknown', 'no probe has finished yet');
    // At 0 from the start, so increase() sees the first skip.
    if (probers[kind].sendsInference) metrics.probesSkipped.labels({ probe: kind, reason: 'asleep' }).inc(0);
    if (watchTraffic.includes(kind)) metrics.probesSkipped.labels({ probe: kind, reason: 'traffic' }).inc(0);
    if (tracker.model !== 'unknown') preinitialise(metrics, kind, tracker.model);
  }

  /**
   * Why a `when_idle` kind need not run now (undefined: it must). Conservative: it runs unless
   * the diagnosis says healthy, vLLM's own TTFT meets the SLO, max_interval has not passed and
   * vLLM's counters show real requests finishing (src/diagnosis/traffic.ts).
   */
  const skipWords = (kind: ProbeKind, now: number): { words?: string; why: string } => {
    const { maxInterval } = trafficSettings(config, kind);
    const interval = config.probes[kind].interval;
    const last = lastSentAt.get(kind);
    // Slots fall every interval with up to a second of jitter: half an interval early is "due".
    if (last === undefined || now - last >= (maxInterval - interval / 2) * 1000) return { why: 'max_interval' };
    const state = status.currentState();
    if (state !== 'healthy') return { why: state };
    if (status.verdictOf('server_slo') === 'degraded') return { why: 'server_slo' };
    // A probe line still recovering from failures needs its successes, not a skip.
    const line = status.verdictOf(`probe_${kind}`);
    if (line === 'degraded' || line === 'unhealthy') return { why: `probe_${kind} ${line}` };
    // A kind whose own last verdict is bad measures again rather than repeat it.
    const bad = lastChecks.get(kind)?.checks.find((c) => c.status === 'degraded' || c.status === 'unhealthy');
    if (bad) return { why: bad.name };
    const scrape = config.scrape;
    const traffic = realTraffic(status.evidence.view().scrapes, own, Math.max(interval, scrape.interval) * 1000, (2 * scrape.interval + scrape.timeout) * 1000, now);
    if (!traffic.flowing) return { why: traffic.why };
    return { words: `${trafficWords(traffic)}; next probe by ${clock(last + maxInterval * 1000)} at the latest`, why: 'traffic' };
  };

  /** Keeps the kind's line and own checks judged while it skips on purpose. */
  const markSkipped = (kind: ProbeKind, words: string) => {
    const cfg = config.probes[kind];
    status.probeSkipped(kind, words);
    const kept = lastChecks.get(kind);
    for (const c of kept?.checks ?? []) {
      const reason = c.reason.replace(/ \(measured at \d\d:\d\d:\d\d; the probe skips while real traffic is served\)$/, '');
      status.set(c.name, c.status, `${reason} (measured at ${clock(kept!.at)}; the probe skips while real traffic is served)`, cfg.interval * 3 + cfg.timeout);
    }
  };

  // Traffic stopped, failed or the state changed while a kind skipped: run it now, not at its
  // next slot (a wedge under load freezes the counters; the probe is what names it).
  let resumeQueued = false;
  if (watchTraffic.length) {
    status.onChange(() => {
      if (!skipping.size || resumeQueued || shutdown.aborted) return;
      resumeQueued = true;
      setImmediate(() => {
        resumeQueued = false;
        for (const kind of [...skipping]) {
          const { words, why } = skipWords(kind, Date.now());
          if (words === undefined && why !== 'max_interval') {
            skipping.delete(kind);
            deps.log.debug({ probe: kind, why }, 'real traffic stopped: probing now');
            void track(kind, 'resume');
          }
        }
      });
    });
  }

  const judgeChecks = (kind: ProbeKind, result: ProbeResult) => {
    const cfg = config.probes[kind];
    const staleAfter = cfg.interval * 3 + cfg.timeout;
    if (result.success) {
      for (const c of result.checks ?? []) status.set(c.name, c.status, c.reason, staleAfter);
      if (result.checks?.length) lastChecks.set(kind, { at: Date.now(), checks: result.checks });
      return;
    }
    lastChecks.delete(kind);
    const since = lastSuccessAt.get(kind);
    for (const name of probers[kind].checks) {
      status.set(name, 'unknown', `cannot judge ${probers[kind].describe}: the last ${kind} probe failed (${result.outcome})${since ? `; last success at ${clock(since)}` : '; no success yet'}`);
    }
  };

  /** `schedule`: a slot of its interval; `now`: asked for (start, tests); `resume`: traffic stopped. */
  const runOnce = async (kind: ProbeKind, why: 'schedule' | 'now' | 'resume'): Promise<void> => {
    if (shutdown.aborted || running.has(kind)) return; // at most one in flight per probe
    const wait = notBefore.get(kind);
    if (wait !== undefined && Date.now() < wait) {
      // The server asked us to come back later: honour it, and say so (a check that just stops
      // being set would read "stale: its source stopped reporting").
      metrics.probesSkipped.labels({ probe: kind, reason: 'retry_after' }).inc();
      const cfg = config.probes[kind];
      status.set(`probe_${kind}`, 'degraded', `shedding: vLLM asked to come back later (Retry-After); next ${kind} probe at ${clock(wait)}Z`, cfg.interval * 3 + cfg.timeout);
      return;
    }
    // A sleeping engine queues inference until it wakes: the probe would measure the sleep.
    if (probers[kind].sendsInference && status.currentState() === 'asleep') {
      metrics.probesSkipped.labels({ probe: kind, reason: 'asleep' }).inc();
      return;
    }
    if (why === 'schedule' && watchTraffic.includes(kind)) {
      const { words, why: due } = skipWords(kind, Date.now());
      if (words !== undefined) {
        skipping.add(kind);
        metrics.probesSkipped.labels({ probe: kind, reason: 'traffic' }).inc();
        markSkipped(kind, words);
        return;
      }
      deps.log.debug({ probe: kind, why: due }, 'when_idle: probing');
    }
    skipping.delete(kind);
    running.add(kind);
    const sentAt = Date.now();
    lastSentAt.set(kind, sentAt);
    // Until it ends, the run counts as its previous one did (vLLM may count its requests first).
    let previous: OwnRun | undefined;
    for (let i = own.length - 1; i >= 0 && !previous; i--) if (own[i]!.kind === kind && own[i]!.endedAt !== undefined) previous = own[i];
    const mine: OwnRun & { kind: ProbeKind } = { kind, startedAt: sentAt, requests: previous?.requests ?? 4, outputTokens: previous?.outputTokens ?? 4 * trafficSettings(config, kind).maxTokens };
    if (probers[kind].sendsInference) {
      own.push(mine);
      while (own.length && (own[0]!.endedAt ?? Infinity) < sentAt - OWN_KEPT_MS) own.shift();
    }
    const log = deps.log.child({ component: 'probe', probe: kind });
    const timeoutMs = Math.round(config.probes[kind].timeout * 1000);
    const signal = AbortSignal.any([shutdown, AbortSignal.timeout(timeoutMs)]);
    const started = performance.now();
    try {
      const result = await instances.get(kind)!.run({ keySource: config.target, thresholds: config.status, client: deps.client, tracker, metrics, log, signal, shutdown, timeoutMs, watcher: deps.watcher });
      mine.requests = result.requests.length;
      mine.outputTokens = result.requests.reduce((n, r) => n + (r.usage?.completion_tokens ?? trafficSettings(config, kind).maxTokens), 0);
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
        inference: probers[kind].sendsInference,
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
      mine.endedAt = Date.now();
      running.delete(kind);
    }
  };

  const track = (kind: ProbeKind, why: 'schedule' | 'now' | 'resume' = 'now'): Promise<void> => {
    const p = runOnce(kind, why);
    inFlight.add(p);
    void p.finally(() => inFlight.delete(p));
    return p;
  };

  for (const kind of enabled) {
    const seconds = config.probes[kind].interval;
    // Spread probes of many sidecars without pushing a run past its slot; runOnce skips a slot
    // whose previous run of the same kind is still going.
    tasks.push(every(seconds, () => track(kind, 'schedule'), { maxRandomDelayMs: Math.min(1000, seconds * 100) }));
  }
  // Run every probe once at start so /readyz and /status do not wait a whole interval.
  const firstCycle = Promise.all(enabled.map((k) => track(k))).then(() => undefined);

  return {
    firstCycle,
    runNow: (kind) => track(kind),
    async stop() {
      for (const t of tasks) t.stop();
      await Promise.allSettled([...inFlight]);
    },
  };
}
