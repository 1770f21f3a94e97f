/**
 * deploy/helm/vllm-probe: `helm lint`, and `helm template` in both modes with every rendered
 * manifest validated against the Kubernetes and prometheus-operator schemas (test/deploy/k8s-models.ts,
 * unknown fields rejected). The rendered config is one the daemon accepts, the sidecar patch
 * yields a valid Deployment, and the rules and dashboards are the generators' own.
 *
 * helm is built from the Go module proxy by scripts/install-helm (cached in .cache/); CI sets
 * REQUIRE_HELM=1 so a missing helm fails instead of skipping.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';
import { parseConfig } from '../../src/config.js';
import { generateRules } from '../../src/slo/rules.js';
import { manifestErrors } from './k8s-models.js';
import { repoPath } from './files.js';

const CHART = repoPath('deploy/helm/vllm-probe');

function findHelm(): string | undefined {
  if (process.env.HELM) return process.env.HELM;
  const cache = repoPath('.cache');
  const cached = existsSync(cache) ? readdirSync(cache).filter((d) => d.startsWith('helm-')).map((d) => join(cache, d, 'helm')).find((p) => existsSync(p)) : undefined;
  if (cached) return cached;
  try {
    return execFileSync('sh', ['-c', 'command -v helm'], { encoding: 'utf8' }).trim() || undefined;
  } catch {
    return undefined;
  }
}
const HELM = findHelm();
const skip = !HELM && process.env.REQUIRE_HELM !== '1';
if (skip) process.stderr.write('note: helm not found; run scripts/install-helm to test the chart\n');

type Obj = Record<string, any>;

function helm(args: string[]) {
  return spawnSync(HELM ?? 'helm', args, { encoding: 'utf8', env: { ...process.env, HELM_CACHE_HOME: '/tmp/helm-cache', HELM_CONFIG_HOME: '/tmp/helm-config', HELM_DATA_HOME: '/tmp/helm-data' } });
}
function render(...set: string[]): Obj[] {
  const r = helm(['template', 'vp', CHART, '--namespace', 'monitoring', ...set.flatMap((s) => ['--set', s])]);
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
  return parseAllDocuments(r.stdout).map((d) => d.toJS() as Obj).filter(Boolean);
}
const find = (docs: Obj[], kind: string, name?: string) => {
  const found = docs.filter((d) => d.kind === kind && (name === undefined || d.metadata.name === name));
  expect(found, `${kind} ${name ?? ''}`).toHaveLength(1);
  return found[0]!;
};
const FLEET = ['mode=fleet', 'fleet.targets={http://vllm-0.vllm.vllm.svc.cluster.local:8000,http://vllm-1.vllm.vllm.svc.cluster.local:8000}', 'fleet.probeModules={ttft,models}'];

describe.skipIf(skip)('the Helm chart', { timeout: 60_000 }, () => {
  test('helm lint --strict passes in both modes', () => {
    for (const set of [[], FLEET]) {
      const r = helm(['lint', '--strict', CHART, ...set.flatMap((s) => ['--set', s])]);
      expect(r.stdout + r.stderr, set.join(' ')).toContain('1 chart(s) linted, 0 chart(s) failed');
      expect(r.status).toBe(0);
    }
  });

  test('every rendered manifest validates against the Kubernetes and prometheus-operator schemas', () => {
    for (const docs of [render(), render(...FLEET), render('sidecar.apiKeySecret.name=vllm', 'monitor.labels.release=kube-prometheus-stack')]) {
      expect(docs.length).toBeGreaterThan(4);
      for (const doc of docs) expect(manifestErrors(doc), `${doc.kind} ${doc.metadata?.name}`).toEqual([]);
    }
  });

  test('sidecar mode: the config, and a patch that makes the vLLM Deployment valid and scrapeable', () => {
    const docs = render('sidecar.apiKeySecret.name=vllm');
    const config = parseConfig(parse(find(docs, 'ConfigMap', 'vp-vllm-probe-config').data['config.yaml']), 'config.yaml');
    expect(config.listen).toBe('0.0.0.0:9470');
    expect(config.target.url).toBe('http://127.0.0.1:8000');
    expect(config.target.api_key_env).toBe('VLLM_API_KEY');

    // The patch, merged as a strategic merge patch would into the kustomize example's vLLM pod.
    const patch = parse(find(docs, 'ConfigMap', 'vp-vllm-probe-sidecar-patch').data['patch.yaml']) as Obj;
    const base = parse(readFileSync(repoPath('deploy/kubernetes/deployment.yaml'), 'utf8')) as Obj;
    const pod = base.spec.template.spec;
    pod.containers = pod.containers.filter((c: Obj) => c.name !== 'vllm-probe');
    pod.volumes = pod.volumes.filter((v: Obj) => !v.name.startsWith('vllm-probe') && v.name !== 'tmp');
    const added = patch.spec.template.spec;
    pod.shareProcessNamespace = added.shareProcessNamespace;
    pod.containers.push(...added.containers);
    pod.volumes.push(...added.volumes);
    expect(manifestErrors(base)).toEqual([]);
    const sidecar = added.containers[0];
    expect(sidecar.env).toContainEqual({ name: 'VLLM_API_KEY', valueFrom: { secretKeyRef: { name: 'vllm', key: 'api-key' } } });
    expect(added.volumes.find((v: Obj) => v.name === 'vllm-probe-config').configMap.name).toBe('vp-vllm-probe-config');

    // The PodMonitor and the Service find the sidecar's port on the vLLM pods.
    const monitor = find(docs, 'PodMonitor');
    expect(monitor.spec.selector.matchLabels).toEqual({ 'app.kubernetes.io/name': 'vllm' });
    expect(base.spec.template.metadata.labels['app.kubernetes.io/name']).toBe('vllm');
    expect(monitor.spec.podMetricsEndpoints[0].port).toBe(sidecar.ports[0].name);
    const service = find(docs, 'Service');
    expect(service.spec.ports[0].targetPort).toBe(sidecar.ports[0].name);
    expect(Object.entries(service.spec.selector).every(([k, v]) => base.spec.template.metadata.labels[k] === v)).toBe(true);
  });

  test('fleet mode: a Deployment of probers, its Service and ServiceMonitor, and a Probe per module aimed at them', () => {
    const docs = render(...FLEET);
    const deployment = find(docs, 'Deployment');
    const config = parseConfig(parse(find(docs, 'ConfigMap', 'vp-vllm-probe-config').data['config.yaml']), 'config.yaml');
    expect(config.probe_endpoint.allow.length).toBeGreaterThan(0);
    const service = find(docs, 'Service');
    expect(Object.entries(service.spec.selector).every(([k, v]) => deployment.spec.template.metadata.labels[k] === v)).toBe(true);
    expect(Object.entries(find(docs, 'ServiceMonitor').spec.selector.matchLabels).every(([k, v]) => service.metadata.labels[k] === v)).toBe(true);
    const probes = docs.filter((d) => d.kind === 'Probe');
    expect(probes.map((p) => p.spec.module).sort()).toEqual(['models', 'ttft']);
    for (const p of probes) {
      expect(Object.keys(config.modules)).toContain(p.spec.module);
      expect(p.spec.prober.url).toBe(`${service.metadata.name}.monitoring.svc:${service.spec.ports[0].port}`);
    }
  });

  test('the PrometheusRule is the generator\'s rules with the runbook URL of the values; dashboards and rules are the checked-in ones', () => {
    const url = 'https://wiki.example.com/sre/vllm-probe-runbook.md';
    const rule = find(render(`prometheusRule.runbookBaseUrl=${url}`), 'PrometheusRule');
    expect(rule.spec).toEqual(JSON.parse(JSON.stringify(generateRules(parseConfig({ alerts: { runbook_base_url: url } })))));
    expect(readFileSync(join(CHART, 'files/vllm-probe.rules.yml'), 'utf8')).toBe(readFileSync(repoPath('deploy/prometheus/rules/vllm-probe.rules.yml'), 'utf8'));
    const dashboards = render().filter((d) => d.kind === 'ConfigMap' && d.metadata.labels.grafana_dashboard === '1');
    const checkedIn = readdirSync(repoPath('grafana/dashboards')).sort();
    expect(dashboards.flatMap((d) => Object.keys(d.data)).sort()).toEqual(checkedIn);
    for (const d of dashboards) for (const [file, json] of Object.entries(d.data)) expect(json, file).toBe(readFileSync(repoPath('grafana/dashboards', file), 'utf8').trimEnd());
  });

  test('values.schema.json refuses a bad mode, a listen override and an unknown key', () => {
    for (const [set, words] of [
      ['mode=bogus', 'mode'],
      ['sidecar.config.listen=0.0.0.0:1', 'listen'],
      ['sidecar.replicas=3', 'replicas'],
      ['prometheusRule.runbookBaseUrl=wiki', 'runbookBaseUrl'],
    ] as const) {
      const r = helm(['template', 'vp', CHART, '--set', set]);
      expect(r.status, set).not.toBe(0);
      expect(r.stderr, set).toContain(words);
    }
  });
});
