/**
 * The static target list of a central daemon (`targets:`). Each target gets its own registry,
 * whose default labels (`target` = its URL, plus its `labels`) mark every series, and one probe
 * scheduler per module (its own client, API key and model), on the target's interval. Only the
 * probe families are kept in those registries, so a target adds its probe series and nothing
 * else; /metrics merges them with the daemon's own (./exposition.ts). Cardinality is bounded by
 * the list: targets × modules × the usual probe series.
 */
import type { Logger } from 'pino';
import { Registry } from '../prom-client.js';
import { readApiKey } from '../config-runtime.js';
import type { Config } from '../config.js';
import { createMetrics, perTargetFamilies } from '../metrics.js';
import { connectFailure } from '../diagnosis/evidence.js';
import { SourceError } from '../errors.js';
import { oneLine } from '../reason.js';
import { every, type Schedule } from '../schedule.js';
import type { StatusBoard, StatusReport, TargetCheck } from '../status.js';
import { parseTargetUrl } from '../target-url.js';
import { startProbes, type ProbeScheduler } from '../synthetic/scheduler.js';
import { buildJudgedTarget, type JudgedTarget } from '../build-target.js';
import { keyAllowed, moduleConfig } from './modules.js';

export interface FleetTargets {
  /** One registry per target, in config order. */
  readonly registries: readonly Registry[];
  /** One check per target for the daemon's /status: the target's verdict and its reasons. */
  checks(): TargetCheck[];
  /** A target's own /status report (every check of its board), by URL. */
  report(url: string): StatusReport | undefined;
  /** The targets' URLs, in config order. */
  readonly urls: readonly string[];
  /** Calls `listener` whenever a check of any target changes. */
  onChange(listener: () => void): void;
  /** Resolves when every target's modules have run once. */
  readonly firstCycle: Promise<void>;
  stop(): Promise<void>;
}

export function startTargets(config: Config, log: Logger, shutdown: AbortSignal, env: NodeJS.ProcessEnv): FleetTargets {
  const registries: Registry[] = [];
  const schedulers: ProbeScheduler[] = [];
  const judged: JudgedTarget[] = [];
  const healthPolls: Schedule[] = [];
  const boards = new Map<string, StatusBoard>();
  for (const target of config.targets) {
    const registry = new Registry();
    registry.setDefaultLabels({ ...target.labels, target: target.url });
    const metrics = createMetrics(registry, config);
    // What probes record about a target, marked at each definition (src/metrics.ts): nothing
    // about the daemon itself.
    const kept = new Set(perTargetFamilies(metrics));
    for (const m of registry.getMetricsAsArray() as unknown as Array<{ name: string }>) if (!kept.has(m.name)) registry.removeSingleMetric(m.name);
    registries.push(registry);
    const targetLog = log.child({ component: 'fleet', target: target.url });
    // One tracker per target, as in a sidecar: what the TTFT probe discovers (model, restarts)
    // is what the other modules of that target label their series with.
    const modules = target.modules.map((n) => config.modules[n]!);
    const ttftSettings = moduleConfig(config, modules.find((m) => m.kind === 'ttft') ?? modules[0]!, target.url, { sendKey: false }).probes.ttft;
    // The wedge from the probes' side only (no_token_after_headers while /health is 200): a
    // central daemon does not scrape a target's /metrics, so the counter signatures cannot fire.
    const built = buildJudgedTarget(
      { url: target.url, model: modules.find((m) => m.model)?.model ?? '', coldProbes: ttftSettings.cold_probes, maxResponseBytes: config.target.max_response_bytes },
      config,
      metrics,
      targetLog,
      { scraping: false },
    );
    const { tracker, status, wedge } = built;
    judged.push(built);
    boards.set(target.url, status);
    const healthClient = built.client();
    const healthTimeoutMs = Math.min(5, ttftSettings.timeout) * 1000;
    healthPolls.push(
      every(target.interval ?? ttftSettings.interval, () =>
        healthClient.health(AbortSignal.any([shutdown, AbortSignal.timeout(healthTimeoutMs)])).then(
          (h) => {
            status.evidence.health({ at: Date.now(), status: h.status });
            wedge.observeHealth(h.status === 200);
          },
          (err: Error) => {
            const timeout = err instanceof SourceError && err.reason === 'timeout';
            status.evidence.health({ at: Date.now(), failure: timeout ? 'timeout' : (connectFailure('connect_error', err.message) ?? 'other'), detail: err.message });
            wedge.observeHealth(false);
          },
        ),
      ),
    );
    for (const name of target.modules) {
      const module = config.modules[name]!;
      // Config validation made sure a module with a key lists this host in api_key_hosts.
      const sendKey = keyAllowed(module, new URL(target.url));
      const probeConfig = moduleConfig(config, module, target.url, { sendKey, ...(target.interval !== undefined ? { interval: target.interval } : {}) });
      const apiKey = sendKey ? readApiKey(probeConfig, env) : undefined;
      const client = built.client(apiKey ? { apiKey } : {});
      const moduleLog = targetLog.child({ module: name });
      schedulers.push(startProbes({ config: probeConfig, client, tracker, metrics, status, log: moduleLog, watcher: wedge }, shutdown));
    }
  }
  return {
    registries,
    urls: [...boards.keys()],
    checks: () => [...boards].map(([url, board]) => targetCheck(url, board.report())),
    report: (url) => {
      // However /status?target= spells it, as config spelt the key (src/target-url.ts).
      const parsed = parseTargetUrl(url);
      return parsed.ok ? boards.get(parsed.base)?.report() : undefined;
    },
    onChange: (listener) => {
      for (const board of boards.values()) board.onChange(listener);
    },
    firstCycle: Promise.all(schedulers.map((s) => s.firstCycle)).then(() => undefined),
    async stop() {
      for (const poll of healthPolls) poll.stop();
      await Promise.allSettled(schedulers.map((s) => s.stop()));
      await Promise.allSettled(judged.map((t) => t.close()));
    },
  };
}

/** A target's board summed up as one check of the daemon's: named by URL, its state and cause. */
function targetCheck(url: string, report: StatusReport): TargetCheck {
  return {
    name: `target:${url}`,
    status: report.status,
    state: report.state,
    cause: report.cause,
    reason: oneLine(`${url}: ${report.state}: ${report.cause}`),
    since: report.since,
    updated_at: report.generated_at,
  };
}
