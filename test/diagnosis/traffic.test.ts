/**
 * The when_idle decision (issue 25): is real traffic served now, from vLLM's counters with this
 * daemon's own requests subtracted? Cases are scrapes as the real CPU vLLM 0.32 reported them
 * (test/fixtures/vllm/traffic-cpu-v0.32.0.json, recorded by test/e2e/traffic-aware.test.ts), and
 * the edge cases around them.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, test } from 'vitest';
import type { ScrapeObservation } from '../../src/diagnosis/evidence.js';
import { realTraffic, trafficWords, type OwnRun } from '../../src/diagnosis/traffic.js';
import type { EngineSnapshot } from '../../src/vllm/schema.js';

const T0 = Date.UTC(2026, 11, 6, 12, 0, 0);
const WINDOW = 15_000;
const FRESH = 35_000;

/** The counters the decision reads; the rest of a snapshot does not matter to it. */
interface Counters {
  success: number | null;
  ttft: number | null;
  e2e: number | null;
  gen: number | null;
}

function snap(c: Counters): EngineSnapshot {
  const h = (count: number | null) => (count === null ? null : { buckets: [{ le: Infinity, count }], sum: 0, count });
  return { requests_succeeded: c.success, generation_tokens: c.gen, histograms: { time_to_first_token: h(c.ttft), e2e_latency: h(c.e2e) } } as unknown as EngineSnapshot;
}

const at = (ms: number, c: Counters): ScrapeObservation => ({ at: ms, snapshot: snap(c) });
const same = (n: number, gen: number): Counters => ({ success: n, ttft: n, e2e: n, gen });

describe('realTraffic on hand-made scrapes', () => {
  test('requests finished beyond our own, tokens generated for others: flowing', () => {
    const t = realTraffic([at(T0 - 15_000, same(100, 5000)), at(T0 - 100, same(130, 5900))], [], WINDOW, FRESH, T0);
    expect(t).toMatchObject({ flowing: true, requests: 30, tokens: 900 });
    if (t.flowing) expect(trafficWords(t)).toBe("real traffic served 30 requests in the last 15 s (vLLM's counters); latency judged from vLLM's own TTFT histogram (server_slo)");
  });

  test("an idle server counting only this daemon's probes is not traffic", () => {
    const own: OwnRun[] = [{ startedAt: T0 - 10_000, endedAt: T0 - 9_800, requests: 1, outputTokens: 16 }];
    const t = realTraffic([at(T0 - 15_000, same(100, 5000)), at(T0 - 100, same(101, 5016))], own, WINDOW, FRESH, T0);
    expect(t).toEqual({ flowing: false, why: "no real request finished in the last 15 s (vLLM counted 1, 1 of them this daemon's)" });
  });

  test('a probe still in flight counts as ours up to now', () => {
    const own: OwnRun[] = [{ startedAt: T0 - 500, requests: 2, outputTokens: 8 }];
    const t = realTraffic([at(T0 - 15_000, same(100, 5000)), at(T0 - 100, same(102, 5008))], own, WINDOW, FRESH, T0);
    expect(t.flowing).toBe(false);
  });

  test('a probe that ended just after the scrape (vLLM counted it first) is still subtracted', () => {
    const own: OwnRun[] = [{ startedAt: T0 - 300, endedAt: T0 + 800, requests: 1, outputTokens: 16 }];
    const t = realTraffic([at(T0 - 15_000, same(100, 5000)), at(T0 - 100, same(101, 5016))], own, WINDOW, FRESH, T0 + 1000);
    expect(t.flowing).toBe(false);
  });

  test('every exported request counter must agree: the smallest growth is believed', () => {
    const t = realTraffic([at(T0 - 15_000, { success: 100, ttft: 100, e2e: 100, gen: 5000 }), at(T0 - 100, { success: 110, ttft: 101, e2e: 110, gen: 5100 })], [], WINDOW, FRESH, T0);
    expect(t).toMatchObject({ flowing: true, requests: 1 });
  });

  test('requests finished earlier in the window but no token since the last scrape (a wedge under load): not flowing', () => {
    const scrapes = [at(T0 - 30_000, same(100, 5000)), at(T0 - 15_000, same(140, 6000)), at(T0 - 100, same(140, 6000))];
    const t = realTraffic(scrapes, [], 30_000, FRESH, T0);
    expect(t).toEqual({ flowing: false, why: 'no token generated for real traffic between the last two scrapes (15 s)' });
  });

  test('only our own tokens between the last two scrapes: not flowing', () => {
    const own: OwnRun[] = [{ startedAt: T0 - 5000, endedAt: T0 - 4000, requests: 1, outputTokens: 16 }];
    const scrapes = [at(T0 - 30_000, same(100, 5000)), at(T0 - 15_000, same(140, 6000)), at(T0 - 100, same(141, 6016))];
    expect(realTraffic(scrapes, own, 30_000, FRESH, T0).flowing).toBe(false);
  });

  test('old counters, one scrape, no scrape, a restart, no counter at all: not flowing, each saying why', () => {
    const two = [at(T0 - 15_000, same(100, 5000)), at(T0 - 100, same(130, 5900))];
    expect(realTraffic(two, [], WINDOW, FRESH, T0 + 60_000)).toEqual({ flowing: false, why: "vLLM's counters are 60 s old" });
    expect(realTraffic(two.slice(1), [], WINDOW, FRESH, T0)).toEqual({ flowing: false, why: "one scrape of vLLM's counters so far: nothing to compare" });
    expect(realTraffic([], [], WINDOW, FRESH, T0)).toEqual({ flowing: false, why: "no scrape of vLLM's /metrics to read its counters from" });
    expect(realTraffic([at(T0 - 15_000, same(100, 5000)), at(T0 - 100, same(3, 90))], [], WINDOW, FRESH, T0)).toEqual({ flowing: false, why: 'vllm:request_success_total went back from 100 to 3 (vLLM restarted)' });
    const none = { success: null, ttft: null, e2e: null, gen: 5000 };
    expect(realTraffic([at(T0 - 15_000, none), at(T0 - 100, { ...none, gen: 6000 })], [], WINDOW, FRESH, T0).flowing).toBe(false);
  });

  test('an older vLLM without request_success_total: the TTFT histogram count stands in', () => {
    const t = realTraffic([at(T0 - 15_000, { success: null, ttft: 50, e2e: null, gen: 5000 }), at(T0 - 100, { success: null, ttft: 60, e2e: null, gen: 5500 })], [], WINDOW, FRESH, T0);
    expect(t).toMatchObject({ flowing: true, requests: 10 });
  });

  test('the window reaches back to the newest scrape at least windowMs before the latest', () => {
    const scrapes = [0, 5, 10, 15, 20].map((s) => at(T0 - 20_000 + s * 1000, same(100 + s, 5000 + 100 * s)));
    const t = realTraffic(scrapes, [], 10_000, FRESH, T0);
    expect(t).toMatchObject({ flowing: true, requests: 10, windowMs: 10_000 });
  });
});

/** A recorded sample: vLLM's counters and what the daemon had sent so far (see the fixture's _about). */
interface Recorded {
  at: number;
  success: number | null;
  ttft: number | null;
  e2e: number | null;
  gen: number | null;
  own_requests: number;
  own_tokens: number;
  engine_stopped?: boolean;
}

const RECORDED = JSON.parse(readFileSync('test/fixtures/vllm/traffic-cpu-v0.32.0.json', 'utf8')) as Record<string, Recorded[]>;

/** The decision at every recorded scrape, as the daemon would take it right after that scrape. */
function replay(samples: Recorded[]): Array<{ flowing: boolean; stopped: boolean }> {
  const scrapes = samples.map((s) => at(s.at, s));
  // What the daemon sent between two readings is one run over that span: subtracted whole.
  const own: OwnRun[] = samples.slice(1).map((s, i) => ({ startedAt: samples[i]!.at, endedAt: s.at, requests: s.own_requests - samples[i]!.own_requests, outputTokens: s.own_tokens - samples[i]!.own_tokens }));
  return samples.slice(1).map((s, i) => ({ flowing: realTraffic(scrapes.slice(0, i + 2), own.slice(0, i + 1), 2000, 5500, s.at + 50).flowing, stopped: s.engine_stopped === true }));
}

describe('realTraffic replayed on counters recorded from the real CPU vLLM', () => {
  test("idle, in either mode: the daemon's own probes are never taken for traffic", () => {
    for (const phase of ['idle always', 'idle when_idle']) {
      expect(RECORDED[phase]!.length).toBeGreaterThan(10);
      expect(replay(RECORDED[phase]!).filter((d) => d.flowing), phase).toEqual([]);
    }
  });

  test('busy: traffic is seen at nearly every scrape, with or without the probes running beside it', () => {
    for (const phase of ['busy always', 'busy when_idle']) {
      const running = replay(RECORDED[phase]!).filter((d) => !d.stopped);
      expect(running.filter((d) => d.flowing).length, phase).toBeGreaterThanOrEqual(0.9 * running.length);
    }
  });

  test('EngineCore stopped under load: no traffic from the first scrape that saw the counters frozen', () => {
    const stopped = replay(RECORDED['busy when_idle']!).filter((d) => d.stopped);
    expect(stopped.length).toBeGreaterThanOrEqual(3);
    // The first reading after SIGSTOP may still span the last tokens; none after it may say flowing.
    expect(stopped.slice(1).map((d) => d.flowing)).toEqual(stopped.slice(1).map(() => false));
  });
});
