import { readFileSync } from 'node:fs';
import { describe, expect, test } from 'vitest';
import { readRequestMetrics, splitTtft } from '../../src/vllm/request-metrics.js';

const fixture = (name: string) => readFileSync(`test/fixtures/vllm/${name}`, 'utf8');
const events = (sse: string) => sse.split('\n\n').filter((e) => e.startsWith('data: {')).map((e) => JSON.parse(e.slice(6)) as unknown);

describe('vLLM per-request metrics (--enable-per-request-metrics)', () => {
  test('a real 0.32.0 stream carries them on the usage chunk only', () => {
    const chunks = events(fixture('sse-completions-per-request-metrics-v0.32.0.txt'));
    const withMetrics = chunks.map(readRequestMetrics).filter((m) => m !== undefined);
    expect(withMetrics).toHaveLength(1);
    expect(Object.keys(withMetrics[0]!).sort()).toEqual(['generation_time_ms', 'mean_itl_ms', 'queue_time_ms', 'time_to_first_token_ms', 'tokens_per_second']);
    expect(chunks.findIndex((c) => readRequestMetrics(c) !== undefined)).toBe(chunks.findIndex((c) => 'usage' in (c as object)));
  });

  test('a real JSON body carries them with speculative_decoding null, which is ignored', () => {
    const m = readRequestMetrics(JSON.parse(fixture('completions-per-request-metrics-v0.32.0.json')));
    expect(m?.time_to_first_token_ms).toBeGreaterThan(0);
    expect(m).not.toHaveProperty('speculative_decoding');
  });

  test('a server without the flag, or garbage, gives none', () => {
    expect(events(fixture('sse-completions-v0.32.0.txt')).map(readRequestMetrics).filter(Boolean)).toEqual([]);
    expect(readRequestMetrics({ metrics: null })).toBeUndefined();
    expect(readRequestMetrics({ metrics: { time_to_first_token_ms: 'fast', queue_time_ms: -1 } })).toBeUndefined();
  });

  test('the TTFT split: vLLM counts TTFT from scheduling, so its own TTFT is queue + that; the rest of the client TTFT is the gap', () => {
    const split = splitTtft(0.1, { time_to_first_token_ms: 40, queue_time_ms: 20 })!;
    expect(split.server).toBeCloseTo(0.06);
    expect(split.queue).toBeCloseTo(0.02);
    expect(split.gap).toBeCloseTo(0.04);
    expect(split.queueShare).toBeCloseTo(0.2);
    // clocks differ a little: never a negative gap or a share above 1
    expect(splitTtft(0.05, { time_to_first_token_ms: 10, queue_time_ms: 60 })).toMatchObject({ gap: 0, queueShare: 1 });
    expect(splitTtft(0.1, { time_to_first_token_ms: 40 })).toBeUndefined();
  });
});
