/**
 * A histogram whose buckets come from another server's histogram rather than from observe().
 *
 * vLLM's server-side latency histograms are re-exported under our prefix by adding the
 * difference between consecutive scrapes to our own cumulative counts. A vLLM restart (its
 * _count goes down) is taken as "counting from zero again", so our series never goes backwards
 * and rate() shows neither a negative rate nor a spike. The bucket bounds are vLLM's own, which
 * keeps quantiles comparable with its dashboards. prom-client renders this through `get()`,
 * the same contract its built-in metrics use.
 *
 * Bounded: at most MAX_BOUNDS bucket bounds are kept (a cumulative histogram stays exact at any
 * subset of its bounds, so dropping some loses resolution, never correctness), and a NaN or
 * infinite value from the server is skipped instead of poisoning our sum forever.
 */
import type { MetricValueWithName, Registry } from './prom-client.js';
import type { HistogramSnapshot } from './vllm/schema.js';


/** More bounds than this (custom buckets, a hostile server) are thinned to this many. */
export const MAX_BOUNDS = 40;

/** Keeps at most `max` bounds, evenly by index, always the largest (+Inf). Pure. */
export function thinBounds(bounds: number[], max = MAX_BOUNDS): number[] {
  if (bounds.length <= max) return bounds;
  const out: number[] = [];
  for (let i = 0; i < max - 1; i++) out.push(bounds[Math.floor((i * (bounds.length - 1)) / (max - 1))]!);
  out.push(bounds[bounds.length - 1]!);
  return [...new Set(out)];
}

interface SeriesState {
  bounds: number[];
  cumulative: number[]; // our accumulated bucket counts, index-aligned with bounds
  sum: number;
  count: number;
  last?: HistogramSnapshot; // the source's previous scrape, for deltas
}

export class ReexportedHistogram {
  readonly name: string;
  readonly help: string;
  readonly type = 'histogram' as const;
  readonly aggregator = 'sum' as const;
  /** Only `model`: server-side histograms are summed over vLLM's engines. */
  readonly labelNames = ['model'] as const;
  private readonly series = new Map<string, { labels: Record<string, string>; state: SeriesState }>();

  constructor(opts: { name: string; help: string; registers: Registry[] }) {
    this.name = opts.name;
    this.help = opts.help;
    for (const registry of opts.registers) registry.registerMetric(this as never);
  }

  /** Adds the change since the previous snapshot for these labels. */
  update(labels: Record<string, string>, snapshot: HistogramSnapshot): void {
    // A count that is not a finite number cannot be differenced: skip this scrape.
    if (!Number.isFinite(snapshot.count) || snapshot.buckets.some((b) => !Number.isFinite(b.count) || Number.isNaN(b.le))) return;
    const key = JSON.stringify(labels);
    const keep = new Set(thinBounds([...new Set(snapshot.buckets.map((b) => b.le))].sort((a, b) => a - b)));
    const sorted = snapshot.buckets.filter((b) => keep.has(b.le)).sort((a, b) => a.le - b.le);
    const bounds = sorted.map((b) => b.le);
    let entry = this.series.get(key);
    if (!entry || entry.state.bounds.join() !== bounds.join()) {
      // First sight, or vLLM changed its bounds (an upgrade): start a new cumulative series.
      entry = { labels, state: { bounds, cumulative: bounds.map(() => 0), sum: 0, count: 0 } };
      this.series.set(key, entry);
    }
    const { state } = entry;
    const previous = state.last;
    // A NaN _sum (seen from real servers) keeps the last good sum as the baseline.
    const sum = Number.isFinite(snapshot.sum) ? snapshot.sum : (previous?.sum ?? 0);
    state.last = { buckets: sorted, sum, count: snapshot.count };
    // The first snapshot is only a baseline: history from before we started watching is not
    // a burst of new observations.
    if (!previous) return;
    const reset = snapshot.count < previous.count || sum < previous.sum;
    sorted.forEach((bucket, i) => {
      const before = reset ? 0 : (previous.buckets.find((b) => b.le === bucket.le)?.count ?? 0);
      state.cumulative[i]! += Math.max(0, bucket.count - before);
    });
    state.count += Math.max(0, snapshot.count - (reset ? 0 : previous.count));
    state.sum += Math.max(0, sum - (reset ? 0 : previous.sum));
  }

  get() {
    const values: MetricValueWithName<string>[] = [];
    for (const { labels, state } of this.series.values()) {
      state.bounds.forEach((le, i) => {
        values.push({
          metricName: `${this.name}_bucket`,
          labels: { ...labels, le: le === Infinity ? '+Inf' : String(le) },
          value: state.cumulative[i]!,
        });
      });
      values.push({ metricName: `${this.name}_sum`, labels, value: state.sum });
      values.push({ metricName: `${this.name}_count`, labels, value: state.count });
    }
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator };
  }

  reset(): void {
    this.series.clear();
  }
}
