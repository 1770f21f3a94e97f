/**
 * Every exported family is somewhere an operator sees it (issue 27): on a Grafana panel, in a
 * generated rule, or listed in docs/metrics.md as deliberately on neither, with the reason.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { Registry } from 'prom-client';
import { describe, expect, test } from 'vitest';
import { defaultConfig } from '../../src/config.js';
import { createMetrics, createProbeEndpointMetrics } from '../../src/metrics.js';
import { renderRules } from '../../src/slo/rules.js';

const registry = new Registry();
createMetrics(registry, defaultConfig());
createProbeEndpointMetrics(registry);
const families = (registry.getMetricsAsArray() as unknown as Array<{ name: string; type: string }>).map((m) => ({ name: m.name, type: m.type }));

/** The family names a PromQL-bearing text reads (a histogram's _bucket/_sum/_count count for the family). */
function familiesIn(text: string): Set<string> {
  const names = new Set(families.map((f) => f.name));
  const found = new Set<string>();
  for (const m of text.matchAll(/vllm_probe_[a-z0-9_]+/g)) {
    const token = m[0];
    const base = token.replace(/_(bucket|sum|count)$/, '');
    if (names.has(token)) found.add(token);
    else if (names.has(base)) found.add(base);
  }
  return found;
}

const panelled = familiesIn(readdirSync('grafana/dashboards').map((f) => readFileSync(`grafana/dashboards/${f}`, 'utf8')).join('\n'));
const ruled = familiesIn(renderRules(defaultConfig()));

/** docs/metrics.md's "Deliberately on no panel and in no rule" table: name → reason. */
function deliberatelyUnpanelled(): Map<string, string> {
  const doc = readFileSync('docs/metrics.md', 'utf8');
  const section = doc.split(/^## /m).find((s) => s.startsWith('Deliberately on no panel and in no rule'));
  expect(section, 'docs/metrics.md has the section').toBeDefined();
  const rows = [...section!.matchAll(/^\| `(vllm_probe_[a-z0-9_]+)` \| (.*) \|$/gm)];
  return new Map(rows.map((r) => [r[1]!, r[2]!.trim()]));
}

describe('every exported family is on a panel, in a rule, or deliberately neither', () => {
  test('none is missing from all three', () => {
    const listed = deliberatelyUnpanelled();
    const orphans = families.map((f) => f.name).filter((n) => !panelled.has(n) && !ruled.has(n) && !listed.has(n));
    expect(orphans).toEqual([]);
  });

  test('the deliberate list is true: each entry is an exported family, on no panel and in no rule, with a reason', () => {
    const listed = deliberatelyUnpanelled();
    expect(listed.size).toBeGreaterThan(0);
    for (const [name, why] of listed) {
      expect(families.map((f) => f.name), name).toContain(name);
      expect(panelled.has(name) || ruled.has(name), `${name} is listed as unpanelled but is used`).toBe(false);
      expect(why.split(/\s+/).length, `${name}: say why`).toBeGreaterThanOrEqual(8);
    }
  });

  test('uncorrected ECC errors and a failed config reload each have an alert', () => {
    const rules = renderRules(defaultConfig());
    const alertOn = (family: string) => rules.split(/\n(?=\s+- alert: )/).some((block) => /- alert: /.test(block) && block.includes(family));
    expect(alertOn('vllm_probe_gpu_ecc_uncorrected_volatile_errors')).toBe(true);
    expect(alertOn('vllm_probe_config_last_reload_successful')).toBe(true);
  });
});
