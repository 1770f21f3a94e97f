import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { defaultConfig, parseConfig } from '../../src/config.js';
import { createMetrics, createProbeEndpointMetrics } from '../../src/metrics.js';
import { allPanelQueries, dashboardSpecs, renderDashboard } from '../../src/slo/dashboards.js';
import { generateRules, renderRules } from '../../src/slo/rules.js';
import { startDaemon, startEmulator, testConfig, waitFor } from '../helpers/daemon.js';
import { PROMTOOL, skipWithoutPrometheus } from '../helpers/tools.js';

describe('generated files match the checked-in defaults', () => {
  test('deploy/prometheus/rules/vllm-probe.rules.yml is exactly `vllm-probe rules`', () => {
    expect(readFileSync('deploy/prometheus/rules/vllm-probe.rules.yml', 'utf8')).toBe(renderRules(defaultConfig()));
  });
  test('grafana/dashboards/*.json are exactly `vllm-probe dashboards`', () => {
    for (const spec of dashboardSpecs(defaultConfig())) {
      expect(JSON.parse(readFileSync(`grafana/dashboards/${spec.uid}.json`, 'utf8'))).toEqual(renderDashboard(spec));
    }
  });
});

describe('rules and buckets cannot drift', () => {
  test('a custom TTFT threshold is a bucket bound and the le matcher of the SLI rules', async () => {
    const config = parseConfig({ slo: { ttft: { threshold: '750ms', critical_threshold: '3s' }, e2e: { threshold: '3s', critical_threshold: '12s' } } });
    const registry = new Registry();
    createMetrics(registry, config);
    const json = await registry.getMetricsAsJSON();
    const ttft = json.find((m) => m.name === 'vllm_probe_time_to_first_token_seconds') as unknown as { values: Array<{ labels: { le?: number } }> };
    expect(ttft).toBeDefined();
    const text = JSON.stringify(generateRules(config));
    expect(text).toContain('le=\\"0.75\\"');
    expect(text).toContain('le=~\\"3(\\\\\\\\.0)?\\"'); // whole seconds survive Prometheus 3's le="3.0"
    const bounds = ((createMetrics(new Registry(), config).timeToFirstToken as unknown as { upperBounds: number[] }).upperBounds);
    expect(bounds).toContain(0.75);
    expect(bounds).toContain(3);
  });

  test('every vllm_probe_* name used by rules and dashboards is a metric the daemon defines', () => {
    const config = defaultConfig();
    const registry = new Registry();
    createMetrics(registry, config);
    createProbeEndpointMetrics(registry); // GET /probe answers (fleet rules and dashboard)
    const defined = new Set<string>();
    for (const m of registry.getMetricsAsArray() as unknown as Array<{ name: string }>) {
      defined.add(m.name);
      for (const suffix of ['_bucket', '_sum', '_count']) defined.add(m.name + suffix);
    }
    const used = new Set<string>();
    const sources = [renderRules(config), ...allPanelQueries(config).map((p) => p.expr), ...dashboardSpecs(config).map((d) => JSON.stringify(renderDashboard(d)))];
    for (const src of sources) for (const m of src.matchAll(/vllm_probe_[a-z0-9_]+/g)) used.add(m[0]);
    const missing = [...used].filter((n) => !defined.has(n));
    expect(missing).toEqual([]);
  });

  test('every alert has severity, summary, description and a runbook_url whose anchor exists in docs/runbook.md', () => {
    const runbook = readFileSync('docs/runbook.md', 'utf8').toLowerCase();
    for (const group of generateRules(defaultConfig()).groups) {
      for (const rule of group.rules.filter((r) => r.alert)) {
        expect(rule.labels?.severity, rule.alert).toMatch(/^(page|ticket)$/);
        expect(rule.annotations?.summary, rule.alert).toBeTruthy();
        // Descriptions name the instance or value; an absent-series alert has neither.
        if (rule.alert !== 'VllmProbeAbsent') expect(rule.annotations?.description, rule.alert).toContain('{{');
        const anchor = rule.annotations!.runbook_url!.split('#')[1]!;
        expect(runbook, `runbook section for ${rule.alert}`).toContain(`## ${rule.alert!.toLowerCase()}`);
        expect(anchor).toBe(rule.alert!.toLowerCase());
      }
    }
  });
});

describe.skipIf(skipWithoutPrometheus)('with the real promtool', () => {
  test('promtool check rules accepts the generated rules', () => {
    const out = execFileSync(PROMTOOL!, ['check', 'rules', 'deploy/prometheus/rules/vllm-probe.rules.yml'], { encoding: 'utf8' });
    expect(out).toContain('SUCCESS');
  });

  test('promtool test rules: page, ticket-only, below threshold, absent probe series', () => {
    const r = spawnSync(PROMTOOL!, ['test', 'rules', 'deploy/prometheus/tests/vllm-probe.rules.test.yml'], { encoding: 'utf8' });
    expect(r.stdout + r.stderr).toContain('SUCCESS');
    expect(r.status).toBe(0);
  });

  test('promtool check rules also accepts rules generated from a non-default config', () => {
    const dir = mkdtempSync(join(tmpdir(), 'rules-'));
    const file = join(dir, 'r.yml');
    writeFileSync(file, renderRules(parseConfig({ slo: { period: '7d', ttft: { threshold: '1s', critical_threshold: '4s' } }, alerts: { selector: 'job="vllm-probe"' } })));
    const out = execFileSync(PROMTOOL!, ['check', 'rules', file], { encoding: 'utf8' });
    expect(out).toContain('SUCCESS');
  });

  describe('promtool check metrics on the daemon output', () => {
    let stop: () => Promise<void>;
    let url: string;
    beforeAll(async () => {
      const emu = await startEmulator({ coldStartMs: 0 });
      const d = await startDaemon(testConfig(emu.url, { probes: { prefix: { enabled: true, interval: '2s', timeout: '1500ms', prefix_tokens: [256] } } }));
      url = d.url;
      stop = async () => {
        await d.stop();
        await emu.close();
      };
      await waitFor(async () => (await d.metrics()).includes('vllm_probe_prefix_speedup_ratio{'), 10_000);
      await waitFor(async () => (await d.metrics()).includes('vllm_probe_engine_time_to_first_token_seconds_bucket'), 10_000);
    });
    afterAll(() => stop());
    test('zero findings', async () => {
      const body = await (await fetch(`${url}/metrics`)).text();
      const r = spawnSync(PROMTOOL!, ['check', 'metrics'], { input: body, encoding: 'utf8' });
      expect(r.stdout + r.stderr).toBe('');
      expect(r.status).toBe(0);
    });
  });
});

describe('docs/metrics.md', () => {
  test('lists every metric the daemon defines, and no metric it does not', () => {
    const doc = readFileSync('docs/metrics.md', 'utf8');
    const registry = new Registry();
    createMetrics(registry, defaultConfig());
    createProbeEndpointMetrics(registry);
    const names = (registry.getMetricsAsArray() as unknown as Array<{ name: string }>).map((m) => m.name);
    for (const n of names) expect(doc, n).toContain(`| \`${n}\` |`);
    const documented = [...doc.matchAll(/\| `(vllm_probe_[a-z0-9_]+)` \|/g)].map((m) => m[1]);
    expect(documented.filter((n) => !names.includes(n!))).toEqual([]);
  });
});
