/**
 * Host collector ("host"): the two node numbers an SRE wants next to the GPU panels, from
 * systeminformation. CPU busy fraction (vLLM tokenises, schedules and detokenises on the CPU; a
 * saturated CPU starves a fast GPU) and available memory (swap space and CPU KV offload live
 * there). Everything else about the node is node_exporter's job.
 *
 * Cost per run, measured on Linux: currentLoad about 5 ms (systeminformation reads /proc/stat
 * through a short synchronous `cat`), mem() one async read of /proc/meminfo. In a container
 * both describe the host, not the cgroup.
 */
import { createRequire } from 'node:module';
import type Si from 'systeminformation';
import { type Collector } from '../exporter/collector.js';
import { SourceError } from '../errors.js';
import type { Metrics } from '../metrics.js';

// The two systeminformation modules we call, not its index, which loads all twenty of them
// (battery, docker, wifi, printers…): −3 MB private memory, −7 MB RSS for the daemon
// (docs/benchmarks.md, benchmark 3).
const require = createRequire(import.meta.url);
const si = {
  currentLoad: (require('systeminformation/lib/cpu.js') as Pick<typeof Si, 'currentLoad'>).currentLoad,
  mem: (require('systeminformation/lib/memory.js') as Pick<typeof Si, 'mem'>).mem,
};

export class HostCollector implements Collector {
  readonly name = 'host';
  /**
   * systeminformation's currentLoad is the busy fraction since its previous call; the first
   * call in a process averages since boot. The first collection only primes it, so the CPU
   * series appears one interval later and never shows a since-boot average.
   */
  private primed = false;

  constructor(private readonly metrics: Metrics) {
    // prom-client starts a label-less gauge at 0; "0 bytes available" before the first read
    // would be a lie, so drop the samples until there is a value.
    this.markStale();
  }

  async collect(signal: AbortSignal): Promise<void> {
    const [load, mem] = await abortable(Promise.all([si.currentLoad(), si.mem()]), signal);
    const available = mem.available;
    if (!Number.isFinite(available) || available < 0) {
      throw new SourceError('unparsable', `systeminformation mem().available is ${String(available)}`);
    }
    this.metrics.hostMemoryAvailable.set(available);
    const ratio = load.currentLoad / 100;
    if (this.primed && Number.isFinite(ratio)) {
      // Rounding in the tick arithmetic can land a hair outside 0-1.
      this.metrics.hostCpuUtilization.set(Math.min(1, Math.max(0, ratio)));
    }
    this.primed = true;
  }

  /** A failed read leaves no old numbers behind. remove({}), not reset(): reset() sets 0. */
  markStale(): void {
    this.metrics.hostCpuUtilization.remove({});
    this.metrics.hostMemoryAvailable.remove({});
  }
}

/** systeminformation takes no signal: stop waiting (the read itself is short and harmless). */
function abortable<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason instanceof Error ? signal.reason : new Error('aborted'));
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason instanceof Error ? signal.reason : new Error('aborted'));
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}
