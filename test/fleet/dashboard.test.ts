import { readFileSync } from 'node:fs';
import { Registry } from 'prom-client';
import { expect, test } from 'vitest';
import { defaultConfig, parseConfig } from '../../src/config.js';
import { createProbeEndpointMetrics } from '../../src/metrics.js';
import { fleetPanelQueries, renderFleetDashboard } from '../../src/slo/fleet-dashboard.js';

test('grafana/dashboards/vllm-probe-fleet.json is exactly what `vllm-probe dashboards` writes', () => {
  expect(JSON.parse(readFileSync('grafana/dashboards/vllm-probe-fleet.json', 'utf8'))).toEqual(renderFleetDashboard(defaultConfig()));
});

test('every series the fleet dashboard reads is one GET /probe answers', () => {
  const registry = new Registry();
  createProbeEndpointMetrics(registry);
  const defined = new Set((registry.getMetricsAsArray() as unknown as Array<{ name: string }>).map((m) => m.name));
  const used = new Set(fleetPanelQueries(defaultConfig()).flatMap((q) => [...q.expr.matchAll(/vllm_probe_[a-z0-9_]+/g)].map((m) => m[0])));
  expect([...used].filter((n) => !defined.has(n))).toEqual([]);
  expect(used).toContain('vllm_probe_ttft_seconds');
});

test('the TTFT thresholds of the worst-N panel follow the config', () => {
  const dash = renderFleetDashboard(parseConfig({ slo: { ttft: { threshold: '750ms', critical_threshold: '3s' } } }));
  const worst = dash.panels!.find((p) => p.title === 'Worst $n targets by TTFT p95') as { fieldConfig: { defaults: { thresholds: { steps: Array<{ value: number | null }> } } } };
  expect(worst.fieldConfig.defaults.thresholds.steps.map((s) => s.value)).toEqual([null, 0.75, 3]);
});
