/**
 * Whether real traffic is being served now, from vLLM's own counters (issue 25): the fact a
 * `when_idle` probe skips on. Pure: scrapes and the daemon's own requests in, one answer out,
 * tested with snapshots recorded on the real CPU vLLM (test/diagnosis/traffic.test.ts).
 *
 * vLLM counts the probe's requests too, and they cannot be told apart in its counters, so
 * everything this daemon sent in a window is subtracted from what vLLM counted in it. A run is
 * subtracted whole if it overlaps the window at all (give or take a second of clock skew between
 * the engine's count and our end of the stream): counting too much of our own traffic only makes
 * a probe run that could have been skipped, never the reverse.
 */
import type { ScrapeObservation } from './evidence.js';
import type { EngineSnapshot } from '../vllm/schema.js';

/** One probe run of this daemon: the requests it sent and the tokens they asked vLLM for. */
export interface OwnRun {
  startedAt: number;
  /** Undefined while the run is in flight (then it counts up to now). */
  endedAt?: number;
  /** Requests sent (an estimate while in flight). */
  requests: number;
  /** Generated tokens (usage where vLLM said it, else the max_tokens asked for). */
  outputTokens: number;
}

export type Traffic =
  | {
      flowing: true;
      /** Real requests vLLM finished in the window, ours subtracted. */
      requests: number;
      /** Tokens vLLM generated for others between the last two scrapes; null when not exported. */
      tokens: number | null;
      windowMs: number;
      /** What vLLM counted and what of it was ours, for the words. */
      counted: number;
      own: number;
    }
  | { flowing: false; why: string };

/** Clock skew allowed between vLLM counting a request and this daemon seeing its stream end. */
const SKEW_MS = 1000;

const seconds = (ms: number) => `${Math.round(ms / 1000)} s`;

/** The requests finished counters vLLM exports, in the order they are trusted. */
const REQUEST_COUNTERS: Array<[string, (s: EngineSnapshot) => number | null | undefined]> = [
  ['vllm:request_success_total', (s) => s.requests_succeeded],
  ['vllm:time_to_first_token_seconds', (s) => s.histograms.time_to_first_token?.count],
  ['vllm:e2e_request_latency_seconds', (s) => s.histograms.e2e_latency?.count],
];

function ownIn(own: readonly OwnRun[], from: number, to: number, now: number): { requests: number; tokens: number } {
  let requests = 0;
  let tokens = 0;
  for (const r of own) {
    const end = r.endedAt ?? now;
    if (end >= from - SKEW_MS && r.startedAt <= to + SKEW_MS) {
      requests += r.requests;
      tokens += r.outputTokens;
    }
  }
  return { requests, tokens };
}

/**
 * Real traffic now: in the last `windowMs` (at least the last two scrapes) vLLM finished
 * requests beyond this daemon's own, every request counter it exports agrees, and between its
 * last two scrapes it generated tokens beyond ours (a stopped engine freezes that counter at the
 * next scrape, so a wedge under load ends the skipping one scrape later). Not flowing when the
 * newest scrape is older than `freshMs`, or a counter went back (a restart).
 */
export function realTraffic(scrapes: readonly ScrapeObservation[], own: readonly OwnRun[], windowMs: number, freshMs: number, now: number): Traffic {
  const latest = scrapes.at(-1);
  if (!latest) return { flowing: false, why: "no scrape of vLLM's /metrics to read its counters from" };
  if (now - latest.at > freshMs) return { flowing: false, why: `vLLM's counters are ${seconds(now - latest.at)} old` };
  const previous = scrapes.at(-2);
  if (!previous) return { flowing: false, why: "one scrape of vLLM's counters so far: nothing to compare" };
  // The newest scrape at least a window before the latest; the oldest kept when none is.
  let base = scrapes[0]!;
  for (let i = scrapes.length - 2; i >= 0; i--) {
    if (scrapes[i]!.at <= latest.at - windowMs) {
      base = scrapes[i]!;
      break;
    }
  }
  const span = latest.at - base.at;
  const mine = ownIn(own, base.at, latest.at, now);

  let counted: number | undefined;
  for (const [name, read] of REQUEST_COUNTERS) {
    const a = read(base.snapshot);
    const b = read(latest.snapshot);
    if (a === null || a === undefined || b === null || b === undefined) continue;
    if (b < a) return { flowing: false, why: `${name} went back from ${a} to ${b} (vLLM restarted)` };
    // Every exported counter must show the requests: the smallest count is the one believed.
    counted = Math.min(counted ?? Infinity, b - a);
  }
  if (counted === undefined) return { flowing: false, why: 'vLLM exports no finished-request counter (request_success_total, TTFT or E2E histogram)' };
  const requests = counted - mine.requests;
  if (requests < 1) {
    return { flowing: false, why: `no real request finished in the last ${seconds(span)} (vLLM counted ${counted}, ${mine.requests} of them this daemon's)` };
  }

  let tokens: number | null = null;
  const g0 = previous.snapshot.generation_tokens;
  const g1 = latest.snapshot.generation_tokens;
  if (g0 !== null && g1 !== null) {
    if (g1 < g0) return { flowing: false, why: `vllm:generation_tokens_total went back from ${g0} to ${g1} (vLLM restarted)` };
    tokens = g1 - g0 - ownIn(own, previous.at, latest.at, now).tokens;
    if (tokens <= 0) return { flowing: false, why: `no token generated for real traffic between the last two scrapes (${seconds(latest.at - previous.at)})` };
  }
  return { flowing: true, requests, tokens, windowMs: span, counted, own: mine.requests };
}

/** The skip in words, for /status: what was served and which evidence judges latency meanwhile. */
export function trafficWords(t: Extract<Traffic, { flowing: true }>): string {
  const n = t.requests;
  return `real traffic served ${n} request${n === 1 ? '' : 's'} in the last ${seconds(t.windowMs)} (vLLM's counters${t.own ? `, this daemon's ${t.own} subtracted` : ''}); latency judged from vLLM's own TTFT histogram (server_slo)`;
}
