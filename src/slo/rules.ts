/**
 * Prometheus recording and alerting rules generated from the daemon's own config, so the SLO
 * thresholds in the rules are exactly the bucket bounds the daemon exports (`vllm-probe rules`).
 *
 * Burn-rate scheme: the Google SRE workbook's multi-window, multi-burn-rate alerts for a 30-day
 * period (as Sloth and kubernetes-mixin): page on 2 % of budget in 1h (factor 14.4, 5m short
 * window) or 5 % in 6h (factor 6, 30m); ticket on 10 % in 1d (factor 3, 2h) or 10 % in 3d
 * (factor 1, 6h). Windows scale with `slo.period` when it is not 30d. SLIs are error ratios
 * over probe requests: every failed probe counts against the latency SLOs too.
 */
import { stringify } from 'yaml';
import type { Config } from '../config.js';
import { formatDuration } from '../config-runtime.js';

export interface Rule {
  record?: string;
  alert?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
export interface RuleGroup {
  name: string;
  interval?: string;
  rules: Rule[];
}

/** Burn-rate alert windows for a 30-day period; scaled for other periods. */
export const BURN_WINDOWS = [
  { severity: 'page', long: 3600, short: 300, factor: 14.4, for: '2m' },
  { severity: 'page', long: 6 * 3600, short: 1800, factor: 6, for: '15m' },
  { severity: 'ticket', long: 86400, short: 2 * 3600, factor: 3, for: '1h' },
  { severity: 'ticket', long: 3 * 86400, short: 6 * 3600, factor: 1, for: '3h' },
] as const;

/** Per target: `instance` (a sidecar, or a /probe target after relabelling) and `target` (a central daemon's static list; empty elsewhere). */
const AGG = 'instance, target, model';
/** Who an alert is about: the instance, and the target when a central daemon probes several. */
const WHO = '{{ $labels.instance }}{{ with $labels.target }} → {{ . }}{{ end }}';

/** `le` matcher that survives Prometheus 3's float normalisation of whole numbers (1 → 1.0). */
export function leMatcher(bound: number): string {
  return Number.isInteger(bound) ? `le=~"${bound}(\\\\.0)?"` : `le="${bound}"`;
}

function sel(config: Config, ...matchers: string[]): string {
  const all = [config.alerts.selector, ...matchers].filter(Boolean);
  return all.length ? `{${all.join(',')}}` : '';
}

export interface SloDefinition {
  id: string;
  objective: number;
  /** PromQL for the error ratio over a window, `[W]` replaced by the window. */
  errorRatio: (window: string) => string;
  description: string;
}

export function sloDefinitions(config: Config): SloDefinition[] {
  const requests = (w: string) => `sum by (${AGG}) (rate(vllm_probe_requests_total${sel(config, 'probe="ttft"')}[${w}]))`;
  const latency = (metric: string, threshold: number) => (w: string) =>
    `1 - (sum by (${AGG}) (rate(${metric}_bucket${sel(config, 'probe="ttft"', leMatcher(threshold))}[${w}])) / ${requests(w)})`;
  return [
    {
      id: 'vllm-probe-availability',
      objective: config.slo.availability.objective,
      errorRatio: (w) => `sum by (${AGG}) (rate(vllm_probe_requests_total${sel(config, 'probe="ttft"', 'outcome!="success"')}[${w}])) / ${requests(w)}`,
      description: 'share of TTFT probes that fail (any outcome but success)',
    },
    {
      id: 'vllm-probe-ttft',
      objective: config.slo.ttft.objective,
      errorRatio: latency('vllm_probe_time_to_first_token_seconds', config.slo.ttft.threshold),
      description: `share of TTFT probes slower than ${config.slo.ttft.threshold} s or failed`,
    },
    {
      id: 'vllm-probe-e2e',
      objective: config.slo.e2e.objective,
      errorRatio: latency('vllm_probe_request_duration_seconds', config.slo.e2e.threshold),
      description: `share of TTFT probes whose whole response took over ${config.slo.e2e.threshold} s or failed`,
    },
  ];
}

function scaledWindows(config: Config) {
  const scale = config.slo.period / (30 * 86400);
  return BURN_WINDOWS.map((w) => ({ ...w, long: formatDuration(Math.round(w.long * scale)), short: formatDuration(Math.round(w.short * scale)) }));
}

export function generateRules(config: Config): { groups: RuleGroup[] } {
  const runbook = (anchor: string) => `${config.alerts.runbook_base_url}#${anchor}`;
  const windows = scaledWindows(config);
  const windowSet = [...new Set(windows.flatMap((w) => [w.short, w.long]))];
  const period = formatDuration(config.slo.period);
  const groups: RuleGroup[] = [];

  for (const slo of sloDefinitions(config)) {
    const budget = Number((1 - slo.objective).toPrecision(6));
    const labels = { slo: slo.id };
    const rules: Rule[] = windowSet.map((w) => ({ record: `slo:sli_error:ratio_rate${w}`, expr: slo.errorRatio(w), labels }));
    rules.push(
      { record: 'slo:objective:ratio', expr: `vector(${slo.objective})`, labels },
      { record: 'slo:error_budget:ratio', expr: `vector(${budget})`, labels },
      { record: 'slo:current_burn_rate:ratio', expr: `slo:sli_error:ratio_rate${windows[0]!.short}{slo="${slo.id}"} / ${budget}`, labels },
      { record: 'slo:period_error_budget_remaining:ratio', expr: `1 - (${slo.errorRatio(period)}) / ${budget}`, labels },
    );
    const name = slo.id.replace(/^vllm-probe-/, '');
    const title = name === 'availability' ? 'Availability' : name.toUpperCase();
    for (const severity of ['page', 'ticket'] as const) {
      const pairs = windows.filter((w) => w.severity === severity);
      const expr = pairs
        .map((w) => `(slo:sli_error:ratio_rate${w.long}{slo="${slo.id}"} > (${w.factor} * ${budget}) and slo:sli_error:ratio_rate${w.short}{slo="${slo.id}"} > (${w.factor} * ${budget}))`)
        .join('\nor\n');
      const alert = `VllmProbe${title === 'Availability' ? 'Availability' : title === 'TTFT' ? 'Ttft' : 'E2e'}BudgetBurn`;
      rules.push({
        alert,
        expr,
        for: pairs[0]!.for,
        labels: { severity, slo: slo.id },
        annotations: {
          summary: `vLLM ${title} SLO is burning its error budget (${severity === 'page' ? 'fast' : 'slow'} burn)`,
          description: `${WHO} ({{ $labels.model }}): the ${slo.description} is {{ $value | humanizePercentage }} over ${pairs.map((p) => p.long).join(' / ')}, above ${pairs.map((p) => p.factor).join(' / ')}× the ${(budget * 100).toPrecision(3)} % budget of a ${(slo.objective * 100).toPrecision(4)} % objective over ${period}.`,
          runbook_url: runbook(alert.toLowerCase()),
        },
      });
    }
    groups.push({ name: `${slo.id}-slo`, rules });
  }

  const s = (...m: string[]) => sel(config, ...m);
  const health: Rule[] = [
    {
      alert: 'VllmProbeAbsent',
      expr: `absent_over_time(vllm_probe_requests_total${s('probe="ttft"')}[10m])`,
      for: '5m',
      labels: { severity: 'ticket' },
      annotations: {
        summary: 'No vllm-probe TTFT probe series: the SLOs are blind',
        description: 'vllm_probe_requests_total{probe="ttft"} has had no samples for 10 minutes. The sidecar is not running, not scraped, or its TTFT probe is disabled.',
        runbook_url: runbook('vllmprobeabsent'),
      },
    },
    {
      alert: 'VllmProbeFailing',
      // The prober's own config or a planned sleep is not an outage: those have their own state.
      expr: `max_over_time(vllm_probe_probe_success${s('probe="ttft"')}[3m]) == 0\nunless on (instance) max by (instance) (vllm_probe_state${s('state=~"misconfigured|asleep"')}) == 1`,
      for: '1m',
      labels: { severity: 'page' },
      annotations: {
        summary: 'Every vLLM TTFT probe has failed for 3 minutes',
        description: `${WHO} ({{ $labels.model }}): no TTFT probe succeeded in 3 minutes. /status says why in one line.`,
        runbook_url: runbook('vllmprobefailing'),
      },
    },
    {
      alert: 'VllmProbeMisconfigured',
      expr: `max by (instance) (vllm_probe_state${s('state="misconfigured"')}) == 1`,
      for: '5m',
      labels: { severity: 'ticket' },
      annotations: {
        summary: "vllm-probe's own config is wrong: it cannot judge vLLM",
        description: '{{ $labels.instance }}: vLLM answers the prober 401/403 or "no such model", or TLS to it fails. vLLM itself may be fine (/status stays 200, so load balancers keep the replica); fix target.api_key_env / api_key_file, target.model or target.url. /status says which.',
        runbook_url: runbook('vllmprobemisconfigured'),
      },
    },
    {
      alert: 'VllmMetricsScrapeFailing',
      expr: `vllm_probe_source_up${s('source="vllm_metrics"')} == 0`,
      for: '5m',
      labels: { severity: 'ticket' },
      annotations: {
        summary: "vllm-probe cannot read vLLM's /metrics",
        description: '{{ $labels.instance }}: the scrape of vLLM /metrics has failed for 5 minutes; engine panels are empty. See vllm_probe_source_errors_total for the reason.',
        runbook_url: runbook('vllmmetricsscrapefailing'),
      },
    },
    {
      alert: 'VllmEngineWedged',
      expr: `vllm_probe_engine_wedged${s()} == 1`,
      for: '1m',
      labels: { severity: 'page' },
      annotations: {
        summary: 'vLLM engine is wedged: /health is 200 but no tokens are produced',
        description: `${WHO} ({{ $labels.model }}): /health is 200 but the engine makes no progress, seen as {{ $labels.signature }} (no_token_after_headers: probe requests accepted, no token before their timeout; frozen_counters: token and step counters still while requests wait; queue_stuck: requests wait, none runs).`,
        runbook_url: runbook('vllmenginewedged'),
      },
    },
    {
      alert: 'VllmPrefixCacheHitRatioDrop',
      expr:
        `(sum by (${AGG}) (rate(vllm_probe_engine_prefix_cache_hits_total${s()}[15m])) / sum by (${AGG}) (rate(vllm_probe_engine_prefix_cache_queries_total${s()}[15m])))\n` +
        `< 0.5 * (sum by (${AGG}) (rate(vllm_probe_engine_prefix_cache_hits_total${s()}[1d])) / sum by (${AGG}) (rate(vllm_probe_engine_prefix_cache_queries_total${s()}[1d])))`,
      for: '15m',
      labels: { severity: 'ticket' },
      annotations: {
        summary: 'vLLM prefix-cache hit ratio fell to under half of its daily average',
        description: '{{ $labels.instance }} ({{ $labels.model }}): the 15-minute prefix-cache hit ratio is {{ $value | humanizePercentage }}, under half of the last day\'s. TTFT rises with it.',
        runbook_url: runbook('vllmprefixcachehitratiodrop'),
      },
    },
    {
      alert: 'VllmPrefixCachingIneffective',
      expr: `max_over_time(vllm_probe_prefix_speedup_ratio${s()}[15m]) < 1.1`,
      for: '15m',
      labels: { severity: 'ticket' },
      annotations: {
        summary: 'Prefix caching appears disabled: cache hits are no faster than misses',
        description: '{{ $labels.instance }} ({{ $labels.model }}, prefix {{ $labels.prefix_tokens }} tokens): the prefix probe measured a speedup of only {{ $value | printf "%.2f" }}x for 15 minutes.',
        runbook_url: runbook('vllmprefixcachingineffective'),
      },
    },
    {
      alert: 'VllmKvCacheNearFull',
      expr: `vllm_probe_engine_kv_cache_usage_ratio${s()} > ${config.status.kv_cache_usage_degraded}`,
      for: '5m',
      labels: { severity: 'ticket' },
      annotations: {
        summary: 'vLLM KV cache is nearly full',
        description: `{{ $labels.instance }} ({{ $labels.model }}): KV-cache usage is {{ $value | humanizePercentage }} (threshold ${config.status.kv_cache_usage_degraded * 100} %). Expect queueing and preemptions.`,
        runbook_url: runbook('vllmkvcachenearfull'),
      },
    },
    {
      alert: 'VllmSheddingLoad',
      // Rejections are vLLM working as configured (queue limits), so a ticket: capacity, not an outage.
      expr: `sum by (${AGG}) (rate(vllm_probe_engine_admission_rejections_total${s()}[5m])) > 0`,
      for: '10m',
      labels: { severity: 'ticket' },
      annotations: {
        summary: 'vLLM is refusing requests at admission: its queue limits are reached',
        description: '{{ $labels.instance }} ({{ $labels.model }}): {{ $value | printf "%.2f" }} requests per second answered HTTP 503 for 10 minutes because --max-num-queued-reqs / --max-num-queued-tokens was reached.',
        runbook_url: runbook('vllmsheddingload'),
      },
    },
    {
      alert: 'VllmGpuMemoryHeadroomLow',
      expr: `vllm_probe_gpu_memory_free_bytes${s()} / vllm_probe_gpu_memory_total_bytes${s()} < ${config.status.gpu_memory_headroom_degraded}`,
      for: '5m',
      labels: { severity: 'ticket' },
      annotations: {
        summary: 'GPU memory headroom is low',
        description: `{{ $labels.instance }} GPU {{ $labels.gpu }}: only {{ $value | humanizePercentage }} of memory is free (threshold ${config.status.gpu_memory_headroom_degraded * 100} %).`,
        runbook_url: runbook('vllmgpumemoryheadroomlow'),
      },
    },
    {
      alert: 'VllmGpuCollectorFailing',
      expr: `vllm_probe_source_up${s('source="nvidia_smi"')} == 0\nunless on (instance) increase(vllm_probe_source_errors_total${s('source="nvidia_smi"', 'reason="no_gpu"')}[10m]) > 0`,
      for: '10m',
      labels: { severity: 'ticket' },
      annotations: {
        summary: 'vllm-probe cannot read nvidia-smi',
        description: '{{ $labels.instance }}: nvidia-smi has failed for 10 minutes (not "no GPU"); GPU panels are empty. vllm_probe_source_errors_total{source="nvidia_smi"} has the reason.',
        runbook_url: runbook('vllmgpucollectorfailing'),
      },
    },
    {
      alert: 'VllmGpuEccUncorrectedErrors',
      // A volatile count: it only goes back to 0 when the driver reloads (a GPU reset), so the alert lasts until then.
      expr: `vllm_probe_gpu_ecc_uncorrected_volatile_errors${s()} > 0`,
      labels: { severity: 'ticket' },
      annotations: {
        summary: 'A GPU has uncorrected ECC memory errors',
        description: '{{ $labels.instance }} GPU {{ $labels.gpu }} ({{ $labels.uuid }}): {{ $value }} uncorrected ECC errors since the driver loaded. Data in GPU memory was lost; the GPU needs draining and a reset (or replacement if it recurs).',
        runbook_url: runbook('vllmgpueccuncorrectederrors'),
      },
    },
    {
      alert: 'VllmProbeConfigReloadFailed',
      expr: `vllm_probe_config_last_reload_successful${s()} == 0`,
      for: '5m',
      labels: { severity: 'ticket' },
      annotations: {
        summary: 'vllm-probe rejected its edited config and still runs the previous one',
        description: '{{ $labels.instance }}: the last config reload (SIGHUP or POST /-/reload) failed 5 minutes ago or more; the daemon keeps the config it had. The reason is in the reload answer and the log; vllm-probe check-config FILE repeats it.',
        runbook_url: runbook('vllmprobeconfigreloadfailed'),
      },
    },
  ];
  groups.push({ name: 'vllm-probe-health', rules: health });
  groups.push(fleetGroup(config, windows, runbook));
  return { groups };
}

/**
 * Rules for targets Prometheus probes through GET /probe (fleet mode). Each scrape is one
 * probe, answered as gauges, so the SLI is the share of failed scrapes (Pyrra's bool_gauge):
 * 1 - avg_over_time(vllm_probe_success[w]), kept per series, i.e. per target (the `instance`
 * that relabelling sets) and module. No selector: these names exist only in /probe answers.
 */
function fleetGroup(config: Config, windows: ReturnType<typeof scaledWindows>, runbook: (anchor: string) => string): RuleGroup {
  const id = 'vllm-probe-fleet-availability';
  const objective = config.slo.availability.objective;
  const budget = Number((1 - objective).toPrecision(6));
  const labels = { slo: id };
  const windowSet = [...new Set(windows.flatMap((w) => [w.short, w.long]))];
  const period = formatDuration(config.slo.period);
  const who = '{{ $labels.instance }}{{ with $labels.module }} (module {{ . }}){{ end }}';
  const rules: Rule[] = windowSet.map((w) => ({ record: 'slo:sli_error:ratio_rate' + w, expr: `1 - avg_over_time(vllm_probe_success[${w}])`, labels }));
  for (const severity of ['page', 'ticket'] as const) {
    const pairs = windows.filter((w) => w.severity === severity);
    rules.push({
      alert: 'VllmFleetAvailabilityBudgetBurn',
      expr: pairs
        .map((w) => `(slo:sli_error:ratio_rate${w.long}{slo="${id}"} > (${w.factor} * ${budget}) and slo:sli_error:ratio_rate${w.short}{slo="${id}"} > (${w.factor} * ${budget}))`)
        .join('\nor\n'),
      for: pairs[0]!.for,
      labels: { severity, slo: id },
      annotations: {
        summary: `A probed vLLM target is burning its availability error budget (${severity === 'page' ? 'fast' : 'slow'} burn)`,
        description: `${who}: {{ $value | humanizePercentage }} of /probe scrapes failed over ${pairs.map((p) => p.long).join(' / ')}, above ${pairs.map((p) => p.factor).join(' / ')}× the ${(budget * 100).toPrecision(3)} % budget of a ${(objective * 100).toPrecision(4)} % objective over ${period}.`,
        runbook_url: runbook('vllmfleetavailabilitybudgetburn'),
      },
    });
  }
  rules.push(
    {
      alert: 'VllmFleetTargetDown',
      expr: 'max_over_time(vllm_probe_success[3m]) == 0',
      for: '1m',
      labels: { severity: 'page' },
      annotations: {
        summary: 'Every probe of a vLLM target has failed for 3 minutes',
        description: `${who}: no /probe of this target succeeded in 3 minutes; vllm_probe_outcome says how it fails, /probe?debug=true why.`,
        runbook_url: runbook('vllmfleettargetdown'),
      },
    },
    {
      alert: 'VllmFleetTtftHigh',
      expr: `quantile_over_time(0.95, vllm_probe_ttft_seconds[15m]) > ${config.slo.ttft.critical_threshold}`,
      for: '5m',
      labels: { severity: 'page' },
      annotations: {
        summary: 'A probed vLLM target answers slowly: TTFT p95 above the critical threshold',
        description: `${who}: the TTFT p95 of its probes over 15 minutes is {{ $value | humanizeDuration }}, above the critical ${config.slo.ttft.critical_threshold} s.`,
        runbook_url: runbook('vllmfleetttfthigh'),
      },
    },
    {
      alert: 'VllmFleetTtftHigh',
      expr: `quantile_over_time(0.95, vllm_probe_ttft_seconds[15m]) > ${config.slo.ttft.threshold}`,
      for: '30m',
      labels: { severity: 'ticket' },
      annotations: {
        summary: 'A probed vLLM target answers slowly: TTFT p95 above the SLO threshold',
        description: `${who}: the TTFT p95 of its probes over 15 minutes is {{ $value | humanizeDuration }}, above the ${config.slo.ttft.threshold} s SLO threshold for 30 minutes.`,
        runbook_url: runbook('vllmfleetttfthigh'),
      },
    },
  );
  return { name: 'vllm-probe-fleet', rules };
}

/** The rules file as YAML, with a header saying where it came from. */
export function renderRules(config: Config): string {
  return `# Generated by "vllm-probe rules" from the daemon config; do not edit by hand.\n# Regenerate after changing slo/status/alerts settings so thresholds match the bucket bounds.\n${stringify(generateRules(config), { lineWidth: 0 })}`;
}

/** The same rules as a Kubernetes PrometheusRule (prometheus-operator), for deploy/kubernetes. */
export function renderPrometheusRule(config: Config, name: string): string {
  const doc = {
    apiVersion: 'monitoring.coreos.com/v1',
    kind: 'PrometheusRule',
    metadata: { name, labels: { 'app.kubernetes.io/name': 'vllm-probe', 'app.kubernetes.io/component': 'monitoring' } },
    spec: generateRules(config),
  };
  return `# Generated by "vllm-probe rules --kubernetes"; do not edit by hand.\n${stringify(doc, { lineWidth: 0 })}`;
}
