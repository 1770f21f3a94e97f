/**
 * The daemon's collectors, in one list: each with its `source` label, its switch and schedule in
 * the config, and how it is made from what the runtime shares. app.ts starts every enabled entry
 * with startCollector (src/exporter/collector.ts), which times it, applies its timeout and
 * records source_up / errors; a new collector is one class and one entry here (docs/architecture.md).
 */
import type { Logger } from 'pino';
import type { Config } from './config.js';
import { type Collector, type CollectorHooks } from './exporter/collector.js';
import { VllmProcessCollector } from './exporter/process.js';
import { VllmCollector } from './exporter/vllm.js';
import { NvidiaSmiCollector } from './gpu/collector.js';
import { HostCollector } from './gpu/host.js';
import type { ProcSample } from './host/proc.js';
import type { Metrics } from './metrics.js';
import type { StatusBoard } from './status.js';
import type { TargetTracker } from './target.js';
import type { VllmClient } from './vllm/client.js';
import type { WedgeDetector } from './wedge.js';

/** What the runtime shares with its collectors, and the hooks through which they feed it. */
export interface CollectorContext {
  config: Config;
  metrics: Metrics;
  status: StatusBoard;
  log: Logger;
  client: VllmClient;
  tracker: TargetTracker;
  wedge: WedgeDetector;
  /** vLLM's processes, each time the process collector looks (engine watch, environment). */
  onProcesses(matched: readonly ProcSample[]): void;
  /** Takes the environment snapshot again (a new vLLM process; nvidia-smi's first answer). */
  refreshEnvironment(): void;
  /** The GPU collector once made, for the environment's GPU identity. */
  onGpu(gpu: NvidiaSmiCollector): void;
}

export interface CollectorEntry {
  /** The collector's `source` label (vllm_probe_source_up{source}). */
  readonly source: string;
  /** Its switch and schedule, from the config. */
  settings(config: Config): { enabled: boolean; interval: number; timeout: number };
  create(ctx: CollectorContext): { collector: Collector; hooks?: CollectorHooks };
  /** Runs instead of `create` when it is off: drops series that would otherwise read 0. */
  off?(metrics: Metrics): void;
}

export const COLLECTORS: readonly CollectorEntry[] = [
  {
    source: 'vllm_process',
    settings: (c) => c.scrape,
    create: (ctx) => {
      const processes = new VllmProcessCollector(ctx.config, ctx.metrics, ctx.status, () => ctx.tracker.model, ctx.log.child({ component: 'vllm_process' }));
      processes.onMatched = (matched) => ctx.onProcesses(matched);
      return { collector: processes };
    },
  },
  {
    source: 'vllm_metrics',
    settings: (c) => c.scrape,
    create: (ctx) => ({ collector: new VllmCollector(ctx.config, ctx.client, ctx.tracker, ctx.metrics, ctx.status, ctx.wedge, ctx.log.child({ component: 'vllm' }), ctx.refreshEnvironment) }),
  },
  {
    source: 'nvidia_smi',
    settings: (c) => c.gpu,
    create: (ctx) => {
      const gpu = new NvidiaSmiCollector(ctx.config, ctx.metrics, ctx.status, ctx.log);
      ctx.onGpu(gpu);
      let named = false;
      return {
        collector: gpu,
        hooks: {
          onFailure: (err) => gpu.reportFailure(err),
          // The environment line names the GPU: take it again once nvidia-smi first answers, so it
          // never says "no GPU" beside GPU checks that read one (the snapshot may run first).
          onSuccess: () => {
            if (named || !gpu.identity?.length) return;
            named = true;
            ctx.refreshEnvironment();
          },
        },
      };
    },
  },
  {
    source: 'host',
    settings: (c) => c.host,
    create: (ctx) => ({ collector: new HostCollector(ctx.metrics) }),
    // prom-client starts unlabelled gauges at 0; without the host collector that 0 would be a lie.
    off: (metrics) => {
      metrics.hostCpuUtilization.remove({});
      metrics.hostMemoryAvailable.remove({});
    },
  },
];
