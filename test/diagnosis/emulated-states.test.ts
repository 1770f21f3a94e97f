/**
 * The states of a real vLLM that the emulator's fault modes reproduce (src/emulator/faults.ts,
 * numbers from ../shared/reference/vllm-states.md), named by the daemon's /status: each test
 * switches a healthy emulator into the mode and waits for the state and its first line.
 * "Stall" or "wedge" must never be said while the emulated engine generates tokens.
 */
import { onTestFinished, describe, expect, test } from 'vitest';
import type { Fault } from '../../src/emulator/faults.js';
import { sample, startDaemon, startEmulator, testConfig, waitFor, type RunningDaemon } from '../helpers/daemon.js';

async function rig() {
  const emu = await startEmulator({ coldStartMs: 0 });
  onTestFinished(() => emu.close());
  const daemon = await startDaemon(testConfig(emu.url));
  onTestFinished(() => daemon.stop());
  const healthy = await waitFor(async () => (await daemon.status()).body.state === 'healthy', 10_000);
  expect(healthy).toBe(true);
  return { emu, daemon };
}

const firstLine = async (daemon: RunningDaemon) => (await (await fetch(`${daemon.url}/status?format=text`)).text()).split('\n')[0]!;

/** Every /status answer until `state` is named (or 20 s pass): its code and first line. */
async function until(daemon: RunningDaemon, state: string) {
  const seen: Array<{ code: number; line: string }> = [];
  const found = await waitFor(
    async () => {
      const res = await fetch(`${daemon.url}/status?format=text`);
      const line = (await res.text()).split('\n')[0]!;
      seen.push({ code: res.status, line });
      return line.startsWith(`${state}: `) ? { code: res.status, line } : undefined;
    },
    20_000,
    100,
  );
  return { found, seen };
}

const generated = async (emuUrl: string) => sample(await (await fetch(`${emuUrl}/metrics`)).text(), 'vllm:generation_tokens_total') ?? 0;

describe('the emulator\'s fault modes give the daemon the states of a real vLLM', () => {
  test('engine_dead: HTTP 500 EngineDeadError, /health 503, then the port closes → crashed (503)', async () => {
    const { emu, daemon } = await rig();
    const post = await fetch(`${emu.url}/_emulator/fault`, { method: 'POST', body: JSON.stringify({ mode: 'engine_dead' } satisfies Fault) });
    expect(post.status).toBe(200);
    const res = await fetch(`${emu.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ prompt: 'hi', max_tokens: 2 }) });
    expect(res.status).toBe(500);
    expect(((await res.json()) as { error: { message: string } }).error.message).toBe('EngineCore encountered an issue. See stack trace (above) for the root cause.');
    expect((await fetch(`${emu.url}/health`)).status).toBe(503);
    // The API server exits: nothing listens any more.
    expect(await waitFor(() => fetch(`${emu.url}/health`).then(() => false, () => true), 5000)).toBe(true);
    const { found } = await until(daemon, 'crashed');
    expect(found?.code).toBe(503);
    expect(found?.line).toMatch(/^crashed: vLLM's engine died at \d\d:\d\d:\d\d: .*(EngineCore encountered an issue|\/health answered HTTP 503 after 200).*; now (\/health answers HTTP 503|nothing answers on vLLM's port)/);
    // With the port closed it stays crashed (not down): the death was seen.
    const refused = await waitFor(async () => {
      const line = await firstLine(daemon);
      return /nothing answers on vLLM's port/.test(line) ? line : undefined;
    }, 10_000);
    expect(refused).toMatch(/^crashed: vLLM's engine died at /);
  }, 40_000);

  test('kv_pressure: preemptions rise, requests wait for capacity, tokens flow → kv_pressure naming the preemptions (200)', async () => {
    const { emu, daemon } = await rig();
    emu.emulator.fault = { mode: 'kv_pressure' };
    const tokens = await generated(emu.url);
    const { found, seen } = await until(daemon, 'kv_pressure');
    expect(found?.code).toBe(200);
    // Preemptions come every few seconds; the line names them once there are some.
    const named = await waitFor(async () => {
      const line = await firstLine(daemon);
      return /^kv_pressure: \d+ preemptions? in the last \d+ s \([\d.]+\/min\); KV cache \d+ % full, \d+ running, \d+ waiting \(\d+ for capacity\), generating \d+ tok\/s/.test(line) ? line : undefined;
    }, 15_000);
    expect(named).toBeDefined();
    expect(await generated(emu.url)).toBeGreaterThan(tokens);
    expect(seen.filter((s) => /stall|wedge/i.test(s.line))).toEqual([]);
  }, 40_000);

  test('saturated: running at --max-num-seqs, the queue grows, tokens flow → saturated (200), never stalled', async () => {
    const { emu, daemon } = await rig();
    emu.emulator.fault = { mode: 'saturated' };
    const { found, seen } = await until(daemon, 'saturated');
    expect(found?.code).toBe(200);
    expect(found?.line).toMatch(/^saturated: 64 running, \d+ waiting \(\d+ for capacity\), generating \d+ tok\/s; new requests queue/);
    // A few probe intervals later: still saturated, the probes' timeouts are not called a wedge.
    const later = await waitFor(async () => {
      const s = await daemon.status();
      const stalls = sample(await daemon.metrics(), 'vllm_probe_requests_total', { probe: 'ttft', outcome: 'timeout_before_first_token' }) ?? 0;
      return stalls >= 2 ? s : undefined;
    }, 15_000);
    expect(later?.body.state).toBe('saturated');
    expect(seen.filter((s) => /stall|wedge/i.test(s.line))).toEqual([]);
  }, 40_000);

  test('shedding: 503 at admission with Retry-After, admission_rejections_total grows → shedding (200)', async () => {
    const { emu, daemon } = await rig();
    emu.emulator.fault = { mode: 'shedding', delayMs: 2000 };
    const res = await fetch(`${emu.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ prompt: 'hi', max_tokens: 2, stream: true }) });
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).toBe('2');
    await res.text();
    const { found } = await until(daemon, 'shedding');
    expect(found?.code).toBe(200);
    // Whether a probe is refused before a scrape counts the engine's refusals is a race (it went
    // either way on a busy machine): both are shedding, and the engine's count follows.
    expect(found?.line).toMatch(/^shedding: (\d+ requests? refused at admission|the probe was refused: HTTP 503)/);
    const counted = await waitFor(async () => {
      const line = await firstLine(daemon);
      return /^shedding: \d+ requests? refused at admission/.test(line) ? line : undefined;
    }, 20_000);
    expect(counted).toMatch(/^shedding: \d+ requests? refused at admission in the last \d+ s.*; add replicas or raise --max-num-queued-reqs/);
    // Once a probe was refused, the line says when the next one goes (Retry-After).
    const next = await waitFor(async () => {
      const line = await firstLine(daemon);
      return /; next probe at \d\d:\d\d:\d\d \(Retry-After\);/.test(line) ? line : undefined;
    }, 10_000);
    expect(next).toMatch(/^shedding: /);
    const m = await (await fetch(`${emu.url}/metrics`)).text();
    expect(sample(m, 'vllm:admission_rejections_total', { reason: 'max_num_queued_reqs' })).toBeGreaterThan(1);
  }, 40_000);
});
