/**
 * The on-call verdict behind /status: a set of named checks, each healthy, degraded,
 * unhealthy or unknown with a reason in plain words that names numbers (`skipped` when a check
 * cannot run here at all, e.g. no GPU: not a judgement). The overall status is the worst check.
 * Probe checks use hysteresis (K failures in a row to go unhealthy, M successes in a row to
 * recover) so one blip never flips the verdict.
 *
 * Freshness: every check remembers when it was last judged, and a check set with a staleness
 * bound turns `unknown` once its source stops reporting, so no check stays healthy on old data.
 * Reasons are made one line and capped: they may quote what the target said.
 */
import type { Config } from './config.js';
import type { Metrics } from './metrics.js';
import { oneLine, redactUrl } from './reason.js';
import { percentile } from './stats.js';

export type Verdict = 'healthy' | 'degraded' | 'unhealthy' | 'unknown' | 'skipped';
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

export interface StatusReport {
  status: Verdict;
  reasons: string[];
  target: string;
  model: string;
  generated_at: string;
  checks: Check[];
}

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

interface ProbeHysteresis {
  failuresInARow: number;
  successesInARow: number;
  failing: boolean;
  seen: boolean;
  failingSince?: Date;
  lastDetail?: string;
  lastOutcome?: string;
}

export class StatusBoard {
  private readonly checks = new Map<string, StoredCheck>();
  private readonly probes = new Map<string, ProbeHysteresis>();
  private readonly ttftSamples: Array<{ at: number; seconds: number }> = [];
  private readonly ttftFailures: number[] = [];
  private ttftSeen = false;
  /** Checks judged elsewhere and shown here: a central daemon's targets. */
  private readonly included: Array<() => Check[]> = [];
  private readonly listeners: Array<() => void> = [];

  constructor(
    private readonly config: Config,
    private readonly metrics: Metrics,
    private readonly describeTarget: () => { url: string; model: string },
    private readonly now: () => Date = () => new Date(),
  ) {}

  /**
   * Sets one check. Keeps `since` while the status stays the same. With `staleAfterSeconds`,
   * the check reads `unknown` when it is not set again within that time.
   */
  set(name: string, status: Verdict, reason: string, staleAfterSeconds?: number): void {
    this.store(name, status, oneLine(redactUrl(reason)), staleAfterSeconds);
    this.changed();
  }

  /** Keeps vllm_probe_status current between /status requests, here and on boards that include this one. */
  private changed(): void {
    this.report();
    for (const listener of this.listeners) listener();
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
  include(source: () => Check[]): void {
    this.included.push(source);
  }

  clear(name: string): void {
    this.checks.delete(name);
    this.changed();
  }

  /** Feeds one probe result through the hysteresis; `detail` says what went wrong in words. */
  recordProbe(probe: string, success: boolean, outcome: string, detail: string | undefined, ttftSeconds?: number): void {
    const state = this.probes.get(probe) ?? { failuresInARow: 0, successesInARow: 0, failing: false, seen: false };
    this.probes.set(probe, state);
    const { failures_to_unhealthy: k, successes_to_recover: m } = this.config.status;
    const now = this.now();
    if (success) {
      state.successesInARow++;
      state.failuresInARow = 0;
      if (state.failing && state.successesInARow >= m) {
        state.failing = false;
        state.failingSince = undefined;
      }
      if (ttftSeconds !== undefined && probe === 'ttft') this.ttftSamples.push({ at: now.getTime(), seconds: ttftSeconds });
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
    if (p95 === undefined) {
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

  /** The verdict now. `unknown` until the first TTFT probe has run. */
  report(): StatusReport {
    this.latencyCheck();
    const nowMs = this.now().getTime();
    let checks = [...this.checks.values()].map((c) => this.fresh(c, nowMs)).concat(this.included.flatMap((source) => source()));
    // Checks that read the engine follow it: a wedged engine makes their last data meaningless.
    const engine = checks.find((c) => c.name === 'engine_progress');
    if (engine?.status === 'unhealthy') {
      checks = checks.map((c) => (ENGINE_DEPENDENT.has(c.name) && (c.status === 'healthy' || c.status === 'degraded') ? { ...c, status: 'unknown', reason: oneLine(`cannot judge while the engine is wedged; last said: ${c.reason}`) } : c));
    }
    let status: Verdict = 'healthy';
    for (const c of checks) if (SEVERITY[c.status] > SEVERITY[status]) status = c.status;
    const reasons = checks
      .filter((c) => c.status !== 'healthy' && c.status !== 'skipped')
      .sort((a, b) => SEVERITY[b.status] - SEVERITY[a.status] || causeRank(a.name) - causeRank(b.name))
      .map((c) => c.reason);
    for (const v of ['healthy', 'degraded', 'unhealthy', 'unknown'] as const) {
      // 'skipped' never is the overall verdict (it ranks with healthy).
      this.metrics.statusVerdict.labels({ status: v }).set(v === status ? 1 : 0);
    }
    const { url, model } = this.describeTarget();
    return { status, reasons, target: url, model, generated_at: isoSeconds(this.now()), checks };
  }
}

function windowLabel(seconds: number): string {
  return seconds % 60 === 0 ? `${seconds / 60}m` : `${seconds}s`;
}

/** One line per check, for `curl …/status?format=text`. */
export function formatStatusText(report: StatusReport): string {
  const head = oneLine(`${report.status}: ${report.reasons.length ? report.reasons.join('; ') : 'all checks pass'}`, 2000);
  const width = Math.max(...report.checks.map((c) => c.name.length), 5);
  // Reasons are already one line; escaping again here keeps this true for any caller.
  const lines = report.checks.map((c) => `${c.name.padEnd(width)}  ${c.status.padEnd(9)}  ${oneLine(c.reason, 1000)}`);
  return [head, ...lines, ''].join('\n');
}
