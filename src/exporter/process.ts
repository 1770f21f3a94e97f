/**
 * vLLM's own processes seen from /proc (the seeds' "CPU util of the vLLM pid during cold vs
 * warm", done with pidstat/top by hand): CPU seconds as a counter (rate() gives cores) and
 * resident memory, summed over the matched processes — the API server and the engine
 * processes it forks. Matching shares gpu.process_match with the GPU collector.
 *
 * A sidecar only sees vLLM's processes when the pod shares its PID namespace
 * (`shareProcessNamespace: true`); without it this says so once in /status and exports nothing.
 */
import { readFileSync, readdirSync } from 'node:fs';
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import { buildProcessMatcher } from '../gpu/processes.js';
import type { Metrics } from '../metrics.js';
import type { StatusBoard } from '../status.js';
import { type Collector } from './collector.js';
import { CounterDeltas } from './vllm.js';

/** Linux reports utime/stime in clock ticks; USER_HZ is 100 on every mainstream kernel build. */
const CLOCK_TICKS_PER_SECOND = 100;

export interface ProcSample {
  pid: number;
  comm: string;
  cmdline: string;
  cpuSeconds: number;
  rssBytes: number;
}

/** Parses /proc/<pid>/stat (comm may hold spaces and parentheses) and status VmRSS. Pure. */
export function parseProcStat(stat: string, status: string): { cpuSeconds: number; rssBytes: number; comm: string } | undefined {
  const open = stat.indexOf('(');
  const close = stat.lastIndexOf(')');
  if (open < 0 || close < open) return undefined;
  const fields = stat.slice(close + 2).split(' ');
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  const rss = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
  if (!Number.isFinite(utime) || !Number.isFinite(stime)) return undefined;
  return { comm: stat.slice(open + 1, close), cpuSeconds: (utime + stime) / CLOCK_TICKS_PER_SECOND, rssBytes: rss ? Number(rss[1]) * 1024 : 0 };
}

function readProc(pid: number): ProcSample | undefined {
  try {
    const parsed = parseProcStat(readFileSync(`/proc/${pid}/stat`, 'utf8'), readFileSync(`/proc/${pid}/status`, 'utf8'));
    if (!parsed) return undefined;
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean).join(' ');
    return { pid, ...parsed, cmdline };
  } catch {
    return undefined; // exited between listing and reading
  }
}

export function listProcesses(): ProcSample[] {
  const out: ProcSample[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    const p = readProc(Number(name));
    if (p) out.push(p);
  }
  return out;
}

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
  ) {}

  async collect(): Promise<void> {
    const match = await buildProcessMatcher(this.config.gpu.process_match);
    const procs = this.list();
    // The GPU matcher takes nvidia-smi rows; a /proc entry is described the same way.
    const matched = match.ok ? procs.filter((p) => match.matcher.matches({ pid: p.pid, process_name: `${p.comm} ${p.cmdline}`, gpu_uuid: '', used_memory_bytes: null })) : [];
    const labels = { model: this.model() };
    this.lastMatched = matched;
    if (matched.length === 0) {
      this.metrics.vllmProcessResidentMemory.remove(labels);
      this.metrics.vllmProcesses.labels(labels).set(0);
      const why = !match.ok
        ? match.error
        : `no process matches ${match.matcher.description} among the ${procs.length} visible from here; in a Kubernetes sidecar set shareProcessNamespace: true on the pod (docs/deploy.md)`;
      this.status.set('vllm_process', 'healthy', `vLLM process not visible: ${why}`);
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
    this.status.set('vllm_process', 'healthy', `${matched.length} vLLM process${matched.length === 1 ? '' : 'es'} (pids ${matched.map((p) => p.pid).join(', ')}), resident ${(rss / 2 ** 30).toFixed(2)} GiB`);
  }
}
