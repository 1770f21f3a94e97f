/**
 * Dependency-free SVG charts for the bench outputs: a line chart (one or two y axes, linear or
 * log-2 x axis) and a grouped bar chart. Both draw axis ticks with units, gridlines, a legend,
 * and optional reference lines (the knee, an SLO). Pure: data in, SVG text out. A chart with no
 * data points is `undefined`, so a run where everything failed draws nothing.
 */

/** What an axis measures; ticks are formatted in it (formatValue). */
export type Unit = 's' | 'tok/s' | 'tokens' | 'sequences' | 'count' | 'bytes';

/** One line of a line chart; points with an undefined y are skipped (a failed cell). */
export interface Series {
  name: string;
  points: Array<{ x: number; y: number | undefined }>;
  color?: string;
  dashed?: boolean;
  /** Which y axis the series is read against (default left). */
  axis?: 'left' | 'right';
}

/** A dashed line with a label: the knee (x), an SLO or a wanted count (y). */
export interface ReferenceLine {
  /** An x position (vertical line) or a y value on `axis` (horizontal line). */
  x?: number;
  y?: number;
  axis?: 'left' | 'right';
  label: string;
  color?: string;
}

/** An axis: its label and unit. */
export interface Axis {
  label: string;
  unit: Unit;
}

/** What a line chart shows. */
export interface LineChart {
  title: string;
  /** Shown under the title: what was measured, in one line. */
  subtitle?: string;
  x: Axis & { log?: boolean };
  y: Axis;
  y2?: Axis;
  series: Series[];
  lines?: ReferenceLine[];
}

/** What a grouped bar chart shows. */
export interface BarChart {
  title: string;
  subtitle?: string;
  y: Axis;
  /** One group per x position; each bar within a group is one series. */
  groups: Array<{ label: string; bars: Array<{ series: string; value: number | undefined }> }>;
  colors?: Record<string, string>;
  lines?: ReferenceLine[];
}

/** Series colours in order (matplotlib's default cycle); series also differ by dash where colour is shared. */
export const PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf'];

const W = 720;
const H = 400;
const M = { l: 72, r: 72, t: 62, b: 56 };
const LEGEND_ROW = 15;

/** The value as a tick label in its unit: 250 ms, 1.5 s, 12k tok/s, 8 GiB. */
export function formatValue(v: number, unit: Unit): string {
  const trim = (n: number, d: number) => n.toFixed(d).replace(/\.0+$/, '').replace(/(\.\d*?)0+$/, '$1');
  const si = (n: number) => (Math.abs(n) >= 1e6 ? `${trim(n / 1e6, 1)}M` : Math.abs(n) >= 1e4 ? `${trim(n / 1e3, 0)}k` : Math.abs(n) >= 1e3 ? `${trim(n / 1e3, 1)}k` : trim(n, Math.abs(n) < 10 && n !== Math.round(n) ? 2 : 0));
  switch (unit) {
    case 's':
      if (v === 0) return '0';
      return Math.abs(v) < 1 ? `${trim(v * 1000, v * 1000 < 10 ? 1 : 0)} ms` : `${trim(v, 2)} s`;
    case 'tok/s':
      return `${si(v)} tok/s`;
    case 'tokens':
      return si(v);
    case 'bytes': {
      const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
      let n = v;
      let i = 0;
      while (Math.abs(n) >= 1024 && i < units.length - 1) {
        n /= 1024;
        i++;
      }
      return `${trim(n, 1)} ${units[i]}`;
    }
    default:
      return si(v);
  }
}

/** Round tick values covering [0, max]: 1, 2 or 5 × 10^k steps, about `count` of them. */
export function niceTicks(max: number, count = 5): number[] {
  if (!(max > 0) || !Number.isFinite(max)) return [0, 1];
  const raw = max / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw);
  // Near the ends of the double range (5e-324 / 5 is 0, MAX_VALUE steps overflow) there is no
  // round step: one tick at the maximum. A step of 0 once looped until the heap ran out.
  if (step === undefined || !(step > 0) || !Number.isFinite(max + step)) return [0, max];
  const ticks: number[] = [];
  for (let v = 0; v < max + step * 0.999; v += step) ticks.push(Number(v.toPrecision(12)));
  return ticks;
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
const f = (n: number) => n.toFixed(1);

type LegendItem = { name: string; color: string; dashed?: boolean; bar?: boolean };

/** Legend items laid out left to right, wrapping into rows; the chart's top margin follows. */
function layoutLegend(legend: LegendItem[]): { items: Array<LegendItem & { x: number; y: number }>; top: number } {
  let x = M.l;
  let y = 52;
  const items = legend.map((item) => {
    const w = 22 + item.name.length * 6.2 + 16;
    if (x > M.l && x + w > W - 8) {
      x = M.l;
      y += LEGEND_ROW;
    }
    const placed = { ...item, x, y };
    x += w;
    return placed;
  });
  return { items, top: y + 12 };
}

function frame(title: string, subtitle: string | undefined, legend: LegendItem[]): { out: string[]; top: number } {
  const out = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" role="img" aria-label="${esc(title)}">`,
    `<title>${esc(title)}</title>`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${W / 2}" y="20" text-anchor="middle" font-size="15" font-weight="bold">${esc(title)}</text>`,
  ];
  if (subtitle) out.push(`<text x="${W / 2}" y="37" text-anchor="middle" font-size="11" fill="#555">${esc(subtitle)}</text>`);
  const { items, top } = layoutLegend(legend);
  out.push('<g class="legend" font-size="11">');
  for (const item of items) {
    out.push(
      item.bar
        ? `<rect x="${item.x}" y="${item.y - 8}" width="14" height="10" fill="${item.color}"/>`
        : `<line x1="${item.x}" y1="${item.y - 3}" x2="${item.x + 18}" y2="${item.y - 3}" stroke="${item.color}" stroke-width="2.5"${item.dashed ? ' stroke-dasharray="5 3"' : ''}/>`,
    );
    out.push(`<text x="${item.x + 22}" y="${item.y}">${esc(item.name)}</text>`);
  }
  out.push('</g>');
  return { out, top: Math.max(M.t, top) };
}

function yAxis(ticks: number[], Y: (v: number) => number, unit: Unit, side: 'left' | 'right', label: string, color: string, top: number): string[] {
  const x = side === 'left' ? M.l : W - M.r;
  const out = [`<line x1="${x}" y1="${top}" x2="${x}" y2="${H - M.b}" stroke="${color}"/>`];
  for (const t of ticks) {
    // Gridlines from the left axis only, so two axes do not draw two grids.
    if (side === 'left') out.push(`<line class="grid" x1="${M.l}" y1="${f(Y(t))}" x2="${W - M.r}" y2="${f(Y(t))}" stroke="#e3e3e3"/>`);
    out.push(`<text x="${side === 'left' ? x - 6 : x + 6}" y="${f(Y(t) + 4)}" text-anchor="${side === 'left' ? 'end' : 'start'}" font-size="10" fill="${color}">${esc(formatValue(t, unit))}</text>`);
  }
  const lx = side === 'left' ? 16 : W - 12;
  out.push(`<text x="${lx}" y="${(top + H - M.b) / 2}" text-anchor="middle" font-size="12" fill="${color}" transform="rotate(${side === 'left' ? -90 : 90} ${lx} ${(top + H - M.b) / 2})">${esc(label)}</text>`);
  return out;
}

/** A line chart; undefined when no series has a point to draw. */
export function lineChart(spec: LineChart): string | undefined {
  const defined = (s: Series) => s.points.filter((p): p is { x: number; y: number } => p.y !== undefined && Number.isFinite(p.y));
  const series = spec.series.map((s, i) => ({ ...s, color: s.color ?? PALETTE[i % PALETTE.length]!, pts: defined(s) })).filter((s) => s.pts.length > 0);
  if (series.length === 0) return undefined;
  const xs = [...new Set(series.flatMap((s) => s.pts.map((p) => p.x)))].sort((a, b) => a - b);
  const xv = (x: number) => (spec.x.log ? Math.log2(Math.max(x, 1e-9)) : x);
  let xMin = spec.x.log ? xv(xs[0]!) : Math.min(0, xs[0]!);
  let xMax = xv(xs[xs.length - 1]!);
  if (xMax === xMin) {
    xMin -= 1;
    xMax += 1;
  }
  const X = (x: number) => M.l + ((xv(x) - xMin) / (xMax - xMin)) * (W - M.l - M.r);
  // A log axis is ticked at the measured values (1024, 2048, 4096): print them exactly, not "1k, 2k, 4.1k".
  const xLabel = (x: number) => (spec.x.log && Number.isInteger(x) && spec.x.unit !== 'bytes' && spec.x.unit !== 's' ? String(x) : formatValue(x, spec.x.unit));
  const axisMax = (axis: 'left' | 'right') => {
    const vals = series.filter((s) => (s.axis ?? 'left') === axis).flatMap((s) => s.pts.map((p) => p.y));
    for (const l of spec.lines ?? []) if (l.y !== undefined && (l.axis ?? 'left') === axis) vals.push(l.y);
    return Math.max(...vals, 0);
  };
  const legend: LegendItem[] = series.map((s) => ({ name: s.name, color: s.color, ...(s.dashed ? { dashed: true } : {}) }));
  for (const l of spec.lines ?? []) legend.push({ name: l.label, color: l.color ?? '#777', dashed: true });
  const { out, top } = frame(spec.title, spec.subtitle, legend);
  const ticksL = niceTicks(axisMax('left') * 1.05 || 1);
  const ticksR = spec.y2 ? niceTicks(axisMax('right') * 1.05 || 1) : [];
  const Yfor = (ticks: number[]) => (v: number) => H - M.b - (v / ticks[ticks.length - 1]!) * (H - top - M.b);
  const YL = Yfor(ticksL);
  const YR = Yfor(ticksR.length ? ticksR : ticksL);
  const rightColor = spec.y2 ? (series.find((s) => s.axis === 'right')?.color ?? '#333') : '#333';
  out.push(...yAxis(ticksL, YL, spec.y.unit, 'left', spec.y.label, spec.y2 ? (series.find((s) => (s.axis ?? 'left') === 'left')?.color ?? '#333') : '#333', top));
  if (spec.y2) out.push(...yAxis(ticksR, YR, spec.y2.unit, 'right', spec.y2.label, rightColor, top));
  // x axis: ticks at the measured x values on a log axis, round values on a linear one.
  out.push(`<line x1="${M.l}" y1="${H - M.b}" x2="${W - M.r}" y2="${H - M.b}" stroke="#333"/>`);
  const xTicks = spec.x.log ? xs : niceTicks(xs[xs.length - 1]!, 6).filter((t) => xv(t) >= xMin);
  for (const t of xTicks) {
    out.push(`<line x1="${f(X(t))}" y1="${H - M.b}" x2="${f(X(t))}" y2="${H - M.b + 5}" stroke="#333"/>`);
    out.push(`<text x="${f(X(t))}" y="${H - M.b + 18}" text-anchor="middle" font-size="10">${esc(xLabel(t))}</text>`);
  }
  out.push(`<text x="${(M.l + W - M.r) / 2}" y="${H - 14}" text-anchor="middle" font-size="12">${esc(spec.x.label)}${spec.x.log ? ' (log scale)' : ''}</text>`);
  for (const l of spec.lines ?? []) {
    const color = l.color ?? '#777';
    if (l.x !== undefined) {
      out.push(`<line class="ref" x1="${f(X(l.x))}" x2="${f(X(l.x))}" y1="${top}" y2="${H - M.b}" stroke="${color}" stroke-dasharray="5 3"/>`);
      out.push(`<text x="${f(X(l.x) + 4)}" y="${top + 12}" font-size="11" fill="${color}">${esc(l.label)}</text>`);
    } else if (l.y !== undefined) {
      const Y = (l.axis ?? 'left') === 'right' ? YR : YL;
      out.push(`<line class="ref" x1="${M.l}" x2="${W - M.r}" y1="${f(Y(l.y))}" y2="${f(Y(l.y))}" stroke="${color}" stroke-dasharray="5 3"/>`);
      out.push(`<text x="${W - M.r - 4}" y="${f(Y(l.y) - 4)}" text-anchor="end" font-size="11" fill="${color}">${esc(l.label)}</text>`);
    }
  }
  for (const s of series) {
    const Y = (s.axis ?? 'left') === 'right' ? YR : YL;
    const d = s.pts.map((p, i) => `${i ? 'L' : 'M'}${f(X(p.x))},${f(Y(p.y))}`).join(' ');
    out.push(`<path class="series" d="${d}" fill="none" stroke="${s.color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="6 3"' : ''}/>`);
    for (const p of s.pts) out.push(`<circle cx="${f(X(p.x))}" cy="${f(Y(p.y))}" r="3" fill="${s.color}"><title>${esc(`${s.name}: ${formatValue(p.y, (s.axis ?? 'left') === 'right' && spec.y2 ? spec.y2.unit : spec.y.unit)} at ${xLabel(p.x)}`)}</title></circle>`);
  }
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}

/** A grouped bar chart; undefined when no bar has a value. */
export function barChart(spec: BarChart): string | undefined {
  const names = [...new Set(spec.groups.flatMap((g) => g.bars.map((b) => b.series)))];
  const values = spec.groups.flatMap((g) => g.bars.map((b) => b.value)).filter((v): v is number => v !== undefined && Number.isFinite(v));
  if (values.length === 0) return undefined;
  const color = (name: string) => spec.colors?.[name] ?? PALETTE[names.indexOf(name) % PALETTE.length]!;
  const legend: LegendItem[] = names.map((n) => ({ name: n, color: color(n), bar: true }));
  for (const l of spec.lines ?? []) legend.push({ name: l.label, color: l.color ?? '#777', dashed: true });
  const { out, top } = frame(spec.title, spec.subtitle, legend);
  const ticks = niceTicks(Math.max(...values, ...(spec.lines ?? []).map((l) => l.y ?? 0)) * 1.05);
  const Y = (v: number) => H - M.b - (v / ticks[ticks.length - 1]!) * (H - top - M.b);
  out.push(...yAxis(ticks, Y, spec.y.unit, 'left', spec.y.label, '#333', top));
  out.push(`<line x1="${M.l}" y1="${H - M.b}" x2="${W - M.r}" y2="${H - M.b}" stroke="#333"/>`);
  const groupW = (W - M.l - M.r) / spec.groups.length;
  const barW = Math.min(40, (groupW * 0.8) / Math.max(1, names.length));
  spec.groups.forEach((g, gi) => {
    const cx = M.l + groupW * (gi + 0.5);
    const start = cx - (barW * g.bars.length) / 2;
    g.bars.forEach((b, bi) => {
      if (b.value === undefined || !Number.isFinite(b.value)) return;
      const y = Y(b.value);
      out.push(`<rect class="bar" x="${f(start + bi * barW)}" y="${f(y)}" width="${f(barW - 2)}" height="${f(Math.max(1, H - M.b - y))}" fill="${color(b.series)}"><title>${esc(`${g.label} ${b.series}: ${formatValue(b.value, spec.y.unit)}`)}</title></rect>`);
    });
    out.push(`<text x="${f(cx)}" y="${H - M.b + 18}" text-anchor="middle" font-size="10">${esc(g.label)}</text>`);
  });
  for (const l of spec.lines ?? []) {
    if (l.y === undefined) continue;
    const c = l.color ?? '#777';
    out.push(`<line class="ref" x1="${M.l}" x2="${W - M.r}" y1="${f(Y(l.y))}" y2="${f(Y(l.y))}" stroke="${c}" stroke-dasharray="5 3"/>`);
    out.push(`<text x="${W - M.r - 4}" y="${f(Y(l.y) - 4)}" text-anchor="end" font-size="11" fill="${c}">${esc(l.label)}</text>`);
  }
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
