/**
 * One vLLM target, built the same way wherever it is probed: the sidecar's own target (app.ts),
 * each static target of a central daemon (fleet/targets.ts) and each GET /probe (fleet/probe.ts).
 * `buildTarget` makes what every probe run needs (a tracker, and clients that share one size
 * cap); `buildJudgedTarget` adds what a target watched over time needs (its /status board and
 * wedge detector, told about restarts). Issue 26: these were wired three times.
 */
import type { Logger } from 'pino';
import type { Config } from './config.js';
import type { Metrics } from './metrics.js';
import { StatusBoard } from './status.js';
import { TargetTracker } from './target.js';
import { VllmClient } from './vllm/client.js';
import { WedgeDetector } from './wedge.js';

/** What identifies a target and how it is read: the part of the config a target uses. */
export interface TargetSpec {
  /** Base URL as src/target-url.ts spells it. */
  url: string;
  /** Served model name; '' means the first one /v1/models lists. */
  model: string;
  /** TTFT probes after a detected restart that are labelled phase="cold". */
  coldProbes: number;
  /** Largest response body read from the target, bytes. */
  maxResponseBytes: number;
}

export interface BuiltTarget {
  readonly url: string;
  readonly tracker: TargetTracker;
  /**
   * A client for this target. `apiKey` only where the caller decided the key may go there (a
   * module's api_key_hosts); `connections` caps the pool (default: the client's). Closed by close().
   */
  client(opts?: { apiKey?: string; connections?: number }): VllmClient;
  /** Closes every client made, waiting for requests in flight. */
  close(): Promise<void>;
}

export interface JudgedTarget extends BuiltTarget {
  readonly status: StatusBoard;
  readonly wedge: WedgeDetector;
}

/** A tracker and a client factory for one target, recording into `metrics`. */
export function buildTarget(spec: TargetSpec, metrics: Metrics, log: Logger): BuiltTarget {
  const clients: VllmClient[] = [];
  return {
    url: spec.url,
    tracker: new TargetTracker(metrics, spec.coldProbes, log, spec.model),
    client(opts = {}) {
      const client = new VllmClient({
        baseUrl: spec.url,
        maxResponseBytes: spec.maxResponseBytes,
        ...(opts.apiKey ? { apiKey: opts.apiKey } : {}),
        ...(opts.connections !== undefined ? { connections: opts.connections } : {}),
      });
      clients.push(client);
      return client;
    },
    async close() {
      await Promise.allSettled(clients.map((c) => c.close()));
    },
  };
}

/**
 * A target watched over time: `buildTarget` plus its /status board and wedge detector, with
 * restarts the tracker sees fed to the board's evidence. `scraping` says whether this target's
 * /metrics is scraped (a central daemon's static targets are not: the wedge detector then works
 * from the probes' side only).
 */
export function buildJudgedTarget(spec: TargetSpec, config: Config, metrics: Metrics, log: Logger, opts: { scraping: boolean }): JudgedTarget {
  const target = buildTarget(spec, metrics, log);
  const { tracker } = target;
  const status = new StatusBoard(config, metrics, () => ({ url: spec.url, model: tracker.model }), undefined, opts.scraping);
  tracker.onRestart = (at, why) => status.evidence.restart(at.getTime(), why);
  const wedgeConfig = opts.scraping ? config : { ...config, scrape: { ...config.scrape, enabled: false } };
  const wedge = new WedgeDetector(wedgeConfig, metrics, status, () => tracker.model);
  return { ...target, status, wedge };
}
