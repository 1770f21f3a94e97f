/**
 * The failure operators report and /health does not show: vLLM's engine process stopped
 * (SIGSTOP) while the API server keeps answering /health 200. Against the real CPU vLLM, with
 * a decoy Python process on the host, the daemon must find exactly vLLM's processes by the
 * port it listens on, name the wedge within three probe intervals, judge no check healthy on
 * data it could not get, and recover after SIGCONT.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { sample, startDaemon, testConfig, waitFor, type RunningDaemon } from '../helpers/daemon.js';
import { processTable, realVllm, realVllmAvailable, treeOf, type RealVllm } from './real-vllm.js';

let vllm: RealVllm;
let daemon: RunningDaemon;
let decoy: ChildProcess;
const PROBE_INTERVAL_S = 2;
const SIGNATURES = ['no_token_after_headers', 'frozen_counters', 'queue_stuck'];

beforeAll(async () => {
  if (!realVllmAvailable()) throw new Error('real vLLM venv missing: run scripts/real-vllm/setup (npm run test:e2e does)');
  decoy = spawn('python3', ['-c', 'import time; time.sleep(600)'], { stdio: 'ignore' });
  vllm = await realVllm();
  await vllm.start();
  daemon = await startDaemon(
    testConfig(vllm.url, {
      target: { api_key_env: 'VLLM_API_KEY' },
      probes: { ttft: { interval: `${PROBE_INTERVAL_S}s`, timeout: '1900ms' }, prefix: { enabled: true, interval: '4s', timeout: '3500ms', prefix_tokens: [256] }, models: { interval: '2s', timeout: '1900ms' } },
      scrape: { interval: '2s', timeout: '1500ms', wedge_scrapes: 4 },
      status: { failures_to_unhealthy: 2, successes_to_recover: 1, window: '1m' },
      // gpu.process_match left at its default: vLLM is found by the port it listens on.
      gpu: { enabled: false },
    }),
    { env: { VLLM_API_KEY: vllm.apiKey } },
  );
}, 600_000);

afterAll(async () => {
  decoy?.kill();
  await daemon?.stop();
  await vllm?.stop();
}, 120_000);

describe('vLLM found by fact and a stopped engine named', () => {
  test('vllm_process reports exactly vLLM\'s processes, not the decoy Python process', async () => {
    const serverPid = Number(readFileSync(`.cache/vllm-${vllm.port}.pid`, 'utf8').trim());
    const expected = treeOf(serverPid);
    expect(expected.length).toBeGreaterThanOrEqual(2); // API server + EngineCore at least
    const check = await waitFor(async () => (await daemon.status()).body.checks.find((c) => c.name === 'vllm_process' && c.status === 'healthy'), 60_000);
    const pids = [...(check?.reason.match(/pids ([\d, ]+)\)/)?.[1] ?? '').matchAll(/\d+/g)].map((m) => Number(m[0])).sort((a, b) => a - b);
    expect(pids).toEqual(treeOf(serverPid));
    expect(pids).not.toContain(decoy.pid);
    expect(sample(await daemon.metrics(), 'vllm_probe_vllm_processes')).toBe(pids.length);
  });

  test('SIGSTOP of EngineCore: /health stays 200, /status names the wedge within 3 probe intervals; SIGCONT recovers', async () => {
    await waitFor(async () => (await daemon.status()).body.status === 'healthy', 90_000);
    const table = processTable();
    const engine = treeOf(Number(readFileSync(`.cache/vllm-${vllm.port}.pid`, 'utf8').trim())).find((pid) => table.get(pid)?.[1].startsWith('VLLM::EngineCor'));
    expect(engine).toBeDefined();
    process.kill(engine!, 'SIGSTOP');
    const stoppedAt = Date.now();
    try {
      const named = await waitFor(async () => {
        const s = await daemon.status();
        return s.body.checks.some((c) => c.name === 'engine_progress' && c.status === 'unhealthy' && c.reason.startsWith('engine wedged: /health 200 but')) ? s : undefined;
      }, 30_000, 200);
      const tookS = (Date.now() - stoppedAt) / 1000;
      expect(named).toBeDefined();
      expect((await fetch(`${vllm.url}/health`)).status).toBe(200); // vLLM itself says healthy
      expect(tookS).toBeLessThanOrEqual(3 * PROBE_INTERVAL_S + 2 * 1.9 + 2); // 3 intervals, the probe timeouts, one scrape
      expect(named!.code).toBe(503);
      expect(named!.body.reasons[0]).toMatch(/^engine wedged: \/health 200 but/);
      // The one diagnosis says the same, in the first line an on-call engineer reads.
      const wedged = await waitFor(async () => {
        const s = await daemon.status();
        return s.body.state === 'wedged' ? s : undefined;
      }, 10_000, 200);
      expect(wedged?.code).toBe(503);
      expect(wedged?.body.cause).toMatch(/^engine wedged: \/health 200 but /);
      // No check is healthy about what it could not get: latency and prefix caching need
      // successful probes, and there were none since the stop.
      const byName = Object.fromEntries(named!.body.checks.map((c) => [c.name, c]));
      for (const name of ['ttft_latency', 'prefix_cache', 'probe_ttft']) {
        if (byName[name]) expect(byName[name].status, `${name}: ${byName[name].reason}`).not.toBe('healthy');
      }
      const m = await daemon.metrics();
      const wedgedBy = SIGNATURES.filter((signature) => sample(m, 'vllm_probe_engine_wedged', { model: 'tiny-llama', signature }) === 1);
      expect(wedgedBy.length).toBeGreaterThanOrEqual(1);
    } finally {
      process.kill(engine!, 'SIGCONT');
    }
    // Recovered: the engine makes progress again and nothing is unhealthy (latency windows may
    // still hold the stall for a minute, which is the SLO window working, not the wedge).
    const recovered = await waitFor(async () => {
      const st = await daemon.status();
      return st.code === 200 && st.body.checks.some((c) => c.name === 'engine_progress' && c.status === 'healthy');
    }, 90_000, 250);
    expect(recovered).toBe(true);
    const after = await daemon.metrics();
    expect(SIGNATURES.map((signature) => sample(after, 'vllm_probe_engine_wedged', { model: 'tiny-llama', signature }))).toEqual([0, 0, 0]);
  });
});
