import { afterEach, beforeEach, expect, test, vi } from 'vitest';
import { every } from '../src/schedule.js';

beforeEach(() => vi.useFakeTimers({ now: 1_000_500 }));
afterEach(() => vi.useRealTimers());

test('runs at each multiple of the interval on the wall clock, not interval after start', () => {
  const runs: number[] = [];
  const s = every(15, () => runs.push(Date.now()));
  vi.advanceTimersByTime(4_499); // the first slot is 1,005,000 (a multiple of 15 s), not 1,015,500
  expect(runs).toEqual([]);
  vi.advanceTimersByTime(1);
  vi.advanceTimersByTime(30_000);
  expect(runs).toEqual([1_005_000, 1_020_000, 1_035_000]);
  s.stop();
  vi.advanceTimersByTime(60_000);
  expect(runs).toHaveLength(3);
});

test('the random delay keeps each run inside its own slot', () => {
  const runs: number[] = [];
  every(15, () => runs.push(Date.now()), { maxRandomDelayMs: 1000 });
  vi.advanceTimersByTime(15_000 * 20);
  expect(runs).toHaveLength(20);
  for (const [i, t] of runs.entries()) {
    const slot = 1_005_000 + i * 15_000;
    expect(t).toBeGreaterThanOrEqual(slot);
    expect(t).toBeLessThan(slot + 1000);
  }
});

test('a run that throws or rejects does not end the schedule', async () => {
  let n = 0;
  every(1, () => {
    n++;
    if (n % 2) throw new Error('sync failure');
    return Promise.reject(new Error('async failure'));
  });
  await vi.advanceTimersByTimeAsync(5_000);
  expect(n).toBe(5);
});

test('a timer that fires a hair before its slot by the wall clock does not run that slot twice', () => {
  const runs: number[] = [];
  every(15, () => runs.push(Date.now()));
  vi.advanceTimersByTime(4_500); // first slot at 1,005,000
  expect(runs).toHaveLength(1);
  vi.setSystemTime(Date.now() - 2); // the wall clock stepped back 2 ms (NTP) right after the run
  vi.advanceTimersByTime(14_990);
  expect(runs).toHaveLength(1);
  vi.advanceTimersByTime(20);
  expect(runs).toHaveLength(2);
});

test('after the wall clock steps back an hour the schedule keeps its interval', () => {
  const runs: number[] = [];
  every(15, () => runs.push(Date.now()));
  vi.advanceTimersByTime(4_500);
  vi.setSystemTime(Date.now() - 3_600_000);
  vi.advanceTimersByTime(45_000);
  expect(runs.length).toBeGreaterThanOrEqual(3);
});
