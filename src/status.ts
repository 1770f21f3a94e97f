/**
 * The on-call verdict behind /status: a set of named checks, each healthy, degraded,
 * unhealthy or unknown with a reason in plain words that names numbers. The overall status is
 * the worst check. Probe checks use hysteresis (K failures in a row to go unhealthy, M
 * successes in a row to recover) so one blip never flips the verdict.
 */
import type { Config } from './config.js';
import type { Metrics } from './metrics.js';
import { percentile } from './stats.js';

export type Verdict = 'healthy' | 'degraded' | 'unhealthy' | 'unknown';
const SEVERITY: Record<Verdict, number> = { healthy: 0, unknown: 1, degraded: 2, unhealthy: 3 };

export interface Check {
  name: string;
  status: Verdict;
  reason: string;
  since: string;
}

export interface StatusReport {
  status: Verdict;
  reasons: string[];
  target: string;
  model: string;
  generated_at: string;
  checks: Check[];
}

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
  private readonly checks = new Map<string, Check>();
  private readonly probes = new Map<string, ProbeHysteresis>();
  private readonly ttftSamples: Array<{ at: number; seconds: number }> = [];

  constructor(
    private readonly config: Config,
    private readonly metrics: Metrics,
    private readonly describeTarget: () => { url: string; model: string },
    private readonly now: () => Date = () => new Date(),
  ) {}

  /** Sets one check. Keeps `since` while the status stays the same. */
  set(name: string, status: Verdict, reason: string): void {
    const previous = this.checks.get(name);
    const since = previous && previous.status === status ? previous.since : isoSeconds(this.now());
    this.checks.set(name, { name, status, reason, since });
    this.report(); // keep vllm_probe_status current between /status requests
  }

  clear(name: string): void {
    this.checks.delete(name);
    this.report();
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
      if (state.failuresInARow === 0) state.failingSince = now;
      state.failuresInARow++;
      state.successesInARow = 0;
      state.lastDetail = detail;
      state.lastOutcome = outcome;
      if (state.failuresInARow >= k) state.failing = true;
    }
    state.seen = true;
    this.set(`probe_${probe}`, ...this.describeProbe(probe, state));
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

  private latencyCheck(): Check | undefined {
    const windowMs = this.config.status.window * 1000;
    const cutoff = this.now().getTime() - windowMs;
    while (this.ttftSamples.length && this.ttftSamples[0]!.at < cutoff) this.ttftSamples.shift();
    const p95 = percentile(this.ttftSamples.map((s) => s.seconds), 0.95);
    if (p95 === undefined) return undefined;
    const { threshold, critical_threshold: critical } = this.config.slo.ttft;
    const window = windowLabel(this.config.status.window);
    const text = `TTFT p95 over ${window} is ${p95.toFixed(2)} s (${this.ttftSamples.length} probes), SLO is ${threshold.toFixed(2)} s`;
    const status: Verdict = p95 > critical ? 'unhealthy' : p95 > threshold ? 'degraded' : 'healthy';
    const previous = this.checks.get('ttft_latency');
    const since = previous && previous.status === status ? previous.since : isoSeconds(this.now());
    const check = { name: 'ttft_latency', status, reason: status === 'unhealthy' ? `${text}, critical at ${critical.toFixed(2)} s` : text, since };
    this.checks.set('ttft_latency', check);
    return check;
  }

  /** The verdict now. `unknown` until the first TTFT probe has run. */
  report(): StatusReport {
    this.latencyCheck();
    const checks = [...this.checks.values()];
    let status: Verdict = 'healthy';
    for (const c of checks) if (SEVERITY[c.status] > SEVERITY[status]) status = c.status;
    const reasons = checks
      .filter((c) => c.status !== 'healthy')
      .sort((a, b) => SEVERITY[b.status] - SEVERITY[a.status])
      .map((c) => c.reason);
    for (const v of ['healthy', 'degraded', 'unhealthy', 'unknown'] as const) {
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
  const head = `${report.status}: ${report.reasons.length ? report.reasons.join('; ') : 'all checks pass'}`;
  const width = Math.max(...report.checks.map((c) => c.name.length), 5);
  const lines = report.checks.map((c) => `${c.name.padEnd(width)}  ${c.status.padEnd(9)}  ${c.reason}`);
  return [head, ...lines, ''].join('\n');
}
