/**
 * Fleet mode end to end (issue 17): a real Prometheus scrapes vllm-probe's /probe for three
 * emulators and the real CPU vLLM, through the relabelling of deploy/prometheus/fleet/
 * prometheus.yml (targets and addresses swapped for local ones, nothing else changed), with
 * the generated rules loaded. One series per target, a stopped emulator at 0 from the first
 * scrape after it stopped, a target outside the allow-list refused, the fleet dashboard's
 * queries all answered, and the rules firing per target in promtool test rules.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { parse, stringify } from 'yaml';
import { defaultConfig } from '../../src/config.js';
import { fleetPanelQueries } from '../../src/slo/fleet-dashboard.js';
import { startDaemon, startEmulator, testConfig, waitFor, type RunningDaemon } from '../helpers/daemon.js';
import { freePort, startPrometheus, type RunningPrometheus } from '../helpers/prometheus.js';
import { PROMTOOL, skipWithoutPrometheus } from '../helpers/tools.js';
import { realVllm, realVllmAvailable, type RealVllm } from './real-vllm.js';

type Emulator = Awaited<ReturnType<typeof startEmulator>>;
type Obj = Record<string, any>;

let emulators: Emulator[] = [];
let vllm: RealVllm;
let daemon: RunningDaemon;
let prom: RunningPrometheus;
let refusedTarget: string;
const workDir = mkdtempSync(join(tmpdir(), 'fleet-e2e-'));

/** The shipped scrape config with local targets and prober address; relabelling untouched. */
function scrapeConfig(prober: string): string {
  const shipped = parse(readFileSync('deploy/prometheus/fleet/prometheus.yml', 'utf8')) as Obj;
  const template = (shipped.scrape_configs as Obj[]).find((j) => j.metrics_path === '/probe')!;
  const relabel = (template.relabel_configs as Obj[]).map((r) => (r.target_label === '__address__' ? { ...r, replacement: prober } : r));
  const job = (name: string, module: string, targets: string[], every: string) => ({ ...template, job_name: name, params: { module: [module] }, scrape_interval: every, scrape_timeout: every, static_configs: [{ targets }], relabel_configs: relabel });
  return stringify({
    global: { scrape_interval: '2s', evaluation_interval: '2s' },
    rule_files: [resolve('deploy/prometheus/rules/vllm-probe.rules.yml')],
    scrape_configs: [
      job('vllm-fleet', 'ttft', [...emulators.map((e) => e.url), refusedTarget], '2s'),
      // The CPU vLLM is slow to answer on a shared 2-core machine: a longer scrape timeout.
      job('vllm-fleet-real', 'real', [vllm.url], '5s'),
    ],
  });
}

beforeAll(async () => {
  if (skipWithoutPrometheus) throw new Error('prometheus/promtool missing: run scripts/install-prometheus');
  if (!realVllmAvailable()) throw new Error('real vLLM venv missing: run scripts/real-vllm/setup (npm run test:e2e does)');
  vllm = await realVllm();
  // Up to 390 s for the CPU vLLM to come up on a busy machine (the helper allows 400 s).
  await vllm.start(['--timeout', '390']);
  emulators = await Promise.all(['a', 'b', 'c'].map((n) => startEmulator({ model: `emulated-${n}`, coldStartMs: 0, baseTtftMs: 20 })));
  // Allowed by nothing in the list below (localhost is a name; only 127.0.0.1 is allowed).
  refusedTarget = `http://localhost:${await freePort()}`;
  daemon = await startDaemon(
    testConfig('http://127.0.0.1:9', {
      probes: { ttft: { enabled: false }, prefix: { enabled: false }, models: { enabled: false } },
      scrape: { enabled: false },
      probe_endpoint: { allow: ['127.0.0.1'] },
      modules: {
        ttft: { kind: 'ttft', max_tokens: 4, timeout: '5s' },
        real: { kind: 'ttft', max_tokens: 4, timeout: '10s', api_key_env: 'VLLM_API_KEY', api_key_hosts: ['127.0.0.1'] },
      },
    }),
    { env: { VLLM_API_KEY: vllm.apiKey } },
  );
  prom = await startPrometheus({ targets: [], configYaml: scrapeConfig(new URL(daemon.url).host) });
  // Every allowed target answered at least once, the real vLLM included.
  const all = await waitFor(async () => (await prom.query('vllm_probe_success')).length === 4, 90_000, 500);
  if (!all) throw new Error(`not every target was scraped: ${JSON.stringify(await prom.query('up'))}\n${prom.log()}`);
}, 600_000);

afterAll(async () => {
  await prom?.stop();
  await daemon?.stop();
  await Promise.all(emulators.map((e) => e.close()));
  await vllm?.stop();
  rmSync(workDir, { recursive: true, force: true });
}, 120_000);

describe('Prometheus holds the fleet', () => {
  test('one vllm_probe_success series per target, instance = the target URL, module from the params', async () => {
    const ok = await waitFor(async () => (await prom.query('vllm_probe_success == 1')).length === 4, 60_000, 500);
    const series = await prom.query('vllm_probe_success');
    expect(ok, JSON.stringify(series)).toBe(true);
    const byInstance = Object.fromEntries(series.map((s) => [s.metric.instance, s.metric]));
    expect(Object.keys(byInstance).sort()).toEqual([...emulators.map((e) => e.url), vllm.url].sort());
    for (const e of emulators) expect(byInstance[e.url]).toMatchObject({ job: 'vllm-fleet', module: 'ttft' });
    expect(byInstance[vllm.url]).toMatchObject({ job: 'vllm-fleet-real', module: 'real' });
    // The latency gauges too, one per target.
    const ttft = await prom.query('count by (instance) (vllm_probe_ttft_seconds)');
    expect(ttft).toHaveLength(4);
    const real = await prom.query(`vllm_probe_ttft_seconds{instance="${vllm.url}"}`);
    expect(Number(real[0]!.value[1])).toBeGreaterThan(0);
    // The recording rules are per target as well.
    await waitFor(async () => (await prom.query('slo:sli_error:ratio_rate5m{slo="vllm-probe-fleet-availability"}')).length === 4, 20_000, 500);
    expect(await prom.query('slo:sli_error:ratio_rate5m{slo="vllm-probe-fleet-availability"}')).toHaveLength(4);
  });

  test('a target outside probe_endpoint.allow is refused: the scrape fails with 403, no probe series', async () => {
    const targets = (await (await fetch(`${prom.url}/api/v1/targets?state=active`)).json()) as { data: { activeTargets: Obj[] } };
    const refused = targets.data.activeTargets.find((t) => t.labels.instance === refusedTarget)!;
    expect(refused.health).toBe('down');
    expect(refused.lastError).toMatch(/403/);
    expect(await prom.query(`vllm_probe_success{instance="${refusedTarget}"}`)).toEqual([]);
    // What the prober says, for the person reading the scrape error.
    const res = await fetch(`${daemon.url}/probe?target=${encodeURIComponent(refusedTarget)}&module=ttft`);
    expect(res.status).toBe(403);
    expect(await res.text()).toMatch(/not allowed: its host matches none of probe_endpoint\.allow \(127\.0\.0\.1\)/);
  });

  test('every query of the fleet dashboard returns data', async () => {
    const dead: string[] = [];
    for (const { panel, expr } of fleetPanelQueries(defaultConfig())) {
      const e = expr.replaceAll('$job', '.*').replaceAll('$instance', '.*').replaceAll('$module', '.*').replaceAll('$n', '5').replaceAll('$__range', '10m');
      if ((await prom.query(e)).length === 0) dead.push(`${panel}: ${e}`);
    }
    expect(dead).toEqual([]);
  });

  test('a stopped emulator shows vllm_probe_success 0 from the first scrape after it stopped', async () => {
    const victim = emulators[2]!;
    const stoppedAt = Date.now() / 1000;
    await victim.close();
    const sel = `vllm_probe_success{instance="${victim.url}"}`;
    type Range = Array<{ values: Array<[number, string]> }>;
    const after = async () => {
      const res = (await (await fetch(`${prom.url}/api/v1/query?query=${encodeURIComponent(`${sel}[30s]`)}`)).json()) as { data: { result: Range } };
      return (res.data.result[0]?.values ?? []).filter(([t]) => t > stoppedAt);
    };
    const samples = await waitFor(async () => ((await after()).length > 0 ? after() : undefined), 15_000, 250);
    expect(samples, 'a scrape after the stop').toBeDefined();
    expect(samples![0]![1]).toBe('0');
    const outcome = await prom.query(`vllm_probe_outcome{instance="${victim.url}",outcome="connect_error"}`);
    expect(outcome[0]!.value[1]).toBe('1');
    // The others are unaffected.
    for (const e of emulators.slice(0, 2)) expect((await prom.query(`vllm_probe_success{instance="${e.url}"}`))[0]!.value[1]).toBe('1');
    expect((await prom.query(`vllm_probe_success{instance="${vllm.url}"}`))[0]!.value[1]).toBe('1');
  });

  test('the generated rules fire per target in promtool test rules', () => {
    const r = spawnSync(PROMTOOL!, ['test', 'rules', 'deploy/prometheus/tests/vllm-probe-fleet.rules.test.yml'], { encoding: 'utf8' });
    expect(r.stdout + r.stderr).toContain('SUCCESS');
    expect(r.status).toBe(0);
  });
});
