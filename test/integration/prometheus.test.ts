/**
 * End to end with a real Prometheus: it scrapes the daemon (running against the emulator and
 * the fake nvidia-smi), loads the generated rules, and every dashboard panel query — variables
 * substituted as Grafana would — must return at least one series. A dead panel is a bug.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { defaultConfig } from '../../src/config.js';
import { allPanelQueries, dashboardSpecs, renderDashboard, VERDICT_VALUES } from '../../src/slo/dashboards.js';
import { startDashboardRig, substitute } from '../helpers/dashboard-rig.js';
import type { RunningDaemon } from '../helpers/daemon.js';
import type { RunningPrometheus } from '../helpers/prometheus.js';
import { skipWithoutPrometheus } from '../helpers/tools.js';

describe.skipIf(skipWithoutPrometheus)('dashboards and rules against a real Prometheus', { timeout: 120_000 }, () => {
  let rig: Awaited<ReturnType<typeof startDashboardRig>>;
  let daemon: RunningDaemon;
  let prom: RunningPrometheus;

  beforeAll(async () => {
    rig = await startDashboardRig();
    ({ daemon, prom } = rig);
  }, 90_000);

  afterAll(() => rig?.stop());

  test('every panel query of every dashboard returns data', async () => {
    const dead: string[] = [];
    for (const { dashboard, panel, expr } of allPanelQueries(defaultConfig())) {
      const result = await prom.query(substitute(expr));
      if (result.length === 0) dead.push(`${dashboard} / ${panel}: ${expr}`);
    }
    expect(dead).toEqual([]);
  });

  test('the verdict tile shows the word /status says, through its value mapping', async () => {
    const spec = dashboardSpecs(defaultConfig()).find((d) => d.uid === 'vllm-probe-overview')!;
    const tile = spec.rows.flatMap((r) => r.panels).find((p) => p.title === '/status verdict')!;
    const [series] = await prom.query(substitute(tile.queries[0]!.expr));
    const shown = VERDICT_VALUES.find((v) => v.value === Number(series!.value[1]))?.text;
    const status = (await daemon.status()).body.status;
    // The tile lags /status by at most a scrape; both must be one of the mapped words.
    expect(tile.mappings?.map((m) => m.text)).toContain(shown);
    expect(['healthy', 'degraded']).toContain(shown);
    expect(['healthy', 'degraded']).toContain(status);
  });

  test('the restart annotation and the template variables return data', async () => {
    for (const spec of dashboardSpecs(defaultConfig())) {
      for (const a of renderDashboard(spec).annotations?.list ?? []) {
        const expr = String((a.target as { expr?: unknown } | undefined)?.expr);
        expect(await prom.query(substitute(expr.replace('[2m]', '[10m]'))), expr).not.toEqual([]);
      }
    }
    const instances = (await (await fetch(`${prom.url}/api/v1/label/instance/values?match[]=vllm_probe_build_info`)).json()) as { data: string[] };
    expect(instances.data).toEqual([new URL(daemon.url).host]);
    const models = (await (await fetch(`${prom.url}/api/v1/label/model/values?match[]=vllm_probe_requests_total`)).json()) as { data: string[] };
    expect(models.data).toEqual(['dash-model']);
  });

  test('the recording rules produce the SLIs from live data', async () => {
    const avail = await prom.query('slo:sli_error:ratio_rate5m{slo="vllm-probe-availability"}');
    expect(avail).toHaveLength(1);
    expect(Number(avail[0]!.value[1])).toBe(0); // every probe against the emulator succeeds
    const budget = await prom.query('slo:period_error_budget_remaining:ratio{slo="vllm-probe-availability"}');
    expect(Number(budget[0]!.value[1])).toBe(1);
    const firing = await prom.query('ALERTS{alertstate="firing"}');
    expect(firing.map((a) => a.metric.alertname)).toEqual([]);
  });
});
