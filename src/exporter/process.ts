/**
 * vLLM's own processes seen from /proc (the seeds' "CPU util of the vLLM pid during cold vs
 * warm", done with pidstat/top by hand): CPU seconds as a counter (rate() gives cores) and
 * resident memory, summed over the matched processes — the API server and the engine
 * processes it forks. Matching shares gpu.process_match with the GPU collector.
 *
 * A sidecar only sees vLLM's processes when the pod shares its PID namespace
 * (`shareProcessNamespace: true`); without it this says so once in /status and exports nothing.
 */
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import { buildProcessMatcher, type MatcherOptions } from '../gpu/processes.js';
import { listProcesses, type ProcSample } from '../host/proc.js';
import type { Metrics } from '../metrics.js';
import type { StatusBoard, Verdict } from '../status.js';
import { type Collector } from './collector.js';
import { CounterDeltas } from './vllm.js';

export type { ProcSample };

export class VllmProcessCollector implements Collector {
  readonly name = 'vllm_process';
  readonly errorReasons = ['internal'] as const;
  private readonly deltas = new CounterDeltas();
  private reportedInvisible = false;
  /** The matched processes of the last collection (the environment snapshot reads flags from it). */
  lastMatched: ProcSample[] = [];

  constructor(
    private readonly config: Config,
    private readonly metrics: Metrics,
    private readonly status: StatusBoard,
    private readonly model: () => string,
    private readonly log: Logger,
    private readonly list: () => ProcSample[] = listProcesses,
    private readonly matcherOptions: Omit<MatcherOptions, 'targetUrl'> = {},
  ) {}

  /** Sets a check of this source; it reads unknown when three intervals pass without a new verdict. */
  private mark(name: string, verdict: Verdict, reason: string): void {
    this.status.set(name, verdict, reason, this.config.scrape.interval * 3 + this.config.scrape.timeout);
  }

  async collect(): Promise<void> {
    const match = await buildProcessMatcher(this.config.gpu.process_match, { targetUrl: this.config.target.url, ...this.matcherOptions });
    const procs = match.ok ? this.list() : [];
    // The GPU matcher takes nvidia-smi rows; a /proc entry is described by its name, as nvidia-smi does.
    const matched = match.ok ? procs.filter((p) => p.pid !== process.pid && match.matcher.matches({ pid: p.pid, process_name: p.comm, gpu_uuid: '', used_memory_bytes: null })) : [];
    const labels = { model: this.model() };
    this.lastMatched = matched;
    if (matched.length === 0) {
      this.metrics.vllmProcessResidentMemory.remove(labels);
      this.metrics.vllmProcesses.labels(labels).set(0);
      const why = !match.ok
        ? match.error
        : `no process matches ${match.matcher.description} among the ${procs.length} visible from here; in a Kubernetes sidecar set shareProcessNamespace: true on the pod (docs/deploy.md)`;
      // Not a judgement of vLLM: the check cannot run here, and says so.
      this.mark('vllm_process', 'skipped', !match.ok && match.self ? `not applicable: ${why}` : `vLLM process not visible: ${why}`);
      if (!this.reportedInvisible) this.log.info({ why }, 'vLLM process not visible; process metrics skipped');
      this.reportedInvisible = true;
      return;
    }
    this.reportedInvisible = false;
    // Sum per pid so a process that exits (or a restart with new pids) never moves the counter back.
    let cpuIncrease = 0;
    for (const p of matched) cpuIncrease += this.deltas.delta(`cpu:${p.pid}`, p.cpuSeconds);
    this.metrics.vllmProcessCpuSeconds.labels(labels).inc(cpuIncrease);
    const rss = matched.reduce((a, p) => a + p.rssBytes, 0);
    this.metrics.vllmProcessResidentMemory.labels(labels).set(rss);
    this.metrics.vllmProcesses.labels(labels).set(matched.length);
    this.mark('vllm_process', 'healthy', `${matched.length} vLLM process${matched.length === 1 ? '' : 'es'} (pids ${matched.map((p) => p.pid).join(', ')}), resident ${(rss / 2 ** 30).toFixed(2)} GiB`);
  }
}
