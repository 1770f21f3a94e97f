import { afterEach, describe, expect, test } from 'vitest';
import { prefixVerdict } from '../../src/synthetic/prefix-cache.js';
import { sample, startDaemon, startEmulator, testConfig, waitFor } from '../helpers/daemon.js';

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!().catch(() => undefined);
});

async function run(prefixCaching: boolean, rejectCacheSalt = false, emulator: Parameters<typeof startEmulator>[0] = {}) {
  const emu = await startEmulator({ prefixCaching, rejectCacheSalt, coldStartMs: 0, prefillMsPerToken: 0.1, ...emulator });
  cleanups.push(emu.close);
  const d = await startDaemon(testConfig(emu.url, { probes: { ttft: { interval: '5s', timeout: '4s' }, prefix: { enabled: true, interval: '1s', timeout: '900ms', prefix_tokens: [512], hits_per_cycle: 2 } } }));
  cleanups.push(() => d.stop());
  const text = await waitFor(async () => {
    const t = await d.metrics();
    return (sample(t, 'vllm_probe_prefix_time_to_first_token_seconds_count', { model: 'emulated-model', cache: 'hit', prefix_tokens: '512' }) ?? 0) >= 4 ? t : '';
  }, 10_000);
  return { d, text, emu };
}

describe('prefix-cache probe against the emulator', () => {
  test('hits are faster than forced misses; cached_tokens > 0 on hits, 0 on misses; P calibrated with /tokenize', async () => {
    const { d, text } = await run(true);
    const mean = (cache: string) =>
      sample(text, 'vllm_probe_prefix_time_to_first_token_seconds_sum', { cache, prefix_tokens: '512' })! / sample(text, 'vllm_probe_prefix_time_to_first_token_seconds_count', { cache, prefix_tokens: '512' })!;
    expect(mean('hit')).toBeLessThan(mean('miss'));
    expect(sample(text, 'vllm_probe_prefix_cached_tokens_total', { cache: 'hit' })).toBeGreaterThan(0);
    expect(sample(text, 'vllm_probe_prefix_cached_tokens_total', { cache: 'miss' })).toBe(0);
    expect(sample(text, 'vllm_probe_prefix_uncached_hits_total', {})).toBe(0);
    const predicted = sample(text, 'vllm_probe_prefix_predicted_saved_fraction_ratio', { prefix_tokens: '512' })!;
    expect(predicted).toBeGreaterThan(0.9);
    expect(predicted).toBeLessThan(1);
    expect(sample(text, 'vllm_probe_prefix_speedup_ratio', { prefix_tokens: '512' })).toBeGreaterThan(1.5);
    const check = (await d.status()).body.checks.find((c) => c.name === 'prefix_cache')!;
    expect(check.status).toBe('healthy');
    expect(check.reason).toMatch(/^prefix cache working: hit TTFT \d+ ms vs miss \d+ ms at P=5\d\d tokens \(by tokenize, 16-token cache blocks\), speedup [\d.]+x, saved \d+ % \(predicted \d+ %\), \d+ cached tokens reported; engine counted \d+ hit tokens meanwhile \(by tier: device 100 %\)$/);
  });

  test('a server that rejects cache_salt: misses are forced with a leading nonce, no failures counted after the switch', async () => {
    const { d, text } = await run(true, true);
    expect(sample(text, 'vllm_probe_prefix_cached_tokens_total', { cache: 'miss' })).toBe(0);
    expect(sample(text, 'vllm_probe_prefix_cached_tokens_total', { cache: 'hit' })).toBeGreaterThan(0);
    expect(sample(text, 'vllm_probe_requests_total', { probe: 'prefix', outcome: 'http_4xx' })).toBe(1); // the one salted try
    expect((await d.status()).body.checks.find((c) => c.name === 'probe_prefix')?.status).toBe('healthy');
  });

  test('prefix caching off: degraded with "appears disabled" and the numbers', async () => {
    const { d, text } = await run(false);
    expect(sample(text, 'vllm_probe_prefix_uncached_hits_total', {})).toBeGreaterThan(0);
    const check = (await d.status()).body.checks.find((c) => c.name === 'prefix_cache')!;
    expect(check.status).toBe('degraded');
    expect(check.reason).toMatch(/^prefix caching appears disabled: hit TTFT \d+ ms vs miss \d+ ms at P=5\d\d tokens \(by tokenize, 16-token cache blocks\) \(speedup [\d.]+x\), 0 cached tokens reported; engine counted 0 hit tokens meanwhile$/);
  });

  test('the prefix is aligned to whole cache blocks and measured with /render where vLLM serves it: every hit token the server can cache is found', async () => {
    const { d, text } = await run(true, false, { blockSize: 128, enableScaleOut: true });
    const check = (await d.status()).body.checks.find((c) => c.name === 'prefix_cache')!;
    expect(check.status).toBe('healthy');
    const p = Number(/at P=(\d+) tokens \(by render, 128-token cache blocks\)/.exec(check.reason)?.[1]);
    expect(Math.floor(p / 128) * 128).toBe(512); // 512 = four whole blocks, nothing lost to a partial one
    const hits = sample(text, 'vllm_probe_prefix_time_to_first_token_seconds_count', { cache: 'hit', prefix_tokens: '512' })!;
    expect(sample(text, 'vllm_probe_prefix_cached_tokens_total', { cache: 'hit' })).toBe(512 * hits);
  });
});

describe('prefixVerdict: what one cycle\'s numbers say', () => {
  const base = { expectedCached: 1024, saved: 0.9, predicted: 0.95, engineDelta: 0, numbers: 'hit TTFT 20 ms vs miss 640 ms at P=512 tokens', engineWords: '', degradedBelow: 0.5 };
  test('0 cached tokens but hits 31.9x faster (a miss that waited behind preemptions): cannot judge, not "disabled"', () => {
    const [status, reason] = prefixVerdict({ ...base, cachedReported: true, hitCached: 0, speedup: 31.9 });
    expect(status).toBe('unknown');
    expect(reason).toMatch(/^cannot judge prefix caching: the server reports 0 cached tokens but the hits were 31\.9x faster than the miss/);
    expect(reason).not.toMatch(/disabled/);
  });
  test('0 cached tokens and no speedup: disabled', () => {
    expect(prefixVerdict({ ...base, cachedReported: true, hitCached: 0, speedup: 1.02 })[1]).toMatch(/^prefix caching appears disabled: .*\(speedup 1\.02x\), 0 cached tokens reported$/);
  });
  test('cached tokens reported: working, whatever the timing', () => {
    expect(prefixVerdict({ ...base, cachedReported: true, hitCached: 1024, speedup: 1.05 })[0]).toBe('healthy');
  });
});
