/**
 * All evidence of one target → one state, its lead cause in numbers, and what else it saw.
 * Pure and total: the same evidence and clock give the same answer, so every state is tested
 * with recorded evidence (test/diagnosis/diagnose.test.ts).
 *
 * The rules, first match wins (tuned on the real vLLM: docs/runbook.md and
 * ../shared/reference/vllm-states.md have the measurements):
 *  1. asleep        vllm:engine_sleep_state says the engine sleeps (sleep mode, on purpose)
 *  2. misconfigured TLS to the target fails, or vLLM answers the prober 401/403 or "no such model"
 *  3. crashed       nothing serves now, and since it last served vLLM said its engine died
 *  4. starting      nothing serves now, but vLLM's processes run
 *  5. down          nothing answers (twice in a row, or the processes are gone)
 *  6. wedged        /health 200, a wedge signature holds and no token flows
 *  7. shedding      vLLM refused requests at admission, or asked us to come back later
 *  8. kv_pressure   preemptions in the last minute, or KV nearly full with requests waiting
 *  9. saturated     requests waited on the last two scrapes while the engine ran and generated
 * 10. slo_breach    the last TTFT probes miss the SLO
 * 11. failing       a probe failed K times in a row for another reason (degraded before K)
 * 12. restarted     serving, within a while of a restart
 * 13. healthy
 * "Stalling" or "wedged" is never said while vLLM's generation counter grows.
 */
import { causeRoom, oneLine } from '../reason.js';
import type { ConnectFailure, EvidenceView, ProbeObservation, ScrapeObservation } from './evidence.js';
import type { State } from './states.js';

export interface DiagnosisSettings {
  /** The TTFT probe's interval, ms: "now" is the last few of them. */
  probeIntervalMs: number;
  scrapeIntervalMs: number;
  ttftThresholdSeconds: number;
  kvUsageHigh: number;
  /** How long `restarted` is shown after a restart, ms. */
  restartShownMs: number;
  /** Probe failures in a row that mean vLLM cannot serve (status.failures_to_unhealthy). */
  failuresToUnhealthy: number;
}

export interface Diagnosis {
  state: State;
  /** One line: the lead cause with its numbers. */
  cause: string;
  /** The numbers that decided it, one line each. */
  evidence: string[];
  /** Since when this cause holds (ms), where the evidence says; else the board keeps the time the state began. */
  since?: number;
}

const seconds = (ms: number) => `${Math.round(ms / 1000)} s`;
const clock = (ms: number) => new Date(ms).toISOString().slice(11, 19);
const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : word.endsWith('s') ? 'es' : 's'}`;
const round = (v: number, digits = 2) => Number(v.toFixed(digits));

/** Rates and facts from the scrapes kept: what vLLM's own counters say about "now". */
interface EngineNow {
  latest: ScrapeObservation;
  /** Generation tokens per second between the last two scrapes (null: one scrape, or no counter). */
  tokensPerSecond: number | null;
  /** Generation tokens grew between the last two scrapes: the engine works now. */
  tokensFlowing: boolean;
  preemptions: number;
  /** Preemptions between the last two scrapes: pressure now, not a minute ago. */
  preemptionsNow: number;
  preemptionSpanS: number;
  rejected: number;
  waitingOnLastTwo: boolean;
  /** The first scrape after the last one that saw a queue or a new preemption (or the latest, while
   *  busy): a probe sent before it may have waited in that queue. */
  lastBusyAt?: number;
}

function engineNow(ev: EvidenceView, now: number, freshMs: number): EngineNow | undefined {
  const latest = ev.scrapes.at(-1);
  if (!latest || now - latest.at > freshMs) return undefined;
  const first = ev.scrapes[0]!;
  const previous = ev.scrapes.at(-2);
  const gen = (o: ScrapeObservation | undefined) => o?.snapshot.generation_tokens ?? null;
  let tokensPerSecond: number | null = null;
  if (previous && gen(previous) !== null && gen(latest) !== null && latest.at > previous.at) {
    tokensPerSecond = Math.max(0, gen(latest)! - gen(previous)!) / ((latest.at - previous.at) / 1000);
  }
  const tokensFlowing = tokensPerSecond !== null && tokensPerSecond > 0;
  const delta = (pick: (o: ScrapeObservation) => number | null) => {
    const a = pick(first);
    const b = pick(latest);
    return first === latest || a === null || b === null ? 0 : Math.max(0, b - a);
  };
  const rejectedOf = (o: ScrapeObservation) => (o.snapshot.admission_rejections ? Object.values(o.snapshot.admission_rejections).reduce<number>((x, v) => x + (v ?? 0), 0) : null);
  const waiting = (o: ScrapeObservation | undefined) => (o?.snapshot.requests_waiting ?? 0) > 0;
  let lastBusyAt: number | undefined;
  for (let i = 0; i < ev.scrapes.length; i++) {
    const o = ev.scrapes[i]!;
    const before = ev.scrapes[i - 1]?.snapshot.preemptions;
    if ((o.snapshot.requests_waiting ?? 0) > 0 || (before != null && o.snapshot.preemptions !== null && o.snapshot.preemptions > before)) lastBusyAt = (ev.scrapes[i + 1] ?? o).at;
  }
  return {
    ...(lastBusyAt !== undefined ? { lastBusyAt } : {}),
    latest,
    tokensPerSecond,
    tokensFlowing,
    preemptions: delta((o) => o.snapshot.preemptions),
    preemptionsNow: previous && previous.snapshot.preemptions !== null && latest.snapshot.preemptions !== null ? Math.max(0, latest.snapshot.preemptions - previous.snapshot.preemptions) : 0,
    preemptionSpanS: (latest.at - first.at) / 1000,
    rejected: delta(rejectedOf),
    waitingOnLastTwo: previous !== undefined && waiting(previous) && waiting(latest),
  };
}

const queueWords = (e: EngineNow) => {
  const s = e.latest.snapshot;
  const byReason = s.requests_waiting_by_reason
    ? Object.entries(s.requests_waiting_by_reason)
        .filter(([, v]) => (v ?? 0) > 0)
        .map(([k, v]) => `${v} for ${k}`)
        .join(', ')
    : '';
  return `${s.requests_running ?? '?'} running, ${s.requests_waiting ?? '?'} waiting${byReason ? ` (${byReason})` : ''}`;
};
const flowWords = (e: EngineNow) => (e.tokensPerSecond !== null ? `generating ${Math.round(e.tokensPerSecond)} tok/s` : 'generating');
const kvWords = (e: EngineNow) => (e.latest.snapshot.kv_cache_usage_ratio !== null ? `KV cache ${Math.round(e.latest.snapshot.kv_cache_usage_ratio * 100)} % full` : 'KV usage not exported');

/** The newest connectivity facts (health polls and probe requests) in time order, newest last. */
function reachability(ev: EvidenceView): Array<{ at: number; answered: boolean; failure?: ConnectFailure; status?: number; detail?: string }> {
  const out: Array<{ at: number; answered: boolean; failure?: ConnectFailure; status?: number; detail?: string }> = [];
  for (const h of ev.health) out.push({ at: h.at, answered: h.status !== undefined, ...(h.failure ? { failure: h.failure } : {}), ...(h.status !== undefined ? { status: h.status } : {}), ...(h.detail ? { detail: h.detail } : {}) });
  for (const list of Object.values(ev.probes)) {
    for (const p of list) {
      if (p.failure) out.push({ at: p.at, answered: false, failure: p.failure, ...(p.detail ? { detail: p.detail } : {}) });
      else if (p.success || p.status !== undefined) out.push({ at: p.at, answered: true, ...(p.status !== undefined ? { status: p.status } : {}) });
    }
  }
  return out.sort((a, b) => a.at - b.at);
}

/** The prober's own mistake, from the newest probe results of any kind. */
function misconfiguration(ev: EvidenceView): { cause: string; evidence: string[] } | undefined {
  const newest = Object.values(ev.probes)
    .map((l) => l.at(-1))
    .filter((p): p is ProbeObservation => p !== undefined)
    .sort((a, b) => b.at - a.at);
  for (const p of newest) {
    if (p.success) continue;
    if (p.status === 401 || p.status === 403) {
      return { cause: `vLLM answers the prober HTTP ${p.status}: the API key in target.api_key_env / api_key_file is wrong or missing (vLLM itself may be fine)`, evidence: [`${p.kind} probe at ${clock(p.at)}: ${p.detail ?? `HTTP ${p.status}`}`] };
    }
    if (p.outcome === 'wrong_model' || (p.status === 404 && /model/i.test(p.detail ?? ''))) {
      return { cause: `the prober asks for a model vLLM does not serve: fix target.model (vLLM itself may be fine)`, evidence: [`${p.kind} probe at ${clock(p.at)}: ${p.detail ?? 'HTTP 404'}`] };
    }
  }
  return undefined;
}

/** How long ago the target stopped answering, and how many tries in a row failed. */
function failedInARow(points: ReturnType<typeof reachability>): { n: number; since?: number } {
  let n = 0;
  let since: number | undefined;
  for (let i = points.length - 1; i >= 0 && !points[i]!.answered; i--) {
    n++;
    since = points[i]!.at;
  }
  return since === undefined ? { n } : { n, since };
}

/** Failed results at the end of a probe's list (the list keeps the last few). */
function failuresAtEnd(list: readonly ProbeObservation[]): number {
  let n = 0;
  for (let i = list.length - 1; i >= 0 && !list[i]!.success; i--) n++;
  return n;
}

export function diagnose(ev: EvidenceView, settings: DiagnosisSettings, now: number): Diagnosis {
  const freshMs = Math.max(3 * settings.scrapeIntervalMs, 3 * settings.probeIntervalMs);
  const engine = engineNow(ev, now, freshMs);
  const all = reachability(ev);
  const points = all.filter((p) => now - p.at <= freshMs * 2);
  const last = points.at(-1);
  const processes = ev.processes.at(-1);
  const processWords = processes?.count ? `${plural(processes.count, 'vLLM process')} ${processes.count === 1 ? 'runs' : 'run'} (pids ${processes.pids.join(', ')})` : undefined;

  if (points.length === 0 && !engine && ev.wedge.length === 0) return { state: 'unknown', cause: 'nothing observed of vLLM yet: no /health answer, probe or scrape so far', evidence: [] };

  // 1. Asleep on purpose: vLLM says so every scrape; not a fault, and no inference goes to it.
  const sleep = engine?.latest.snapshot.sleep_state;
  if (sleep && sleep !== 'awake') {
    const level = sleep === 'weights_offloaded' ? 'level 1, weights offloaded' : sleep === 'discard_all' ? 'level 2, weights discarded' : 'waking up in steps: /is_sleeping still true';
    return {
      state: 'asleep',
      cause: `vLLM sleeps on purpose (sleep mode ${level}): synthetic inference paused until POST /wake_up`,
      evidence: [sleep === 'waking' ? 'vllm:engine_sleep_state says awake, GET /is_sleeping says true' : `vllm:engine_sleep_state{sleep_state="awake"} 0, ${sleep} 1`],
      ...(ev.asleepAt !== undefined ? {} : {}),
    };
  }

  // 2. TLS to the target fails: the prober's config (scheme, CA), not vLLM.
  if (last && !last.answered && last.failure === 'tls') {
    return { state: 'misconfigured', cause: `TLS to vLLM fails: check target.url's scheme and the CA the prober trusts (${last.detail ?? 'TLS error'})`, evidence: [] };
  }

  const failing = failedInARow(all);
  const answeredNow = last?.answered === true;
  const health = ev.health.at(-1);
  const healthBad = health !== undefined && health.status !== undefined && health.status !== 200 && now - health.at <= freshMs;
  // A death holds until the engine answers inference again, vLLM restarts, or /health says 200
  // well after it (the dying API server may still answer /health 200 for a second or so).
  const death = ev.engineDeath;
  const deathSinceServing =
    death && death.at >= (ev.lastInferenceAt ?? 0) && !(ev.restart && ev.restart.at > death.at) && !ev.health.some((h) => h.status === 200 && h.at > death.at + 5000) ? death : undefined;

  // The engine watch saw the engine exit after the last answer: nothing serves, whatever was
  // asked before (the API server answers HTTP 500 to everything until it exits).
  const diedSinceLastAnswer = deathSinceServing !== undefined;
  // 3–5. Nothing serves.
  if ((!answeredNow && failing.n >= 2) || (!answeredNow && processes?.count === 0) || healthBad || diedSinceLastAnswer) {
    const since = ev.unansweredSince ?? failing.since ?? health?.at;
    const refusedFor = since !== undefined && now - since >= 1000 ? ` for ${seconds(now - since)}` : '';
    const what = healthBad ? `/health answers HTTP ${health!.status}` : answeredNow ? 'not asked since' : last?.failure === 'timeout' ? `vLLM does not answer within its timeout${refusedFor}` : `nothing answers on vLLM's port${refusedFor} (${last?.failure === 'refused' ? 'connection refused' : oneLine(last?.detail ?? 'connection failed', 120)})`;
    // Processes seen well after the engine died are a new start (a supervisor restarted it).
    const restarting = deathSinceServing && processes?.count && processes.at - deathSinceServing.at > 5000;
    if (restarting && !healthBad) {
      return { state: 'starting', cause: `${processWords} but ${what}; the engine died at ${clock(deathSinceServing.at)}`, evidence: [what, processWords!, deathSinceServing.words] };
    }
    if (deathSinceServing) {
      return {
        state: 'crashed',
        cause: crashCause(deathSinceServing, answeredNow && !healthBad ? undefined : what),
        evidence: [deathSinceServing.words, what, ...(processWords ? [processWords] : ['no vLLM process left'])],
        since: deathSinceServing.at,
      };
    }
    if (processWords && !healthBad) {
      return { state: 'starting', cause: `${processWords} but ${what}`, evidence: [what, processWords], ...(since !== undefined ? { since } : {}) };
    }
    if (healthBad) {
      return { state: 'starting', cause: `${what} (loading the model, or the engine is gone)`, evidence: [what], ...(since !== undefined ? { since } : {}) };
    }
    const gone = processes?.count === 0 ? '; no vLLM process runs' : '';
    return { state: 'down', cause: `${what}${gone}`, evidence: [what, ...(failing.n ? [`${failing.n} tries in a row failed`] : [])], ...(since !== undefined ? { since } : {}) };
  }

  // 2b. The prober's own key or model: vLLM answers, just not to our config.
  const mis = misconfiguration(ev);
  if (mis) return { state: 'misconfigured', ...mis };

  const ttft = ev.probes.ttft ?? [];
  const lastTtft = ttft.at(-1);

  // 6. Wedged: only while no token flows.
  if (ev.wedge.length && !(engine?.tokensFlowing ?? false)) {
    const blind = !ev.scraping;
    return {
      state: 'wedged',
      cause: `${blind ? 'engine wedged or saturated' : 'engine wedged'}: /health 200 but ${ev.wedge.map((w) => w.words).join('; and ')}${blind ? " (without vLLM's /metrics a stopped engine and a full one look the same)" : ''}`,
      evidence: ev.wedge.map((w) => `${w.signature}: ${w.words}`),
    };
  }

  // 7. Shedding load on purpose.
  const retry = lastTtft && !lastTtft.success && lastTtft.outcome === 'rejected_overload' ? lastTtft : undefined;
  if (retry || (engine && engine.rejected > 0)) {
    const next = retry?.retryAt !== undefined && retry.retryAt > now ? `; next probe at ${clock(retry.retryAt)} (Retry-After)` : '';
    const refused = engine && engine.rejected > 0 ? `${plural(engine.rejected, 'request')} refused at admission in the last ${seconds(engine.preemptionSpanS * 1000)}` : `the probe was refused: ${retry?.detail ?? 'HTTP 429/503'}`;
    return {
      state: 'shedding',
      cause: `${refused}${next}; add replicas or raise --max-num-queued-reqs / --max-num-queued-tokens`,
      evidence: [refused, ...(engine ? [queueWords(engine)] : [])],
    };
  }

  if (engine) {
    const s = engine.latest.snapshot;
    const kv = s.kv_cache_usage_ratio;
    const waiting = s.requests_waiting ?? 0;
    // 8. KV pressure: preemptions are the deciding fact; a full cache with a queue is the other.
    if (engine.preemptionsNow > 0 || (waiting > 0 && (engine.preemptions > 0 || (kv !== null && kv >= settings.kvUsageHigh)))) {
      const span = Math.max(1, engine.preemptionSpanS);
      const rate = engine.preemptions > 0 ? `${plural(engine.preemptions, 'preemption')} in the last ${seconds(span * 1000)} (${round((engine.preemptions / span) * 60, 1)}/min)` : 'no preemption yet';
      return {
        state: 'kv_pressure',
        cause: `${rate}; ${kvWords(engine)}, ${queueWords(engine)}, ${flowWords(engine)}`,
        evidence: [rate, kvWords(engine), queueWords(engine), flowWords(engine)],
      };
    }
    // 9. Saturated: a queue on two scrapes while the engine runs and generates.
    if (engine.waitingOnLastTwo && (s.requests_running ?? 0) > 0) {
      return {
        state: 'saturated',
        cause: `${queueWords(engine)}, ${flowWords(engine)}; new requests queue (${kvWords(engine)})`,
        evidence: [queueWords(engine), flowWords(engine), kvWords(engine)],
      };
    }
  }

  // 10. Latency alone: the last (up to) three TTFT probes, all within a few intervals.
  // A probe sent before the engine woke up waited through the sleep, one sent before the last
  // queue waited in it, one that revealed a restart measured the cold start (shown as
  // `restarted`): none is latency of the replica now.
  const recentOk = ttft.filter((p) => p.success && p.ttftSeconds !== undefined && now - p.at <= 3 * settings.probeIntervalMs + 1000 && p.startedAt > (ev.wokeAt ?? -Infinity) && p.startedAt > (engine?.lastBusyAt ?? -Infinity) && p.startedAt > (ev.wedgeEndedAt ?? -Infinity) && p.startedAt > (ev.restart?.at ?? -Infinity)).slice(-3);
  if (recentOk.length && lastTtft?.success) {
    const sorted = recentOk.map((p) => p.ttftSeconds!).sort((a, b) => a - b);
    const median = sorted[Math.floor(sorted.length / 2)]!;
    if (median > settings.ttftThresholdSeconds) {
      return {
        state: 'slo_breach',
        cause: `TTFT ${round(median)} s (median of the last ${plural(sorted.length, 'probe')}) misses the ${settings.ttftThresholdSeconds} s SLO; queue, KV and engine look fine`,
        evidence: [`last TTFT probes: ${recentOk.map((p) => `${round(p.ttftSeconds!)} s`).join(', ')}`, ...(engine ? [queueWords(engine), kvWords(engine)] : [])],
      };
    }
  }

  // 11. A probe fails for a reason none of the above explains: K in a row and vLLM cannot serve.
  // Failures a state above explained (a queue, an outage) do not count once it has ended: only
  // those vLLM answered, sent after the last unanswered try and the last busy scrape.
  const explainedUntil = Math.max(all.filter((p) => !p.answered).at(-1)?.at ?? -Infinity, engine?.lastBusyAt ?? -Infinity, ev.wedgeEndedAt ?? -Infinity);
  const failingProbe = Object.values(ev.probes)
    .map((l) => ({ latest: l.at(-1), inARow: failuresAtEnd(l.filter((p) => !p.failure && p.startedAt > explainedUntil)) }))
    .filter((f) => f.inARow > 0)
    .filter((f): f is { latest: ProbeObservation; inARow: number } => f.latest !== undefined && !f.latest.success && now - f.latest.at <= freshMs)
    .sort((a, b) => b.inARow - a.inARow || b.latest.at - a.latest.at)[0];
  if (failingProbe) {
    const p = failingProbe.latest;
    const flowing = engine?.tokensFlowing ? `; vLLM generates for others meanwhile (${flowWords(engine)})` : '';
    const state = failingProbe.inARow >= settings.failuresToUnhealthy ? 'failing' : 'degraded';
    const count = `${failingProbe.inARow} in a row${state === 'degraded' ? ` (${settings.failuresToUnhealthy} mean it cannot serve)` : ''}`;
    return { state, cause: `${p.kind} probe failing, ${count}: ${oneLine(p.detail ?? p.outcome, 160)}${flowing}`, evidence: [`${p.kind} probe at ${clock(p.at)}: ${p.outcome}`] };
  }

  // 12. Serving again after a restart.
  if (ev.restart && now - ev.restart.at <= settings.restartShownMs) {
    const coldWords = ev.coldTtftSeconds !== undefined ? `; first TTFT after it ${round(ev.coldTtftSeconds)} s (cold)` : '; no TTFT probe since';
    return { state: 'restarted', cause: `vLLM restarted at ${clock(ev.restart.at)} (${ev.restart.why}) and serves again${coldWords}`, evidence: [], since: ev.restart.at };
  }

  return { state: 'healthy', cause: engine ? `serving: ${queueWords(engine)}, ${kvWords(engine)}` : 'serving', evidence: [] };
}

/**
 * `vLLM's engine died at T: <first sign>; now <what nothing serving looks like>`, whole within
 * the first line. The first sign is the point of the line, so it takes what the present leaves,
 * and at least 75 characters (the watch's words with the longest pids); a fixed cut at 70 once
 * left "…the API server (pid …" on a real crash.
 */
function crashCause(death: { at: number; words: string }, now: string | undefined): string {
  const lead = `vLLM's engine died at ${clock(death.at)}: `;
  const room = causeRoom('crashed') - lead.length;
  if (now === undefined) return lead + oneLine(death.words, room);
  const join = '; now ';
  const nowWords = oneLine(now, room);
  const sign = oneLine(death.words, Math.max(75, room - join.length - nowWords.length));
  return `${lead}${sign}${join}${oneLine(nowWords, room - sign.length - join.length)}`;
}
