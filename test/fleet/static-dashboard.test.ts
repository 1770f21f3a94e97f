/**
 * The fleet dashboard's static-target row against a real Prometheus scraping a central
 * daemon's /metrics (two emulators in its `targets:` list): every query returns data, one row
 * per target.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { defaultConfig } from '../../src/config.js';
import { fleetPanelQueries } from '../../src/slo/fleet-dashboard.js';
import { startDaemon, startEmulator, testConfig, waitFor, type RunningDaemon } from '../helpers/daemon.js';
import { startPrometheus, type RunningPrometheus } from '../helpers/prometheus.js';
import { skipWithoutPrometheus } from '../helpers/tools.js';

const substitute = (expr: string) => expr.replaceAll('$target', '.*').replaceAll('$__range', '10m').replaceAll('$__rate_interval', '20s');

describe.skipIf(skipWithoutPrometheus)('static targets on the fleet dashboard', { timeout: 120_000 }, () => {
  let emulators: Array<Awaited<ReturnType<typeof startEmulator>>> = [];
  let daemon: RunningDaemon;
  let prom: RunningPrometheus;

  beforeAll(async () => {
    emulators = await Promise.all(['a', 'b'].map((n) => startEmulator({ model: `static-${n}`, coldStartMs: 0, baseTtftMs: 20 })));
    daemon = await startDaemon(
      testConfig('http://127.0.0.1:9', {
        scrape: { enabled: false },
        modules: { ttft: { kind: 'ttft', max_tokens: 2, timeout: '900ms' } },
        targets: emulators.map((e) => ({ url: e.url, modules: ['ttft'], interval: '1s' })),
      }),
    );
    prom = await startPrometheus({ targets: [new URL(daemon.url).host] });
    // Enough scrapes for rate() over the 20 s window: several samples of each target's histogram.
    const ready = await waitFor(async () => (await prom.query('count by (target) (count_over_time(vllm_probe_time_to_first_token_seconds_count{target!=""}[1m]) >= 4)')).length === 2, 60_000, 500);
    if (!ready) throw new Error(`the daemon's targets were not scraped:\n${prom.log()}`);
  }, 90_000);

  afterAll(async () => {
    await prom?.stop();
    await daemon?.stop();
    await Promise.all(emulators.map((e) => e.close()));
  });

  test('every query of the static-target row returns data', async () => {
    const dead: string[] = [];
    for (const { panel, expr } of fleetPanelQueries(defaultConfig(), 'targets')) {
      if ((await prom.query(substitute(expr))).length === 0) dead.push(`${panel}: ${expr}`);
    }
    expect(dead).toEqual([]);
  });

  test('the table has one row per target, each with the TTFT probe up', async () => {
    const [up] = fleetPanelQueries(defaultConfig(), 'targets');
    const rows = await prom.query(substitute(up!.expr));
    expect(rows.map((r) => r.metric.target).sort()).toEqual(emulators.map((e) => e.url).sort());
    for (const r of rows) expect(r.value[1]).toBe('1');
  });
});
