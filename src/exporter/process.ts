/**
 * vLLM's own processes seen from /proc (the seeds' "CPU util of the vLLM pid during cold vs
 * warm", done with pidstat/top by hand): CPU seconds as a counter (rate() gives cores) and
 * resident memory, summed over the matched processes — the API server and the engine
 * processes it forks. Matching shares gpu.process_match with the GPU collector.
 *
 * A sidecar only sees vLLM's processes when the pod shares its PID namespace
 * (`shareProcessNamespace: true`); without it this says so once in /status and exports nothing.
 *
 * Finding them means reading every process in /proc (and, by default, the socket tables), 18 %
 * of the daemon's CPU when done every scrape (docs/benchmarks.md, R7). So the matched pids are
 * remembered and only they are read on the next scrapes; everything is searched again when one
 * of them is gone or changed (a restart), and every RESCAN_MS anyway, so a process vLLM starts
 * later (another engine) is found within that time.
 */
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import { NoDataError } from '../errors.js';
import { buildProcessMatcher, startingVllm, type MatcherOptions } from '../host/processes.js';
import { isThisHost, listProcesses, readProc, type ProcSample } from '../host/proc.js';
import type { Metrics } from '../metrics.js';
import type { StatusBoard, Verdict } from '../status.js';
import { type Collector } from './collector.js';
import { CounterDeltas } from './vllm.js';

export type { ProcSample };

/** A full search for vLLM's processes at least this often, even when the known ones all live. */
const RESCAN_MS = 5 * 60_000;

/** What the collector reads processes with; tests give their own. */
export interface ProcessSource {
  list(): ProcSample[];
  read(pid: number): ProcSample | undefined;
  now(): number;
}

const PROC: ProcessSource = { list: listProcesses, read: readProc, now: Date.now };

export class VllmProcessCollector implements Collector {
  readonly name = 'vllm_process';
  readonly errorReasons = ['internal', 'not_visible'] as const;
  private readonly deltas = new CounterDeltas();
  /** The model label of the series last written: a new label (the model found, or changed) drops the old series, which would freeze beside the new one and double sum(). */
  private exportedModel: string | undefined;
  /** The matched processes of the last collection (the environment snapshot reads flags from it). */
  lastMatched: ProcSample[] = [];
  /** Told the matched processes after every collection (none: an empty list), e.g. to watch the engine. */
  onMatched: (matched: readonly ProcSample[]) => void = () => undefined;
  /** When the last full search for vLLM's processes ran. */
  private searchedAtMs = -Infinity;

  constructor(
    private readonly config: Config,
    private readonly metrics: Metrics,
    private readonly status: StatusBoard,
    private readonly model: () => string,
    private readonly log: Logger,
    private readonly source: ProcessSource = PROC,
    private readonly matcherOptions: Omit<MatcherOptions, 'targetUrl'> = {},
  ) {}

  /** The processes found last time, read again; undefined when one is gone or is another process now. */
  private followKnown(): ProcSample[] | undefined {
    if (this.lastMatched.length === 0 || this.source.now() - this.searchedAtMs >= RESCAN_MS) return undefined;
    const now: ProcSample[] = [];
    for (const known of this.lastMatched) {
      const p = this.source.read(known.pid);
      // The same pid with another name or parent is a reused pid, not our process.
      if (!p || p.comm !== known.comm || p.ppid !== known.ppid) return undefined;
      now.push(p);
    }
    return now;
  }

  /** Sets a check of this source; it reads unknown when three intervals pass without a new verdict. */
  private mark(name: string, verdict: Verdict, reason: string): void {
    this.status.set(name, verdict, reason, this.config.scrape.interval * 3 + this.config.scrape.timeout);
  }

  async collect(): Promise<void> {
    const followed = this.followKnown();
    if (followed) return this.export(followed);
    this.searchedAtMs = this.source.now();
    const match = await buildProcessMatcher(this.config.gpu.process_match, { targetUrl: this.config.target.url, ...this.matcherOptions });
    const procs = match.ok ? this.source.list() : [];
    // The GPU matcher takes nvidia-smi rows; a /proc entry is described by its name, as nvidia-smi does.
    const matched = match.ok ? procs.filter((p) => p.pid !== process.pid && match.matcher.matches({ pid: p.pid, process_name: p.comm })) : [];
    if (matched.length === 0) {
      const starting = match.ok || match.self ? [] : this.starting();
      if (starting.length) return this.export(starting, 'starting: not listening on vLLM\'s port yet');
      const seen = this.lastMatched;
      this.lastMatched = [];
      this.onMatched([]);
      const labels = this.labels();
      this.metrics.vllmProcessResidentMemory.remove(labels);
      this.metrics.vllmProcesses.labels(labels).set(0);
      const why = !match.ok
        ? match.error
        : `no process matches ${match.matcher.description} among the ${procs.length} visible from here; in a Kubernetes sidecar set shareProcessNamespace: true on the pod (docs/deploy.md)`;
      if (seen.length && (match.ok || !match.self)) {
        // It was seen a scrape ago: gone is a fact about vLLM, not a blind spot of this sidecar.
        this.mark('vllm_process', 'unhealthy', `vLLM's processes are gone (last seen: pids ${seen.map((p) => p.pid).join(', ')}): ${match.ok ? `${match.matcher.description} matches none now` : match.error}`);
        throw new NoDataError(`vLLM's processes are gone`, { reason: 'not_visible' });
      }
      // Not a judgement of vLLM: the check cannot run here, and says so.
      this.mark('vllm_process', 'skipped', !match.ok && match.self ? `not applicable: ${why}` : `vLLM process not visible: ${why}`);
      // Nothing was read, so the source is not up (the runner sets source_up 0 and logs this once).
      throw new NoDataError(`vLLM process not visible; process metrics skipped: ${why}`, { reason: 'not_visible' });
    }
    this.export(matched);
  }

  /** The current model label; the series of an earlier one are removed. */
  private labels(): { model: string } {
    const model = this.model();
    if (this.exportedModel !== undefined && this.exportedModel !== model) {
      const old = { model: this.exportedModel };
      this.metrics.vllmProcessCpuSeconds.remove(old);
      this.metrics.vllmProcessResidentMemory.remove(old);
      this.metrics.vllmProcesses.remove(old);
      this.log.debug({ from: this.exportedModel, to: model }, 'model label changed; process series moved to it');
    }
    this.exportedModel = model;
    return { model };
  }

  /** With the default matching (by port): vLLM's processes started for the port that do not listen yet. */
  private starting(): ProcSample[] {
    const m = this.config.gpu.process_match;
    if (m.pid !== undefined || m.pid_file !== undefined || m.name_pattern !== undefined) return [];
    const url = new URL(this.config.target.url);
    if (!isThisHost(url.hostname)) return [];
    const procs = this.source.list();
    const pids = new Set(startingVllm(procs, Number(url.port || (url.protocol === 'https:' ? 443 : 80))));
    return procs.filter((p) => pids.has(p.pid));
  }

  private export(matched: ProcSample[], note = ''): void {
    const labels = this.labels();
    this.lastMatched = matched;
    this.onMatched(matched);
    // Sum per pid so a process that exits (or a restart with new pids) never moves the counter back.
    let cpuIncrease = 0;
    for (const p of matched) cpuIncrease += this.deltas.delta(`cpu:${p.pid}`, p.cpuSeconds);
    this.metrics.vllmProcessCpuSeconds.labels(labels).inc(cpuIncrease);
    const rss = matched.reduce((a, p) => a + p.rssBytes, 0);
    this.metrics.vllmProcessResidentMemory.labels(labels).set(rss);
    this.metrics.vllmProcesses.labels(labels).set(matched.length);
    this.mark('vllm_process', 'healthy', `${matched.length} vLLM process${matched.length === 1 ? '' : 'es'} (pids ${matched.map((p) => p.pid).join(', ')}), resident ${(rss / 2 ** 30).toFixed(2)} GiB${note ? `; ${note}` : ''}`);
  }
}
