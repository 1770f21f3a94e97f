/**
 * The on-call answer behind /status. Its headline is one diagnosis (src/diagnosis/): the state
 * of the replica now, its lead cause in numbers and since when, judged from all the evidence
 * collectors and probes report into `evidence`. Below it, named checks give the detail: each
 * healthy, degraded, unhealthy or unknown with a reason in plain words (`skipped` when a check
 * cannot run here at all, e.g. no GPU: not a judgement). What burned the SLO in the window
 * stays visible as `recent`, not as the headline. Checks that the state explains (a prefix
 * probe that could not run under saturation) say so instead of contradicting it.
 *
 * Freshness: every check remembers when it was last judged, and a check set with a staleness
 * bound turns `unknown` once its source stops reporting, so no check stays healthy on old data.
 * Reasons are made one line and capped: they may quote what the target said.
 */
import type { Config } from './config.js';
import { diagnose, type Diagnosis, type DiagnosisSettings } from './diagnosis/diagnose.js';
import { connectFailure, Evidence } from './diagnosis/evidence.js';
import { STATE_NAMES, STATES, type State, type Verdict } from './diagnosis/states.js';
import type { Metrics } from './metrics.js';
import { oneLine, redactUrl, statusHeadline } from './reason.js';
import { percentile } from './stats.js';

export type { State, Verdict };
const SEVERITY: Record<Verdict, number> = { skipped: 0, healthy: 0, unknown: 1, degraded: 2, unhealthy: 3 };

export interface Check {
  name: string;
  status: Verdict;
  reason: string;
  since: string;
  /** When the data behind this verdict was last judged. */
  updated_at: string;
}

interface StoredCheck extends Check {
  updatedMs: number;
  staleAfterMs?: number;
}

/** A check of a board that includes other boards (a central daemon's targets), with that target's state. */
export interface TargetCheck extends Check {
  state: State;
  cause: string;
}

export interface StatusReport {
  status: Verdict;
  /** The replica's state now (src/diagnosis/states.ts). */
  state: State;
  /** The lead cause in one line, with its numbers. */
  cause: string;
  /** Since when this state holds. */
  since: string;
  /** The numbers that decided the state. */
  evidence: string[];
  /** Non-healthy states and SLO burn of the last status window that are over now. */
  recent: string[];
  /** False when vLLM itself cannot serve: /status answers 503 only then. */
  serving: boolean;
  /** Every non-healthy check's reason, cause first (the detail below the headline). */
  reasons: string[];
  target: string;
  model: string;
  generated_at: string;
  checks: Check[];
}

/**
 * Checks the diagnosis judges itself (probe lines, engine progress, KV, overload) or that
 * speak of a window (recent, not now): a non-healthy one never turns a healthy state degraded.
 */
const JUDGED_BY_DIAGNOSIS = new Set(['engine_progress', 'vllm_health', 'kv_cache', 'overload', 'ttft_latency', 'server_slo', 'prefix_sources']);
/** Every probe kind's own line (`probe_<kind>`) is judged by the diagnosis from its results. */
const judgedByDiagnosis = (check: string) => JUDGED_BY_DIAGNOSIS.has(check) || check.startsWith('probe_');

/** Checks whose verdict comes from a synthetic probe: not judged while the state says it could not run cleanly. */
const PROBE_JUDGED = new Set(['prefix_cache', 'ttft_latency']);

/**
 * Checks whose data comes from a working engine. A wedged EngineCore stops updating the series
 * the API server still serves, so KV usage, prompt-token sources and vLLM's own latency buckets
 * read as they were when it stopped (seen on the H200: "100 % within the SLO" while frozen).
 */
const ENGINE_DEPENDENT = new Set(['ttft_latency', 'prefix_cache', 'kv_cache', 'prefix_sources', 'server_slo']);

/**
 * Checks that explain others, first cause first. Among reasons of one severity these lead, so
 * the one line names the cause (a wedged engine) and not its symptom (the probes that time out
 * because of it), whatever order the checks were first set in. The rest keep that order.
 */
const CAUSES_FIRST = ['vllm_process', 'engine_progress', 'vllm_health', 'gpu_collector', 'gpu_memory', 'vllm_metrics'];
const causeRank = (name: string) => {
  const i = CAUSES_FIRST.indexOf(name);
  return i === -1 ? CAUSES_FIRST.length : i;
};

const isoSeconds = (d: Date) => d.toISOString().replace(/\.\d{3}Z$/, 'Z');
const clock = (d: Date) => isoSeconds(d).slice(11);

/** What a probe result adds for the diagnosis. */
export interface ProbeExtra {
  /** HTTP status of the request, when it got one. */
  status?: number;
  /** When the probe was sent (ms since the epoch). */
  startedAt?: number;
  retryAfterSeconds?: number;
  /** Whether the kind sends inference to the engine (ProbeKindSpec.sendsInference). */
  inference?: boolean;
}

interface ProbeHysteresis {
  failuresInARow: number;
  successesInARow: number;
  failing: boolean;
  seen: boolean;
  failingSince?: Date;
  lastDetail?: string;
  lastOutcome?: string;
}

interface Episode {
  state: State;
  cause: string;
  /** Since when its cause holds (the evidence's time: a refusal may predate the state's name). */
  from: number;
  /** When /status first said it: `recent` lines show what was said, from then to its end. */
  shownFrom: number;
  to?: number;
}

export class StatusBoard {
  /** What collectors and probes saw of this target: the diagnosis's only input. */
  readonly evidence: Evidence;
  private readonly settings: DiagnosisSettings;
  private current: Episode | undefined;
  private readonly episodes: Episode[] = [];
  private readonly checks = new Map<string, StoredCheck>();
  private readonly probes = new Map<string, ProbeHysteresis>();
  private readonly ttftSamples: Array<{ at: number; seconds: number }> = [];
  private readonly ttftFailures: number[] = [];
  private ttftSeen = false;
  /** The last run of each probe skipped on purpose because real traffic was served (issue 25). */
  private readonly skipped = new Map<string, { at: number; words: string }>();
  /** Checks judged elsewhere and shown here: a central daemon's targets. */
  private readonly included: Array<() => TargetCheck[]> = [];
  private readonly listeners: Array<() => void> = [];
  /** A judgement is queued (changed()): later changes in the same burst ride on it. */
  private judging = false;

  constructor(
    private readonly config: Config,
    private readonly metrics: Metrics,
    private readonly describeTarget: () => { url: string; model: string },
    private readonly now: () => Date = () => new Date(),
    /** Whether this board's target has its /metrics scraped (a central daemon's targets do not). */
    scraping = config.scrape.enabled,
  ) {
    const probeMs = config.probes.ttft.interval * 1000;
    const scrapeMs = config.scrape.interval * 1000;
    this.settings = {
      probeIntervalMs: probeMs,
      scrapeIntervalMs: scrapeMs,
      ttftThresholdSeconds: config.slo.ttft.threshold,
      kvUsageHigh: config.status.kv_cache_usage_degraded,
      restartShownMs: Math.max(120_000, 4 * probeMs),
      failuresToUnhealthy: config.status.failures_to_unhealthy,
    };
    // Preemptions and rejections are counted over the last minute (or four scrapes, if longer).
    this.evidence = new Evidence(Math.max(60_000, 4 * scrapeMs), scraping);
    // Each observation re-judges: a state's start is when its evidence came, and the state
    // gauge follows without a /status request.
    this.evidence.onRecord = () => this.changed();
  }

  /**
   * Sets one check. Keeps `since` while the status stays the same. With `staleAfterSeconds`,
   * the check reads `unknown` when it is not set again within that time.
   */
  set(name: string, status: Verdict, reason: string, staleAfterSeconds?: number): void {
    this.store(name, status, oneLine(redactUrl(reason)), staleAfterSeconds);
    this.changed();
  }

  /**
   * Keeps vllm_probe_status current between /status requests, here and on boards that include
   * this one. One judgement per burst: a scrape sets several checks and records evidence in one
   * go, and judging after each of them was a fifth of the daemon's CPU at rest. The judgement
   * runs once the burst's synchronous code is done, before any timer or I/O callback.
   */
  private changed(): void {
    if (this.judging) return;
    this.judging = true;
    queueMicrotask(() => {
      this.judging = false;
      try {
        this.report();
        for (const listener of this.listeners) listener();
      } catch {
        // Nobody waits on this judgement to catch a bug in it, and an uncaught throw here would
        // end the daemon: the next /status request judges again and answers with the error.
      }
    });
  }

  /** Called after every change of a check (a board that includes this one re-judges its verdict). */
  onChange(listener: () => void): void {
    this.listeners.push(listener);
  }

  private store(name: string, status: Verdict, reason: string, staleAfterSeconds?: number): void {
    const previous = this.checks.get(name);
    const now = this.now();
    const since = previous && previous.status === status ? previous.since : isoSeconds(now);
    const check: StoredCheck = { name, status, reason, since, updated_at: isoSeconds(now), updatedMs: now.getTime() };
    if (staleAfterSeconds !== undefined) check.staleAfterMs = staleAfterSeconds * 1000;
    this.checks.set(name, check);
  }

  /** Adds checks judged by other boards (one per static target) to every report and the verdict. */
  include(source: () => TargetCheck[]): void {
    this.included.push(source);
  }

  /** A check's verdict now, freshness applied (the scheduler asks before skipping a probe). */
  verdictOf(name: string): Verdict | undefined {
    const c = this.checks.get(name);
    return c ? this.fresh(c, this.now().getTime()).status : undefined;
  }

  /**
   * A scheduled run of `probe` was skipped because real traffic was served (`words` says so):
   * its line stays judged, saying which evidence stands in for it, and is not left to go stale.
   */
  probeSkipped(probe: string, words: string): void {
    this.skipped.set(probe, { at: this.now().getTime(), words });
    this.set(`probe_${probe}`, 'healthy', `skipped: ${words}`, this.probeStaleAfter(probe));
  }

  clear(name: string): void {
    this.checks.delete(name);
    this.changed();
  }

  /**
   * Feeds one probe result to the evidence and through its line's hysteresis; `detail` says
   * what went wrong in words. `extra` carries the HTTP status, when it was sent and Retry-After.
   */
  recordProbe(probe: string, success: boolean, outcome: string, detail: string | undefined, ttftSeconds?: number, extra: ProbeExtra = {}): void {
    const state = this.probes.get(probe) ?? { failuresInARow: 0, successesInARow: 0, failing: false, seen: false };
    this.probes.set(probe, state);
    const { failures_to_unhealthy: k, successes_to_recover: m } = this.config.status;
    const now = this.now();
    const startedAt = extra.startedAt ?? now.getTime() - (ttftSeconds ?? 0) * 1000;
    const failure = connectFailure(outcome, detail);
    this.evidence.probe({
      at: now.getTime(),
      startedAt,
      kind: probe,
      ...(extra.inference !== undefined ? { inference: extra.inference } : {}),
      success,
      outcome: outcome as never,
      ...(extra.status !== undefined ? { status: extra.status } : {}),
      ...(detail !== undefined ? { detail } : {}),
      ...(ttftSeconds !== undefined ? { ttftSeconds } : {}),
      ...(extra.retryAfterSeconds !== undefined ? { retryAt: now.getTime() + extra.retryAfterSeconds * 1000 } : {}),
      ...(failure ? { failure } : {}),
    });
    if (success) {
      state.successesInARow++;
      state.failuresInARow = 0;
      if (state.failing && state.successesInARow >= m) {
        state.failing = false;
        state.failingSince = undefined;
      }
      // A probe sent before the engine woke up waited through the sleep: that is not latency.
      // vLLM answers it ~10 ms after /wake_up, before any scrape sees the engine awake.
      const slept = this.evidence.seenAsleep || (this.evidence.lastWakeAt !== undefined && startedAt <= this.evidence.lastWakeAt);
      if (ttftSeconds !== undefined && probe === 'ttft' && !slept) this.ttftSamples.push({ at: now.getTime(), seconds: ttftSeconds });
    } else {
      if (probe === 'ttft') this.ttftFailures.push(now.getTime());
      if (state.failuresInARow === 0) state.failingSince = now;
      state.failuresInARow++;
      state.successesInARow = 0;
      state.lastDetail = detail;
      state.lastOutcome = outcome;
      if (state.failuresInARow >= k) state.failing = true;
    }
    state.seen = true;
    if (probe === 'ttft') this.ttftSeen = true;
    const [verdict, reason] = this.describeProbe(probe, state);
    this.set(`probe_${probe}`, verdict, reason, this.probeStaleAfter(probe));
  }

  /** A probe line goes unknown when three intervals pass without a result. */
  private probeStaleAfter(probe: string): number | undefined {
    const cfg = (this.config.probes as Record<string, { interval: number; timeout: number } | undefined>)[probe];
    return cfg ? cfg.interval * 3 + cfg.timeout : undefined;
  }

  private describeProbe(probe: string, s: ProbeHysteresis): [Verdict, string] {
    const label = probe === 'ttft' ? 'TTFT probe' : `${probe} probe`;
    const since = s.failingSince ? clock(s.failingSince) : 'now';
    // Overload is not failure: the server works and says it is full. Degraded, with the levers.
    if (s.lastOutcome === 'rejected_overload' && s.failuresInARow > 0) {
      return ['degraded', `vLLM is shedding load: ${s.lastDetail ?? 'requests rejected'} (${s.failuresInARow} ${label}s rejected in a row since ${since}); add replicas or raise --max-num-queued-reqs / --max-num-queued-tokens`];
    }
    const what = s.lastOutcome === 'connect_error' ? `vLLM unreachable since ${since}: ${s.lastDetail?.replace(/^connection failed: /, '') ?? 'connect error'}` : `${label} failing since ${since}: ${s.lastDetail ?? s.lastOutcome}`;
    if (s.failing && s.failuresInARow > 0) return ['unhealthy', `${what} (${s.failuresInARow} failures in a row)`];
    if (s.failing) {
      return ['unhealthy', `${label} recovering: ${s.successesInARow} of ${this.config.status.successes_to_recover} successes needed after: ${what}`];
    }
    if (s.failuresInARow > 0) {
      return ['degraded', `${what} (${s.failuresInARow} of ${this.config.status.failures_to_unhealthy} failures before unhealthy)`];
    }
    return ['healthy', `${label} succeeding`];
  }

  /** TTFT p95 over the window, judged on successful probes only, and saying so. */
  private latencyCheck(): void {
    if (!this.ttftSeen) return;
    const windowMs = this.config.status.window * 1000;
    const now = this.now();
    const cutoff = now.getTime() - windowMs;
    while (this.ttftSamples.length && this.ttftSamples[0]!.at < cutoff) this.ttftSamples.shift();
    while (this.ttftFailures.length && this.ttftFailures[0]! < cutoff) this.ttftFailures.shift();
    const window = windowLabel(this.config.status.window);
    const failed = this.ttftFailures.length;
    const p95 = percentile(this.ttftSamples.map((s) => s.seconds), 0.95);
    let status: Verdict;
    let reason: string;
    const failingNow = this.probes.get('ttft')?.failuresInARow ?? 0;
    const skip = this.skipped.get('ttft');
    if (p95 === undefined && skip && now.getTime() - skip.at <= (this.probeStaleAfter('ttft') ?? 0) * 1000) {
      status = 'skipped';
      reason = `no TTFT probe in the last ${window}: ${skip.words}`;
    } else if (p95 === undefined) {
      status = 'unknown';
      reason = `no successful TTFT probe in the last ${window}${failed ? ` (${failed} failed)` : ''}: latency cannot be judged`;
    } else if (failingNow > 0) {
      // Older successes say nothing about a server whose latest probes fail.
      status = 'unknown';
      reason = `cannot judge TTFT latency: the last ${failingNow} TTFT probe${failingNow === 1 ? '' : 's'} failed (p95 of the ${this.ttftSamples.length} successful ones in the last ${window} was ${p95.toFixed(2)} s)`;
    } else {
      const { threshold, critical_threshold: critical } = this.config.slo.ttft;
      const text = `TTFT p95 over ${window} is ${p95.toFixed(2)} s (${this.ttftSamples.length} successful probes${failed ? `; ${failed} failed probes not counted` : ''}), SLO is ${threshold.toFixed(2)} s`;
      status = p95 > critical ? 'unhealthy' : p95 > threshold ? 'degraded' : 'healthy';
      reason = status === 'unhealthy' ? `${text}, critical at ${critical.toFixed(2)} s` : text;
    }
    this.store('ttft_latency', status, reason);
  }

  /** A check whose source stopped reporting reads unknown, with what it last said. */
  private fresh(c: StoredCheck, nowMs: number): Check {
    const { updatedMs, staleAfterMs, ...check } = c;
    if (staleAfterMs === undefined || nowMs - updatedMs <= staleAfterMs || c.status === 'unknown' || c.status === 'skipped') return check;
    const age = Math.round((nowMs - updatedMs) / 1000);
    return { ...check, status: 'unknown', reason: oneLine(`stale: not judged for ${age} s (its source stopped reporting); last said: ${c.reason}`) };
  }

  /** The diagnosis now, with the checks below it. `unknown` until something has been observed. */
  report(): StatusReport {
    this.latencyCheck();
    const nowMs = this.now().getTime();
    const view = this.evidence.view();
    const targets = this.included.flatMap((source) => source());
    let d = diagnose(view, this.settings, nowMs);
    // A central daemon observes nothing itself: the sickest target leads, named by its URL.
    if (targets.length && (d.state === 'unknown' || d.state === 'healthy')) d = worstTarget(targets) ?? allServe(targets) ?? d;
    let checks: Check[] = [...this.checks.values()].map((c) => this.fresh(c, nowMs)).concat(targets.map(({ state: _s, cause: _c, ...c }) => c));
    checks = reconcile(checks, d, view);
    // A failing check the diagnosis does not judge (GPU, scrape errors, prefix cache) still counts.
    if (d.state === 'healthy' || d.state === 'restarted' || d.state === 'unknown') {
      const failing = checks
        .filter((c) => !judgedByDiagnosis(c.name) && !c.name.startsWith('target:') && (c.status === 'degraded' || c.status === 'unhealthy'))
        .sort((a, b) => SEVERITY[b.status] - SEVERITY[a.status] || causeRank(a.name) - causeRank(b.name))[0];
      if (failing) d = { state: 'degraded', cause: `${failing.name}: ${failing.reason}`, evidence: [] };
    }
    const episode = this.track(d, nowMs);
    const spec = STATES[d.state];
    const status = spec.verdict;
    const reasons = checks
      .filter((c) => c.status !== 'healthy' && c.status !== 'skipped')
      .sort((a, b) => SEVERITY[b.status] - SEVERITY[a.status] || causeRank(a.name) - causeRank(b.name))
      .map((c) => c.reason);
    for (const v of ['healthy', 'degraded', 'unhealthy', 'unknown'] as const) {
      // 'skipped' never is the overall verdict (it ranks with healthy).
      this.metrics.statusVerdict.labels({ status: v }).set(v === status ? 1 : 0);
    }
    for (const s of STATE_NAMES) this.metrics.diagnosisState.labels({ state: s }).set(s === d.state ? 1 : 0);
    const { url, model } = this.describeTarget();
    return {
      status,
      state: d.state,
      cause: oneLine(redactUrl(d.cause), 1000),
      since: isoSeconds(new Date(d.since ?? episode.from)),
      evidence: d.evidence.map((e) => oneLine(redactUrl(e), 300)),
      recent: this.recent(nowMs, checks),
      serving: spec.serving,
      reasons,
      target: url,
      model,
      generated_at: isoSeconds(this.now()),
      checks,
    };
  }

  /** The state now, without building a report (the scheduler asks it before every probe). */
  currentState(): State {
    return diagnose(this.evidence.view(), this.settings, this.now().getTime()).state;
  }

  /** Keeps the current episode (a state with its start) and the ended ones of the window. */
  private track(d: Diagnosis, nowMs: number): Episode {
    if (this.current?.state !== d.state) {
      if (this.current) {
        this.current.to = nowMs;
        if (this.current.state !== 'healthy' && this.current.state !== 'unknown') this.episodes.push(this.current);
      }
      this.current = { state: d.state, cause: d.cause, from: d.since ?? nowMs, shownFrom: nowMs };
    } else {
      this.current.cause = d.cause; // the numbers move; the episode and its start stay
    }
    const cutoff = nowMs - this.config.status.window * 1000;
    while (this.episodes.length && (this.episodes[0]!.to ?? nowMs) < cutoff) this.episodes.shift();
    if (this.episodes.length > 20) this.episodes.splice(0, this.episodes.length - 20);
    return this.current;
  }

  /** What the window saw that is over now: ended episodes, and SLO burn from the window's checks. */
  private recent(nowMs: number, checks: Check[]): string[] {
    const out = this.episodes
      .filter((e) => e.state !== 'restarted')
      .map((e) => oneLine(`${e.state} ${clock(new Date(e.shownFrom))}–${clock(new Date(e.to ?? nowMs))}: ${e.cause}`, 200));
    for (const c of checks) if ((c.name === 'ttft_latency' || c.name === 'server_slo') && (c.status === 'degraded' || c.status === 'unhealthy')) out.push(oneLine(c.reason, 200));
    return out;
  }
}

/** Among a central daemon's targets, the one to lead with: one that cannot serve, else the worst verdict. */
function worstTarget(targets: TargetCheck[]): Diagnosis | undefined {
  const sick = targets.filter((t) => t.state !== 'healthy' && t.state !== 'unknown' && t.state !== 'restarted');
  const lead = sick.sort((a, b) => Number(STATES[a.state].serving) - Number(STATES[b.state].serving) || SEVERITY[b.status] - SEVERITY[a.status])[0];
  if (!lead) return undefined;
  const others = sick.length > 1 ? ` (and ${sick.length - 1} more target${sick.length === 2 ? '' : 's'} not healthy)` : '';
  return { state: lead.state, cause: `${lead.name.replace(/^target:/, '')}: ${lead.cause}${others}`, evidence: [] };
}

/** Every target of a central daemon serves: healthy, once each has been judged. */
function allServe(targets: TargetCheck[]): Diagnosis | undefined {
  if (targets.some((t) => t.state === 'unknown')) return undefined;
  return { state: 'healthy', cause: `all ${targets.length} target${targets.length === 1 ? '' : 's'} serve`, evidence: [] };
}

/** States in which a synthetic probe cannot run cleanly: what it measured says nothing about caching or latency. */
const PROBES_DISTURBED = new Set<State>(['saturated', 'kv_pressure', 'shedding', 'asleep', 'wedged', 'crashed', 'down', 'starting', 'misconfigured']);

/**
 * Makes the checks agree with the diagnosis and with vLLM's own counters: a check that the
 * state explains, or that the engine's counters contradict, says so instead of its verdict.
 */
function reconcile(checks: Check[], d: Diagnosis, view: ReturnType<Evidence['view']>): Check[] {
  const first = view.scrapes[0]?.snapshot;
  const last = view.scrapes.at(-1)?.snapshot;
  const hits = first && last && first !== last && first.prefix_cache_hits !== null && last.prefix_cache_hits !== null ? last.prefix_cache_hits - first.prefix_cache_hits : 0;
  return checks.map((c) => {
    const judged = c.status === 'degraded' || c.status === 'unhealthy' || c.status === 'healthy';
    if (d.state === 'wedged' && ENGINE_DEPENDENT.has(c.name) && (c.status === 'healthy' || c.status === 'degraded')) {
      return { ...c, status: 'unknown', reason: oneLine(`cannot judge while the engine is wedged; last said: ${c.reason}`) };
    }
    if (PROBE_JUDGED.has(c.name) && PROBES_DISTURBED.has(d.state) && judged && c.status !== 'healthy') {
      return { ...c, status: 'unknown', reason: oneLine(`not judged while ${d.state.replace('_', ' ')}: its probe could not run cleanly; last said: ${c.reason}`) };
    }
    if (c.name === 'prefix_cache' && (c.status === 'degraded' || c.status === 'unhealthy') && (hits > 0 || (last?.prefix_cache_enabled === true && /disabled/i.test(c.reason)))) {
      const counters = hits > 0 ? `vLLM counted ${hits} prefix-cache hit${hits === 1 ? '' : 's'} meanwhile` : "vLLM's cache_config_info says enable_prefix_caching is on";
      return { ...c, status: 'unknown', reason: oneLine(`contradicted by vLLM's own counters (${counters}); the probe's measurement was disturbed; last said: ${c.reason}`) };
    }
    return c;
  });
}

function windowLabel(seconds: number): string {
  return seconds % 60 === 0 ? `${seconds / 60}m` : `${seconds}s`;
}

/**
 * For `curl …/status?format=text`: the state and its cause in one line of at most
 * HEADLINE_MAX characters, then what happened recently, the evidence, and one line per check.
 */
export function formatStatusText(report: StatusReport): string {
  const head = statusHeadline(report.state, report.cause, report.since);
  const width = Math.max(...report.checks.map((c) => c.name.length), 8);
  const extra = [...report.recent.map((r) => `recent:   ${oneLine(r, 300)}`), ...report.evidence.map((e) => `evidence: ${oneLine(e, 300)}`)];
  // Reasons are already one line; escaping again here keeps this true for any caller.
  const lines = report.checks.map((c) => `${c.name.padEnd(width)}  ${c.status.padEnd(9)}  ${oneLine(c.reason, 1000)}`);
  return [head, ...extra, ...lines, ''].join('\n');
}
