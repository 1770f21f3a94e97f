/**
 * Every state from evidence shaped as the real vLLM produced it (../shared/reference/vllm-states.md
 * and docs/runbook.md: the CPU build and the H100 runs), checked by the state and by the first
 * line an on-call engineer reads. The board's text format caps that line; the rule that
 * "stall"/"wedge" is never said while tokens flow is checked over every case.
 */
import { Registry } from 'prom-client';
import { describe, expect, test } from 'vitest';
import { parseConfig } from '../../src/config.js';
import { diagnose, type DiagnosisSettings } from '../../src/diagnosis/diagnose.js';
import { Evidence } from '../../src/diagnosis/evidence.js';
import { STATES } from '../../src/diagnosis/states.js';
import { createMetrics } from '../../src/metrics.js';
import { causeRoom, HEADLINE_MAX } from '../../src/reason.js';
import { formatStatusText, StatusBoard } from '../../src/status.js';
import type { EngineSnapshot } from '../../src/vllm/schema.js';

const T0 = Date.UTC(2026, 11, 6, 12, 0, 0);
const SETTINGS: DiagnosisSettings = { probeIntervalMs: 15_000, scrapeIntervalMs: 15_000, ttftThresholdSeconds: 0.5, kvUsageHigh: 0.95, restartShownMs: 120_000, failuresToUnhealthy: 3 };

/** A scrape as the CPU vLLM 0.32 reports it, with the fields a case sets. */
function snap(fields: Partial<EngineSnapshot>): EngineSnapshot {
  return {
    schema: 'v1',
    kv_cache_usage_ratio: 0,
    requests_running: 0,
    requests_waiting: 0,
    requests_waiting_by_reason: null,
    admission_rejections: null,
    preemptions: 0,
    generation_tokens: 1000,
    prefix_cache_enabled: true,
    prefix_cache_hits: 0,
    sleep_state: null,
    histograms: {},
    ...fields,
  } as EngineSnapshot;
}

interface Case {
  name: string;
  record(e: Evidence): void;
  now?: number;
  state: keyof typeof STATES;
  line: RegExp;
}

const ok = (e: Evidence, at: number) => e.health({ at, status: 200 });
const ttftOk = (e: Evidence, at: number, ttftSeconds = 0.03) => e.probe({ at, startedAt: at - 50, kind: 'ttft', success: true, outcome: 'success', ttftSeconds });
/** Two scrapes 15 s apart ending at T0 (the default "now"). */
const scrapes = (e: Evidence, before: Partial<EngineSnapshot>, after: Partial<EngineSnapshot>) => {
  e.scrape(T0 - 15_000, snap(before));
  e.scrape(T0 - 100, snap(after));
};

const CASES: Case[] = [
  { name: 'nothing observed yet', record: () => undefined, state: 'unknown', line: /^nothing observed of vLLM yet/ },
  {
    name: 'healthy at rest',
    record: (e) => {
      ok(e, T0 - 200);
      ttftOk(e, T0 - 1000);
      scrapes(e, {}, {});
    },
    state: 'healthy',
    line: /^serving: 0 running, 0 waiting, KV cache 0 % full$/,
  },
  {
    // CPU vLLM, --num-gpu-blocks-override 64, 24 long requests: preemptions 0 → 11 in 60 s, ~250 tok/s.
    name: 'KV pressure with preemptions (the TTFT probe times out behind the queue)',
    record: (e) => {
      ok(e, T0 - 200);
      e.probe({ at: T0 - 2000, startedAt: T0 - 12_000, kind: 'ttft', success: false, outcome: 'timeout_before_first_token', status: 200, detail: 'no token within 10 s' });
      e.wedge([{ signature: 'no_token_after_headers', words: 'the last 2 probe requests got response headers and no token within 10 s' }]);
      scrapes(e, { preemptions: 3, generation_tokens: 40_000, kv_cache_usage_ratio: 0.71, requests_running: 4, requests_waiting: 19 }, { preemptions: 11, generation_tokens: 43_750, kv_cache_usage_ratio: 0.86, requests_running: 3, requests_waiting: 12, requests_waiting_by_reason: { capacity: 12 } as never });
    },
    state: 'kv_pressure',
    line: /^8 preemptions in the last 15 s \(32(\.\d)?\/min\); KV cache 86 % full, 3 running, 12 waiting \(12 for capacity\), generating 25\d tok\/s$/,
  },
  {
    // H100: 256 streams, up to 257 running and 191 waiting, KV ≤ 0.80, 0 preemptions, 5,403 tok/s.
    name: 'saturation: a queue on two scrapes, tokens flowing, the prefix probe disturbed',
    record: (e) => {
      ok(e, T0 - 200);
      ttftOk(e, T0 - 3000, 4.15);
      e.probe({ at: T0 - 2500, startedAt: T0 - 9000, kind: 'prefix', success: true, outcome: 'success' });
      scrapes(e, { generation_tokens: 100_000, requests_running: 257, requests_waiting: 191, kv_cache_usage_ratio: 0.8 }, { generation_tokens: 181_045, requests_running: 256, requests_waiting: 199, kv_cache_usage_ratio: 0.79 });
    },
    state: 'saturated',
    line: /^256 running, 199 waiting, generating 54\d\d tok\/s; new requests queue \(KV cache 79 % full\)$/,
  },
  {
    // CPU vLLM: the in-flight request gets HTTP 500 "EngineCore encountered an issue", then refused from +0.37 s.
    name: 'engine crash: HTTP 500 EngineDeadError, then nothing listens',
    record: (e) => {
      ok(e, T0 - 20_000);
      e.probe({ at: T0 - 14_000, startedAt: T0 - 14_050, kind: 'ttft', success: false, outcome: 'http_5xx', status: 500, detail: 'HTTP 500: EngineCore encountered an issue. See stack trace (above) for the root cause.' });
      e.health({ at: T0 - 5000, failure: 'refused', detail: 'cannot reach vLLM: connect ECONNREFUSED 127.0.0.1:8000 (connection refused)' });
      e.probe({ at: T0 - 100, startedAt: T0 - 110, kind: 'ttft', success: false, outcome: 'connect_error', detail: 'connection failed: connection refused', failure: 'refused' });
    },
    state: 'crashed',
    line: /^vLLM's engine died at 11:59:46: a ttft request got HTTP 500: EngineCore encountered an issue\..*; now nothing answers on vLLM's port for 5 s \(connection refused\)$/,
  },
  {
    name: 'engine crash seen by the process watch (no request in flight)',
    record: (e) => {
      ok(e, T0 - 15_000);
      e.engineExited(T0 - 9_800, 'vLLM process 4242 (VLLM::EngineCor) exited, API server 4200 still up');
      e.health({ at: T0 - 5000, failure: 'refused', detail: 'connection refused' });
      e.probe({ at: T0 - 100, startedAt: T0 - 110, kind: 'ttft', success: false, outcome: 'connect_error', detail: 'connection refused', failure: 'refused' });
    },
    state: 'crashed',
    line: /^vLLM's engine died at 11:59:50: vLLM process 4242 \(VLLM::EngineCor\) exited, API server 4200 still up; now nothing answers on vLLM's port for 5 s \(connection refused\)$/,
  },
  {
    // CPU vLLM with a probe in flight: the watch hears the engine's exit within milliseconds
    // but confirms it 150 ms later, after the probe's HTTP 500 (a later sign) was recorded.
    name: 'one death, two signs: the first names it, in whatever order they are recorded',
    record: (e) => {
      ok(e, T0 - 20_000);
      e.probe({ at: T0 - 9_700, startedAt: T0 - 10_500, kind: 'ttft', success: false, outcome: 'http_5xx', status: 500, detail: 'HTTP 500: EngineCore encountered an issue. See stack trace (above) for the root cause.' });
      e.engineExited(T0 - 9_950, 'vLLM process 4242 (VLLM::EngineCor) exited, API server 4200 still up');
      e.health({ at: T0 - 9_500, status: 503 });
      e.probe({ at: T0 - 100, startedAt: T0 - 110, kind: 'ttft', success: false, outcome: 'connect_error', detail: 'connection refused', failure: 'refused' });
    },
    state: 'crashed',
    line: /^vLLM's engine died at 11:59:50: vLLM process 4242 \(VLLM::EngineCor\) exited, API server 4200 still up/,
  },
  {
    // CPU vLLM, a quiet daemon: the watch names the death, then /health turns 503. Both must
    // fit the first line whole (a fixed cut once left "…the API server (pid …; now /health…").
    name: 'engine crash seen by the process watch, then /health 503, with the longest pids',
    record: (e) => {
      ok(e, T0 - 10_000);
      ttftOk(e, T0 - 9000);
      e.engineExited(T0 - 1000, 'vLLM process 4194304 (VLLM::EngineCor) exited, API server 4194303 still up');
      e.health({ at: T0 - 900, status: 503 });
    },
    state: 'crashed',
    line: /^vLLM's engine died at 11:59:59: vLLM process 4194304 \(VLLM::EngineCor\) exited, API server 4194303 still up; now \/health answers HTTP 503$/,
  },
  {
    name: 'engine crash seen by the process watch before anything was asked again',
    record: (e) => {
      ok(e, T0 - 10_000);
      ttftOk(e, T0 - 9000);
      e.engineExited(T0 - 1000, 'vLLM process 4242 (VLLM::EngineCor) exited, API server 4200 still up');
    },
    state: 'crashed',
    line: /^vLLM's engine died at 11:59:59: vLLM process 4242 \(VLLM::EngineCor\) exited, API server 4200 still up$/,
  },
  {
    // H100 re-run: the dying API server still answered /health 200 and /metrics for ~1.4 s after
    // the engine watch saw the engine go; the line fell back to kv_pressure (200) for 2 s.
    name: 'a crash stays crashed while the dying API server still answers /health 200',
    record: (e) => {
      ok(e, T0 - 10_000);
      ttftOk(e, T0 - 9000, 2.5);
      e.engineExited(T0 - 2000, 'vLLM process 4242 (VLLM::EngineCor) exited, API server 4200 still up');
      ok(e, T0 - 1000);
      scrapes(e, { preemptions: 3, generation_tokens: 40_000, requests_running: 4, requests_waiting: 30, kv_cache_usage_ratio: 0.97 }, { preemptions: 15, generation_tokens: 41_000, requests_running: 4, requests_waiting: 30, kv_cache_usage_ratio: 0.97 });
    },
    state: 'crashed',
    line: /^vLLM's engine died at 11:59:58: vLLM process 4242/,
  },
  {
    name: 'a /health 200 long after the crash (a supervisor restarted it) ends it',
    record: (e) => {
      ok(e, T0 - 60_000);
      e.engineExited(T0 - 50_000, 'vLLM process 4242 (VLLM::EngineCor) exited, API server 4200 still up');
      e.health({ at: T0 - 40_000, failure: 'refused', detail: 'connection refused' });
      ok(e, T0 - 100);
    },
    state: 'healthy',
    line: /^serving$/,
  },
  {
    // H100 re-run: after SIGCONT, a probe that had waited on the stopped engine read slo_breach.
    name: 'TTFT probes that waited on a wedged engine are not an SLO breach after it',
    record: (e) => {
      ok(e, T0 - 200);
      e.wedge([{ signature: 'frozen_counters', words: 'counters have not moved for 22 s' }], T0 - 3000);
      e.wedge([], T0 - 1500);
      e.probe({ at: T0 - 1000, startedAt: T0 - 2500, kind: 'ttft', success: true, outcome: 'success', ttftSeconds: 0.65 });
      scrapes(e, { generation_tokens: 5000 }, { generation_tokens: 5100 });
    },
    state: 'healthy',
    line: /^serving/,
  },
  {
    name: 'down: refused twice in a row, no crash seen (a stop)',
    record: (e) => {
      ok(e, T0 - 30_000);
      e.health({ at: T0 - 14_000, failure: 'refused', detail: 'connection refused' });
      e.probe({ at: T0 - 100, startedAt: T0 - 110, kind: 'ttft', success: false, outcome: 'connect_error', detail: 'connection refused', failure: 'refused' });
    },
    state: 'down',
    line: /^nothing answers on vLLM's port for 14 s \(connection refused\)$/,
  },
  {
    name: 'one refused connection is a blip, not down',
    record: (e) => {
      ok(e, T0 - 10_000);
      ttftOk(e, T0 - 9000);
      e.health({ at: T0 - 100, failure: 'refused', detail: 'connection refused' });
    },
    state: 'healthy',
    line: /^serving$/,
  },
  {
    name: 'starting: processes run, nothing listens yet',
    record: (e) => {
      e.health({ at: T0 - 14_000, failure: 'refused', detail: 'connection refused' });
      e.processes({ at: T0 - 2000, count: 3, pids: [10, 11, 12] });
      e.health({ at: T0 - 100, failure: 'refused', detail: 'connection refused' });
    },
    state: 'starting',
    line: /^3 vLLM processes run \(pids 10, 11, 12\) but nothing answers/,
  },
  {
    name: 'restarted: serving again with a cold first TTFT',
    record: (e) => {
      e.restart(T0 - 20_000, 'process_start_time_seconds changed');
      ok(e, T0 - 19_000);
      ttftOk(e, T0 - 18_000, 0.41);
      ttftOk(e, T0 - 3000, 0.05);
      // More probes than the log keeps: the cold one is remembered, not the oldest kept.
      for (let i = 0; i < 8; i++) ttftOk(e, T0 - 2000 + i * 100, 0.06);
    },
    state: 'restarted',
    line: /^vLLM restarted at 11:59:40 \(process_start_time_seconds changed\) and serves again; first TTFT after it 0\.41 s \(cold\)$/,
  },
  {
    // "Reachable again" is marked when the first successful probe ends: that probe is the cold one.
    name: 'restarted: the probe whose answer revealed the restart is the cold one',
    record: (e) => {
      e.probe({ at: T0 - 20_000, startedAt: T0 - 23_500, kind: 'ttft', success: true, outcome: 'success', ttftSeconds: 3.2 });
      e.restart(T0 - 20_000, 'reachable again after being unreachable');
      ok(e, T0 - 19_000);
      ttftOk(e, T0 - 3000, 0.05);
    },
    state: 'restarted',
    line: /first TTFT after it 3\.2 s \(cold\)$/,
  },
  {
    name: 'a restart long ago is healthy',
    record: (e) => {
      e.restart(T0 - 600_000, 'process_start_time_seconds changed');
      ok(e, T0 - 1000);
      ttftOk(e, T0 - 3000, 0.05);
    },
    state: 'healthy',
    line: /^serving$/,
  },
  {
    // SIGSTOP of EngineCore: /health 200, headers and no token, counters frozen.
    name: 'wedged: no token after headers and counters frozen',
    record: (e) => {
      ok(e, T0 - 200);
      e.wedge([{ signature: 'no_token_after_headers', words: 'the last 2 probe requests got response headers and no token within 2 s' }]);
      scrapes(e, { generation_tokens: 5000 }, { generation_tokens: 5000, requests_running: 1 });
    },
    state: 'wedged',
    line: /^engine wedged: \/health 200 but the last 2 probe requests got response headers and no token within 2 s$/,
  },
  {
    name: 'a wedge signature while tokens flow is not a wedge',
    record: (e) => {
      ok(e, T0 - 200);
      ttftOk(e, T0 - 300, 0.2);
      e.wedge([{ signature: 'no_token_after_headers', words: 'the last 2 probe requests got response headers and no token within 2 s' }]);
      scrapes(e, { generation_tokens: 5000 }, { generation_tokens: 9000 });
    },
    state: 'healthy',
    line: /^serving/,
  },
  {
    name: 'shedding: 503 with Retry-After',
    record: (e) => {
      ok(e, T0 - 200);
      e.probe({ at: T0 - 100, startedAt: T0 - 110, kind: 'ttft', success: false, outcome: 'rejected_overload', status: 503, detail: 'HTTP 503: queue full', retryAt: T0 + 30_000 });
    },
    state: 'shedding',
    line: /^the probe was refused: HTTP 503: queue full; next probe at 12:00:30 \(Retry-After\)/,
  },
  {
    name: 'shedding: admission rejections counted by vLLM',
    record: (e) => {
      ok(e, T0 - 200);
      ttftOk(e, T0 - 300);
      scrapes(e, { admission_rejections: { max_num_queued_reqs: 0 } as never }, { admission_rejections: { max_num_queued_reqs: 7 } as never, requests_running: 4, requests_waiting: 8 });
    },
    state: 'shedding',
    line: /^7 requests refused at admission in the last 15 s; add replicas/,
  },
  {
    name: 'asleep (sleep mode level 1): /health 200, probes would queue',
    record: (e) => {
      ok(e, T0 - 200);
      scrapes(e, { sleep_state: 'awake' }, { sleep_state: 'weights_offloaded' });
    },
    state: 'asleep',
    line: /^vLLM sleeps on purpose \(sleep mode level 1, weights offloaded\): synthetic inference paused until POST \/wake_up$/,
  },
  {
    name: 'SLO breach: latency alone',
    record: (e) => {
      ok(e, T0 - 200);
      ttftOk(e, T0 - 31_000, 0.9);
      ttftOk(e, T0 - 16_000, 0.8);
      ttftOk(e, T0 - 1000, 0.7);
      scrapes(e, {}, { generation_tokens: 1100 });
    },
    state: 'slo_breach',
    line: /^TTFT 0\.8 s \(median of the last 3 probes\) misses the 0\.5 s SLO; queue, KV and engine look fine$/,
  },
  {
    name: 'misconfigured: a wrong API key (HTTP 401) while /health is 200',
    record: (e) => {
      ok(e, T0 - 200);
      e.probe({ at: T0 - 100, startedAt: T0 - 110, kind: 'ttft', success: false, outcome: 'http_4xx', status: 401, detail: 'HTTP 401: {"error":"Unauthorized"}' });
    },
    state: 'misconfigured',
    line: /^vLLM answers the prober HTTP 401: the API key in target\.api_key_env \/ api_key_file is wrong or missing/,
  },
  {
    name: 'misconfigured: a model vLLM does not serve',
    record: (e) => {
      ok(e, T0 - 200);
      e.probe({ at: T0 - 100, startedAt: T0 - 110, kind: 'ttft', success: false, outcome: 'http_4xx', status: 404, detail: 'HTTP 404: The model `nope` does not exist.' });
    },
    state: 'misconfigured',
    line: /^the prober asks for a model vLLM does not serve: fix target\.model/,
  },
  {
    // H100 run: after saturation ended, 6 probes that had timed out in its queue read "failing" (503).
    name: 'probe failures a queue explained do not make "failing" once the queue is gone',
    record: (e) => {
      ok(e, T0 - 200);
      for (let i = 6; i >= 1; i--) e.probe({ at: T0 - 20_000 - i * 3000, startedAt: T0 - 23_000 - i * 3000, kind: 'ttft', success: false, outcome: 'timeout_mid_stream', status: 200, detail: 'no end of stream within the timeout after 12 token chunks' });
      e.scrape(T0 - 30_000, snap({ requests_running: 128, requests_waiting: 128, generation_tokens: 1000 }));
      e.scrape(T0 - 16_000, snap({ requests_running: 128, requests_waiting: 40, generation_tokens: 90_000 }));
      e.scrape(T0 - 100, snap({ requests_running: 0, requests_waiting: 0, generation_tokens: 95_000 }));
    },
    state: 'healthy',
    line: /^serving: 0 running, 0 waiting/,
  },
  {
    name: 'refused connections of an outage that ended do not make "failing" either',
    record: (e) => {
      for (let i = 6; i >= 1; i--) e.probe({ at: T0 - 10_000 - i * 3000, startedAt: T0 - 10_000 - i * 3000, kind: 'prefix', success: false, outcome: 'connect_error', detail: 'connection failed: connection refused', failure: 'refused' });
      ok(e, T0 - 5000);
      ok(e, T0 - 100);
    },
    state: 'healthy',
    line: /^serving$/,
  },
  {
    name: 'HTTP 500 three times in a row while /health says 200: failing (vLLM cannot serve)',
    record: (e) => {
      ok(e, T0 - 200);
      for (let i = 3; i >= 1; i--) e.probe({ at: T0 - i * 3000, startedAt: T0 - i * 3000 - 20, kind: 'ttft', success: false, outcome: 'http_5xx', status: 500, detail: 'HTTP 500: Internal Server Error' });
    },
    state: 'failing',
    line: /^ttft probe failing, 3 in a row: HTTP 500: Internal Server Error$/,
  },
  {
    name: 'a new start after a crash is "starting", with the crash named',
    record: (e) => {
      ok(e, T0 - 60_000);
      e.engineExited(T0 - 50_000, 'vLLM process 4242 (VLLM::EngineCor) exited, API server 4200 still up');
      e.health({ at: T0 - 14_000, failure: 'refused', detail: 'connection refused' });
      e.processes({ at: T0 - 2000, count: 2, pids: [5000, 5001] });
      e.health({ at: T0 - 100, failure: 'refused', detail: 'connection refused' });
    },
    state: 'starting',
    line: /^2 vLLM processes run \(pids 5000, 5001\) but nothing answers on vLLM's port for 14 s \(connection refused\); the engine died at 11:59:10$/,
  },
  {
    name: 'TTFT probes that waited in a queue that is gone are not an SLO breach',
    record: (e) => {
      ok(e, T0 - 200);
      ttftOk(e, T0 - 9000, 1.4);
      e.probe({ at: T0 - 4000, startedAt: T0 - 16_000, kind: 'ttft', success: true, outcome: 'success', ttftSeconds: 11.8 });
      e.scrape(T0 - 15_000, snap({ requests_running: 4, requests_waiting: 30, preemptions: 12, generation_tokens: 1000 }));
      e.scrape(T0 - 100, snap({ requests_running: 0, requests_waiting: 0, preemptions: 12, generation_tokens: 5000 }));
    },
    state: 'healthy',
    line: /^serving/,
  },
  {
    name: 'misconfigured: TLS to the target',
    record: (e) => {
      e.health({ at: T0 - 100, failure: 'tls', detail: 'self-signed certificate' });
    },
    state: 'misconfigured',
    line: /^TLS to vLLM fails: check target\.url's scheme and the CA/,
  },
];

describe('diagnose: recorded evidence → state and first line', () => {
  for (const c of CASES) {
    test(c.name, () => {
      const e = new Evidence(60_000, true);
      c.record(e);
      const d = diagnose(e.view(), SETTINGS, c.now ?? T0);
      expect(d.state).toBe(c.state);
      expect(d.cause).toMatch(c.line);
      // The whole cause fits the first line: status cuts only what does not, at its end.
      expect(d.cause.length).toBeLessThanOrEqual(causeRoom(d.state));
    });
  }

  test('"stall" or "wedge" is never said while vLLM\'s generation counter grows', () => {
    for (const c of CASES) {
      const e = new Evidence(60_000, true);
      c.record(e);
      const view = e.view();
      const first = view.scrapes[0]?.snapshot.generation_tokens;
      const last = view.scrapes.at(-1)?.snapshot.generation_tokens;
      if (first === undefined || last === undefined || first === null || last === null || last <= first) continue;
      const d = diagnose(view, SETTINGS, T0);
      expect(`${d.state} ${d.cause}`, c.name).not.toMatch(/stall|wedge/i);
    }
  });
});

describe('the board around the diagnosis', () => {
  function board(now: () => number) {
    const config = parseConfig({ probes: { ttft: { interval: '15s' } }, scrape: { interval: '15s' }, status: { window: '5m' } });
    return new StatusBoard(config, createMetrics(new Registry(), config), () => ({ url: 'http://127.0.0.1:8000', model: 'm' }), () => new Date(now()));
  }

  test('the first line is at most 200 characters and never repeats the refusal', () => {
    let now = T0;
    const b = board(() => now);
    const refused = `connection failed: connect ECONNREFUSED 127.0.0.1:8000 ${'x'.repeat(400)}`;
    for (let i = 0; i < 9; i++) {
      now += 15_000;
      b.recordProbe('ttft', false, 'connect_error', refused);
      b.evidence.health({ at: now, failure: 'refused', detail: refused });
    }
    const text = formatStatusText(b.report());
    const head = text.split('\n')[0]!;
    expect(head.length).toBeLessThanOrEqual(HEADLINE_MAX);
    expect(head).toMatch(/^down: nothing answers on vLLM's port for 120 s/);
    expect(head.match(/refused/g)?.length).toBe(1);
  });

  test('each fault has its own since; after it clears the headline is healthy and the fault stays as recent', async () => {
    // Each scrape comes in its own turn of the event loop, as in the daemon: the board judges
    // once per turn (StatusBoard.changed), so a state starts when the first evidence for it came.
    const turn = () => new Promise<void>((resolve) => setImmediate(resolve));
    let now = T0;
    const b = board(() => now);
    b.evidence.health({ at: now, status: 200 });
    b.recordProbe('ttft', true, 'success', undefined, 0.03);
    b.evidence.scrape(now, snap({}));
    expect(b.report().state).toBe('healthy');
    // KV pressure from 12:00:15 to 12:01:00
    for (let i = 1; i <= 3; i++) {
      now += 15_000;
      b.evidence.health({ at: now, status: 200 });
      b.evidence.scrape(now, snap({ preemptions: i * 4, generation_tokens: 1000 + i * 3000, requests_running: 3, requests_waiting: 10, kv_cache_usage_ratio: 0.9 }));
      await turn();
    }
    const kv = b.report();
    expect(kv.state).toBe('kv_pressure');
    expect(kv.status).toBe('degraded');
    expect(kv.serving).toBe(true);
    expect(kv.since).toBe('2026-12-06T12:00:15Z');
    // The load ends: no queue, no new preemption; the horizon (60 s) passes in 4 scrapes.
    for (let i = 1; i <= 5; i++) {
      now += 15_000;
      b.evidence.health({ at: now, status: 200 });
      b.recordProbe('ttft', true, 'success', undefined, 0.03);
      b.evidence.scrape(now, snap({ preemptions: 12, generation_tokens: 10_000 }));
      await turn();
    }
    const after = b.report();
    expect(after.state).toBe('healthy');
    expect(after.recent[0]).toMatch(/^kv_pressure 12:00:15Z–12:01:00Z: 12 preemptions in the last 45 s/);
    // A later, different fault starts its own episode and its own since.
    now += 15_000;
    b.evidence.health({ at: now, failure: 'refused', detail: 'connection refused' });
    b.recordProbe('ttft', false, 'connect_error', 'connection failed: connection refused');
    const down = b.report();
    expect(down.state).toBe('down');
    expect(down.since).toBe(new Date(now).toISOString().replace(/\.\d{3}Z$/, 'Z'));
  });

  test('under saturation the prefix check is not judged from a disturbed probe, and "disabled" never stands against the engine\'s hits', () => {
    let now = T0;
    const b = board(() => now);
    b.evidence.health({ at: now, status: 200 });
    b.evidence.scrape(now - 15_000, snap({ requests_running: 256, requests_waiting: 191, generation_tokens: 1000, prefix_cache_hits: 100 }));
    b.evidence.scrape(now, snap({ requests_running: 256, requests_waiting: 199, generation_tokens: 80_000, prefix_cache_hits: 9000 }));
    b.set('prefix_cache', 'unhealthy', 'prefix caching appears disabled: 0 cached tokens reported');
    const r = b.report();
    expect(r.state).toBe('saturated');
    const prefix = r.checks.find((c) => c.name === 'prefix_cache')!;
    expect(prefix.status).toBe('unknown');
    expect(prefix.reason).toMatch(/^not judged while saturated: its probe could not run cleanly/);
    // At rest, the same verdict against 8,900 hits the engine counted is a contradiction: unknown.
    now += 60_000;
    b.evidence.scrape(now - 15_000, snap({ generation_tokens: 90_000, prefix_cache_hits: 9000 }));
    b.evidence.scrape(now, snap({ generation_tokens: 90_100, prefix_cache_hits: 9100 }));
    b.recordProbe('ttft', true, 'success', undefined, 0.03);
    const rest = b.report();
    expect(rest.checks.find((c) => c.name === 'prefix_cache')?.reason).toMatch(/^contradicted by vLLM's own counters \(vLLM counted 100 prefix-cache hits meanwhile\)/);
    expect(rest.state).toBe('healthy');
  });

  test('a probe that waited through a sleep does not count as latency after wake-up', () => {
    let now = T0;
    const b = board(() => now);
    b.evidence.health({ at: now, status: 200 });
    b.evidence.scrape(now, snap({ sleep_state: 'weights_offloaded' }));
    expect(b.report().state).toBe('asleep');
    expect(b.report().serving).toBe(true);
    now += 60_000;
    b.evidence.scrape(now, snap({ sleep_state: 'awake' }));
    // The probe sent before the wake-up is answered ~10 ms after it, with the whole sleep as TTFT.
    now += 10;
    b.recordProbe('ttft', true, 'success', undefined, 45, { startedAt: now - 45_000 });
    now += 15_000;
    b.recordProbe('ttft', true, 'success', undefined, 0.03, { startedAt: now - 50 });
    const r = b.report();
    expect(r.state).toBe('healthy');
    expect(r.checks.find((c) => c.name === 'ttft_latency')?.reason).toMatch(/^TTFT p95 over 5m is 0\.03 s \(1 successful probes/);
  });
});
