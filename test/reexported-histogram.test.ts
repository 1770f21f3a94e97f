import { Registry } from 'prom-client';
import { describe, expect, test } from 'vitest';
import { ReexportedHistogram, thinBounds } from '../src/reexported-histogram.js';
import { sample } from './helpers/daemon.js';

function histogram() {
  const registry = new Registry();
  return { registry, h: new ReexportedHistogram({ name: 'x_seconds', help: 'h', registers: [registry] }) };
}
const snap = (les: number[], count: number, sum: number) => ({ buckets: les.map((le, i) => ({ le, count: Math.round((count * (i + 1)) / les.length) })), sum, count });

describe('re-exported histograms under hostile input', () => {
  test('10,000 server bucket bounds become at most 40 series, exact at the bounds kept', async () => {
    const { registry, h } = histogram();
    const les = [...Array.from({ length: 9999 }, (_, i) => (i + 1) / 1000), Infinity];
    h.update({ model: 'm' }, snap(les, 0, 0));
    h.update({ model: 'm' }, snap(les, 10_000, 50));
    const text = await registry.metrics();
    const buckets = text.split('\n').filter((l) => l.startsWith('x_seconds_bucket'));
    expect(buckets.length).toBeLessThanOrEqual(40);
    expect(sample(text, 'x_seconds_bucket', { model: 'm', le: '+Inf' })).toBe(10_000);
    expect(sample(text, 'x_seconds_count', { model: 'm' })).toBe(10_000);
  });

  test('one NaN _sum does not stick: the next good scrapes add up again', async () => {
    const { registry, h } = histogram();
    const les = [0.1, 1, Infinity];
    h.update({ model: 'm' }, snap(les, 0, 0));
    h.update({ model: 'm' }, snap(les, 3, 1.5));
    h.update({ model: 'm' }, snap(les, 6, NaN));
    h.update({ model: 'm' }, snap(les, 9, 4.5));
    const text = await registry.metrics();
    expect(sample(text, 'x_seconds_sum', { model: 'm' })).toBeCloseTo(4.5, 9);
    expect(sample(text, 'x_seconds_count', { model: 'm' })).toBe(9);
  });

  test('thinBounds keeps the largest bound and at most max', () => {
    const b = thinBounds(Array.from({ length: 100 }, (_, i) => i), 10);
    expect(b.length).toBeLessThanOrEqual(10);
    expect(b.at(-1)).toBe(99);
    expect(thinBounds([1, 2, 3], 10)).toEqual([1, 2, 3]);
  });
});
