/**
 * report.html: the bench report as one self-contained page (inline CSS, charts as inline SVG,
 * no scripts, no external resources), so it can be mailed or attached to a ticket as is.
 */
import type { EnvironmentSnapshot } from '../vllm/environment.js';

/** One run as the page shows it (report.ts's BenchRun has these and more). */
export interface HtmlRun {
  experiment: string;
  collectedAt: string;
  summary: Record<string, unknown>;
}

/** One target's part of the page (report.ts's TargetSection). */
export interface HtmlSection<R extends HtmlRun = HtmlRun> {
  target: string;
  runs: R[];
  environment?: EnvironmentSnapshot;
  keyNumbers: string[];
  observations: string[];
  recommendations: Array<{ topic: string; recommendation: string; from: string }>;
}

const esc = (s: unknown) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

const CSS = `body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;padding:0 1em;color:#222}
h1{font-size:1.6em}h2{margin-top:2em;border-bottom:2px solid #ddd;padding-bottom:.2em}h3{margin-top:1.5em}
table{border-collapse:collapse;margin:.5em 0 1em;font-size:.9em}th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#f4f4f4}td.num{text-align:right;font-variant-numeric:tabular-nums}
figure.chart{margin:1em 0}figure.chart svg{max-width:100%;height:auto;border:1px solid #eee}
.muted{color:#666}ul{padding-left:1.3em}`;

function table(header: string[], rows: Array<Array<unknown>>): string {
  const cell = (v: unknown) => {
    if (v === null || v === undefined || v === '') return '<td>–</td>';
    if (typeof v === 'number') return `<td class="num">${esc(Number.isInteger(v) ? v : v.toFixed(4))}</td>`;
    return `<td>${esc(v)}</td>`;
  };
  return `<table><thead><tr>${header.map((h) => `<th>${esc(h)}</th>`).join('')}</tr></thead><tbody>${rows.map((r) => `<tr>${r.map(cell).join('')}</tr>`).join('')}</tbody></table>`;
}

function environmentTable(e: EnvironmentSnapshot): string {
  const gib = (b: number | null | undefined) => (b === null || b === undefined ? 'n/a' : `${(b / 2 ** 30).toFixed(1)} GiB`);
  const v = (x: unknown) => (x === null || x === undefined ? 'n/a' : String(x));
  const rows: Array<[string, string]> = [
    ['collected', `${e.collected_at} by vllm-probe ${e.vllm_probe_version}`],
    ['target', e.target],
    ['model', `${v(e.model)} (max_model_len ${v(e.max_model_len)})`],
    ['vLLM version', v(e.vllm_version)],
    ['GPU', e.gpus && e.gpus.length ? e.gpus.map((g) => `${v(g.name)} ${gib(g.memory_total_bytes)} (driver ${v(g.driver_version)})`).join('; ') : 'none visible from here'],
    ['KV cache', `${v(e.kv_cache_capacity_tokens)} tokens (${v(e.num_gpu_blocks)} blocks × ${v(e.block_size)}), memory ${gib(e.kv_cache_memory_bytes)}, prefix caching ${e.prefix_caching === null ? 'n/a' : e.prefix_caching ? 'on' : 'off'}`],
    ['launch flags', e.launch_flags ? e.launch_flags.join(' ') || '(defaults)' : 'n/a (vLLM process not visible from here)'],
    ['host', `${e.os}, ${e.cpus} × ${e.cpu}, ${gib(e.memory_bytes)} RAM`],
  ];
  return `<table class="environment"><tbody>${rows.map(([k, val]) => `<tr><th>${esc(k)}</th><td>${esc(val)}</td></tr>`).join('')}</tbody></table>`;
}

/** What a run concluded, in its own words (answer, knee, interpretation, or why none). */
function conclusions(s: Record<string, unknown>): string[] {
  const out: string[] = [];
  if (typeof s.answer === 'string') out.push(s.answer);
  const knee = s.knee as { concurrency?: number; reason?: string } | null | undefined;
  if (knee?.reason) out.push(`Knee at concurrency ${knee.concurrency}: ${knee.reason}.`);
  if (Array.isArray(s.conclusion_withheld)) out.push(...s.conclusion_withheld.map((w) => `No conclusion at ${String(w)}`));
  if (Array.isArray(s.interpretation)) out.push(...s.interpretation.map((l) => String(l).replace(/^- /, '')));
  return out;
}

/**
 * The whole page. `chart` and `runTable` draw one run's chart and table from its summary;
 * a run whose chart is undefined (nothing succeeded) gets its table only.
 */
export function renderReportHtml<R extends HtmlRun>(
  dir: string,
  sections: Array<HtmlSection<R>>,
  chart: (run: R) => string | undefined,
  runTable: (run: R) => { header: string[]; rows: Array<Array<unknown>> } | undefined,
): string {
  const runs = sections.reduce((n, s) => n + s.runs.length, 0);
  const body: string[] = [`<h1>vLLM measurement report</h1>`, `<p class="muted">${runs} bench run${runs === 1 ? '' : 's'} under ${esc(dir)}, against ${sections.length} target${sections.length === 1 ? '' : 's'}.</p>`];
  for (const sec of sections) {
    body.push(`<section class="target"><h2>Target ${esc(sec.target)}</h2>`);
    body.push('<h3>Environment</h3>', sec.environment ? environmentTable(sec.environment) : '<p>not recorded</p>');
    body.push('<h3>Key numbers</h3>', `<ul>${sec.keyNumbers.map((k) => `<li>${esc(k)}</li>`).join('')}</ul>`);
    body.push('<h3>Observations</h3>', `<ul>${sec.observations.map((o) => `<li>${esc(o)}</li>`).join('')}</ul>`);
    body.push('<h3>First-cut configuration</h3>', table(['topic', 'recommendation', 'from'], sec.recommendations.map((r) => [r.topic, r.recommendation, r.from])));
    for (const run of sec.runs) {
      body.push(`<h3>bench ${esc(run.experiment)} <span class="muted">at ${esc(run.collectedAt)}</span></h3>`);
      const svg = chart(run);
      if (svg) body.push(`<figure class="chart" data-experiment="${esc(run.experiment)}">${svg.replace(/^<\?xml[^>]*>\s*/, '')}</figure>`);
      const t = runTable(run);
      if (t) body.push(table(t.header, t.rows));
      const notes = conclusions(run.summary);
      if (notes.length) body.push(`<ul class="conclusions">${notes.map((n) => `<li>${esc(n)}</li>`).join('')}</ul>`);
    }
    body.push('</section>');
  }
  return `<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>vLLM measurement report</title><style>${CSS}</style></head>\n<body>\n${body.join('\n')}\n</body></html>\n`;
}
