/**
 * What the bench commands share, below every experiment: the I/O they are given, running a
 * user's command without a shell, progress lines, where a run's files go, the --target URL,
 * waiting for a restart, and the KV arithmetic. Imports nothing from the experiments.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseTargetUrl } from '../target-url.js';
import type { VllmClient } from '../vllm/client.js';
import { healthy, processStart } from './http.js';
import { BenchRunError, BenchUsageError } from './options.js';
import type { Redactor } from './redact.js';

export interface BenchIo {
  stdout: (t: string) => void;
  stderr: (t: string) => void;
  signal: AbortSignal;
  env: NodeJS.ProcessEnv;
  isTTY?: boolean;
}

/** Splits a command line into argv without a shell: quotes group, nothing is expanded. */
export function splitCommand(cmd: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quote: string | null = null;
  let has = false;
  for (const c of cmd) {
    if (quote) {
      if (c === quote) quote = null;
      else cur += c;
    } else if (c === '"' || c === "'") {
      quote = c;
      has = true;
    } else if (/\s/.test(c)) {
      if (has || cur) out.push(cur);
      cur = '';
      has = false;
    } else cur += c;
  }
  if (quote) throw new BenchUsageError(`unbalanced quote in command: ${cmd}`);
  if (has || cur) out.push(cur);
  return out;
}

/** Runs a user-given command with execFile (no shell); resolves with its exit status. */
export function runCommand(cmd: string, signal: AbortSignal, timeoutMs = 600_000): Promise<{ code: number; stderr: string }> {
  const [file, ...args] = splitCommand(cmd);
  if (!file) throw new BenchUsageError('empty command');
  return new Promise((resolve) => {
    execFile(file, args, { signal, timeout: timeoutMs, maxBuffer: 4 * 1024 * 1024 }, (err, _stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : 127) : 0;
      resolve({ code, stderr: String(stderr).trim() || (err ? err.message : '') });
    });
  });
}

/**
 * Progress on stderr, with secrets redacted. On a terminal: one line redrawn in place.
 * Otherwise (CI, a log file): one line per finished cell with the estimated time left, and
 * nothing in between. The ETA is the pace of the cells since `begin()` (a restart or a
 * calibration before the first cell is not a cell's cost).
 */
export class Progress {
  private last = 0;
  private t0: number;
  constructor(
    private readonly io: BenchIo,
    private readonly tty: boolean,
    private readonly redactor: Redactor,
    // Tests pass a clock to check the ETA without waiting.
    private readonly now: () => number = () => performance.now(),
  ) {
    this.t0 = this.now();
  }
  /** The cells start now: the ETA counts from here. */
  begin(): void {
    this.t0 = this.now();
  }
  update(text: string): void {
    if (!this.tty) return;
    const now = this.now();
    if (now - this.last < 100) return;
    this.last = now;
    this.io.stderr(`\r\x1b[2K${this.clean(text)}`);
  }
  /** Cell `done` of `total` finished: the line says so, with an ETA from the pace since begin(). */
  cell(done: number, total: number, text: string): void {
    const elapsed = (this.now() - this.t0) / 1000;
    const eta = done < total ? `, about ${formatDuration((elapsed / done) * (total - done))} left` : '';
    this.line(`[${done}/${total}] ${text}${eta}`);
  }
  line(text: string): void {
    if (this.tty) this.io.stderr(`\r\x1b[2K`);
    this.io.stderr(`${this.clean(text)}\n`);
  }
  private clean(text: string): string {
    return this.redactor.text(text);
  }
}

/** Seconds as people say them: "45 s", "2 min 30 s", "1 h 5 min". */
export function formatDuration(s: number): string {
  if (s < 60) return `${Math.max(1, Math.round(s))} s`;
  const m = Math.floor(s / 60);
  return m < 60 ? `${m} min ${Math.round(s % 60)} s` : `${Math.floor(m / 60)} h ${m % 60} min`;
}

/**
 * Where one run's files go. Several runs may share an --out folder: the first of an
 * experiment gets the plain names (concurrency_sweep.csv, sweep.summary.json), later ones a
 * -2, -3 … suffix, so nothing is overwritten and `bench report` sees every run.
 */
export class RunFiles {
  readonly suffix: string;
  private readonly pending: Array<[string, string]> = [];
  /** `redactor` cleans every file's text and the summary before anything is written. */
  constructor(readonly dir: string, readonly experiment: string, private readonly redactor: Redactor) {
    let n = 1;
    while (existsSync(join(dir, `${experiment}${n === 1 ? '' : `-${n}`}.summary.json`))) n++;
    this.suffix = n === 1 ? '' : `-${n}`;
  }
  /** The file name for `name` in this run: "concurrency_sweep.csv" → "concurrency_sweep-2.csv". */
  name(name: string): string {
    const dot = name.indexOf('.');
    return dot < 0 ? `${name}${this.suffix}` : `${name.slice(0, dot)}${this.suffix}${name.slice(dot)}`;
  }
  add(name: string, text: string): string {
    this.pending.push([this.name(name), text]);
    return this.name(name);
  }
  /** Writes the collected files and the summary (which lists them); returns the summary path. */
  commit(summary: Record<string, unknown>): string {
    mkdirSync(this.dir, { recursive: true });
    const clean = (text: string) => this.redactor.text(text);
    for (const [name, text] of this.pending) writeFileSync(join(this.dir, name), clean(text));
    const file = join(this.dir, `${this.experiment}${this.suffix}.summary.json`);
    writeFileSync(file, clean(`${JSON.stringify({ ...summary, files: this.pending.map(([n]) => n) }, null, 2)}\n`));
    return file;
  }
}

/**
 * The base URL from --target (or --baseline), without trailing slashes; a usage error in the
 * words config and /probe use for the same spelling (src/target-url.ts): http(s) only, no
 * credentials, no /v1.
 */
export function benchTarget(text: string | undefined, flag = '--target'): string {
  const parsed = parseTargetUrl(text ?? 'http://127.0.0.1:8000', 'bench reads the API key from the variable named by --api-key-env');
  if (!parsed.ok) throw new BenchUsageError(`${flag}: ${parsed.error}`);
  return parsed.base;
}

/** The client for --target (closed by the caller) and the model: --model, else the first served. */
/** Waits until vLLM has restarted (start time changed, or down then up) and answers /health. */
export async function waitForRestart(client: VllmClient, before: number | undefined, signal: AbortSignal, timeoutMs: number, onTick?: (s: string) => void): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  let sawDown = false;
  while (performance.now() < deadline) {
    if (signal.aborted) throw new BenchRunError('interrupted');
    const up = await healthy(client, signal);
    if (!up) sawDown = true;
    if (up) {
      const now = await processStart(client, signal);
      // Any change of the start time is a new process (a restart can follow a start by under a second).
      if (sawDown || (before !== undefined && now !== undefined && Math.abs(now - before) > 0.001)) return;
    }
    onTick?.(up ? 'vLLM still running the old process…' : 'vLLM is down, waiting for /health…');
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new BenchRunError(`vLLM did not restart and come back within ${Math.round(timeoutMs / 1000)} s`);
}

/** Sequences of `context` tokens that fit in `capacity` tokens, block-rounded like vLLM. */
export function sequencesThatFit(capacityTokens: number, context: number, blockSize: number): number {
  const perSeq = Math.ceil(context / blockSize) * blockSize;
  return Math.floor(capacityTokens / perSeq);
}

export const KV_SCALING_HEADER = [
  'max_model_len',
  'gpu_mem_before_start_bytes',
  'gpu_mem_after_start_bytes',
  'gpu_mem_after_first_request_bytes',
  'kv_cache_capacity_tokens',
  'block_size',
  'num_gpu_blocks',
  'kv_cache_memory_bytes',
  'max_concurrency_at_max_model_len',
];

/** One max-model-len value of `bench kv-scaling`. */
export interface KvScalingRow {
  max_model_len: number;
  gpu_mem_before_start_bytes: number | null;
  gpu_mem_after_start_bytes: number | null;
  gpu_mem_after_first_request_bytes: number | null;
  kv_cache_capacity_tokens: number | null;
  block_size: number | null;
  num_gpu_blocks: number | null;
  kv_cache_memory_bytes: number | null;
  max_concurrency_at_max_model_len: number | null;
}
