/**
 * Process entry point: signals → AbortController → runCli(); exit code. Nothing else.
 * A second Ctrl-C exits at once.
 */
import { setFlagsFromString } from 'node:v8';
import { runCli } from './cli.js';

// The daemon compiles undici's HTTP parser (WebAssembly) with the baseline compiler only. The
// optimizing tier compiles it again on a background thread whose allocator keeps ~10 MB it no
// longer uses, in about half of all starts (docs/benchmarks.md, footprint), for a parser that
// reads a few responses a minute. `bench` keeps both tiers: its load client parses thousands.
// Set here, before the first request compiles the parser.
if (process.argv[2] === 'serve') setFlagsFromString('--liftoff-only');

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
