/**
 * The vLLM 0.30+ behaviour the emulator reproduces (issue 19) — per-request metrics, request ids,
 * the admission limit, custom buckets, /render — checked against captures from a real vLLM
 * 0.32.0 started with those flags, and what the daemon makes of it in /metrics and /status.
 */
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { onTestFinished, describe, expect, test } from 'vitest';
import { VllmClient } from '../../src/vllm/client.js';
import { parseCustomBuckets } from '../../src/emulator/engine-metrics.js';
import { parseExposition } from '../../src/vllm/exposition.js';
import { explainSnapshot, normaliseVllmMetrics } from '../../src/vllm/schema.js';
import { sample, startDaemon, startEmulator, testConfig, waitFor } from '../helpers/daemon.js';
import { jsonShape, sseShape } from '../helpers/shapes.js';

const fixture = (name: string) => readFileSync(`test/fixtures/vllm/${name}`, 'utf8');
const MODEL = 'tiny-llama';

async function emulator(options: Parameters<typeof startEmulator>[0] = {}) {
  const emu = await startEmulator({ model: MODEL, coldStartMs: 0, itlMs: 1, ...options });
  onTestFinished(() => emu.close());
  const post = (path: string, body: unknown, headers: Record<string, string> = {}) =>
    fetch(`${emu.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
  return { ...emu, post };
}

const streamBody = (extra: Record<string, unknown> = {}) => ({ model: MODEL, prompt: 'The quick brown fox', max_tokens: 16, ignore_eos: true, stream: true, stream_options: { include_usage: true }, ...extra });
const usageChunk = (sse: string) => JSON.parse(sse.split('\n\n').filter((e) => e.includes('"usage"')).at(-1)!.slice(6)) as { metrics?: Record<string, number> };

describe('--enable-per-request-metrics', () => {
  test('the usage chunk carries vLLM\'s timing object, shaped like the real capture; TTFT counts from scheduling, queue time apart', async () => {
    const emu = await emulator({ perRequestMetrics: true, baseTtftMs: 40 });
    const text = await (await emu.post('/v1/completions', streamBody())).text();
    expect(sseShape(text)).toEqual(sseShape(fixture('sse-completions-per-request-metrics-v0.32.0.txt')));
    const m = usageChunk(text).metrics!;
    expect(Object.keys(m)).toEqual(Object.keys(usageChunk(fixture('sse-completions-per-request-metrics-v0.32.0.txt')).metrics!));
    expect(m.time_to_first_token_ms).toBeGreaterThanOrEqual(40);
    expect(m.queue_time_ms).toBeGreaterThanOrEqual(0);
    expect(m.queue_time_ms).toBeLessThan(m.time_to_first_token_ms!);
    expect(m.mean_itl_ms).toBeGreaterThan(0);
  });

  test('chat streams and JSON bodies carry it too; without the flag, or without include_usage, there is none', async () => {
    const emu = await emulator({ perRequestMetrics: true });
    const chat = await (await emu.post('/v1/chat/completions', { model: MODEL, messages: [{ role: 'user', content: 'Say hello' }], max_tokens: 16, ignore_eos: true, stream: true, stream_options: { include_usage: true } })).text();
    expect(sseShape(chat)).toEqual(sseShape(fixture('sse-chat-per-request-metrics-v0.32.0.txt')));
    const json = (await (await emu.post('/v1/completions', { model: MODEL, prompt: 'The quick brown fox', max_tokens: 8 })).json()) as { metrics: Record<string, unknown> };
    expect(jsonShape(json.metrics)).toEqual(jsonShape((JSON.parse(fixture('completions-per-request-metrics-v0.32.0.json')) as { metrics: unknown }).metrics));
    expect(await (await emu.post('/v1/completions', streamBody({ stream_options: undefined }))).text()).not.toContain('"metrics"');

    const plain = await emulator();
    expect(usageChunk(await (await plain.post('/v1/completions', streamBody())).text()).metrics).toBeUndefined();
  });
});

describe('request ids', () => {
  test('a client X-Request-Id becomes vLLM\'s request id; --enable-request-id-headers echoes it (or a fresh one) on every response', async () => {
    const emu = await emulator({ requestIdHeaders: true });
    const res = await emu.post('/v1/completions', streamBody(), { 'x-request-id': 'vllm-probe-ttft-42' });
    expect(res.headers.get('x-request-id')).toBe('vllm-probe-ttft-42');
    expect(await res.text()).toContain('"id":"cmpl-vllm-probe-ttft-42"');
    expect((await fetch(`${emu.url}/health`)).headers.get('x-request-id')).toMatch(/^[0-9a-f]{32}$/);
    // the real server's headers, captured with the same request id
    expect(fixture('sse-completions-per-request-metrics-v0.32.0.headers.txt')).toMatch(/^x-request-id: vllm-probe-fixture-1\r?$/m);

    const plain = await emulator();
    const r2 = await plain.post('/v1/completions', streamBody(), { 'x-request-id': 'abc' });
    expect(r2.headers.get('x-request-id')).toBeNull();
    expect(await r2.text()).toContain('"id":"cmpl-abc"');
  });
});

describe('--max-num-queued-reqs', () => {
  test('with 2 requests in flight the third gets vLLM\'s 503, counted in vllm:admission_rejections_total; the daemon says vLLM is shedding load', async () => {
    const emu = await emulator({ maxNumQueuedReqs: 2, itlMs: 20 });
    const daemon = await startDaemon(testConfig(emu.url, { probes: { ttft: { enabled: false } }, scrape: { interval: '1s', timeout: '800ms' } }));
    onTestFinished(() => daemon.stop());
    await waitFor(async () => sample(await daemon.metrics(), 'vllm_probe_engine_admission_rejections_total', { model: MODEL, reason: 'max_num_queued_reqs' }) === 0);

    const hold = new AbortController();
    const held = await Promise.all([0, 1].map(() => fetch(`${emu.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(streamBody({ max_tokens: 500 })), signal: hold.signal })));
    const rejected = await emu.post('/v1/completions', streamBody());
    expect(rejected.status).toBe(503);
    const body = await rejected.json();
    expect(body).toEqual(JSON.parse(fixture('error-503-queue-full-v0.32.0.json')));
    const expo = await (await fetch(`${emu.url}/metrics`)).text();
    expect(explainSnapshot(normaliseVllmMetrics(parseExposition(expo))).admission_rejections).toEqual({ max_num_queued_reqs: 1, max_num_queued_tokens: 0 });

    const overload = await waitFor(async () => (await daemon.status()).body.checks.find((c) => c.name === 'overload' && c.status === 'degraded'), 10_000);
    expect(overload?.reason).toMatch(/^vLLM is shedding load: 1 request refused with HTTP 503 in the last \d+s \(1 by --max-num-queued-reqs\); 2 running, 0 waiting \(0 capacity, 0 deferred\)$/);
    expect((await daemon.status()).body.status).toBe('degraded');
    expect(sample(await daemon.metrics(), 'vllm_probe_engine_admission_rejections_total', { model: MODEL, reason: 'max_num_queued_reqs' })).toBe(1);
    // What a probe makes of that answer: refused for overload, vLLM's own words (as captured) in the detail.
    const probed = await client(emu.url).stream({ path: '/v1/completions', body: streamBody(), timeoutMs: 2000 });
    expect(probed.outcome).toBe('rejected_overload');
    expect(probed.detail).toBe(`HTTP 503: ${(JSON.parse(fixture('error-503-queue-full-v0.32.0.json')) as { error: { message: string } }).error.message}`);
    hold.abort();
    await Promise.all(held.map((r) => r.text().catch(() => '')));
  });
});

describe('--custom-histogram-buckets', () => {
  test('replaces the bounds of the named family only, validated as vLLM does', async () => {
    const emu = await emulator({ customHistogramBuckets: parseCustomBuckets({ time_to_first_token: [0.1, 0.3, 1, 3] }) });
    const e = explainSnapshot(normaliseVllmMetrics(parseExposition(await (await fetch(`${emu.url}/metrics`)).text())), { ttft: 0.5 });
    const real = explainSnapshot(normaliseVllmMetrics(parseExposition(fixture('metrics-v0.32.0-custom-buckets.txt'))));
    expect(e.server_buckets).toEqual(real.server_buckets);
    expect(e.slo_vs_server_buckets?.ttft).toMatchObject({ exact: false, lower: 0.3, upper: 1 });
    expect(() => parseCustomBuckets({ ttft: [1] })).toThrow("unknown bucket family 'ttft'");
    expect(() => parseCustomBuckets({ request_latency: [0.5, 0.2] })).toThrow('strictly increasing');
    expect(() => parseCustomBuckets({ request_latency: [] })).toThrow('must not be empty');
  });

  test('the daemon says the TTFT SLO threshold is not a server bound, and reads the nearest one with the error stated', async () => {
    const emu = await emulator({ customHistogramBuckets: { time_to_first_token: [0.001, 0.3, 1, 3] } });
    const daemon = await startDaemon(testConfig(emu.url, { probes: { ttft: { interval: '1s', timeout: '900ms' } }, slo: { ttft: { threshold: '500ms' } } }));
    onTestFinished(() => daemon.stop());
    const check = await waitFor(async () => (await daemon.status()).body.checks.find((c) => c.name === 'server_slo' && /of [1-9]\d* requests in the last/.test(c.reason)), 15_000);
    expect(check?.reason).toMatch(
      /^0\.5 s is not one of vLLM's TTFT bucket bounds \(nearest 0\.3 s and 1 s; --custom-histogram-buckets\?\): 100\.0 % of \d+ requests in the last \d+s within the nearest bound 0\.3 s; the share within 0\.5 s lies between 100\.0 % and 100\.0 % \(error up to 0\.0 points; objective 99\.0 %\)$/,
    );
    const text = await daemon.metrics();
    expect(sample(text, 'vllm_probe_engine_slo_bucket_bound_seconds', { model: MODEL, slo: 'ttft', side: 'lower' })).toBe(0.3);
    expect(sample(text, 'vllm_probe_engine_slo_bucket_bound_seconds', { model: MODEL, slo: 'ttft', side: 'upper' })).toBe(1);
    expect(sample(text, 'vllm_probe_engine_slo_bucket_bound_seconds', { model: MODEL, slo: 'e2e', side: 'lower' })).toBe(2.5);
  });
});

describe('/v1/completions/render and /v1/chat/completions/render', () => {
  test('403 without --enable-scale-out, as vLLM; with it, the real GenerateRequest shape and the same token ids as /tokenize', async () => {
    const off = await emulator();
    const denied = await off.post('/v1/completions/render', { model: MODEL, prompt: 'x' });
    expect(denied.status).toBe(403);
    expect(((await denied.json()) as { error: { type: string } }).error.type).toBe('PermissionDeniedError');

    const emu = await emulator({ enableScaleOut: true });
    const prompt = 'Hello world, the quick brown fox.';
    const rendered = (await (await emu.post('/v1/completions/render', { model: MODEL, prompt })).json()) as Array<{ token_ids: number[] }>;
    expect(jsonShape(rendered)).toEqual(jsonShape(JSON.parse(fixture('render-completions-v0.32.0.json'))));
    const tokens = ((await (await emu.post('/tokenize', { model: MODEL, prompt })).json()) as { tokens: number[] }).tokens;
    expect(rendered[0]!.token_ids).toEqual(tokens);
    const chat = await (await emu.post('/v1/chat/completions/render', { model: MODEL, messages: [{ role: 'user', content: 'Say hello' }] })).json();
    expect(jsonShape(chat)).toEqual(jsonShape(JSON.parse(fixture('render-chat-v0.32.0.json'))));
  });
});

describe('the daemon reads the new families from the emulator', () => {
  test('KV capacity and safe concurrency from vLLM\'s own numbers; prompt tokens by source and cache tier in /status and /metrics', async () => {
    const emu = await emulator({ blockSize: 16, numGpuBlocks: 1024, maxModelLen: 4096 });
    const daemon = await startDaemon(testConfig(emu.url, { probes: { ttft: { interval: '1s', timeout: '900ms' } } }));
    onTestFinished(() => daemon.stop());
    const prompt = 'alpha beta gamma delta '.repeat(40);
    for (let i = 0; i < 2; i++) await (await emu.post('/v1/completions', { model: MODEL, prompt, max_tokens: 2 })).text();
    const status = await waitFor(async () => {
      const s = await daemon.status();
      return s.body.checks.find((c) => c.name === 'prefix_sources' && c.reason.includes('local prefix-cache hits')) ? s : undefined;
    }, 15_000);
    const checks = Object.fromEntries(status!.body.checks.map((c) => [c.name, c]));
    expect(checks.kv_cache?.reason).toMatch(/^KV cache \d+ % full of 16384 tokens; room for 4 requests of max_model_len at once \(vLLM's kv_cache_max_concurrency\), \d+ running$/);
    expect(checks.prefix_sources?.reason).toMatch(/^\d+ prompt tokens: \d+ % computed, \d+ % local prefix-cache hits, 0 % KV transfer; cached tokens by tier: device 100 % \(/);
    const text = await daemon.metrics();
    expect(sample(text, 'vllm_probe_engine_kv_cache_max_concurrency', { model: MODEL })).toBe(4);
    expect(sample(text, 'vllm_probe_engine_kv_cache_capacity_tokens', { model: MODEL })).toBe(16384);
    expect(sample(text, 'vllm_probe_engine_cache_hit_alignment_tokens', { model: MODEL })).toBe(16);
    expect(sample(text, 'vllm_probe_engine_requests_waiting_by_reason', { model: MODEL, reason: 'capacity' })).toBe(0);
    expect(sample(text, 'vllm_probe_engine_prompt_tokens_by_source_total', { model: MODEL, source: 'external_kv_transfer' })).toBe(0);
    expect(text).not.toContain('reason="other"');
  });
});

/** A pino logger whose JSON lines land in `lines`. */
function capturingLog() {
  const lines: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(l) as Record<string, unknown>);
      done();
    },
  });
  return { log: pino({ level: 'info' }, sink), lines };
}

function client(url: string) {
  const c = new VllmClient({ baseUrl: url, maxResponseBytes: 1 << 20 });
  onTestFinished(() => c.close());
  return c;
}

describe('rejected_overload', () => {
  test('vLLM\'s two ways of refusing at the queue limit are both rejected_overload: HTTP 503, and a 503 error chunk in a 200 stream', async () => {
    // the in-stream form, byte for byte as a real 0.32.0 sent it under a burst
    const server = createServer((_req, res) => res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8' }).end(fixture('sse-error-503-queue-full-v0.32.0.txt')));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    onTestFinished(() => new Promise<void>((r) => server.close(() => r())));
    const body = streamBody();
    const inStream = await client(`http://127.0.0.1:${(server.address() as AddressInfo).port}`).stream({ path: '/v1/completions', body, timeoutMs: 2000 });
    expect(inStream.outcome).toBe('rejected_overload');
    expect(inStream.detail).toContain('The engine is currently busy');

    const emu = await emulator({ maxNumQueuedReqs: 1, itlMs: 20 });
    const hold = new AbortController();
    const held = await fetch(`${emu.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(streamBody({ max_tokens: 500 })), signal: hold.signal });
    const refused = await client(emu.url).stream({ path: '/v1/completions', body, timeoutMs: 2000 });
    hold.abort();
    await held.text().catch(() => '');
    expect(refused.outcome).toBe('rejected_overload');
    expect(refused.detail).toMatch(/^HTTP 503: .*The engine is currently busy/);
  });

  test('a TTFT probe refused at the queue limit counts as rejected_overload and logs its X-Request-Id to find it in vLLM\'s logs', async () => {
    const emu = await emulator({ maxNumQueuedReqs: 1, itlMs: 20 });
    const hold = new AbortController();
    const held = await fetch(`${emu.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(streamBody({ max_tokens: 1000 })), signal: hold.signal });
    const { log, lines } = capturingLog();
    const daemon = await startDaemon(testConfig(emu.url, { log_level: 'info' }), { log });
    onTestFinished(() => daemon.stop());
    const n = await waitFor(async () => sample(await daemon.metrics(), 'vllm_probe_requests_total', { probe: 'ttft', model: MODEL, outcome: 'rejected_overload' }), 10_000);
    hold.abort();
    await held.text().catch(() => '');
    expect(n).toBeGreaterThanOrEqual(1);
    const failed = lines.find((l) => l.msg === 'probe failed' && l.outcome === 'rejected_overload');
    expect(failed?.requestId).toMatch(/^vllm-probe-ttft-[0-9a-f-]{36}$/);
  });
});

describe('TTFT decomposition per probe', () => {
  test('with per-request metrics: vLLM\'s own TTFT and queue time next to the client\'s, the gap and the queue share', async () => {
    const emu = await emulator({ perRequestMetrics: true, baseTtftMs: 30 });
    const { log, lines } = capturingLog();
    const daemon = await startDaemon(testConfig(emu.url, { log_level: 'info' }), { log });
    onTestFinished(() => daemon.stop());
    const text = await waitFor(async () => {
      const t = await daemon.metrics();
      return (sample(t, 'vllm_probe_ttft_gap_seconds_count', { probe: 'ttft', model: MODEL }) ?? 0) >= 2 ? t : '';
    }, 10_000);
    const n = sample(text, 'vllm_probe_ttft_gap_seconds_count', { probe: 'ttft', model: MODEL })!;
    const sum = (name: string) => sample(text, `${name}_sum`, { probe: 'ttft', model: MODEL })!;
    const client = sample(text, 'vllm_probe_time_to_first_token_seconds_sum', { probe: 'ttft', model: MODEL, phase: 'warm' })!;
    expect(sample(text, 'vllm_probe_server_time_to_first_token_seconds_count', { probe: 'ttft', model: MODEL })).toBe(n);
    // The emulator's 30 ms prefill. A Node timer can fire up to a millisecond early against
    // performance.now() (libuv compares with the loop time cached before the callback), so 29 ms.
    expect(sum('vllm_probe_server_time_to_first_token_seconds') / n).toBeGreaterThanOrEqual(0.029);
    // client TTFT = vLLM's TTFT + the gap, probe by probe
    expect(sum('vllm_probe_server_time_to_first_token_seconds') + sum('vllm_probe_ttft_gap_seconds')).toBeCloseTo(client, 2);
    expect(sum('vllm_probe_ttft_queue_share_ratio') / n).toBeLessThan(0.5); // idle server: hardly any queueing
    expect(lines.some((l) => String(l.msg).includes('--enable-per-request-metrics'))).toBe(false);
  });

  test('without them the split stays empty and the daemon says once how to get it', async () => {
    const emu = await emulator();
    const { log, lines } = capturingLog();
    const daemon = await startDaemon(testConfig(emu.url, { log_level: 'info' }), { log });
    onTestFinished(() => daemon.stop());
    await waitFor(async () => (sample(await daemon.metrics(), 'vllm_probe_requests_total', { probe: 'ttft', model: MODEL, outcome: 'success' }) ?? 0) >= 3, 10_000);
    expect(sample(await daemon.metrics(), 'vllm_probe_ttft_gap_seconds_count', { probe: 'ttft', model: MODEL })).toBeUndefined();
    expect(lines.filter((l) => String(l.msg).includes('start vLLM with --enable-per-request-metrics for the TTFT split'))).toHaveLength(1);
  });
});
