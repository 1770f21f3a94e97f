/**
 * Host collector ("host"): the two node numbers an SRE wants next to the GPU panels. CPU busy
 * fraction (vLLM tokenises, schedules and detokenises on the CPU; a saturated CPU starves a fast
 * GPU) and available memory (swap space and CPU KV offload live there). Everything else about
 * the node is node_exporter's job.
 *
 * Both come from Linux's /proc, read asynchronously and capped: the busy fraction from the
 * deltas of /proc/stat's aggregate line between two collections, available memory from
 * /proc/meminfo. (systeminformation did this before; its currentLoad ran a synchronous shell
 * `cat /proc/stat` on the event loop every 15 s, 17 % of the daemon's CPU: docs/benchmarks.md.)
 * In a container both describe the host, not the cgroup. Without /proc (not Linux) there is
 * nothing to collect, said once.
 */
import { type Collector } from '../exporter/collector.js';
import { NoDataError, SourceError } from '../errors.js';
import { parseCpuTicks, parseMemAvailable, readProcFile } from '../host/proc.js';
import type { Metrics } from '../metrics.js';

export class HostCollector implements Collector {
  readonly name = 'host';
  /** Ticks of the previous collection: the CPU series appears from the second one and never shows a since-boot average. */
  private lastTicks: { busy: number; total: number } | undefined;

  constructor(
    private readonly metrics: Metrics,
    private readonly procRoot = '/proc',
  ) {
    // prom-client starts a label-less gauge at 0; "0 bytes available" before the first read
    // would be a lie, so drop the samples until there is a value.
    this.markStale();
  }

  async collect(signal: AbortSignal): Promise<void> {
    let stat: string;
    let meminfo: string;
    try {
      [stat, meminfo] = await Promise.all([readProcFile(`${this.procRoot}/stat`), readProcFile(`${this.procRoot}/meminfo`)]);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') throw new NoDataError(`no ${this.procRoot}/stat or ${this.procRoot}/meminfo here (host CPU and memory are read from Linux's /proc)`, { reason: 'no_procfs' });
      throw new SourceError('internal', `cannot read ${this.procRoot}: ${code ?? (err as Error).message}`);
    }
    signal.throwIfAborted();
    const available = parseMemAvailable(meminfo);
    if (available === undefined) throw new SourceError('unparsable', `${this.procRoot}/meminfo has neither MemAvailable nor MemFree + Buffers + Cached`);
    const ticks = parseCpuTicks(stat);
    if (!ticks) throw new SourceError('unparsable', `${this.procRoot}/stat does not start with an aggregate "cpu" line`);
    this.metrics.hostMemoryAvailable.set(available);
    const last = this.lastTicks;
    this.lastTicks = ticks;
    if (last && ticks.total > last.total) {
      // Ticks only grow; a counter that went back (a restore, a wrap) gives no value this time.
      const ratio = (ticks.busy - last.busy) / (ticks.total - last.total);
      if (ratio >= 0 && ratio <= 1) this.metrics.hostCpuUtilization.set(ratio);
    }
  }

  /** A failed read leaves no old numbers behind. remove({}), not reset(): reset() sets 0. */
  markStale(): void {
    this.metrics.hostCpuUtilization.remove({});
    this.metrics.hostMemoryAvailable.remove({});
  }
}
