/**
 * What an on-call engineer sees on the dashboards: the verdict tile says a word in a colour,
 * the KV panel draws the 0.95 line, E2E has its SLO line, ratios and speedups are on separate
 * axes, and every unit is one Grafana knows. The JSON is checked against @grafana/schema by tsc
 * (src/slo/dashboards.ts) and each query against a real Prometheus in test/integration.
 */
import { describe, expect, test } from 'vitest';
import type { Panel } from '@grafana/schema';
import { defaultConfig, parseConfig } from '../../src/config.js';
import { dashboardSpecs, renderDashboard, VERDICT_VALUES } from '../../src/slo/dashboards.js';

const panels = (config = defaultConfig()) => dashboardSpecs(config).flatMap((d) => (renderDashboard(d).panels ?? []) as Panel[]);
const panel = (title: string, config = defaultConfig()) => {
  const p = panels(config).find((x) => x.title === title);
  if (!p) throw new Error(`no panel "${title}"`);
  return p;
};

describe('dashboards say something', () => {
  test('the /status verdict tile maps each state to a word and a colour', () => {
    const p = panel('/status verdict');
    const mapping = p.fieldConfig?.defaults.mappings?.[0] as { type: string; options: Record<string, { text: string; color: string }> };
    expect(mapping.type).toBe('value');
    expect(Object.fromEntries(Object.entries(mapping.options).map(([v, r]) => [v, `${r.text}/${r.color}`]))).toEqual({ '0': 'healthy/green', '1': 'unknown/text', '2': 'degraded/orange', '3': 'unhealthy/red' });
    expect((p.options as { colorMode?: string }).colorMode).toBe('background');
    // The query yields those numbers: one series per instance, the state's value.
    const expr = p.targets?.[0] as { expr: string };
    for (const v of VERDICT_VALUES) expect(expr.expr).toContain(`status="${v.text}"} == 1) * ${v.value}`);
    expect(expr.expr).toMatch(/^max by \(instance\)/);
  });

  test('a panel on a family older vLLM lacks says so in Grafana instead of "No data"', () => {
    expect(panel('Admission rejections (load shed)').fieldConfig!.defaults.noValue).toMatch(/^not exported by this vLLM \(0\.32 has it, 0\.26 does not\)$/);
    expect(panel('KV-cache usage').fieldConfig!.defaults.noValue).toBeUndefined();
  });

  test('KV-cache usage draws the 0.95 line (status.kv_cache_usage_degraded) on a 0-1 axis', () => {
    const d = panel('KV-cache usage').fieldConfig!.defaults;
    expect(d.thresholds?.steps).toContainEqual({ value: 0.95, color: 'red' });
    expect(panel('KV-cache usage', parseConfig({ status: { kv_cache_usage_degraded: 0.9 } })).fieldConfig!.defaults.thresholds?.steps).toContainEqual({ value: 0.9, color: 'red' });
    expect(d.custom).toEqual({ thresholdsStyle: { mode: 'line' } });
    expect([d.min, d.max, d.unit]).toEqual([0, 1, 'percentunit']);
  });

  test('E2E and TTFT panels draw the configured SLO as a dashed red series', () => {
    const config = parseConfig({ slo: { e2e: { threshold: '3s', critical_threshold: '12s' } } });
    for (const [title, value] of [['End-to-end probe duration', 3], ['Client-side TTFT against the SLO', 0.5]] as const) {
      const p = panel(title, config);
      expect(p.targets?.map((t) => (t as { expr: string }).expr)).toContain(`vector(${value})`);
      expect(p.fieldConfig?.overrides[0]?.matcher).toEqual({ id: 'byName', options: 'SLO' });
      expect(p.fieldConfig?.overrides[0]?.properties.map((x) => x.id)).toEqual(['color', 'custom.lineStyle']);
    }
  });

  test('speedup (×) and saved fractions (0-1) are separate panels', () => {
    const speed = panel('Prefix speedup');
    expect(speed.fieldConfig?.defaults.unit).toBe('suffix:×');
    expect(speed.targets?.map((t) => (t as { expr: string }).expr).join(' ')).not.toContain('fraction');
    const frac = panel('Prefix saved fraction: measured vs predicted');
    expect([frac.fieldConfig?.defaults.unit, frac.fieldConfig?.defaults.min, frac.fieldConfig?.defaults.max]).toEqual(['percentunit', 0, 1]);
    expect(frac.targets?.map((t) => (t as { expr: string }).expr).join(' ')).not.toContain('speedup');
  });

  test('client p95 counts only the TTFT probe; token throughput is in tok/s', () => {
    const client = panel('Server-side vs client-side TTFT (p95)').targets?.find((t) => (t as { legendFormat?: string }).legendFormat === 'client p95') as { expr: string };
    expect(client.expr).toContain('probe="ttft"');
    expect(panel('Token throughput').fieldConfig?.defaults.unit).toBe('suffix: tok/s');
  });

  test('every unit is a Grafana unit id or a custom suffix', () => {
    const known = new Set(['s', 'none', 'short', 'bool', 'bool_yes_no', 'percentunit', 'reqps', 'ops', 'bytes', 'watt', 'celsius', 'hertz', 'dateTimeFromNow']);
    for (const p of panels()) {
      if (p.type === 'row') continue;
      const unit = p.fieldConfig?.defaults.unit ?? '';
      expect(known.has(unit) || unit.startsWith('suffix:'), `${p.title}: ${unit}`).toBe(true);
    }
  });
});
