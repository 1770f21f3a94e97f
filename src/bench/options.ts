/**
 * Everything `bench` accepts on its command line, in one place: the option table, the parsed
 * values' type, the value parsers and the usage error they throw (exit 2 with one line).
 */
import type { parseArgs } from 'node:util';

export class BenchUsageError extends Error {
  override name = 'BenchUsageError';
}

export const BENCH_HELP = `Usage: vllm-probe bench <experiment> [options]

Experiments (the seeds' Tier 1-3 procedures):
  cold-warm   restart vLLM, one cold request, one warm, then N warm: the cold/warm table
  prefix      prefix caching on vs off by prefix size and concurrency (canonical CSV)
  sweep       closed-loop concurrency sweep: throughput, TTFT/E2E percentiles, the knee
  kv          KV-cache capacity: bytes per token, tokens, sequences that fit per context
  kv-scaling  start vLLM at several --max-model-len values and fit bytes per token
  report      one markdown report with a first-cut configuration from the outputs in --in DIR

Common options:
  --target URL         vLLM base URL (default http://127.0.0.1:8000)
  --model NAME         served model (default: first from /v1/models)
  --api-key-env NAME   env var holding the API key (default VLLM_API_KEY; never printed)
  --out DIR            where files go (default bench-out/<experiment>-<time>)
  --json               print the summary as JSON on stdout
  --timeout DURATION   per-request timeout in seconds (default 120)

cold-warm:  [--restart-cmd "CMD ARGS"] [--runs N (5)] [--max-tokens N (64)] [--restart-timeout S (600)]
            Without --restart-cmd it asks you to restart vLLM and waits for it.
prefix:     --regimes 512,1024,2048 --concurrency 1,8,16 --requests N (32) [--suffix-tokens N (32)]
            [--max-tokens N (32)] [--baseline URL of a server with prefix caching off]
sweep:      --concurrency 1,2,4,8,16,32,64 --duration 30s [--warmup 2s] [--input-words N (128)]
            [--max-tokens N (64)]
kv-scaling: --values 1024,2048,4096,8192 [--launch 'vllm serve MODEL --max-model-len {max_model_len} …']
            [--stop-cmd CMD (when --launch backgrounds the server)] [--gpu-cmd PATH-to-nvidia-smi]
            [--model-dir DIR (config.json for bytes/token; default /v1/models root)]
report:     --in DIR [--want-concurrency 8 --context 4096]
kv:         [--context 4096] [--want-concurrency 8] [--layers N --kv-heads N --head-dim N
            --dtype-bytes N] (model shape; else bytes/token from kv_cache_memory_bytes)
`;

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
  'input-words': { type: 'string' },
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

