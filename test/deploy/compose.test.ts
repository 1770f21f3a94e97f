/**
 * deploy/compose, without Docker.
 *
 * 1. The files line up: service names, ports and mounts against the daemon config, the
 *    Prometheus config, the Grafana provisioning and the Dockerfile, for both variants (GPU, and
 *    the emulator override merged onto it the way Compose merges).
 * 2. The emulator variant is run as processes on loopback: the emulator and the daemon with the
 *    exact `command` of their compose services, run in-process through runCli (what
 *    bin/vllm-probe.js calls), with the mounted config files copied to a temp dir where only
 *    hostnames and ports change (service names become 127.0.0.1, fixed ports become free
 *    ones); then a real Prometheus (Debian package) with the compose prometheus.yml rewritten
 *    the same way and the mounted rule files. It must scrape the daemon, load and evaluate
 *    every rule group, and the daemon must say vLLM is healthy.
 * Not covered: image builds, Compose's own parsing, the Grafana server (not installable here).
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { parse, parseDocument, stringify } from 'yaml';
import { runCli, type CliIo } from '../../src/cli.js';
import { defaultConfig, loadConfig } from '../../src/config.js';
import { generateRules } from '../../src/slo/rules.js';
import { waitFor } from '../helpers/daemon.js';
import { freePort, startPrometheus, type RunningPrometheus } from '../helpers/prometheus.js';
import { skipWithoutPrometheus } from '../helpers/tools.js';
import {
  dockerStages,
  execForm,
  flagValue,
  hostPathFor,
  mergeCompose,
  parseDockerfile,
  parseVolume,
  parseYamlFile,
  publishedPorts,
  readRepo,
  repoPath,
  RESET,
  ROOT,
  type ComposeFile,
  type ComposeService,
} from './files.js';

const COMPOSE_DIR = repoPath('deploy/compose');
type Obj = Record<string, any>;

const loadCompose = (name: string) => {
  const f = parseYamlFile(join(COMPOSE_DIR, name));
  expect(f.errors, name).toEqual([]);
  return f.docs[0] as ComposeFile;
};
const gpuStack = loadCompose('docker-compose.yml');
const emulatorStack = mergeCompose(gpuStack, loadCompose('docker-compose.emulator.yml'));
const variants = [
  ['GPU', gpuStack],
  ['emulator', emulatorStack],
] as const;

const finalStage = dockerStages(parseDockerfile(readRepo('Dockerfile'))).at(-1)!;
const imageEntrypoint = execForm(finalStage.instructions.find((i) => i.keyword === 'ENTRYPOINT')!.args);
const imageCmd = execForm(finalStage.instructions.find((i) => i.keyword === 'CMD')!.args);

/** The file a service reads at a container path, through its bind mounts. */
function mounted(service: ComposeService, containerPath: string): string {
  const host = hostPathFor(service, containerPath, COMPOSE_DIR);
  if (!host) throw new Error(`${containerPath} is not bind-mounted`);
  return host;
}
/** The daemon's config file on the host, from the `--config` argument of its command. */
const daemonConfigFile = (stack: ComposeFile) => mounted(stack.services['vllm-probe']!, flagValue(stack.services['vllm-probe']!.command!, '--config')!);
/** The port the vLLM service listens on in its container: vLLM's --port, the emulator's --listen. */
function vllmPort(stack: ComposeFile): number {
  const cmd = stack.services.vllm!.command!;
  if (cmd[0] === 'emulate') return Number(flagValue(cmd, '--listen')!.split(':').pop());
  return Number(flagValue(cmd, '--port'));
}
const prometheusConfigFile = (stack: ComposeFile) => mounted(stack.services.prometheus!, flagValue(stack.services.prometheus!.command!, '--config.file')!);
/** Prometheus `rule_files` globbing for the form used here: `DIR/*.yml` (fs.globSync needs Node 22). */
function globFiles(pattern: string): string[] {
  const dir = dirname(pattern);
  const re = new RegExp(`^${basename(pattern).replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*')}$`);
  return existsSync(dir) ? readdirSync(dir).filter((f) => re.test(f)).sort().map((f) => join(dir, f)) : [];
}
const builtFromRepoDockerfile = (s: ComposeService) => typeof s.build === 'object' && resolve(COMPOSE_DIR, s.build.context) === ROOT && (s.build.dockerfile ?? 'Dockerfile') === 'Dockerfile';

describe('compose merge helper', () => {
  test('merges like Compose: mappings key by key, command replaced, !reset removes', () => {
    const merged = mergeCompose(
      { services: { a: { image: 'x', command: ['1', '2'], environment: { A: '1' }, deploy: { r: 1 }, volumes: ['v:/v'] } } },
      { services: { a: { command: ['3'], environment: { B: '2' }, deploy: RESET as never, volumes: RESET as never }, b: { image: 'y' } } },
    );
    expect(merged.services).toEqual({ a: { image: 'x', command: ['3'], environment: { A: '1', B: '2' } }, b: { image: 'y' } });
  });
});

describe.each(variants)('compose stack (%s)', (variant, stack) => {
  const services = stack.services;

  test('has the four services', () => {
    expect(Object.keys(services).sort()).toEqual(['grafana', 'prometheus', 'vllm', 'vllm-probe']);
    expect(JSON.stringify(stack)).not.toContain('Symbol'); // every !reset was applied
  });

  test('vllm-probe is the repository image running the Dockerfile\'s own command', () => {
    const probe = services['vllm-probe']!;
    expect(builtFromRepoDockerfile(probe)).toBe(true);
    expect(probe.entrypoint).toBeUndefined();
    expect([...imageEntrypoint, ...probe.command!]).toEqual([...imageEntrypoint, ...imageCmd]);
    expect(probe.read_only).toBe(true);
    expect(probe.cap_drop).toEqual(['ALL']);
  });

  test('the daemon config is valid and targets the vLLM service on the port it listens on', () => {
    const file = daemonConfigFile(stack);
    expect(file).toBe(join(COMPOSE_DIR, 'vllm-probe.yaml'));
    const config = loadConfig(file);
    const target = new URL(config.target.url);
    expect(target.hostname).toBe('vllm');
    expect(services[target.hostname]).toBeDefined();
    expect(Number(target.port)).toBe(vllmPort(stack));
    // Both sides read the API key from the same variable of the compose environment.
    expect(config.target.api_key_env).toBe('VLLM_API_KEY');
    expect(services['vllm-probe']!.environment!.VLLM_API_KEY).toBe('${VLLM_API_KEY:-}');
    expect(services.vllm!.environment!.VLLM_API_KEY).toBe('${VLLM_API_KEY:-}');
    // The published port is the one the daemon listens on.
    const listenPort = Number(config.listen.split(':').pop());
    expect(publishedPorts(services['vllm-probe']!).map((p) => p.container)).toEqual([listenPort]);
    expect(services['vllm-probe']!.pid).toBe('service:vllm');
  });

  test('Prometheus scrapes vllm-probe on its listen port and loads the generated rules', () => {
    const prom = parse(readFileSync(prometheusConfigFile(stack), 'utf8')) as Obj;
    const jobs = prom.scrape_configs as Obj[];
    const job = jobs.find((j) => j.job_name === 'vllm-probe')!;
    const listenPort = Number(loadConfig(daemonConfigFile(stack)).listen.split(':').pop());
    expect(job.static_configs).toEqual([{ targets: [`vllm-probe:${listenPort}`] }]);
    expect(services['vllm-probe']).toBeDefined();
    const ruleFiles = (prom.rule_files as string[]).flatMap((pattern) => globFiles(mounted(services.prometheus!, pattern)));
    expect(ruleFiles.map((f) => f.slice(ROOT.length + 1))).toEqual(['deploy/prometheus/rules/vllm-probe.rules.yml']);
    // The rules match the daemon's own SLO settings (its config sets none: the defaults).
    const rules = parse(readFileSync(ruleFiles[0]!, 'utf8')) as unknown;
    expect(rules).toEqual(JSON.parse(JSON.stringify(generateRules(loadConfig(daemonConfigFile(stack))))));
    expect(rules).toEqual(JSON.parse(JSON.stringify(generateRules(defaultConfig()))));
  });

  test('Grafana: provisioning and dashboards are mounted where the provider and data source expect', () => {
    const grafana = services.grafana!;
    const provisioning = mounted(grafana, '/etc/grafana/provisioning');
    expect(provisioning).toBe(repoPath('grafana/provisioning'));
    const provider = (parse(readFileSync(join(provisioning, 'dashboards/vllm-probe.yaml'), 'utf8')) as Obj).providers[0] as Obj;
    expect(provider.type).toBe('file');
    const dashboardsDir = mounted(grafana, provider.options.path as string);
    expect(dashboardsDir).toBe(repoPath('grafana/dashboards'));
    const dashboards = readdirSync(dashboardsDir).filter((f) => f.endsWith('.json'));
    expect(dashboards.length).toBeGreaterThanOrEqual(2);
    const uids = dashboards.map((f) => (JSON.parse(readFileSync(join(dashboardsDir, f), 'utf8')) as Obj).uid as string);
    expect(new Set(uids).size).toBe(dashboards.length);
    for (const f of dashboards) {
      const dash = JSON.parse(readFileSync(join(dashboardsDir, f), 'utf8')) as Obj;
      expect((dash.templating.list as Obj[]).find((v) => v.name === 'datasource')).toEqual(expect.objectContaining({ type: 'datasource', query: 'prometheus' }));
    }
    const datasources = (parse(readFileSync(join(provisioning, 'datasources/prometheus.yaml'), 'utf8')) as Obj).datasources as Obj[];
    expect(datasources).toHaveLength(1);
    expect(datasources[0]!.type).toBe('prometheus');
    const url = new URL(datasources[0]!.url as string);
    expect(services[url.hostname], `data source host ${url.hostname}`).toBe(services.prometheus);
    // Prometheus listens on its default 9090 (no --web.listen-address) and publishes it.
    expect(flagValue(services.prometheus!.command!, '--web.listen-address')).toBeUndefined();
    expect(Number(url.port)).toBe(9090);
    expect(publishedPorts(services.prometheus!).map((p) => p.container)).toEqual([9090]);
  });

  test('every bind-mount source exists and every named volume is declared', () => {
    for (const [name, service] of Object.entries(services)) {
      for (const v of (service.volumes ?? []).map(parseVolume)) {
        if (v.bind) {
          expect(existsSync(resolve(COMPOSE_DIR, v.source)), `${name}: ${v.source}`).toBe(true);
          expect(v.readOnly, `${name}: ${v.source} mounted read-only`).toBe(true);
        } else {
          expect(Object.keys(stack.volumes ?? {}), `${name}: volume ${v.source}`).toContain(v.source);
        }
      }
      for (const dep of service.depends_on ?? []) expect(services[dep], `${name} depends on ${dep}`).toBeDefined();
    }
  });

  if (variant === 'GPU') {
    test('vLLM gets a GPU; vllm-probe gets nvidia-smi through the NVIDIA runtime', () => {
      expect(services.vllm!.image).toMatch(/^vllm\/vllm-openai:v\d/);
      expect((services.vllm!.deploy as Obj).resources.reservations.devices[0]).toEqual(expect.objectContaining({ driver: 'nvidia', capabilities: ['gpu'] }));
      expect(services['vllm-probe']!.runtime).toBe('nvidia');
      expect(services['vllm-probe']!.environment).toEqual(expect.objectContaining({ NVIDIA_VISIBLE_DEVICES: 'all', NVIDIA_DRIVER_CAPABILITIES: 'utility' }));
    });
  } else {
    test('the emulator takes vLLM\'s place under the same name, with no GPU anywhere', () => {
      expect(builtFromRepoDockerfile(services.vllm!)).toBe(true);
      expect(services.vllm!.command![0]).toBe('emulate');
      expect(services.vllm!.deploy).toBeUndefined();
      expect(services.vllm!.volumes).toBeUndefined();
      expect(services.vllm!.ipc).toBe('private');
      expect(services['vllm-probe']!.runtime).toBe('runc');
      // Everything but the vllm service and the probe's runtime is the GPU stack's.
      for (const name of ['prometheus', 'grafana']) expect(services[name]).toEqual(gpuStack.services[name]);
      const { runtime: _r1, ...probe } = services['vllm-probe']!;
      const { runtime: _r2, ...gpuProbe } = gpuStack.services['vllm-probe']!;
      expect(probe).toEqual(gpuProbe);
    });
  }
});

describe.skipIf(skipWithoutPrometheus)('the emulator stack, run without Docker', { timeout: 120_000 }, () => {
  const stack = emulatorStack;
  const controller = new AbortController();
  const output: string[] = [];
  const runs: Array<Promise<number>> = [];
  // As with `VLLM_API_KEY=… docker compose up`: both services get the key.
  const env = { VLLM_API_KEY: 'compose-test-key' };
  const io: CliIo = { stdout: (t) => output.push(t), stderr: (t) => output.push(t), signal: controller.signal, env };
  let tmp: string;
  let prom: RunningPrometheus;
  let emulatorUrl: string;
  let daemonUrl: string;

  beforeAll(async () => {
    tmp = mkdtempSync(join(tmpdir(), 'compose-emulator-'));
    // Service name → loopback address for this run.
    const loopback = new Map<string, string>();

    // vllm: the compose command, its listen address moved to a free loopback port.
    const emuCmd = [...stack.services.vllm!.command!];
    expect(emuCmd[0]).toBe('emulate');
    const emuListen = emuCmd.indexOf('--listen') + 1;
    loopback.set(`vllm:${emuCmd[emuListen]!.split(':').pop()}`, `127.0.0.1:${await freePort()}`);
    emuCmd[emuListen] = loopback.get(`vllm:${vllmPort(stack)}`)!;
    runs.push(runCli(emuCmd, io));
    emulatorUrl = `http://${emuCmd[emuListen]}`;
    expect(await waitFor(async () => (await fetch(`${emulatorUrl}/health`).catch(() => undefined))?.ok, 10_000)).toBe(true);

    // vllm-probe: the compose command; the mounted config copied with hostnames and ports rewritten.
    const probe = stack.services['vllm-probe']!;
    const configArg = flagValue(probe.command!, '--config')!;
    const doc = parseDocument(readFileSync(mounted(probe, configArg), 'utf8'));
    const target = new URL(String(doc.getIn(['target', 'url'])));
    doc.setIn(['target', 'url'], `http://${loopback.get(target.host)}`);
    const listenPort = String(doc.get('listen')).split(':').pop()!;
    loopback.set(`vllm-probe:${listenPort}`, `127.0.0.1:${await freePort()}`);
    doc.set('listen', loopback.get(`vllm-probe:${listenPort}`));
    const configCopy = join(tmp, basename(configArg));
    writeFileSync(configCopy, doc.toString());
    const serveArgs = probe.command!.map((a) => (a === configArg ? configCopy : a));
    expect(serveArgs).toEqual(imageCmd.map((a) => (a === configArg ? configCopy : a)));
    runs.push(runCli(serveArgs, io));
    daemonUrl = `http://${loopback.get(`vllm-probe:${listenPort}`)}`;
    expect(await waitFor(async () => (await fetch(`${daemonUrl}/healthz`).catch(() => undefined))?.ok, 10_000), output.join('')).toBe(true);

    // prometheus: the compose prometheus.yml, targets rewritten, rule files from the mount.
    const promService = stack.services.prometheus!;
    const promConfig = parse(readFileSync(prometheusConfigFile(stack), 'utf8')) as Obj;
    promConfig.rule_files = (promConfig.rule_files as string[]).map((p) => mounted(promService, p));
    for (const job of promConfig.scrape_configs as Obj[]) {
      for (const sc of job.static_configs as Obj[]) sc.targets = (sc.targets as string[]).map((t) => loopback.get(t) ?? t);
    }
    expect(JSON.stringify(promConfig.scrape_configs)).not.toMatch(/vllm-probe:/);
    prom = await startPrometheus({ targets: [], configYaml: stringify(promConfig) });
  }, 60_000);

  afterAll(async () => {
    controller.abort();
    const codes = await Promise.all(runs);
    expect(codes.every((c) => c === 0), output.join('')).toBe(true);
    await prom?.stop();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  test('Prometheus scrapes the daemon: up{job="vllm-probe"} == 1', async () => {
    const up = await waitFor(async () => (await prom.query('up{job="vllm-probe"} == 1')).length === 1, 40_000, 500);
    expect(up, prom.log()).toBe(true);
  });

  test('Prometheus loads every rule group and evaluates every rule without error', async () => {
    const expected = generateRules(defaultConfig()).groups;
    type RulesApi = { data: { groups: Array<{ name: string; rules: Array<{ name: string; health: string; lastError?: string }> }> } };
    const get = async () => ((await (await fetch(`${prom.url}/api/v1/rules`)).json()) as RulesApi).data.groups;
    // Prometheus lists groups by file, then name; compare as name → rule names.
    const byName = (groups: Array<{ name: string; rules: Array<{ name?: string; record?: string; alert?: string }> }>) =>
      Object.fromEntries(groups.map((g) => [g.name, g.rules.map((r) => r.name ?? r.record ?? r.alert)]));
    expect(byName(await get())).toEqual(byName(expected));
    const allOk = await waitFor(async () => (await get()).every((g) => g.rules.every((r) => r.health === 'ok')), 45_000, 1000);
    const bad = (await get()).flatMap((g) => g.rules.filter((r) => r.health !== 'ok').map((r) => `${r.name}: ${r.health} ${r.lastError ?? ''}`));
    expect(allOk, bad.join('\n')).toBe(true);
  });

  test('the daemon is ready, says healthy, and its probes of the emulator (with the API key) land in Prometheus', async () => {
    expect((await fetch(`${daemonUrl}/readyz`)).status).toBe(200);
    // Healthy, not just HTTP 200: on a busy machine a first slow probe can read degraded for a while.
    const healthy = await waitFor(async () => ((await (await fetch(`${daemonUrl}/status`)).json()) as { status: string }).status === 'healthy', 30_000, 500);
    const status = (await (await fetch(`${daemonUrl}/status`)).json()) as { status: string; reasons: string[] };
    expect(healthy, JSON.stringify(status)).toBe(true);
    expect(status.status, JSON.stringify(status.reasons)).toBe('healthy');
    // The emulator enforces the key, so successful probes prove the daemon sent it.
    expect((await fetch(`${emulatorUrl}/v1/models`)).status).toBe(401);
    const successes = await waitFor(async () => (await prom.query('vllm_probe_requests_total{job="vllm-probe",probe="ttft",outcome="success"} > 0')).length > 0, 40_000, 500);
    expect(successes).toBe(true);
  });
});

describe('docs/deploy.md', () => {
  test('every repository path it names exists', () => {
    const doc = readRepo('docs/deploy.md');
    const paths = [...new Set([...doc.matchAll(/(?<![\w./-])((?:deploy|grafana|config|docs|test)\/[\w./-]*[\w])/g)].map((m) => m[1]!))];
    expect(paths.length).toBeGreaterThan(10);
    // Not paths: a kubectl resource (`deploy/vllm`) and an image name (`grafana/grafana:…`).
    const notPaths = new Set(['deploy/vllm', 'grafana/grafana']);
    const missing = paths.filter((p) => !p.includes('*') && !notPaths.has(p) && !existsSync(repoPath(p)));
    expect(missing).toEqual([]);
  });

  test('documents every compose and Kubernetes file', () => {
    const doc = readRepo('docs/deploy.md');
    for (const dir of ['deploy/compose', 'deploy/kubernetes']) {
      for (const f of readdirSync(repoPath(dir)).filter((n) => statSync(repoPath(dir, n)).isFile())) expect(doc, `${dir}/${f}`).toContain(f);
    }
  });
});
