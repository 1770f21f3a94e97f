/**
 * GPU collectors (nvidia-smi and host). Placeholder signature while issue #5 is built:
 * returns no collectors, so the daemon runs without GPU metrics.
 */
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import type { Collector, CollectorHooks } from '../exporter/collector.js';
import type { Metrics } from '../metrics.js';
import type { StatusBoard } from '../status.js';

export interface ScheduledCollector {
  collector: Collector;
  schedule: { interval: number; timeout: number };
  hooks?: CollectorHooks;
}

export function createGpuCollectors(_config: Config, _metrics: Metrics, _status: StatusBoard, _log: Logger): ScheduledCollector[] {
  return [];
}
