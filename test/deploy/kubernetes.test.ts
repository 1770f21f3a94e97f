/**
 * deploy/kubernetes: every manifest validates against the Kubernetes (and prometheus-operator)
 * schemas with no unknown fields, deliberately broken copies fail, and the pieces refer to each
 * other correctly (selectors, ports, ConfigMap, Secret, image, probes). The PrometheusRule is
 * the generator's output and the ConfigMap's config is the one it was generated from.
 * No cluster and no kustomize binary here: what kustomize adds (namespace, the generated
 * ConfigMap, the image rewrite) is checked from kustomization.yaml itself.
 */
import { readdirSync } from 'node:fs';
import { basename, dirname } from 'node:path';
import { describe, expect, test } from 'vitest';
import { parse } from 'yaml';
import { defaultConfig, loadConfig, parseConfig, RUNBOOK_PLACEHOLDER } from '../../src/config.js';
import { generateRules, renderPrometheusRule } from '../../src/slo/rules.js';
import { dockerStages, execForm, flagValue, parseDockerfile, parseYamlFile, readRepo, repoPath } from './files.js';
import { DNS_LABEL, DNS_SUBDOMAIN, manifestErrors, parseQuantity, schemaErrors, unknownFields } from './k8s-models.js';

const DIR = 'deploy/kubernetes';
type Obj = Record<string, any>;

const load = (name: string): Obj[] => {
  const f = parseYamlFile(repoPath(DIR, name));
  expect(f.errors, name).toEqual([]);
  return f.docs as Obj[];
};
const kustomization = load('kustomization.yaml')[0]!;
const resources = (kustomization.resources as string[]).flatMap((r) => load(r).map((doc) => ({ file: r, doc })));
const find = (kind: string, name: string, docs = resources.map((r) => r.doc)) => {
  const doc = docs.find((d) => d.kind === kind && d.metadata?.name === name);
  if (!doc) throw new Error(`no ${kind} ${name}`);
  return doc;
};
const deployment = find('Deployment', 'vllm');
const pod = deployment.spec.template.spec as Obj;
const container = (name: string) => (pod.containers as Obj[]).find((c) => c.name === name)!;
const sidecar = container('vllm-probe');
const vllm = container('vllm');
const configGen = (kustomization.configMapGenerator as Obj[])[0]!;
const configFile = (configGen.files as string[])[0]!.split('=')[1]!;
const sidecarConfig = loadConfig(repoPath(DIR, configFile));
/** The ConfigMap kustomize generates from configMapGenerator (before the hash suffix). */
const generatedConfigMap = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: configGen.name, namespace: kustomization.namespace }, data: { [(configGen.files as string[])[0]!.split('=')[0]!]: readRepo(DIR, configFile) } };
const optional = ['secret.example.yaml', 'status-probe.yaml'].map((file) => ({ file, docs: load(file) }));

describe('the validator is not vacuous', () => {
  test('a deliberately broken Deployment fails the schema check', () => {
    const broken = structuredClone(deployment);
    broken.spec.template.spec.containers[1].ports[0].containerPort = 'metrics';
    expect(schemaErrors(deployment)).toEqual([]);
    expect(schemaErrors(broken).join('\n')).toMatch(/containerPort must be integer/);
    const noSelector = structuredClone(deployment);
    delete noSelector.spec.selector;
    expect(schemaErrors(noSelector).join('\n')).toMatch(/selector/);
  });

  test('a misspelt field fails the unknown-field check', () => {
    const broken = structuredClone(deployment);
    broken.spec.template.spec.containers[1].readinesProbe = broken.spec.template.spec.containers[1].readinessProbe;
    broken.spec.template.spec.shareProcessNamespaces = true;
    expect(unknownFields(deployment)).toEqual([]);
    expect(unknownFields(broken).sort()).toEqual(['Deployment.spec.template.spec.containers[1].readinesProbe: unknown field', 'Deployment.spec.template.spec.shareProcessNamespaces: unknown field']);
    // Free-form maps (labels, resources) are not flagged.
    broken.metadata.labels['any-label'] = 'x';
    expect(unknownFields(broken)).toHaveLength(2);
  });

  test('broken prometheus-operator objects fail too', () => {
    const sm = structuredClone(find('ServiceMonitor', 'vllm-probe'));
    sm.spec.endpoints[0].interval = 'fifteen seconds';
    expect(schemaErrors(sm).join('\n')).toMatch(/interval must match pattern/);
    const rule = structuredClone(find('PrometheusRule', 'vllm-probe'));
    delete rule.spec.groups[0].name;
    expect(schemaErrors(rule).join('\n')).toMatch(/name/);
    rule.spec.groups[0].name = 'x';
    rule.spec.groups[0].rules[0].recrod = 'typo';
    expect(unknownFields(rule)).toEqual(['PrometheusRule.spec.groups[0].rules[0].recrod: unknown field']);
  });

  test('an unsupported kind is an error, not a pass', () => {
    expect(manifestErrors({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'x' } })).toEqual(['no schema for v1/Pod']);
  });
});

describe('manifests', () => {
  test('the kustomization lists every manifest except the two optional ones', () => {
    const manifests = readdirSync(repoPath(DIR)).filter((f) => /\.ya?ml$/.test(f) && f !== 'kustomization.yaml' && f !== configFile);
    expect([...(kustomization.resources as string[])].sort()).toEqual(manifests.filter((f) => !optional.some((o) => o.file === f)).sort());
    expect(kustomization.apiVersion).toBe('kustomize.config.k8s.io/v1beta1');
    expect(kustomization.kind).toBe('Kustomization');
    expect(kustomization.namespace).toMatch(DNS_LABEL);
  });

  const all = [...resources.map((r) => ({ file: r.file, doc: r.doc })), ...optional.flatMap((o) => o.docs.map((doc) => ({ file: o.file, doc: doc as Obj }))), { file: 'configMapGenerator', doc: generatedConfigMap as Obj }];
  test.each(all.map((m) => [`${m.file}: ${m.doc.kind} ${m.doc.metadata?.name}`, m.doc] as const))('%s validates (schema, no unknown fields)', (_, doc) => {
    expect(manifestErrors(doc)).toEqual([]);
    expect(doc.metadata.name).toMatch(DNS_SUBDOMAIN);
    // The kustomization sets the namespace; a hard-coded one would fight it.
    if (doc !== generatedConfigMap) expect(doc.metadata.namespace).toBeUndefined();
  });

  test('Services select the Deployment\'s pods and name container ports that exist', () => {
    const podLabels = deployment.spec.template.metadata.labels as Record<string, string>;
    expect(Object.keys(deployment.spec.selector.matchLabels as object).length).toBeGreaterThan(0);
    for (const [k, v] of Object.entries(deployment.spec.selector.matchLabels as Record<string, string>)) expect(podLabels[k]).toBe(v);
    const containerPorts = new Map((pod.containers as Obj[]).flatMap((c) => (c.ports as Obj[]).map((p) => [p.name as string, p.containerPort as number] as const)));
    for (const svc of resources.filter((r) => r.doc.kind === 'Service').map((r) => r.doc)) {
      for (const [k, v] of Object.entries(svc.spec.selector as Record<string, string>)) expect(podLabels[k], svc.metadata.name).toBe(v);
      for (const p of svc.spec.ports as Obj[]) expect(containerPorts.has(p.targetPort), `${svc.metadata.name} targetPort ${p.targetPort}`).toBe(true);
    }
    const metrics = find('Service', 'vllm-probe');
    expect(metrics.spec.ports).toEqual([expect.objectContaining({ name: 'metrics', port: 9470, targetPort: 'metrics' })]);
  });

  test('the ServiceMonitor selects the metrics Service by label and port name', () => {
    const sm = find('ServiceMonitor', 'vllm-probe');
    const services = resources.filter((r) => r.doc.kind === 'Service').map((r) => r.doc);
    const selected = services.filter((s) => Object.entries(sm.spec.selector.matchLabels as Record<string, string>).every(([k, v]) => s.metadata.labels?.[k] === v));
    expect(selected.map((s) => s.metadata.name)).toEqual(['vllm-probe']);
    for (const ep of sm.spec.endpoints as Obj[]) {
      expect((selected[0]!.spec.ports as Obj[]).map((p) => p.name)).toContain(ep.port);
      expect(ep.path).toBe('/metrics');
    }
  });
});

describe('the vllm-probe sidecar', () => {
  const portNamed = (name: string) => (sidecar.ports as Obj[]).find((p) => p.name === name)?.containerPort as number;

  test('listens where the config says, with liveness on /healthz and readiness on /readyz', () => {
    expect(Number(sidecarConfig.listen.split(':').pop())).toBe(portNamed('metrics'));
    expect(sidecar.livenessProbe.httpGet).toEqual({ path: '/healthz', port: 'metrics' });
    expect(sidecar.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'metrics' });
    // /status is for external checks only (status-probe.yaml).
    expect(JSON.stringify([sidecar.livenessProbe, sidecar.readinessProbe, sidecar.startupProbe ?? null])).not.toContain('/status');
  });

  test('targets vLLM in the same pod, with the served model name and the API key from the Secret', () => {
    const vllmPort = (vllm.ports as Obj[]).find((p) => p.name === 'http')!.containerPort as number;
    expect(sidecarConfig.target.url).toBe(`http://127.0.0.1:${vllmPort}`);
    expect(flagValue(vllm.args as string[], '--port')).toBe(String(vllmPort));
    expect(sidecarConfig.target.model).toBe(flagValue(vllm.args as string[], '--served-model-name'));
    expect(sidecarConfig.target.api_key_env).toBe('VLLM_API_KEY');
    const keyRef = (c: Obj) => (c.env as Obj[]).find((e) => e.name === 'VLLM_API_KEY')?.valueFrom?.secretKeyRef;
    expect(keyRef(sidecar)).toEqual(keyRef(vllm));
    expect(keyRef(sidecar).optional).toBeUndefined(); // a missing Secret must stop the pod, not run vLLM without a key
    const secret = find('Secret', keyRef(sidecar).name, optional.find((o) => o.file === 'secret.example.yaml')!.docs as Obj[]);
    expect(Object.keys(secret.stringData)).toContain(keyRef(sidecar).key);
  });

  test('mounts the generated ConfigMap where the image reads its config', () => {
    const dockerfile = parseDockerfile(readRepo('Dockerfile'));
    const final = dockerStages(dockerfile).at(-1)!;
    const cmd = execForm(final.instructions.find((i) => i.keyword === 'CMD')!.args);
    const configPath = flagValue(cmd, '--config')!;
    expect(sidecar.command).toBeUndefined();
    expect(sidecar.args).toBeUndefined();
    const mount = (sidecar.volumeMounts as Obj[]).find((m) => m.mountPath === dirname(configPath))!;
    expect(mount).toBeDefined();
    // A directory mount: ConfigMap updates reach the file (a subPath mount never updates).
    expect(mount.subPath).toBeUndefined();
    const volume = (pod.volumes as Obj[]).find((v) => v.name === mount.name)!;
    expect(volume.configMap.name).toBe(configGen.name);
    expect(Object.keys(generatedConfigMap.data)).toEqual([basename(configPath)]);
  });

  test('is locked down: non-root, read-only root, no capabilities, no privilege escalation', () => {
    expect(sidecar.securityContext).toEqual(
      expect.objectContaining({ runAsNonRoot: true, readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } }),
    );
    expect(sidecar.securityContext.runAsUser).toBeGreaterThan(0);
    expect(pod.shareProcessNamespace).toBe(true);
    expect(readRepo(DIR, 'deployment.yaml')).toMatch(/shareProcessNamespace: true/);
  });

  test('resources: requests within limits, sized from the footprint measurement', () => {
    for (const r of ['cpu', 'memory']) {
      expect(parseQuantity(sidecar.resources.requests[r])).toBeLessThanOrEqual(parseQuantity(sidecar.resources.limits[r]));
      expect(parseQuantity(sidecar.resources.requests[r])).toBeGreaterThan(0);
    }
    // No GPU is reserved for the sidecar: it only reads nvidia-smi.
    expect(JSON.stringify(sidecar.resources)).not.toContain('nvidia.com/gpu');
    expect(readRepo(DIR, 'deployment.yaml')).toMatch(/docs\/benchmarks\.md, "Daemon footprint"/);
    expect(sidecar.env).toEqual(expect.arrayContaining([{ name: 'NVIDIA_DRIVER_CAPABILITIES', value: 'utility' }, { name: 'NVIDIA_VISIBLE_DEVICES', value: 'all' }]));
  });

  test('the image is rewritten by the kustomization', () => {
    const images = kustomization.images as Obj[];
    expect(images.map((i) => i.name)).toContain(sidecar.image);
    const pkg = JSON.parse(readRepo('package.json')) as { version: string };
    expect(images.find((i) => i.name === sidecar.image)!.newTag).toBe(pkg.version);
  });
});

describe('vLLM container', () => {
  test('gets a GPU and its own probes on /health', () => {
    expect(vllm.resources.limits['nvidia.com/gpu']).toBe('1');
    expect(vllm.image).toMatch(/^vllm\/vllm-openai:v\d/);
    for (const probe of ['readinessProbe', 'startupProbe']) expect(vllm[probe].httpGet).toEqual({ path: '/health', port: 'http' });
  });
});

describe('PrometheusRule', () => {
  test('prometheusrule.yaml is exactly what `vllm-probe rules --kubernetes --config <the sidecar config>` prints', () => {
    expect(readRepo(DIR, 'prometheusrule.yaml')).toBe(renderPrometheusRule(sidecarConfig, 'vllm-probe'));
    expect(readRepo(DIR, 'prometheusrule.yaml')).toBe(renderPrometheusRule(defaultConfig(), 'vllm-probe'));
  });

  test('its rules equal the plain rules file and the generator for the sidecar\'s own config', () => {
    const rule = find('PrometheusRule', 'vllm-probe');
    expect(rule.spec).toEqual(parse(readRepo('deploy/prometheus/rules/vllm-probe.rules.yml')));
    expect(rule.spec).toEqual(JSON.parse(JSON.stringify(generateRules(defaultConfig()))));
    // The ConfigMap's SLO settings are the ones the rules were generated from.
    expect(rule.spec).toEqual(JSON.parse(JSON.stringify(generateRules(sidecarConfig))));
    const changed = parseConfig({ ...parse(readRepo(DIR, configFile)), slo: { ttft: { threshold: '750ms' } } });
    expect(rule.spec).not.toEqual(JSON.parse(JSON.stringify(generateRules(changed))));
  });
});

describe('/status as an external check (status-probe.yaml)', () => {
  const docs = optional.find((o) => o.file === 'status-probe.yaml')!.docs as Obj[];
  const probe = find('Probe', 'vllm-probe-status', docs);

  test('a blackbox Probe fetches /status of the metrics Service, expecting 2xx', () => {
    expect(probe.spec.module).toBe('http_2xx');
    const [target] = probe.spec.targets.staticConfig.static as string[];
    const url = new URL(target!);
    expect(url.pathname).toBe('/status');
    expect(url.hostname).toBe(`vllm-probe.${kustomization.namespace}.svc`);
    expect(Number(url.port)).toBe(find('Service', 'vllm-probe').spec.ports[0].port);
  });

  test('its alert selects the Probe\'s job and links, like the generated rules, to its runbook section', () => {
    const rule = find('PrometheusRule', 'vllm-probe-status', docs);
    const alert = rule.spec.groups[0].rules[0] as Obj;
    expect(alert.expr).toContain(`job="${probe.spec.jobName}"`);
    expect(alert.annotations.runbook_url).toBe(`${RUNBOOK_PLACEHOLDER}#${String(alert.alert).toLowerCase()}`);
    expect(readRepo('docs/runbook.md').split('\n')).toContain(`## ${String(alert.alert).toLowerCase()}`);
  });
});
