/**
 * The fleet dashboard (`vllm-probe dashboards` writes it next to the others): every target that
 * Prometheus probes through GET /probe, from the gauges those answers carry. Worst-N targets by
 * TTFT p95 and by error ratio over the dashboard range, a per-target table (success now, error
 * ratio, TTFT p95, E2E p95, last outcome), and the fleet over time. A last row covers the other
 * central mode, a static `targets:` list, from the probe series a daemon exports per target
 * (label `target`); it is empty without one.
 *
 * Variables: datasource, job (the fleet scrape job), instance (= target after relabelling),
 * module, and n for the worst-N panels. Every query is listed by `fleetPanelQueries` for the
 * e2e test, which evaluates each against a real Prometheus scraping /probe.
 */
import type { Dashboard } from '@grafana/schema';
import type { Config } from '../config.js';
import { dashboardFrame, labelVariable, type RowSpec } from './dashboards.js';

export const FLEET_DASHBOARD_UID = 'vllm-probe-fleet';

const S = 'job=~"$job",instance=~"$instance",module=~"$module"';
/** Static targets: series of a central daemon's own /metrics carry `target` (a sidecar's do not). */
const T = 'target=~"$target",target!=""';

/** The row for a static `targets:` list (docs/fleet.md), from the sidecar probe families. */
function staticTargetRows(config: Config): RowSpec[] {
  const { threshold } = config.slo.ttft;
  const p95 = (by: string, range: string) => `histogram_quantile(0.95, sum by (${by}le) (rate(vllm_probe_time_to_first_token_seconds_bucket{${T},probe="ttft"}[${range}])))`;
  const errorRatio = `1 - sum by (target) (increase(vllm_probe_requests_total{${T},probe="ttft",outcome="success"}[$__range])) / sum by (target) (increase(vllm_probe_requests_total{${T},probe="ttft"}[$__range]))`;
  return [
    {
      title: 'Static targets (targets: in a central daemon\'s config)',
      panels: [
        {
          title: 'Static targets',
          description: "One row per target of a central daemon's targets: list: its last probe per kind, the TTFT probe's error ratio and TTFT p95 over the range. /status?target=URL on that daemon has its checks.",
          type: 'table',
          unit: 'none',
          w: 24,
          h: 8,
          queries: [
            { expr: `min by (target) (vllm_probe_probe_success{${T}})`, legend: 'success', instant: true },
            { expr: errorRatio, legend: 'error ratio', instant: true },
            { expr: p95('target, ', '$__range'), legend: 'TTFT p95', instant: true },
          ],
          sortBy: 'Error ratio',
          columns: { 'Value #A': 'All probes up', 'Value #B': 'Error ratio', 'Value #C': 'TTFT p95 (s)', target: 'Target' },
        },
        {
          title: 'TTFT p95 by static target',
          description: `TTFT p95 of each static target's TTFT probes; the SLO threshold is ${threshold} s.`,
          type: 'timeseries',
          unit: 's',
          w: 24,
          h: 8,
          queries: [
            { expr: p95('target, ', '$__rate_interval'), legend: '{{target}}' },
            { expr: `vector(${threshold})`, legend: 'SLO' },
          ],
        },
      ],
    },
  ];
}

function fleetRows(config: Config): RowSpec[] {
  const { threshold, critical_threshold: critical } = config.slo.ttft;
  const ttftSteps = [{ value: null, color: 'green' }, { value: threshold, color: 'orange' }, { value: critical, color: 'red' }];
  const errorSteps = [{ value: null, color: 'green' }, { value: Number((1 - config.slo.availability.objective).toPrecision(6)), color: 'orange' }, { value: 0.1, color: 'red' }];
  return [
    {
      title: 'Fleet now',
      panels: [
        { title: 'Targets probed', description: 'Targets whose last /probe answered (one series of vllm_probe_success per target and module).', type: 'stat', unit: 'none', w: 6, h: 5, queries: [{ expr: `count(vllm_probe_success{${S}})`, legend: 'targets' }] },
        {
          title: 'Targets failing now',
          description: 'Targets whose last probe failed (vllm_probe_success 0). The table below says how.',
          type: 'stat',
          unit: 'none',
          w: 6,
          h: 5,
          queries: [{ expr: `count(vllm_probe_success{${S}} == 0) or vector(0)`, legend: 'failing' }],
          thresholds: [{ value: null, color: 'green' }, { value: 1, color: 'red' }],
        },
        {
          title: 'Fleet probe success (range)',
          description: 'Share of successful probes over the dashboard range, all targets together (each scrape is one probe).',
          type: 'stat',
          unit: 'percentunit',
          w: 6,
          h: 5,
          queries: [{ expr: `sum(sum_over_time(vllm_probe_success{${S}}[$__range])) / sum(count_over_time(vllm_probe_success{${S}}[$__range]))`, legend: 'success' }],
          thresholds: [{ value: null, color: 'red' }, { value: config.slo.availability.objective, color: 'green' }],
        },
        {
          title: 'Fleet TTFT p95 (range)',
          description: `The p95 of every target's probe TTFT over the range; the SLO threshold is ${threshold} s.`,
          type: 'stat',
          unit: 's',
          w: 6,
          h: 5,
          queries: [{ expr: `max(quantile_over_time(0.95, vllm_probe_ttft_seconds{${S}}[$__range]))`, legend: 'worst p95' }],
          thresholds: ttftSteps,
        },
      ],
    },
    {
      title: 'Worst targets',
      panels: [
        {
          title: 'Worst $n targets by TTFT p95',
          description: `TTFT p95 of each target's probes over the range, slowest first. Thresholds: ${threshold} s (SLO) and ${critical} s (critical).`,
          type: 'bargauge',
          unit: 's',
          w: 12,
          h: 8,
          queries: [{ expr: `topk($n, quantile_over_time(0.95, vllm_probe_ttft_seconds{${S}}[$__range]))`, legend: '{{instance}} {{module}}', instant: true }],
          thresholds: ttftSteps,
        },
        {
          title: 'Worst $n targets by error ratio',
          description: 'Share of failed probes of each target over the range, worst first (0 when every probe succeeded).',
          type: 'bargauge',
          unit: 'percentunit',
          w: 12,
          h: 8,
          queries: [{ expr: `topk($n, 1 - avg_over_time(vllm_probe_success{${S}}[$__range]))`, legend: '{{instance}} {{module}}', instant: true }],
          thresholds: errorSteps,
        },
      ],
    },
    {
      title: 'Per target',
      panels: [
        {
          title: 'Targets',
          description: 'One row per target and module: last probe, error ratio and latency percentiles over the range, and the last outcome.',
          type: 'table',
          unit: 'none',
          w: 24,
          h: 10,
          queries: [
            { expr: `max by (instance, module) (vllm_probe_success{${S}})`, legend: 'success', instant: true },
            { expr: `max by (instance, module) (1 - avg_over_time(vllm_probe_success{${S}}[$__range]))`, legend: 'error ratio', instant: true },
            { expr: `max by (instance, module) (quantile_over_time(0.95, vllm_probe_ttft_seconds{${S}}[$__range]))`, legend: 'TTFT p95', instant: true },
            { expr: `max by (instance, module) (quantile_over_time(0.95, vllm_probe_e2e_seconds{${S}}[$__range]))`, legend: 'E2E p95', instant: true },
            { expr: `max by (instance, module, outcome) (vllm_probe_outcome{${S}}) == 1`, legend: 'outcome', instant: true },
          ],
          sortBy: 'Error ratio',
          columns: { 'Value #A': 'Up', 'Value #B': 'Error ratio', 'Value #C': 'TTFT p95 (s)', 'Value #D': 'E2E p95 (s)', outcome: 'Last outcome', instance: 'Target', module: 'Module' },
        },
      ],
    },
    {
      title: 'Over time',
      panels: [
        { title: 'TTFT by target', description: 'TTFT of each probe, one line per target.', type: 'timeseries', unit: 's', w: 12, h: 8, queries: [{ expr: `vllm_probe_ttft_seconds{${S}}`, legend: '{{instance}} {{module}}' }, { expr: `vector(${threshold})`, legend: 'SLO' }] },
        { title: 'Targets by outcome', description: 'How many targets the last probe found in each outcome.', type: 'timeseries', unit: 'none', w: 12, h: 8, queries: [{ expr: `sum by (outcome) (vllm_probe_outcome{${S}}) > 0`, legend: '{{outcome}}' }] },
        { title: 'Probe duration by target', description: 'How long each /probe took (every request of the module), one line per target.', type: 'timeseries', unit: 's', w: 12, h: 8, queries: [{ expr: `vllm_probe_duration_seconds{${S}}`, legend: '{{instance}} {{module}}' }] },
        { title: 'Mean inter-token latency by target', description: 'Mean gap between streamed tokens of each probe.', type: 'timeseries', unit: 's', w: 12, h: 8, queries: [{ expr: `vllm_probe_itl_seconds{${S}}`, legend: '{{instance}} {{module}}' }] },
      ],
    },
  ];
}

/** The fleet dashboard as Grafana JSON (schemaVersion 39). */
export function renderFleetDashboard(config: Config): Dashboard {
  const spec = {
    uid: FLEET_DASHBOARD_UID,
    title: 'vLLM fleet (vllm-probe /probe)',
    description: 'Every vLLM target Prometheus probes through vllm-probe /probe: worst targets by TTFT p95 and error ratio, one row per target.',
    rows: [...fleetRows(config), ...staticTargetRows(config)],
  };
  return dashboardFrame(spec, {
    tags: ['fleet'],
    variables: [
      labelVariable('job', 'Job', 'label_values(vllm_probe_success, job)'),
      labelVariable('instance', 'Target', 'label_values(vllm_probe_success{job=~"$job"}, instance)'),
      labelVariable('module', 'Module', 'label_values(vllm_probe_success{job=~"$job"}, module)'),
      labelVariable('target', 'Static target', 'label_values(vllm_probe_probe_success, target)'),
      { name: 'n', label: 'Worst N', type: 'custom', query: '5,10,20', current: { text: '10', value: '10' }, options: [], hide: 0 },
    ],
  });
}

/**
 * Every panel query of the fleet dashboard, for the dead-panel checks: the /probe rows
 * (test/e2e/fleet.test.ts, a Prometheus scraping /probe) or the static-target row
 * (test/fleet/static-dashboard.test.ts, a Prometheus scraping a central daemon's /metrics).
 */
export function fleetPanelQueries(config: Config, part: 'probe' | 'targets' = 'probe'): Array<{ panel: string; expr: string }> {
  const rows = part === 'probe' ? fleetRows(config) : staticTargetRows(config);
  return rows.flatMap((r) => r.panels.flatMap((p) => p.queries.map((q) => ({ panel: p.title, expr: q.expr }))));
}
