/**
 * Process entry point: signals → AbortController → runCli(); exit code. Nothing else.
 * A second Ctrl-C exits at once.
 */
import { setFlagsFromString } from 'node:v8';

/**
 * Node flags the daemon wants from the start. One V8 helper thread instead of four: every
 * helper that runs GC or compile work gets its own malloc arena, which keeps what it once
 * used; with one, the daemon levels off ~7 MB lower (65 against 72 MB at 8 min, side by side;
 * docs/benchmarks.md, footprint; issue 28). Only the command line sets the pool size, so where
 * Node can replace its own process (process.execve, Node ≥ 22.15) `serve` starts itself again
 * with it, same pid, before loading anything; the container image passes it on its command line.
 * Not with an IPC channel from a parent (its descriptor would not survive the exec).
 */
const SERVE_NODE_FLAGS = ['--v8-pool-size=1'];

type Execve = (file: string, args: string[], env: NodeJS.ProcessEnv) => never;
const execve = (process as { execve?: Execve }).execve;
if (process.argv[2] === 'serve' && typeof execve === 'function' && !process.channel && !process.execArgv.some((a) => a.startsWith('--v8-pool-size'))) {
  try {
    execve(process.execPath, [process.execPath, ...SERVE_NODE_FLAGS, ...process.execArgv, ...process.argv.slice(1)], process.env);
  } catch {
    // not replaced: go on as we are, with four helpers
  }
}

// The daemon asks V8 to favour memory over speed: it runs a few small jobs a minute, and this
// flag keeps its RSS ~3 MB lower and growing slower (docs/benchmarks.md, footprint). Set before
// anything runs; `bench` keeps V8's defaults (its load client is CPU-bound).
if (process.argv[2] === 'serve') setFlagsFromString('--optimize-for-size');

// Loaded after the re-exec above, so a replaced process loads nothing twice.
const { runCli } = await import('./cli.js');

const shutdown = new AbortController();
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    if (shutdown.signal.aborted) process.exit(130);
    shutdown.abort(sig);
  });
}
// No unhandled rejection may kill the daemon silently; log it loudly and keep serving.
process.on('unhandledRejection', (reason) => {
  process.stderr.write(`vllm-probe: unhandled rejection (bug): ${reason instanceof Error ? (reason.stack ?? reason.message) : String(reason)}\n`);
});

runCli(process.argv.slice(2), {
  stdout: (t) => process.stdout.write(t),
  stderr: (t) => process.stderr.write(t),
  signal: shutdown.signal,
  env: process.env,
}).then(
  (code) => {
    process.exitCode = code;
    // Let stdout drain; a lingering handle must not keep a finished command alive.
    setTimeout(() => process.exit(code), 200).unref();
  },
  (err: unknown) => {
    process.stderr.write(`vllm-probe: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
