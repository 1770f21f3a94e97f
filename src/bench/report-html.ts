/**
 * report.html: the bench report as one self-contained page (inline CSS, charts as inline SVG,
 * no scripts, no external resources), so it can be mailed or attached to a ticket as is.
 */
import type { EnvironmentView } from './environments.js';

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
  environments: EnvironmentView;
  keyNumbers: string[];
  observations: string[];
  recommendations: Array<{ topic: string; recommendation: string; from: string }>;
}

/** HTML-escapes any value's text (shared with compare.html). */
export const esc = (s: unknown) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** The report pages' style sheet (report.html and compare.html look alike). */
export const CSS = `body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;padding:0 1em;color:#222}
h1{font-size:1.6em}h2{margin-top:2em;border-bottom:2px solid #ddd;padding-bottom:.2em}h3{margin-top:1.5em}
table{border-collapse:collapse;margin:.5em 0 1em;font-size:.9em;max-width:100%}th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top;overflow-wrap:break-word}
th{background:#f4f4f4}td.num{text-align:right;font-variant-numeric:tabular-nums}
figure.chart{margin:1em 0}figure.chart svg{max-width:100%;height:auto;border:1px solid #eee}
.muted{color:#666}ul{padding-left:1.3em}`;

/** A table; numbers right-aligned with four decimals at most, empty cells as –. */
export function table(header: string[], rows: Array<Array<unknown>>): string {
  const cell = (v: unknown) => {
    if (v === null || v === undefined || v === '') return '<td>–</td>';
    if (typeof v === 'number') return `<td class="num">${esc(Number.isInteger(v) ? v : v.toFixed(4))}</td>`;
    return `<td>${esc(v)}</td>`;
  };
  // Long snake_case headers (gpu_mem_after_first_request_bytes) may break after an underscore.
  return `<table><thead><tr>${header.map((h) => `<th>${esc(h).replace(/_/g, '_<wbr>')}</th>`).join('')}</tr></thead><tbody>${rows.map((r) => `<tr>${r.map(cell).join('')}</tr>`).join('')}</tbody></table>`;
}

/** Shared settings as a two-column table, then the settings that differ, one row per run. */
function environmentTables(view: EnvironmentView): string {
  const parts: string[] = [];
  if (view.common.length) parts.push(`<table class="environment"><tbody>${view.common.map(([k, val]) => `<tr><th>${esc(k)}</th><td>${esc(val)}</td></tr>`).join('')}</tbody></table>`);
  if (view.differing.fields.length) {
    parts.push('<p>Differs between runs (each run\'s numbers were measured with its own row):</p>');
    parts.push(table(['run', ...view.differing.fields], view.differing.runs.map((r) => [r.run, ...r.values])).replace('<table>', '<table class="environment-diff">'));
  }
  if (view.unrecorded.length) parts.push(`<p class="muted">Not recorded for: ${esc(view.unrecorded.join(', '))}.</p>`);
  return parts.join('\n') || '<p>not recorded</p>';
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
  /** The run's settings that differ from the target's other runs, shown under its heading. */
  context: (section: HtmlSection<R>, run: R) => string = () => '',
): string {
  const runs = sections.reduce((n, s) => n + s.runs.length, 0);
  const body: string[] = [`<h1>vLLM measurement report</h1>`, `<p class="muted">${runs} bench run${runs === 1 ? '' : 's'} under ${esc(dir)}, against ${sections.length} target${sections.length === 1 ? '' : 's'}.</p>`];
  for (const sec of sections) {
    body.push(`<section class="target"><h2>Target ${esc(sec.target)}</h2>`);
    body.push('<h3>Environment</h3>', environmentTables(sec.environments));
    body.push('<h3>Key numbers</h3>', `<ul>${sec.keyNumbers.map((k) => `<li>${esc(k)}</li>`).join('')}</ul>`);
    body.push('<h3>Observations</h3>', `<ul>${sec.observations.map((o) => `<li>${esc(o)}</li>`).join('')}</ul>`);
    body.push('<h3>First-cut configuration</h3>', table(['topic', 'recommendation', 'from'], sec.recommendations.map((r) => [r.topic, r.recommendation, r.from])));
    for (const run of sec.runs) {
      body.push(`<h3>bench ${esc(run.experiment)} <span class="muted">at ${esc(run.collectedAt)}</span></h3>`);
      const ctx = context(sec, run);
      if (ctx) body.push(`<p class="run-context">Measured with ${esc(ctx)}.</p>`);
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
