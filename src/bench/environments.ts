/**
 * The environment of each bench run as people read it, and what differs between runs: the
 * report shows the settings every run of a target shared once, and a table of the settings that
 * differ, run by run, so no run's setting is shown next to another run's numbers.
 */
import type { EnvironmentSnapshot } from '../vllm/environment.js';

const gib = (b: number | null | undefined) => (b === null || b === undefined ? 'n/a' : `${(b / 2 ** 30).toFixed(1)} GiB`);
const v = (x: unknown) => (x === null || x === undefined ? 'n/a' : String(x));

/** The settings shown for a run, in order; `collected` is per run by nature and kept apart. */
const FIELDS: Array<[string, (e: EnvironmentSnapshot) => string]> = [
  ['vLLM version', (e) => v(e.vllm_version)],
  ['model', (e) => v(e.model)],
  ['max_model_len', (e) => v(e.max_model_len)],
  ['KV cache', (e) => `${v(e.kv_cache_capacity_tokens)} tokens (${v(e.num_gpu_blocks)} blocks × ${v(e.block_size)}), ${gib(e.kv_cache_memory_bytes)}`],
  ['prefix caching', (e) => (e.prefix_caching === null ? 'n/a' : e.prefix_caching ? 'on' : 'off')],
  ['gpu_memory_utilization', (e) => v(e.gpu_memory_utilization)],
  ['GPU', (e) => (e.gpus && e.gpus.length ? e.gpus.map((g) => `${v(g.name)} ${gib(g.memory_total_bytes)} (driver ${v(g.driver_version)})`).join('; ') : 'none visible from here')],
  ['launch flags', (e) => (e.launch_flags ? e.launch_flags.join(' ') || '(defaults)' : 'n/a (vLLM process not visible from here)')],
  // The kernel's build string (`#1 SMP PREEMPT_DYNAMIC @0`) says nothing a reader can use; the release does.
  ['host', (e) => `${e.os}, ${e.cpus} × ${e.cpu}, ${gib(e.memory_bytes)} RAM`],
  ['vllm-probe', (e) => v(e.vllm_probe_version)],
];

/** One run's environment as label/value rows, `collected` first. */
export function environmentRows(e: EnvironmentSnapshot): Array<[string, string]> {
  return [['collected', e.collected_at], ...FIELDS.map(([label, get]): [string, string] => [label, get(e)])];
}

/** One run's environment as the markdown block that opens its file. */
export function environmentMarkdown(e: EnvironmentSnapshot, heading = '## Environment'): string {
  return [heading, '', ...environmentRows(e).map(([k, val]) => `- ${k}: ${val}`), ''].join('\n');
}

/** What the runs of one target shared, and what differed run by run. */
export interface EnvironmentView {
  /** Settings with one value across every run that recorded an environment. */
  common: Array<[string, string]>;
  /** Settings whose value differs: one row per run (runs without an environment say so). */
  differing: { fields: string[]; runs: Array<{ run: string; values: string[] }> };
  /** Runs that recorded no environment. */
  unrecorded: string[];
}

/** Compares the runs' environments field by field; `run` labels each run ("sweep at …"). */
export function environmentView(runs: Array<{ run: string; environment?: EnvironmentSnapshot | undefined }>): EnvironmentView {
  const recorded = runs.filter((r) => r.environment);
  const values = recorded.map((r) => FIELDS.map(([, get]) => get(r.environment!)));
  const same = FIELDS.map((_, i) => new Set(values.map((row) => row[i])).size <= 1);
  const common = FIELDS.flatMap(([label], i): Array<[string, string]> => (same[i] && values.length ? [[label, values[0]![i]!]] : []));
  const fields = FIELDS.map(([label]) => label).filter((_, i) => !same[i]);
  return {
    common,
    differing: { fields, runs: fields.length ? recorded.map((r, k) => ({ run: r.run, values: FIELDS.flatMap((_, i) => (same[i] ? [] : [values[k]![i]!])) })) : [] },
    unrecorded: runs.filter((r) => !r.environment).map((r) => r.run),
  };
}

/** The settings of `run` that differ from the target's other runs ("max_model_len 1024"), or ''. */
export function runContext(view: EnvironmentView, run: string): string {
  const row = view.differing.runs.find((r) => r.run === run);
  return row ? view.differing.fields.map((f, i) => `${f} ${row.values[i]}`).join('; ') : '';
}
