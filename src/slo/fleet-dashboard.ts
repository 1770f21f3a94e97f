/**
 * The fleet dashboard (`vllm-probe dashboards` writes it next to the others): every target that
 * Prometheus probes through GET /probe, from the gauges those answers carry. Worst-N targets by
 * TTFT p95 and by error ratio over the dashboard range, a per-target table (success now, error
 * ratio, TTFT p95, E2E p95, last outcome), and the fleet over time.
 *
 * Variables: datasource, job (the fleet scrape job), instance (= target after relabelling),
 * module, and n for the worst-N panels. Every query is listed by `fleetPanelQueries` for the
 * e2e test, which evaluates each against a real Prometheus scraping /probe.
 */
// Type-only: tsc checks the generated JSON against Grafana's own dashboard schema types.
import type { Dashboard, Panel, RowPanel } from '@grafana/schema';
import type { Config } from '../config.js';

export const FLEET_DASHBOARD_UID = 'vllm-probe-fleet';

interface FleetQuery {
  expr: string;
  legend: string;
  /** Instant query (bar gauges; the per-target table also formats it as a table). */
  instant?: boolean;
}
interface FleetPanel {
  title: string;
  description: string;
  type: 'stat' | 'bargauge' | 'table' | 'timeseries';
  unit: string;
  w: number;
  h: number;
  queries: FleetQuery[];
  thresholds?: Array<{ value: number | null; color: string }>;
  /** Per-target table: column titles by query refId. */
  columns?: Record<string, string>;
}
interface FleetRow {
  title: string;
  panels: FleetPanel[];
}

const S = 'job=~"$job",instance=~"$instance",module=~"$module"';

function fleetRows(config: Config): FleetRow[] {
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
  const ds = { type: 'prometheus', uid: '${datasource}' };
  const panels: Array<Panel | RowPanel> = [];
  let id = 1;
  let y = 0;
  for (const row of fleetRows(config)) {
    panels.push({ type: 'row', id: id++, title: row.title, collapsed: false, gridPos: { h: 1, w: 24, x: 0, y }, panels: [] });
    y++;
    let x = 0;
    let rowHeight = 0;
    for (const p of row.panels) {
      if (x + p.w > 24) {
        x = 0;
        y += rowHeight;
        rowHeight = 0;
      }
      const panel: Panel = {
        type: p.type,
        id: id++,
        title: p.title,
        description: p.description,
        datasource: ds,
        gridPos: { h: p.h, w: p.w, x, y },
        fieldConfig: {
          defaults: { unit: p.unit, ...(p.thresholds ? { thresholds: { mode: 'absolute' as never, steps: p.thresholds } } : {}) },
          overrides: [],
        },
        options:
          p.type === 'timeseries'
            ? { legend: { displayMode: 'list', placement: 'bottom' }, tooltip: { mode: 'multi' } }
            : p.type === 'table'
              ? { showHeader: true, sortBy: [{ displayName: 'Error ratio', desc: true }] }
              : { reduceOptions: { calcs: ['lastNotNull'] }, ...(p.type === 'bargauge' ? { orientation: 'horizontal', displayMode: 'gradient' } : {}) },
        targets: p.queries.map((query, i) => ({
          refId: String.fromCharCode(65 + i),
          datasource: ds,
          expr: query.expr,
          legendFormat: query.legend,
          ...(query.instant ? { instant: true, range: false } : {}),
          ...(p.type === 'table' ? { format: 'table' } : {}),
        })),
      };
      if (p.columns) {
        // One row per target: the instant tables joined on their labels, columns renamed.
        panel.transformations = [
          { id: 'merge', options: {} },
          { id: 'organize', options: { excludeByName: { Time: true }, renameByName: p.columns } },
        ];
      }
      panels.push(panel);
      x += p.w;
      rowHeight = Math.max(rowHeight, p.h);
    }
    y += rowHeight;
  }
  const variable = (name: string, label: string, query: string) => ({ name, label, type: 'query' as const, datasource: ds, query: { query, refId: name }, includeAll: true, multi: true, allValue: '.*', refresh: 2 as const });
  return {
    uid: FLEET_DASHBOARD_UID,
    title: 'vLLM fleet (vllm-probe /probe)',
    description: 'Every vLLM target Prometheus probes through vllm-probe /probe: worst targets by TTFT p95 and error ratio, one row per target.',
    tags: ['vllm', 'vllm-probe', 'fleet'],
    timezone: 'utc',
    editable: true,
    schemaVersion: 39,
    version: 1,
    refresh: '30s',
    time: { from: 'now-3h', to: 'now' },
    templating: {
      list: [
        { name: 'datasource', label: 'Data source', type: 'datasource', query: 'prometheus', hide: 0 },
        variable('job', 'Job', 'label_values(vllm_probe_success, job)'),
        variable('instance', 'Target', 'label_values(vllm_probe_success{job=~"$job"}, instance)'),
        variable('module', 'Module', 'label_values(vllm_probe_success{job=~"$job"}, module)'),
        { name: 'n', label: 'Worst N', type: 'custom', query: '5,10,20', current: { text: '10', value: '10' }, options: [], hide: 0 },
      ],
    },
    panels,
  };
}

/** Every panel query of the fleet dashboard, for the e2e dead-panel check. */
export function fleetPanelQueries(config: Config): Array<{ panel: string; expr: string }> {
  return fleetRows(config).flatMap((r) => r.panels.flatMap((p) => p.queries.map((q) => ({ panel: p.title, expr: q.expr }))));
}
