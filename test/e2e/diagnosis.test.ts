/**
 * The diagnosis against the real CPU vLLM: each everyday incident produced for real and named
 * by /status within three probe intervals, with the HTTP code a load balancer acts on, and
 * never "stall"/"wedge" while vLLM's generation counter grows. The states the CPU build cannot
 * show (sleep mode) are in test/diagnosis/ against the emulator; the wedge is in wedge.test.ts.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { sample, startDaemon, testConfig, waitFor, type RunningDaemon } from '../helpers/daemon.js';
import { engineCorePid, realVllm, realVllmAvailable, type RealVllm } from './real-vllm.js';
import { streamingLoad } from '../helpers/load.js';

const PROBE_S = 2;
/** "Within three probe intervals", plus one scrape and the probe timeouts on a busy 2-core box. */
const NAMED_WITHIN_MS = (3 * PROBE_S + 2 + 2 * 1.9) * 1000;

function daemonConfig(url: string, target: Record<string, unknown> = {}) {
  return testConfig(url, {
    target: { api_key_env: 'VLLM_API_KEY', ...target },
    probes: { ttft: { interval: `${PROBE_S}s`, timeout: '1900ms' }, models: { interval: `${PROBE_S}s`, timeout: '1900ms' } },
    scrape: { interval: '2s', timeout: '1500ms', wedge_scrapes: 4 },
    status: { failures_to_unhealthy: 2, successes_to_recover: 1, window: '1m' },
    gpu: { enabled: false },
  });
}

interface TraceLine {
  t: number;
  code: number;
  head: string;
  generated: number | undefined;
}

/** vLLM's own generation counter, read straight from its /metrics. */
async function generated(vllm: RealVllm): Promise<number | undefined> {
  try {
    const text = await (await fetch(`${vllm.url}/metrics`, { signal: AbortSignal.timeout(3000) })).text();
    return [...text.matchAll(/^vllm:generation_tokens_total\{[^}]*\} (\S+)$/gm)].reduce((a, m) => a + Number(m[1]), 0);
  } catch {
    return undefined;
  }
}

/** Polls /status?format=text and vLLM's counter once a second until stopped. */
function trace(daemon: RunningDaemon, vllm: RealVllm) {
  const lines: TraceLine[] = [];
  let running = true;
  const done = (async () => {
    while (running) {
      const started = Date.now();
      try {
        const res = await fetch(`${daemon.url}/status?format=text`);
        const head = (await res.text()).split('\n')[0]!;
        lines.push({ t: started, code: res.status, head, generated: await generated(vllm) });
      } catch {
        /* the daemon is stopping: the test that started this trace failed */
      }
      await new Promise((r) => setTimeout(r, Math.max(0, 1000 - (Date.now() - started))));
    }
  })();
  return {
    lines,
    async stop() {
      running = false;
      await done;
      return lines;
    },
  };
}

/** No first line says stall or wedge in a second in which vLLM generated tokens. */
function expectNoFalseStall(lines: TraceLine[]): void {
  for (let i = 1; i < lines.length; i++) {
    const [a, b] = [lines[i - 1]!, lines[i]!];
    if (a.generated !== undefined && b.generated !== undefined && b.generated > a.generated) expect(b.head, `tokens grew ${a.generated} → ${b.generated}`).not.toMatch(/stall|wedge/i);
  }
}

/** `workers` clients streaming long completions (ignore_eos) back to back until stopped. */
function load(vllm: RealVllm, workers: number, body: { prompt: (i: number) => string; max_tokens: number }) {
  return streamingLoad({
    url: vllm.url,
    apiKey: vllm.apiKey,
    workers,
    body: (w, i) => ({ model: 'tiny-llama', prompt: body.prompt(w * 1000 + i), max_tokens: body.max_tokens, ignore_eos: true, temperature: 0 }),
  });
}

const words = (n: number, seed: number) => Array.from({ length: n }, (_, i) => `w${(seed * 7919 + i * 31) % 997}`).join(' ');

async function waitForState(daemon: RunningDaemon, state: string, timeoutMs: number) {
  return waitFor(async () => {
    const res = await fetch(`${daemon.url}/status?format=text`);
    const text = await res.text();
    return text.startsWith(`${state}: `) ? { code: res.status, head: text.split('\n')[0]!, at: Date.now() } : undefined;
  }, timeoutMs, 250);
}

describe('one vLLM (max-num-seqs 4): at rest, the prober\'s own mistakes, saturation, restart, crash', () => {
  let vllm: RealVllm;
  let daemon: RunningDaemon;
  const others: RunningDaemon[] = [];
  const args = ['--', '--max-num-seqs', '4'];

  beforeAll(async () => {
    if (!realVllmAvailable()) throw new Error('real vLLM venv missing: run scripts/real-vllm/setup (npm run test:e2e does)');
    vllm = await realVllm();
    await vllm.start(args);
    daemon = await startDaemon(daemonConfig(vllm.url), { env: { VLLM_API_KEY: vllm.apiKey } });
  }, 600_000);

  afterAll(async () => {
    for (const d of others) await d.stop();
    await daemon?.stop();
    await vllm?.stop();
  }, 120_000);

  test('at rest: healthy, 200, the first line names the queue and the KV cache', async () => {
    const healthy = await waitForState(daemon, 'healthy', 60_000);
    expect(healthy?.code).toBe(200);
    expect(healthy?.head).toMatch(/^healthy: serving/);
    // Once /metrics has been scraped the line carries the engine's numbers.
    const numbers = await waitFor(async () => {
      const head = (await (await fetch(`${daemon.url}/status?format=text`)).text()).split('\n')[0]!;
      return head.startsWith('healthy: serving: ') ? head : undefined;
    }, 10_000, 250);
    expect(numbers).toMatch(/^healthy: serving: \d running, 0 waiting, KV cache \d+ % full \(since \d\d:\d\d:\d\d\)$/);
    expect(sample(await daemon.metrics(), 'vllm_probe_state', { state: 'healthy' })).toBe(1);
  });

  test('a wrong API key in the prober: misconfigured, 200 (vLLM is fine), its own alert metric', async () => {
    const wrong = await startDaemon(daemonConfig(vllm.url), { env: { VLLM_API_KEY: 'sk-rotated-away' } });
    others.push(wrong);
    const named = await waitForState(wrong, 'misconfigured', NAMED_WITHIN_MS + 10_000);
    expect(named?.code).toBe(200);
    expect(named?.head).toMatch(/^misconfigured: vLLM answers the prober HTTP 401: the API key in target\.api_key_env \/ api_key_file is wrong or missing/);
    expect(named!.head.length).toBeLessThanOrEqual(200);
    expect(named!.head).not.toContain('sk-rotated-away');
    expect(sample(await wrong.metrics(), 'vllm_probe_state', { state: 'misconfigured' })).toBe(1);
  });

  test('a model vLLM does not serve: misconfigured, 200', async () => {
    const wrong = await startDaemon(daemonConfig(vllm.url, { model: 'no-such-model' }), { env: { VLLM_API_KEY: vllm.apiKey } });
    others.push(wrong);
    const named = await waitForState(wrong, 'misconfigured', NAMED_WITHIN_MS + 10_000);
    expect(named?.code).toBe(200);
    expect(named?.head).toMatch(/^misconfigured: the prober asks for a model vLLM does not serve: fix target\.model/);
  });

  test('saturation: 24 streams on 4 slots is "saturated" while tokens flow, never a stall; healthy again after', async () => {
    await waitForState(daemon, 'healthy', 60_000);
    const watch = trace(daemon, vllm);
    const started = Date.now();
    const busy = load(vllm, 24, { prompt: (i) => words(60, i), max_tokens: 300 });
    try {
      const named = await waitForState(daemon, 'saturated', 60_000);
      expect(named, `first lines: ${watch.lines.map((l) => l.head).join(' | ')}`).toBeDefined();
      expect(named!.at - started).toBeLessThanOrEqual(NAMED_WITHIN_MS + 4000);
      expect(named!.code).toBe(200);
      // Running is 4 slots but for the moment a finished stream's slot waits for the next step.
      expect(named!.head).toMatch(/^saturated: [1-4] running, \d+ waiting( \(\d+ for capacity\))?, generating \d+ tok\/s; new requests queue \(KV cache \d+ % full\)/);
      await waitFor(async () => watch.lines.length >= 15, 40_000);
    } finally {
      await busy.stop();
    }
    const back = await waitForState(daemon, 'healthy', 3 * PROBE_S * 1000 + 10_000);
    const lines = await watch.stop();
    expect(back, `after the load: ${lines.slice(-5).map((l) => l.head).join(' | ')}`).toBeDefined();
    expectNoFalseStall(lines);
    expect(lines.filter((l) => l.code === 503).map((l) => l.head)).toEqual([]);
  });

  test('restart: down while stopped, then "restarted" within 2 probe intervals of /health 200, with the cold TTFT', async () => {
    await waitForState(daemon, 'healthy', 60_000);
    await vllm.stop();
    const down = await waitForState(daemon, 'down', NAMED_WITHIN_MS);
    expect(down?.code).toBe(503);
    expect(down?.head).toMatch(/^down: nothing answers on vLLM's port (for \d+ s )?\(connection refused\)/);
    const watch = trace(daemon, vllm);
    await vllm.start(args); // returns once /health answers 200
    const healthAt = Date.now();
    const during = await watch.stop();
    // While it loads, its new processes run and do not listen yet: "starting", not "down".
    expect(during.map((l) => l.head).find((h) => h.startsWith('starting: ')), during.map((l) => l.head).join(' | ')).toMatch(/^starting: \d+ vLLM process(es)? runs? \(pids [\d, ]+\) but nothing answers on vLLM's port/);
    const back = await waitForState(daemon, 'restarted', 60_000);
    expect(back).toBeDefined();
    expect(back!.at - healthAt).toBeLessThanOrEqual(2 * PROBE_S * 1000 + 2000);
    expect(back!.code).toBe(200);
    const cold = await waitFor(async () => {
      const head = (await (await fetch(`${daemon.url}/status?format=text`)).text()).split('\n')[0]!;
      return /cold\)/.test(head) ? head : undefined;
    }, 3 * PROBE_S * 1000 + 5000, 250);
    expect(cold).toMatch(/^restarted: vLLM restarted at \d\d:\d\d:\d\d \(.*\) and serves again; first TTFT after it [\d.]+ s \(cold\)/);
  });

  test('engine crash (SIGKILL of EngineCore): "crashed", 503, not just unreachable, also with no request in flight', async () => {
    await waitFor(async () => (await daemon.status()).code === 200, 60_000);
    // A daemon at default-like intervals: no probe in flight and no /health poll in the 0.3 s
    // the API server outlives its engine, so only the engine watch can tell it was a crash.
    const quiet = await startDaemon(
      testConfig(vllm.url, { target: { api_key_env: 'VLLM_API_KEY' }, probes: { ttft: { interval: '1m', timeout: '10s' }, models: { interval: '1m', timeout: '10s' } }, scrape: { interval: '15s', timeout: '5s' }, gpu: { enabled: false } }),
      { env: { VLLM_API_KEY: vllm.apiKey } },
    );
    others.push(quiet);
    // Let the process collectors follow the new processes.
    for (const d of [daemon, quiet]) await waitFor(async () => (await d.status()).body.checks.some((c) => c.name === 'vllm_process' && c.status === 'healthy'), 30_000);
    const engine = engineCorePid(vllm);
    expect(engine).toBeDefined();
    process.kill(engine!, 'SIGKILL');
    const killedAt = Date.now();
    const named = await waitForState(daemon, 'crashed', NAMED_WITHIN_MS);
    expect(named, `first line: ${(await (await fetch(`${daemon.url}/status?format=text`)).text()).split('\n')[0]}`).toBeDefined();
    expect(named!.at - killedAt).toBeLessThanOrEqual(NAMED_WITHIN_MS);
    expect(named!.code).toBe(503);
    // Whichever came first: the engine watch, a probe's HTTP 500, or /health 503.
    expect(named!.head).toMatch(/^crashed: vLLM's engine died at \d\d:\d\d:\d\d: (vLLM process \d+ \(VLLM::EngineCor\) exited, API server \d+ still up|a \w+ request got HTTP 500: EngineCore encountered an issue|\/health answered HTTP 503 after 200)/);
    expect(named!.head.length).toBeLessThanOrEqual(200);
    const seenByWatch = await waitForState(quiet, 'crashed', 10_000);
    expect(seenByWatch?.code).toBe(503);
    expect(seenByWatch?.head).toMatch(/^crashed: vLLM's engine died at \d\d:\d\d:\d\d: vLLM process \d+ \(VLLM::EngineCor\) exited, API server \d+ still up/);
  });
});

describe('KV-cache pressure (64 blocks of 128 tokens, 24 long requests): preemptions named, never a stall', () => {
  let vllm: RealVllm;
  let daemon: RunningDaemon;

  beforeAll(async () => {
    vllm = await realVllm();
    await vllm.start(['--max-model-len', '2048', '--', '--num-gpu-blocks-override', '64']);
    daemon = await startDaemon(daemonConfig(vllm.url), { env: { VLLM_API_KEY: vllm.apiKey } });
  }, 600_000);

  afterAll(async () => {
    await daemon?.stop();
    await vllm?.stop();
  }, 120_000);

  test('kv_pressure with the preemption rate while vLLM generates; healthy again after', async () => {
    await waitForState(daemon, 'healthy', 60_000);
    const watch = trace(daemon, vllm);
    const busy = load(vllm, 24, { prompt: (i) => words(250, i), max_tokens: 600 });
    try {
      const named = await waitForState(daemon, 'kv_pressure', 120_000);
      expect(named, `first lines: ${watch.lines.map((l) => l.head).join(' | ')}`).toBeDefined();
      expect(named!.code).toBe(200);
      expect(named!.head).toMatch(/^kv_pressure: (\d+ preemptions? in the last \d+ s \([\d.]+\/min\)|no preemption yet); KV cache \d+ % full, \d+ running, \d+ waiting/);
      const preempted = await waitFor(async () => {
        const head = (await (await fetch(`${daemon.url}/status?format=text`)).text()).split('\n')[0]!;
        return /^kv_pressure: [1-9]\d* preemptions? in the last/.test(head) ? head : undefined;
      }, 120_000, 500);
      expect(preempted).toBeDefined();
    } finally {
      await busy.stop();
    }
    const back = await waitForState(daemon, 'healthy', 60_000);
    const lines = await watch.stop();
    expect(back, `after the load: ${lines.slice(-5).map((l) => l.head).join(' | ')}`).toBeDefined();
    expectNoFalseStall(lines);
    expect(lines.filter((l) => l.code === 503).map((l) => l.head)).toEqual([]);
  });
});
