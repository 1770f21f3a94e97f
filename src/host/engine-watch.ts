/**
 * Tells a crashed engine from a stopped server. When vLLM's EngineCore dies (OOM kill, a CUDA
 * fault, SIGKILL), the API server answers HTTP 500 EngineDeadError for a moment and exits:
 * 0.3 s later on the CPU build, 1.4 s on an H100 (docs/runbook.md). A scrape every 15 s almost
 * never sees that moment, and afterwards a crash looks like any stop: nothing listens. So the
 * processes the collector found are followed, and their exits learnt as they happen
 * (src/host/process-exits.ts); an engine process that exits while the API server still listens
 * on vLLM's port is the crash. A stop (SIGTERM to the process group) may end the engine a moment
 * before the API server closes its listening socket (seen on an H100), so the exit counts as a
 * crash only if the API server still listens `confirmMs` later: a stopping uvicorn closes its
 * socket within ~0.1 s, a crashed API server keeps it 0.3 s (CPU build) to 1.4 s (H100).
 */
import { serverPidFor } from './proc.js';
import { PidfdExits, PolledExits, type ExitSource } from './process-exits.js';

export interface WatchedProcess {
  pid: number;
  comm: string;
}

export interface EngineWatchOptions {
  targetUrl: string;
  /** Called once per engine process that exits while the API server still listens. */
  onEngineExit: (words: string, at: number) => void;
  /** How often liveness is read where pidfds cannot be held (src/host/process-exits.ts). */
  intervalMs?: number;
  /** How long the API server must still listen after the engine's exit for it to be a crash. */
  confirmMs?: number;
  /** Called once if the pidfd helper cannot run, with the reason; the watch polls from then on. */
  onPolling?: (reason: string) => void;
  /** Tests give their own views of the host; a given `alive` means polling. */
  alive?: (pid: number) => boolean;
  listener?: (targetUrl: string) => number | undefined;
  /** Tests: polling from the start, or another perl for the pidfd helper. */
  exits?: 'poll' | { perl: string };
}

export class EngineWatch {
  private known: WatchedProcess[] = [];
  private source: ExitSource;
  private readonly listener: (targetUrl: string) => number | undefined;

  constructor(private readonly options: EngineWatchOptions) {
    this.listener = options.listener ?? serverPidFor;
    const exited = (pids: readonly number[]) => this.exited(pids);
    this.source =
      options.alive || options.exits === 'poll'
        ? this.polled()
        : new PidfdExits(exited, (reason) => this.fallBack(reason), options.exits?.perl);
  }

  /** The processes the collector matched last: followed until they exit or the next call. */
  follow(processes: readonly WatchedProcess[]): void {
    this.known = processes.map((p) => ({ pid: p.pid, comm: p.comm }));
    this.source.follow(this.known.map((p) => p.pid));
  }

  /** One liveness pass where the watch polls (tests call it directly); nothing with pidfds. */
  tick(): void {
    if (this.source instanceof PolledExits) this.source.tick();
  }

  stop(): void {
    this.source.stop();
  }

  private polled(): PolledExits {
    return new PolledExits(this.options.intervalMs ?? 100, (pids) => this.exited(pids), this.options.alive);
  }

  private fallBack(reason: string): void {
    this.options.onPolling?.(reason);
    this.source = this.polled();
    this.source.follow(this.known.map((p) => p.pid));
  }

  private exited(pids: readonly number[]): void {
    const gone = this.known.filter((p) => pids.includes(p.pid));
    if (gone.length === 0) return;
    this.known = this.known.filter((p) => !gone.includes(p));
    // Only now, on an exit, is the socket table read: is the API server still listening?
    const server = this.listener(this.options.targetUrl);
    const serverLives = server !== undefined && !gone.some((p) => p.pid === server);
    if (!serverLives) return;
    const at = Date.now();
    const confirm = () => {
      if (this.listener(this.options.targetUrl) !== server) return; // it was stopping: not a crash
      for (const p of gone) this.options.onEngineExit(`vLLM process ${p.pid} (${p.comm}) exited, API server ${server} still up`, at);
    };
    const wait = this.options.confirmMs ?? 150;
    if (wait <= 0) confirm();
    else setTimeout(confirm, wait).unref();
  }
}
