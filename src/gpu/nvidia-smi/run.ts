/**
 * Runs nvidia-smi safely: execFile (never a shell), a hard timeout that SIGKILLs the child, an
 * output cap, and single flight. One runner per process, owned by the daemon (or by the one
 * CLI command that needs it); the parsers are in ./parse.ts.
 */
import { execFile, type ChildProcess, type ExecFileException } from 'node:child_process';
import { NoDataError, SourceError } from '../../errors.js';
import { GPU_FIELDS, COMPUTE_APPS_FIELDS, CSV_FORMAT, parseHelpQueryGpu, invalidFieldsIn, parseGpuQuery, parseComputeApps, type ParsedGpuQuery, type ComputeApp, firstWords, SPEC_BY_NAME } from './parse.js';
// ---------------------------------------------------------------------------------------------
// Running the binary
// ---------------------------------------------------------------------------------------------

/** What a finished child printed. A non-zero exit is a value here; callers decide what it means. */
export interface RunResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

export interface NvidiaSmiOptions {
  /** Binary name (looked up in PATH) or path: config.gpu.nvidia_smi_path. */
  path: string;
  /** Hard limit per child, ms. Past it the child gets SIGKILL and the run fails with reason timeout. */
  timeoutMs: number;
  /** Largest stdout or stderr accepted, bytes (default 1 MiB; 8 GPUs print about 2 KiB). */
  maxOutputBytes?: number;
}

/** How the queried field list was chosen. */
export type FieldDiscovery = 'help-query-gpu' | 'drop-invalid-and-retry';

/** One `--query-gpu` reading, with how its fields were chosen. */
export interface GpuQuery extends ParsedGpuQuery {
  /** The names actually queried, in order. */
  fields: string[];
  /** Wanted fields this driver does not accept (first spelling of each), so not queried. */
  unsupported: string[];
  discovery: FieldDiscovery;
}

/**
 * One nvidia-smi binary. Keeps what it learnt about the driver (supported fields) between
 * calls; create one per daemon, not per collection.
 *
 * Concurrency contract: at most one child runs at a time. A call for the same arguments as a
 * run in flight shares that run's result; a different call waits its turn. Each caller's
 * signal bounds only its own wait; the run itself is bounded by the starter's signal and by
 * `timeoutMs`.
 */
export class NvidiaSmi {
  readonly path: string;
  private readonly timeoutMs: number;
  private readonly maxOutputBytes: number;
  /** undefined: not yet known; null: --help-query-gpu unusable, so drop-and-retry. */
  private supported: Set<string> | null | undefined;
  /** Names the driver rejected with `Field "x" is not a valid field to query.` */
  private readonly rejected = new Set<string>();
  private readonly inflight = new Map<string, Promise<RunResult>>();
  private tail: Promise<unknown> = Promise.resolve();
  /** A child we SIGKILLed that has not exited yet (stuck in the driver: D state ignores SIGKILL). */
  private unexited: { pid: number; killedAt: number } | undefined;

  constructor(options: NvidiaSmiOptions) {
    if (!(options.timeoutMs > 0)) throw new Error(`nvidia-smi timeoutMs must be positive, got ${options.timeoutMs}`);
    this.path = options.path;
    this.timeoutMs = options.timeoutMs;
    this.maxOutputBytes = options.maxOutputBytes ?? 1024 * 1024;
  }

  /**
   * Reads every GPU. Resolves with at least one GPU; throws NoDataError when nvidia-smi says
   * there are none, SourceError for everything else that went wrong.
   */
  async queryGpus(signal: AbortSignal): Promise<GpuQuery> {
    await this.discoverFields(signal);
    // Each retry drops at least one field, so this ends after at most GPU_FIELDS.length tries.
    for (let attempt = 0; ; attempt++) {
      const { fields, unsupported } = this.selectFields();
      const result = await this.run([`--query-gpu=${fields.join(',')}`, CSV_FORMAT], signal);
      const output = `${result.stdout}\n${result.stderr}`;
      if (/No devices were found/i.test(output)) throw new NoDataError('nvidia-smi: No devices were found');
      if (result.exitCode !== 0) {
        const invalid = invalidFieldsIn(output).filter((f) => fields.includes(f) && !SPEC_BY_NAME.get(f)?.required);
        if (invalid.length > 0 && attempt < GPU_FIELDS.length) {
          for (const f of invalid) this.rejected.add(f);
          continue;
        }
        throw exitError(result);
      }
      if (result.stdout.trim() === '') throw new NoDataError('nvidia-smi listed no GPUs');
      const parsed = parseGpuQuery(result.stdout, fields);
      const discovery: FieldDiscovery = this.supported ? 'help-query-gpu' : 'drop-invalid-and-retry';
      return { ...parsed, fields, unsupported, discovery };
    }
  }

  /** The compute processes on every GPU (an empty list is valid). Throws SourceError on failure. */
  async queryComputeApps(signal: AbortSignal): Promise<ComputeApp[]> {
    const result = await this.run([`--query-compute-apps=${COMPUTE_APPS_FIELDS.join(',')}`, CSV_FORMAT], signal);
    if (result.exitCode !== 0) {
      if (/No devices were found/i.test(`${result.stdout}\n${result.stderr}`)) return [];
      throw exitError(result);
    }
    return parseComputeApps(result.stdout);
  }

  /** Learns the accepted field names once. A failed spawn or timeout is retried next time. */
  private async discoverFields(signal: AbortSignal): Promise<void> {
    if (this.supported !== undefined) return;
    const result = await this.run(['--help-query-gpu'], signal);
    const names = result.exitCode === 0 ? parseHelpQueryGpu(result.stdout) : new Set<string>();
    // A help text without index and uuid is not one we understand: fall back to drop-and-retry.
    this.supported = names.has('index') && names.has('uuid') ? names : null;
  }

  private selectFields(): { fields: string[]; unsupported: string[] } {
    const fields: string[] = [];
    const unsupported: string[] = [];
    for (const spec of GPU_FIELDS) {
      const name = spec.names.find((n) => (spec.required || !this.supported || this.supported.has(n)) && !this.rejected.has(n));
      if (name) fields.push(name);
      else unsupported.push(spec.names[0]!);
    }
    return { fields, unsupported };
  }

  /** Runs one child under the single-flight rules above. */
  private run(args: string[], signal: AbortSignal): Promise<RunResult> {
    const key = args.join('\u0000');
    let shared = this.inflight.get(key);
    if (!shared) {
      const started = this.tail.then(() => this.spawnOnce(args, signal));
      shared = started.finally(() => this.inflight.delete(key));
      this.inflight.set(key, shared);
      this.tail = shared.catch(() => undefined);
    }
    return raceAbort(shared, signal);
  }

  private spawnOnce(args: string[], signal: AbortSignal): Promise<RunResult> {
    return new Promise<RunResult>((resolve, reject) => {
      if (signal.aborted) return reject(abortReason(signal));
      if (this.unexited) {
        const ago = ((Date.now() - this.unexited.killedAt) / 1000).toFixed(0);
        return reject(
          new SourceError(
            'timeout',
            `nvidia-smi (pid ${this.unexited.pid}) was killed ${ago}s ago after a timeout and has not exited (stuck in the driver?); not starting another`,
          ),
        );
      }
      let settled = false;
      const finish = () => {
        settled = true;
        clearTimeout(timer);
        signal.removeEventListener('abort', onAbort);
      };
      const child: ChildProcess = execFile(
        this.path,
        args,
        { encoding: 'utf8', maxBuffer: this.maxOutputBytes, killSignal: 'SIGKILL', windowsHide: true },
        (err: ExecFileException | null, stdout: string, stderr: string) => {
          if (settled) return;
          finish();
          if (!err) return resolve({ exitCode: 0, stdout, stderr });
          if (typeof err.code === 'number') return resolve({ exitCode: err.code, stdout, stderr });
          reject(spawnError(err, this.path, this.maxOutputBytes));
        },
      );
      // Kill, don't wait for the child's pipes to close: a grandchild holding them, or a child
      // stuck in the driver, must not hold this call past its deadline.
      const abandon = (error: Error) => {
        if (settled) return;
        finish();
        if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) {
          const pid = child.pid;
          this.unexited = { pid, killedAt: Date.now() };
          child.once('exit', () => {
            if (this.unexited?.pid === pid) this.unexited = undefined;
          });
          child.kill('SIGKILL');
        }
        child.stdout?.destroy();
        child.stderr?.destroy();
        reject(error);
      };
      const timer = setTimeout(
        () => abandon(new SourceError('timeout', `nvidia-smi did not finish within ${this.timeoutMs / 1000}s; killed it (SIGKILL)`)),
        this.timeoutMs,
      );
      const onAbort = () => abandon(abortReason(signal));
      signal.addEventListener('abort', onAbort, { once: true });
    });
  }
}

function exitError(result: RunResult): SourceError {
  return new SourceError('exit_status', `nvidia-smi exited ${result.exitCode}: ${firstWords(result.stderr, result.stdout)}`);
}

function spawnError(err: ExecFileException, path: string, maxBytes: number): Error {
  const code = typeof err.code === 'string' ? err.code : undefined;
  if (code === 'ENOENT' || code === 'EACCES' || code === 'ENOTDIR' || code === 'EISDIR') {
    return new SourceError('missing_binary', `cannot run nvidia-smi at "${path}": ${code} (set gpu.nvidia_smi_path, or gpu.enabled: false)`, { cause: err });
  }
  if (code === 'ERR_CHILD_PROCESS_STDIO_MAXBUFFER') {
    return new SourceError('too_large', `nvidia-smi printed more than ${maxBytes} bytes; killed it`, { cause: err });
  }
  if (err.signal) return new SourceError('exit_status', `nvidia-smi was killed by ${err.signal}`, { cause: err });
  return new SourceError('exit_status', `nvidia-smi failed: ${code ?? err.message}`, { cause: err });
}

function abortReason(signal: AbortSignal): Error {
  return signal.reason instanceof Error ? signal.reason : new Error(String(signal.reason ?? 'aborted'));
}

/** Settles with `promise`, or rejects as soon as `signal` aborts (leaving `promise` running). */
function raceAbort<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(abortReason(signal));
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(abortReason(signal));
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(e instanceof Error ? e : new Error(String(e)));
      },
    );
  });
}
