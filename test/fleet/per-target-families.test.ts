/**
 * Central mode keeps, per static target, the families probes write (src/metrics.ts marks them
 * `perTarget`). The check is behavioural: a sidecar and a central daemon probe the same emulator
 * with the same kinds, and every family the sidecar's probe runs gave a sample must carry that
 * target's label in central mode. Issue 26: a hand list in fleet/targets.ts had already lost the
 * TTFT probe's four per-request-metrics families, and removing prefix families from it passed
 * every fleet test.
 */
import { afterAll, beforeAll, expect, test } from 'vitest';
import { Registry } from 'prom-client';
import { createMetrics, perTargetFamilies } from '../../src/metrics.js';
import { PROBE_KINDS } from '../../src/synthetic/index.js';
import { sample, startDaemon, startEmulator, testConfig, waitFor, type RunningDaemon } from '../helpers/daemon.js';

/**
 * Families the sidecar shows that no probe writes: the daemon itself and its /status board
 * (central mode answers them once, with one /status check per target), and target_up, which is
 * vLLM's /metrics scrape (central mode scrapes no target).
 */
const DAEMON_OWN = new Set([
  'vllm_probe_target_up',
  'vllm_probe_build_info',
  'vllm_probe_config_last_reload_successful',
  'vllm_probe_config_last_reload_success_timestamp_seconds',
  'vllm_probe_status',
  'vllm_probe_state',
]);

let emu: Awaited<ReturnType<typeof startEmulator>>;
let sidecar: RunningDaemon;
let central: RunningDaemon;

/** Every kind of the `probers` table, fast; a kind's own settings where it needs them. */
const OWN_SETTINGS: Record<string, Record<string, unknown>> = { ttft: { max_tokens: 2 }, prefix: { prefix_tokens: [256], hits_per_cycle: 1 } };
const probes = Object.fromEntries(PROBE_KINDS.map((kind) => [kind, { enabled: true, interval: '1s', timeout: '900ms', ...OWN_SETTINGS[kind] }]));

beforeAll(async () => {
  emu = await startEmulator({ model: 'm', coldStartMs: 0, baseTtftMs: 5, itlMs: 1, perRequestMetrics: true });
  // Probes only: no scrape and no host collector (neither is a probe's family).
  sidecar = await startDaemon(testConfig(emu.url, { probes, scrape: { enabled: false }, host: { enabled: false } }));
  central = await startDaemon(
    testConfig('http://127.0.0.1:9', {
      probes: Object.fromEntries(PROBE_KINDS.map((kind) => [kind, { enabled: false }])),
      scrape: { enabled: false },
      host: { enabled: false },
      modules: Object.fromEntries(PROBE_KINDS.map((kind) => [kind, { kind, timeout: '900ms', ...OWN_SETTINGS[kind] }])),
      targets: [{ url: emu.url, modules: PROBE_KINDS, interval: '1s' }],
    }),
  );
});

afterAll(async () => {
  await central?.stop();
  await sidecar?.stop();
  await emu?.close();
});

/** Family names (as in # TYPE) that have at least one sample line matching `line`. */
function familiesWithSamples(text: string, line: (l: string) => boolean = () => true): Set<string> {
  const families = [...text.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]!);
  const out = new Set<string>();
  for (const l of text.split('\n')) {
    if (l.startsWith('#') || !l || !line(l)) continue;
    const name = l.slice(0, l.search(/[{ ]/));
    const family = families.find((f) => name === f || name === `${f}_bucket` || name === `${f}_sum` || name === `${f}_count`);
    if (family) out.add(family);
  }
  return out;
}

/** Metrics once every kind has succeeded twice (the prefix probe's second run is its warm one). */
async function settled(daemon: RunningDaemon, labels: Record<string, string>): Promise<string> {
  return waitFor(async () => {
    const t = await daemon.metrics();
    const ok = PROBE_KINDS.every((probe) => (sample(t, 'vllm_probe_requests_total', { ...labels, probe, outcome: 'success' }) ?? 0) >= 2);
    return ok && sample(t, 'vllm_probe_server_time_to_first_token_seconds_count', { ...labels, probe: 'ttft' }) ? t : '';
  }, 20_000);
}

test('every family a sidecar\'s probe runs write is kept per target in central mode', async () => {
  const side = familiesWithSamples(await settled(sidecar, {}));
  const target = `target="${emu.url}"`;
  const perTarget = familiesWithSamples(await settled(central, { target: emu.url }), (l) => l.includes(target));
  const probeWritten = [...side].filter((f) => !DAEMON_OWN.has(f)).sort();
  // The comparison means something only if the probe families are there at all.
  expect(probeWritten).toEqual(expect.arrayContaining(['vllm_probe_requests_total', 'vllm_probe_prefix_speedup_ratio', 'vllm_probe_server_time_to_first_token_seconds', 'vllm_probe_model_served']));
  expect(probeWritten.filter((f) => !perTarget.has(f))).toEqual([]);
});

test('a target\'s registry keeps only families marked per target, none that describe the daemon', () => {
  const marked = perTargetFamilies(createMetrics(new Registry(), testConfig('http://127.0.0.1:9')));
  expect(marked.filter((f) => DAEMON_OWN.has(f))).toEqual([]);
  expect(marked).not.toContain('vllm_probe_target_up');
  expect(marked).not.toContain('vllm_probe_engine_requests_running');
});
