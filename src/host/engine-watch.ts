/**
 * Tells a crashed engine from a stopped server. When vLLM's EngineCore dies (OOM kill, a CUDA
 * fault, SIGKILL), the API server answers HTTP 500 EngineDeadError for a moment and exits:
 * 0.3 s later on the CPU build, 1.4 s on an H100 (docs/runbook.md). A scrape every 15 s almost
 * never sees that moment, and afterwards a crash looks like any stop: nothing listens. So the
 * processes the collector found are followed with a cheap liveness check (one stat per pid)
 * several times a second; an engine process that exits while the API server still listens on
 * vLLM's port is the crash. A stop (SIGTERM to the process group) may end the engine a moment
 * before the API server closes its listening socket (seen on an H100), so the exit counts as a
 * crash only if the API server still listens `confirmMs` later: a stopping uvicorn closes its
 * socket within ~0.1 s, a crashed API server keeps it 0.3 s (CPU build) to 1.4 s (H100).
 */
import { closeSync, openSync, readSync } from 'node:fs';
import { serverPidFor } from './proc.js';

export interface WatchedProcess {
  pid: number;
  comm: string;
}

/**
 * Liveness of the followed processes, read ten times a second: alive and not a zombie (a killed
 * child its parent has not reaped yet is already dead). Each /proc/<pid>/stat is opened
 * once and read again in place: one pread per process and tick, no open, close or path string.
 * Reading it afresh each time (open, read, close) made the watch most of the daemon's CPU at
 * rest (docs/benchmarks.md, footprint). A /proc file held open for a process that exits fails
 * to read (ESRCH), also if its pid is reused meanwhile.
 */
export class ProcessLiveness {
  private readonly fds = new Map<number, number>();
  private readonly buf = Buffer.alloc(1024);

  constructor(private readonly procRoot = '/proc') {}

  alive(pid: number): boolean {
    let fd = this.fds.get(pid);
    if (fd === undefined) {
      try {
        fd = openSync(`${this.procRoot}/${pid}/stat`, 'r');
      } catch {
        return false;
      }
      this.fds.set(pid, fd);
    }
    try {
      const n = readSync(fd, this.buf, 0, this.buf.length, 0);
      const close = this.buf.lastIndexOf(0x29 /* ) */, n - 1);
      const state = close >= 0 ? this.buf[close + 2] : undefined;
      return state !== undefined && state !== 0x5a /* Z */ && state !== 0x58 /* X */;
    } catch {
      return false;
    }
  }

  /** Closes the files of every pid not in `pids`. */
  keepOnly(pids: ReadonlySet<number>): void {
    for (const [pid, fd] of this.fds) {
      if (pids.has(pid)) continue;
      closeSync(fd);
      this.fds.delete(pid);
    }
  }
}

export interface EngineWatchOptions {
  targetUrl: string;
  /** Called once per engine process that exits while the API server still listens. */
  onEngineExit: (words: string, at: number) => void;
  intervalMs?: number;
  /** How long the API server must still listen after the engine's exit for it to be a crash. */
  confirmMs?: number;
  /** Tests give their own views of the host. */
  alive?: (pid: number) => boolean;
  listener?: (targetUrl: string) => number | undefined;
}

export class EngineWatch {
  private known: WatchedProcess[] = [];
  private timer: NodeJS.Timeout | undefined;
  private readonly alive: (pid: number) => boolean;
  private readonly listener: (targetUrl: string) => number | undefined;
  private readonly liveness = new ProcessLiveness();

  constructor(private readonly options: EngineWatchOptions) {
    this.alive = options.alive ?? ((pid) => this.liveness.alive(pid));
    this.listener = options.listener ?? serverPidFor;
  }

  /** The processes the collector matched last: followed until they exit or the next call. */
  follow(processes: readonly WatchedProcess[]): void {
    this.known = processes.map((p) => ({ pid: p.pid, comm: p.comm }));
    this.liveness.keepOnly(new Set(this.known.map((p) => p.pid)));
    if (this.known.length === 0) return this.stop();
    this.timer ??= setInterval(() => this.tick(), this.options.intervalMs ?? 100).unref();
  }

  /** One liveness pass (the timer's; tests call it directly). */
  tick(): void {
    const gone = this.known.filter((p) => !this.alive(p.pid));
    if (gone.length === 0) return;
    this.known = this.known.filter((p) => !gone.includes(p));
    this.liveness.keepOnly(new Set(this.known.map((p) => p.pid)));
    // Only now, on an exit, is the socket table read: is the API server still listening?
    const server = this.listener(this.options.targetUrl);
    const serverLives = server !== undefined && !gone.some((p) => p.pid === server);
    if (serverLives) {
      const at = Date.now();
      const confirm = () => {
        if (this.listener(this.options.targetUrl) !== server) return; // it was stopping: not a crash
        for (const p of gone) this.options.onEngineExit(`vLLM process ${p.pid} (${p.comm}) exited while the API server (pid ${server}) still listened`, at);
      };
      const wait = this.options.confirmMs ?? 150;
      if (wait <= 0) confirm();
      else setTimeout(confirm, wait).unref();
    }
    if (this.known.length === 0) this.stop();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.liveness.keepOnly(new Set()); // reopened on demand if followed again
  }
}
