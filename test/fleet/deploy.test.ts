/**
 * deploy/kubernetes/fleet and deploy/prometheus/fleet: the central prober's manifests validate
 * against the Kubernetes and prometheus-operator schemas with no unknown fields, refer to each
 * other correctly, and every target they list is one the prober's config allows (and may send
 * the module's API key to). The plain Prometheus config passes promtool and relabels the
 * blackbox way; test/e2e/fleet.test.ts runs that same relabelling against a real Prometheus.
 */
import { spawnSync } from 'node:child_process';
import { describe, expect, test } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { HostMatcher } from '../../src/host-rules.js';
import { parseYamlFile, repoPath } from '../deploy/files.js';
import { manifestErrors } from '../deploy/k8s-models.js';
import { PROMTOOL, skipWithoutPrometheus } from '../helpers/tools.js';

type Obj = Record<string, any>;
const DIR = 'deploy/kubernetes/fleet';
const load = (file: string): Obj[] => {
  const f = parseYamlFile(repoPath(file));
  expect(f.errors, file).toEqual([]);
  return f.docs as Obj[];
};
const kustomization = load(`${DIR}/kustomization.yaml`)[0]!;
const docs = (kustomization.resources as string[]).flatMap((r) => load(`${DIR}/${r}`));
const find = (kind: string) => docs.find((d) => d.kind === kind)!;
const deployment = find('Deployment');
const service = find('Service');
const probe = find('Probe');
const serviceMonitor = find('ServiceMonitor');
const configGen = (kustomization.configMapGenerator as Obj[])[0]!;
const [configKey, configFile] = (configGen.files as string[])[0]!.split('=') as [string, string];
const config = loadConfig(repoPath(DIR, configFile));

describe('deploy/kubernetes/fleet', () => {
  test('every manifest validates with no unknown fields', () => {
    expect(docs.map((d) => d.kind).sort()).toEqual(['Deployment', 'Probe', 'Service', 'ServiceMonitor']);
    for (const d of docs) expect(manifestErrors(d), `${d.kind} ${d.metadata?.name}`).toEqual([]);
  });

  test('the validator is not vacuous: a broken Probe fails', () => {
    const broken = structuredClone(probe);
    broken.spec.interval = 'often';
    broken.spec.prober.urll = broken.spec.prober.url;
    expect(manifestErrors(broken).join('\n')).toMatch(/interval/);
    expect(manifestErrors(broken).join('\n')).toMatch(/urll: unknown field/);
  });

  test('the pieces refer to each other: Service → pods, Probe and ServiceMonitor → Service, ConfigMap → volume', () => {
    const labels = deployment.spec.template.metadata.labels as Obj;
    for (const [k, v] of Object.entries(service.spec.selector as Obj)) expect(labels[k]).toBe(v);
    const container = deployment.spec.template.spec.containers[0] as Obj;
    const port = (container.ports as Obj[]).find((p) => p.name === service.spec.ports[0].targetPort)!;
    expect(port.containerPort).toBe(Number(config.listen.split(':').pop()));
    expect(probe.spec.prober.url).toBe(`${service.metadata.name}.${kustomization.namespace}.svc:${service.spec.ports[0].port}`);
    expect(probe.spec.prober.path).toBe('/probe');
    for (const [k, v] of Object.entries(serviceMonitor.spec.selector.matchLabels as Obj)) expect(service.metadata.labels[k]).toBe(v);
    const volume = (deployment.spec.template.spec.volumes as Obj[]).find((v) => v.configMap)!;
    expect(volume.configMap.name).toBe(configGen.name);
    const mount = (container.volumeMounts as Obj[]).find((m) => m.name === volume.name)!;
    expect(`${mount.mountPath}/${configKey}`).toBe('/etc/vllm-probe/config.yaml'); // the image's default --config
  });

  test('the config is a central prober: /probe on, nothing local probed, and every Probe target allowed with its key', () => {
    expect(config.probe_endpoint.allow.length).toBeGreaterThan(0);
    expect(Object.values(config.probes).every((p) => !p.enabled)).toBe(true);
    expect(config.scrape.enabled).toBe(false);
    const module = config.modules[probe.spec.module as string]!;
    expect(module).toBeDefined();
    expect(probe.spec.targets.staticConfig.labels.module).toBe(probe.spec.module);
    const allow = HostMatcher.of(config.probe_endpoint.allow);
    const keyHosts = HostMatcher.of(module.api_key_hosts);
    for (const t of probe.spec.targets.staticConfig.static as string[]) {
      expect(allow.allows(new URL(t)), t).toBe(true);
      expect(keyHosts.allows(new URL(t)), t).toBe(true);
    }
    // The key comes from the Secret the sidecar deployment uses too.
    const env = (deployment.spec.template.spec.containers[0].env as Obj[]).find((e) => e.name === module.api_key_env)!;
    expect(env.valueFrom.secretKeyRef).toEqual({ name: 'vllm', key: 'api-key' });
  });
});

describe('deploy/prometheus/fleet/prometheus.yml', () => {
  const prom = load('deploy/prometheus/fleet/prometheus.yml')[0]!;
  const job = (prom.scrape_configs as Obj[]).find((j) => j.metrics_path === '/probe')!;

  test('relabels the blackbox way: ?target=, instance = target, module kept, scrape sent to the prober', () => {
    expect(job.relabel_configs).toEqual([
      { source_labels: ['__address__'], target_label: '__param_target' },
      { source_labels: ['__param_target'], target_label: 'instance' },
      { source_labels: ['__param_module'], target_label: 'module' },
      { target_label: '__address__', replacement: `${service.metadata.name}.${kustomization.namespace}.svc:${service.spec.ports[0].port}` },
    ]);
    expect(config.modules[job.params.module[0]]).toBeDefined();
    for (const t of job.static_configs[0].targets as string[]) expect(HostMatcher.of(config.probe_endpoint.allow).allows(new URL(t)), t).toBe(true);
  });

  test.skipIf(skipWithoutPrometheus)('promtool check config accepts it (and its rule file)', () => {
    const r = spawnSync(PROMTOOL!, ['check', 'config', repoPath('deploy/prometheus/fleet/prometheus.yml')], { encoding: 'utf8' });
    expect(r.stdout + r.stderr).toContain('is valid prometheus config file syntax');
    expect(r.status).toBe(0);
  });

  test.skipIf(skipWithoutPrometheus)('promtool test rules: the generated rules fire per target', () => {
    const r = spawnSync(PROMTOOL!, ['test', 'rules', repoPath('deploy/prometheus/tests/vllm-probe-fleet.rules.test.yml')], { encoding: 'utf8' });
    expect(r.stdout + r.stderr).toContain('SUCCESS');
    expect(r.status).toBe(0);
  });
});
