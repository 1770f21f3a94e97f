/**
 * The daemon's wiring: config → runtime (registry, probes, collectors, status) → HTTP server.
 * `runDaemon` resolves only after draining: readyz goes 503, schedules stop, in-flight probes
 * abort, the server closes (bounded), connection pools close.
 */
import type { AddressInfo } from 'node:net';
import { Registry } from './prom-client.js';
import type { Logger } from 'pino';
import { loadConfigIsolated } from './config-isolated.js';
import { parseListen, readApiKey } from './config-runtime.js';
import type { Config } from './config.js';
import { startCollector, type CollectorRun } from './exporter/collector.js';
import { createHttpServer } from './exporter/server.js';
import type { NvidiaSmiCollector } from './gpu/collector.js';
import { buildJudgedTarget } from './build-target.js';
import { COLLECTORS, type CollectorContext } from './collectors.js';
import { withoutLocalTarget } from './fleet/modules.js';
import { ProbeEndpoint } from './fleet/probe.js';
import { startTargets, type FleetTargets } from './fleet/targets.js';
import { EngineWatch } from './host/engine-watch.js';
import { serverPidFor, type ProcSample } from './host/proc.js';
import { createMetrics, type Metrics } from './metrics.js';
import type { StatusBoard } from './status.js';
import { withoutTrailingSlashes } from './target-url.js';
import type { ProbeKind } from './synthetic/index.js';
import { startProbes, type ProbeScheduler } from './synthetic/scheduler.js';
import type { TargetTracker } from './target.js';
import type { VllmClient } from './vllm/client.js';
import { collectEnvironment } from './vllm/environment.js';
import { VERSION } from './version.js';

export interface DaemonOptions {
  /** The file to (re)load; omit for an in-memory config (demo, tests). */
  configFile?: string;
  config: Config;
  /** Command-line overrides that survive reloads. */
  overrides?: { target?: string; listen?: string };
  signal: AbortSignal;
  log: Logger;
  /** Tests and the demo use it to learn the ephemeral port. */
  onListen?: (address: AddressInfo) => void;
  /** exporter-toolkit web config (TLS, basic auth); omit for plain HTTP without auth. */
  webConfigFile?: string;
  env?: NodeJS.ProcessEnv;
}

export interface Runtime {
  config: Config;
  registry: Registry;
  metrics: Metrics;
  tracker: TargetTracker;
  client: VllmClient;
  status: StatusBoard;
  /** Central mode: the static `targets:` and their registries (none in a sidecar). */
  fleet: FleetTargets;
  /** GET /probe (fleet mode). */
  probeEndpoint: ProbeEndpoint;
  ready: boolean;
  /** Runs one probe now, outside its schedule (the soak drives cycles faster than real time). */
  runProbe(kind: ProbeKind): Promise<void>;
  /** Runs every collector once now (single-flight with their schedules). */
  collectNow(): Promise<void>;
  stop(): Promise<void>;
}

export function applyOverrides(config: Config, overrides: DaemonOptions['overrides'] = {}): Config {
  return {
    ...config,
    listen: overrides.listen ?? config.listen,
    target: { ...config.target, url: overrides.target === undefined ? config.target.url : withoutTrailingSlashes(overrides.target) },
  };
}

/** Builds and starts everything that depends on the config. */
export function startRuntime(config: Config, log: Logger, parentSignal: AbortSignal, env: NodeJS.ProcessEnv = process.env): Runtime {
  const controller = new AbortController();
  const onParentAbort = () => controller.abort(parentSignal.reason);
  parentSignal.addEventListener('abort', onParentAbort, { once: true });
  const signal = controller.signal;

  const registry = new Registry();
  const metrics = createMetrics(registry, config);
  metrics.buildInfo.labels({ version: VERSION, node_version: process.version }).set(1);
  metrics.configReloadSuccessful.set(1);
  metrics.configReloadTimestamp.set(Date.now() / 1000);
  const apiKey = readApiKey(config, env);
  if (config.target.api_key_env && !apiKey) log.warn({ variable: config.target.api_key_env }, `target.api_key_env names ${config.target.api_key_env}, which is not set: requests go without an API key and vLLM started with --api-key will answer 401`);
  const target = buildJudgedTarget(
    { url: config.target.url, model: config.target.model, coldProbes: config.probes.ttft.cold_probes, maxResponseBytes: config.target.max_response_bytes },
    config,
    metrics,
    log.child({ component: 'target' }),
    { scraping: config.scrape.enabled },
  );
  const { tracker, status, wedge } = target;
  const client = target.client(apiKey ? { apiKey } : {});
  // The engine's exit while the API server still listens is the crash (src/host/engine-watch.ts).
  const watchEvery = config.scrape.engine_watch;
  const engineWatch =
    watchEvery === false
      ? undefined
      : new EngineWatch({
          targetUrl: config.target.url,
          intervalMs: watchEvery * 1000,
          onEngineExit: (words, at) => status.evidence.engineExited(at, words),
          onPolling: (reason) => log.warn({ reason }, `engine watch: cannot hold pidfds for vLLM's processes, reading their liveness every ${Math.round(watchEvery * 1000)} ms instead (scrape.engine_watch)`),
        });
  if (engineWatch) signal.addEventListener('abort', () => engineWatch.stop(), { once: true });
  let everSeen = false;
  let lastMatched: readonly ProcSample[] = [];
  let gpuCollector: NvidiaSmiCollector | undefined;
  const refreshEnvironment = () =>
    void snapshotEnvironment(client, metrics, status, () => lastMatched, () => gpuCollector, signal).catch((err: unknown) => log.warn({ err: (err as Error).message }, 'environment snapshot failed'));
  // Central mode (a `targets:` list): target.url is neither probed nor scraped.
  const local = withoutLocalTarget(config);
  const context: CollectorContext = {
    config: local,
    metrics,
    status,
    log,
    client,
    tracker,
    wedge,
    onProcesses: (matched) => {
      lastMatched = matched;
      everSeen ||= matched.length > 0;
      // Never seen (no shared PID namespace, another host) says nothing about whether vLLM runs.
      status.evidence.processes({ at: Date.now(), count: everSeen ? matched.length : null, pids: matched.map((p) => p.pid) });
      engineWatch?.follow(matched);
    },
    refreshEnvironment,
    onGpu: (gpu) => (gpuCollector = gpu),
  };
  const collectors: CollectorRun[] = [];
  for (const entry of COLLECTORS) {
    const settings = entry.settings(local);
    if (!settings.enabled) {
      entry.off?.(metrics);
      continue;
    }
    const { collector, hooks } = entry.create(context);
    collectors.push(startCollector(collector, settings, metrics, log, signal, hooks));
  }
  const scheduler: ProbeScheduler = startProbes({ config: local, client, tracker, metrics, status, log, watcher: wedge }, signal);
  const fleet = startTargets(config, log, signal, env);
  // Central mode: each target's verdict is a check of the daemon's, so /status names the sick one.
  if (fleet.urls.length) {
    status.include(() => fleet.checks());
    // vllm_probe_status follows the targets without a /status request. A report judges every
    // target, so the many changes of a large list refresh it once a second, not once each.
    let refresh: NodeJS.Timeout | undefined;
    fleet.onChange(() => {
      refresh ??= setTimeout(() => {
        refresh = undefined;
        if (!signal.aborted) status.report();
      }, 1000).unref();
    });
  }
  const probeEndpoint = new ProbeEndpoint({ config, log: log.child({ component: 'probe_endpoint' }), env, shutdown: signal });

  const runtime: Runtime = {
    config,
    registry,
    metrics,
    tracker,
    client,
    status,
    fleet,
    probeEndpoint,
    ready: false,
    runProbe: (kind) => scheduler.runNow(kind),
    collectNow: async () => {
      await Promise.all(collectors.map((c) => c.runNow()));
    },
    async stop() {
      controller.abort(new Error('runtime stopping'));
      parentSignal.removeEventListener('abort', onParentAbort);
      await Promise.allSettled([scheduler.stop(), fleet.stop(), ...collectors.map((c) => c.stop())]);
      await target.close();
    },
  };
  void Promise.all([scheduler.firstCycle, fleet.firstCycle]).then(() => {
    runtime.ready = true;
  });
  return runtime;
}

/**
 * The seeds' environment table (vLLM version, model, GPU, driver, kernel, launch flags), taken
 * when a new vLLM process appears: exported as vllm_probe_environment_info and shown in /status.
 */
async function snapshotEnvironment(client: VllmClient, metrics: Metrics, status: StatusBoard, matched: () => readonly ProcSample[], gpuReader: () => NvidiaSmiCollector | undefined, signal: AbortSignal): Promise<void> {
  // The API server: the process listening on the target's port (as the process collector finds
  // vLLM), else the oldest matched process (a pid file or name pattern in another namespace).
  const listener = serverPidFor(client.baseUrl);
  const server = listener !== undefined ? { pid: listener } : [...matched()].sort((a, b) => a.pid - b.pid)[0];
  // GPU identity from the daemon's own nvidia-smi collector: one runner per process.
  const env = await collectEnvironment(client, {
    ...(server ? { pid: server.pid } : {}),
    gpu: async () => gpuReader()?.identity ?? null,
    signal: AbortSignal.any([signal, AbortSignal.timeout(15_000)]),
  });
  const gpu = env.gpus?.[0];
  metrics.environmentInfo.reset();
  metrics.environmentInfo
    .labels({
      vllm_version: env.vllm_version ?? '',
      model: env.model ?? '',
      max_model_len: env.max_model_len === null ? '' : String(env.max_model_len),
      gpu: env.gpus ? `${env.gpus.length} x ${gpu?.name ?? ''}` : '',
      driver_version: gpu?.driver_version ?? '',
      kernel: env.os,
      launch_flags: env.launch_flags?.join(' ') ?? '',
    })
    .set(1);
  status.set(
    'environment',
    'healthy',
    `vLLM ${env.vllm_version ?? '?'}, model ${env.model ?? '?'} (max_model_len ${env.max_model_len ?? '?'}), ${env.gpus?.length ? `${env.gpus.length} × ${gpu?.name} (driver ${gpu?.driver_version})` : gpuReader() ? 'no GPU read by nvidia-smi yet (gpu_collector says why)' : 'no GPU (gpu.enabled is false)'}, ${env.os}${env.launch_flags ? `, flags: ${env.launch_flags.join(' ') || '(defaults)'}` : ''}`,
  );
}

/** Runs the daemon until `signal` aborts, then drains within 5 s. */
export async function runDaemon(opts: DaemonOptions): Promise<void> {
  const { log } = opts;
  let runtime = startRuntime(applyOverrides(opts.config, opts.overrides), log, opts.signal, opts.env);
  let draining = false;
  let reloading: Promise<string | undefined> | undefined;

  const reload = async (): Promise<string | undefined> => {
    if (!opts.configFile) return 'no config file to reload (started without --config)';
    let next: Config;
    try {
      next = applyOverrides((await loadConfigIsolated(opts.configFile)).config, opts.overrides);
      readApiKey(next, opts.env);
    } catch (err) {
      runtime.metrics.configReloadSuccessful.set(0);
      log.warn({ err: (err as Error).message }, 'config reload failed; keeping the previous config');
      return (err as Error).message;
    }
    if (next.listen !== runtime.config.listen) log.warn({ listen: next.listen }, 'listen address changes need a restart; keeping the current one');
    const old = runtime;
    runtime = startRuntime(next, log, opts.signal, opts.env);
    await old.stop();
    log.info('config reloaded');
    return undefined;
  };
  const reloadOnce = () => (reloading ??= reload().finally(() => (reloading = undefined)));

  // Loaded only with a web config: it brings the schema library and bcrypt (memory, see
  // src/config-isolated.ts).
  const webConfig = opts.webConfigFile ? { file: opts.webConfigFile, ...(await import('./exporter/web-config.js')) } : undefined;
  const auth = webConfig
    ? new webConfig.WebConfigAuthorizer(webConfig.file, (err) => log.warn({ err: err.message }, 'web config changed but is invalid; keeping the previous one'))
    : undefined;
  const tls = webConfig && auth ? webConfig.tlsOptions(auth.current) : undefined;
  const server = createHttpServer(
    {
      registry: () => runtime.registry,
      targetRegistries: () => runtime.fleet.registries,
      probe: (req, res, url) => runtime.probeEndpoint.handle(req, res, url),
      ready: () => !draining && runtime.ready,
      status: () => runtime.status.report(),
      targetStatus: (url) => runtime.fleet.report(url),
      targetUrls: () => runtime.fleet.urls,
      reload: reloadOnce,
    },
    auth,
    tls,
  );
  if (webConfig && auth && tls) {
    // Certificates rotate without a restart: swap the context when the web config file changes.
    auth.onChange = (config) => {
      const next = webConfig.tlsOptions(config);
      if (next) (server as import('node:https').Server).setSecureContext(next);
    };
  }
  const onHup = () => void reloadOnce();
  process.on('SIGHUP', onHup);

  const { host, port } = parseListen(runtime.config.listen);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  }).catch(async (err: unknown) => {
    process.off('SIGHUP', onHup);
    await runtime.stop();
    throw err;
  });
  const address = server.address() as AddressInfo;
  log.info({ address: `${address.address}:${address.port}`, target: runtime.config.target.url }, 'vllm-probe listening');
  opts.onListen?.(address);

  if (!opts.signal.aborted) await new Promise<void>((resolve) => opts.signal.addEventListener('abort', () => resolve(), { once: true }));

  // Drain: readyz 503 first, then stop the work, then close the server within 5 s.
  draining = true;
  process.off('SIGHUP', onHup);
  log.info('shutting down');
  await runtime.stop();
  await new Promise<void>((resolve) => {
    const force = setTimeout(() => {
      server.closeAllConnections();
      resolve();
    }, 5000);
    server.close(() => {
      clearTimeout(force);
      resolve();
    });
    server.closeIdleConnections();
  });
}
