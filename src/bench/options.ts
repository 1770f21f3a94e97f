/**
 * Everything `bench` accepts on its command line, in one place: the option table, the parsed
 * values' type, the value parsers and the usage error they throw (exit 2 with one line).
 */
import type { parseArgs } from 'node:util';

/** A bad command line: exit 2 with one line. */
export class BenchUsageError extends Error {
  override name = 'BenchUsageError';
}

/** The experiment could not produce a result (target down, requests failing): exit 1, one line. */
export class BenchRunError extends Error {
  override name = 'BenchRunError';
}

const COMMON_HELP = `Common options:
  --target URL         vLLM base URL, without /v1 (default http://127.0.0.1:8000)
  --model NAME         served model (default: the first from /v1/models); checked against
                       /v1/models before the run starts (exit 1 with the served names)
  --api-key-env NAME   environment variable holding the API key (default VLLM_API_KEY); no file
                       or line bench writes holds it, nor any --api-key/--*-token value,
                       Authorization header, *_KEY/*_TOKEN variable or URL password (shown as ***)
  --out DIR            where files go (default bench-out/<experiment>-<time>); several runs may
                       share one folder: each keeps its own files and summary
  --json               print the summary as JSON on stdout
  --timeout DURATION   per-request timeout (default 120s)
  --ttft-slo DURATION  the TTFT line drawn on the charts (default 500ms, the daemon's slo.ttft)
  --max-failures N     stop after N failed requests in a row (default 5)
`;

/** Each experiment's own --help. */
export const EXPERIMENT_HELP: Record<string, string> = {
  'cold-warm': `Usage: vllm-probe bench cold-warm [--restart-cmd "CMD ARGS"] [options]

How much slower is the first request after vLLM starts? Restarts vLLM (with --restart-cmd, or
asks you to restart it and waits), sends one request the moment it is back (cold), one right
after (warm_1), then N more (the steady state). Writes cold_warm.csv, cold_warm.md, cold_warm.svg.

  --restart-cmd "CMD"     command that restarts vLLM (run without a shell)
  --runs N                steady-state requests after warm_1 (default 5)
  --max-tokens N          output tokens per request (default 64)
  --restart-timeout S     how long to wait for vLLM to come back (default 600s)

${COMMON_HELP}`,
  prefix: `Usage: vllm-probe bench prefix [--regimes 512,1024,2048] [--concurrency 1,8,16] [options]

How much does prefix caching cut TTFT? For each prefix size (tokens, calibrated with /tokenize)
and concurrency, sends requests sharing that prefix (cache) and requests forced to miss
(no_cache: vLLM's cache_salt, a unique leading nonce, or a --baseline server with caching off).
Every request has its own suffix, so only the prefix can be cached. Writes
prefix_caching_results.csv, .md and .svg.

  --regimes LIST          prefix sizes in tokens (default 512,1024,2048)
  --concurrency LIST      concurrent requests (default 1,8,16)
  --requests N            requests per cell (default 32)
  --suffix-tokens N       per-request suffix length (default 32)
  --max-tokens N          output tokens per request (default 32)
  --baseline URL          a second vLLM with prefix caching off, for the no_cache rows

${COMMON_HELP}`,
  sweep: `Usage: vllm-probe bench sweep [--concurrency 1,2,4,8,16,32,64] [--duration 30s | --requests N] [options]

Where does more concurrency stop buying throughput? A closed-loop load at each concurrency:
throughput, TTFT and end-to-end percentiles, and the knee (the level past which throughput is
flat and TTFT climbs). Every prompt starts differently, so no request is served from another's
prefix cache. Writes concurrency_sweep.csv, .md and .svg.

  --concurrency LIST      levels (default 1,2,4,8,16,32,64)
  --duration DURATION     measured time per level (default 30s)
  --requests N            or: requests per level instead of a duration
  --warmup DURATION       excluded start of each level (default 2s; not with --requests)
  --input-tokens N        prompt length in tokens, calibrated with /tokenize (default 128)
  --max-tokens N          output tokens per request (default 64)

${COMMON_HELP}`,
  kv: `Usage: vllm-probe bench kv [--context 4096] [--want-concurrency 8] [options]

How many sequences of a given length fit in the KV cache? Reads the KV capacity from vLLM's
/metrics and answers "room for N concurrent sequences of C tokens?". Writes kv_capacity.csv,
.md and .svg.

  --context N             sequence length in tokens (default 4096)
  --want-concurrency N    sequences wanted at once (default 8)
  --layers N --kv-heads N --head-dim N [--dtype-bytes N (2)]
                          model shape, for bytes per KV token (else from kv_cache_memory_bytes)

${COMMON_HELP}`,
  'kv-scaling': `Usage: vllm-probe bench kv-scaling [--values 1024,2048,4096,8192] [--launch 'vllm serve MODEL --max-model-len {max_model_len} …']

Does --max-model-len change the KV cache? Starts vLLM at each value (with --launch, or asks you
to restart it), records KV capacity, the sequences that fit and GPU memory, and fits bytes per
KV token. Writes kv_cache_scaling.csv, .md and .svg.

  --values LIST           max-model-len values (default 1024,2048,4096,8192)
  --launch 'CMD'          command template containing {max_model_len}
  --stop-cmd CMD          stops the server when --launch backgrounds it
  --gpu-cmd PATH          nvidia-smi to read GPU memory with
  --restart-timeout S     how long to wait for each start (default 600s)

${COMMON_HELP}`,
  report: `Usage: vllm-probe bench report --in DIR [--out DIR] [--want-concurrency 8 --context 4096]

One report over every bench run found under DIR (any depth): report.md and a self-contained
report.html with the charts, the tables, the environment of each target, and a first-cut vLLM
configuration per target derived from the measurements.
`,
  compare: `Usage: vllm-probe bench compare A B [--out DIR] [--confidence 0.95] [--json]

Is B better or worse than A, by how much, with what confidence? A and B are result folders
(e.g. the same experiments against the old and the new vLLM, or with a flag off and on). The
latest run of each experiment found in both is compared cell by cell: for each key figure
(throughput, p50/p95 TTFT, mean E2E, prefix-cache TTFT, warm TTFT, KV capacity) B − A, its
confidence interval by bootstrap over the recorded requests (2000 resamples, seeded: the same
folders give the same report), and a verdict: B better, B worse, or no difference at the
stated confidence. Also the environment of each side and the vllm:* /metrics families only one
side exports (what dashboards and alerts would lose). Writes compare.md and compare.html.

  --out DIR               where compare.md and compare.html go (default bench-out/compare-<time>)
  --confidence LEVEL      confidence of the intervals and verdicts (default 0.95)
  --json                  print the comparison as JSON on stdout
`,
};

export const BENCH_HELP = `Usage: vllm-probe bench <experiment> [options]

Experiments:
  cold-warm   how much slower the first request after a restart is
  prefix      how much prefix caching cuts TTFT, by prefix size and concurrency
  sweep       throughput and latency against concurrency, and where the knee is
  kv          how many sequences of a given length fit in the KV cache
  kv-scaling  KV capacity and the sequences that fit at several --max-model-len values
  report      one report (markdown and HTML, with charts) over a folder of bench outputs
  compare     two result folders side by side: B − A per key figure, confidence interval, verdict

"vllm-probe bench <experiment> --help" shows each experiment's options.

${COMMON_HELP}`;

export const BENCH_OPTIONS = {
  target: { type: 'string' },
  model: { type: 'string' },
  'api-key-env': { type: 'string' },
  out: { type: 'string' },
  json: { type: 'boolean' },
  timeout: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
  'restart-cmd': { type: 'string' },
  'restart-timeout': { type: 'string' },
  runs: { type: 'string' },
  'max-tokens': { type: 'string' },
  regimes: { type: 'string' },
  concurrency: { type: 'string' },
  requests: { type: 'string' },
  'suffix-tokens': { type: 'string' },
  baseline: { type: 'string' },
  duration: { type: 'string' },
  warmup: { type: 'string' },
  'input-tokens': { type: 'string' },
  // The old spelling of --input-tokens (about 1.3 tokens per word); kept so scripts keep working.
  'input-words': { type: 'string' },
  'ttft-slo': { type: 'string' },
  'max-failures': { type: 'string' },
  context: { type: 'string' },
  'want-concurrency': { type: 'string' },
  layers: { type: 'string' },
  'kv-heads': { type: 'string' },
  'head-dim': { type: 'string' },
  'dtype-bytes': { type: 'string' },
  launch: { type: 'string' },
  'stop-cmd': { type: 'string' },
  values: { type: 'string' },
  in: { type: 'string' },
  confidence: { type: 'string' },
  'gpu-cmd': { type: 'string' },
  'model-dir': { type: 'string' },
} as const;

export type Values = ReturnType<typeof parseArgs<{ options: typeof BENCH_OPTIONS; allowPositionals: true }>>['values'];

export function intList(name: string, text: string | undefined, fallback: number[]): number[] {
  if (text === undefined) return fallback;
  const out = text.split(',').map((s) => Number(s.trim()));
  if (out.length === 0 || out.some((n) => !Number.isInteger(n) || n < 1)) throw new BenchUsageError(`--${name}: expected a comma-separated list of positive integers, got "${text}"`);
  return out;
}
export function intOpt(name: string, text: string | undefined, fallback: number): number {
  return intList(name, text, [fallback])[0]!;
}
export function secondsOpt(name: string, text: string | undefined, fallback: number): number {
  if (text === undefined) return fallback;
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(text);
  if (!m) throw new BenchUsageError(`--${name}: expected a duration like 30s, got "${text}"`);
  return Number(m[1]) * (m[2] === 'ms' ? 0.001 : m[2] === 'm' ? 60 : 1);
}

