/**
 * Process entry point: signals → AbortController → runCli(); exit code. Nothing else.
 * A second Ctrl-C exits at once.
 */
import { setFlagsFromString } from 'node:v8';
import { runCli } from './cli.js';

// The daemon asks V8 to favour memory over speed: it runs a few small jobs a minute, and this
// flag keeps its RSS ~3 MB lower and growing slower (docs/benchmarks.md, footprint). Set before
// anything runs; `bench` keeps V8's defaults (its load client is CPU-bound).
if (process.argv[2] === 'serve') setFlagsFromString('--optimize-for-size');

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
