import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { VllmClient } from '../../src/vllm/client.js';
import { deriveTimings, type StreamRequest, type StreamResult } from '../../src/vllm/stream.js';
import { startEmulator } from '../helpers/daemon.js';
import type { FaultMode } from '../../src/emulator/server.js';

const clients: VllmClient[] = [];
afterAll(() => Promise.all(clients.map((c) => c.close())));

/** One streaming request through the project's client, as the probes send it. */
export function stream(baseUrl: string, extra: Partial<StreamRequest> = {}, timeoutMs = 2000): Promise<StreamResult> {
  const client = new VllmClient({ baseUrl, maxResponseBytes: 1 << 20 });
  clients.push(client);
  return client.stream({
    path: '/v1/completions',
    body: { model: 'm', prompt: 'hi', stream: true, max_tokens: 4, ignore_eos: true, stream_options: { include_usage: true } },
    timeoutMs,
    ...extra,
  });
}

/** A server that replays a fixed SSE transcript split at the given byte offsets, with pauses. */
async function replay(transcript: string, cuts: number[], pauseMs = 2): Promise<{ url: string; server: Server }> {
  const server = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    const bytes = Buffer.from(transcript);
    const points = [...new Set([0, ...cuts.filter((c) => c > 0 && c < bytes.length), bytes.length])].sort((a, b) => a - b);
    let i = 0;
    const next = () => {
      if (i >= points.length - 1) return void res.end();
      res.write(bytes.subarray(points[i], points[i + 1]));
      i++;
      setTimeout(next, pauseMs);
    };
    next();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}

const CHAT_TRANSCRIPT = [
  'data: {"id":"chatcmpl-7f3a","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}',
  'data: {"id":"chatcmpl-7f3a","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"Hél"},"logprobs":null,"finish_reason":null}]}',
  'data: {"id":"chatcmpl-7f3a","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"lo"},"logprobs":null,"finish_reason":"stop","stop_reason":null}]}',
  'data: {"id":"chatcmpl-7f3a","object":"chat.completion.chunk","created":1,"model":"m","choices":[],"usage":{"prompt_tokens":12,"total_tokens":14,"completion_tokens":2}}',
  'data: [DONE]',
  '',
].join('\n\n');

describe('SSE parsing', () => {
  test('the same transcript gives the same text, usage and chunk count however the bytes are split', async () => {
    const len = Buffer.byteLength(CHAT_TRANSCRIPT);
    // every single-byte split point (including inside the multi-byte "é"), plus random multi-splits
    const splits: number[][] = Array.from({ length: len - 1 }, (_, i) => [i + 1]);
    let seed = 7;
    const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    for (let k = 0; k < 30; k++) splits.push(Array.from({ length: 8 }, () => Math.floor(rand() * len)));
    for (const cuts of splits.filter((_, i) => i % 7 === 0 || i >= len - 1)) {
      const { url, server } = await replay(CHAT_TRANSCRIPT, cuts, 0);
      const r = await stream(url, { path: '/v1/chat/completions' });
      server.close();
      expect(r.outcome, `cuts ${cuts.join(',')}`).toBe('success');
      expect(r.text).toBe('Héllo');
      expect(r.tokenAt).toHaveLength(2); // the role-only chunk is not a token
      expect(r.usage?.completion_tokens).toBe(2);
    }
  });

  test('a role-only chunk does not count as the first token', async () => {
    const { url, server } = await replay(CHAT_TRANSCRIPT, [CHAT_TRANSCRIPT.indexOf('data: {"id":"chatcmpl-7f3a","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"Hél')], 150);
    const r = await stream(url, { path: '/v1/chat/completions' });
    server.close();
    const t = deriveTimings(r);
    expect(t.ttft).toBeGreaterThanOrEqual(0.14);
  });
});

describe('an empty completion says what the stream carried', () => {
  // What a random-weight model can send: tokens generated (usage counts them) that all decode
  // to nothing. Both paths (parsed and bench's count-only) must say so, not just "empty".
  const EMPTY_TEXT = [
    ...Array.from({ length: 3 }, () => 'data: {"id":"cmpl-1","object":"text_completion","created":1,"model":"m","choices":[{"index":0,"text":"","logprobs":null,"finish_reason":null}]}'),
    'data: {"id":"cmpl-1","object":"text_completion","created":1,"model":"m","choices":[],"usage":{"prompt_tokens":5,"total_tokens":8,"completion_tokens":3}}',
    'data: [DONE]',
    '',
  ].join('\n\n');
  test.each([false, true])('countOnly %s', async (countOnly) => {
    const { url, server } = await replay(EMPTY_TEXT, []);
    const r = await stream(url, { countOnly });
    server.close();
    expect(r.outcome).toBe('empty_completion');
    expect(r.detail).toMatch(/^stream finished without any generated token \(4 data events, usage says 3 completion tokens; last: \{"id":"cmpl-1"/);
  });
});

describe('timing arithmetic', () => {
  test('TTFT, ITL, TPOT and E2E follow the vllm bench serve definitions', () => {
    const t = deriveTimings({ startedAt: 1000, tokenAt: [1100, 1120, 1150, 1190], endedAt: 1200, usage: { completion_tokens: 4 } });
    expect(t.ttft).toBeCloseTo(0.1, 9);
    expect(t.itl.map((x) => Number(x.toFixed(6)))).toEqual([0.02, 0.03, 0.04]);
    expect(t.e2e).toBeCloseTo(0.2, 9);
    expect(t.tpot).toBeCloseTo((0.2 - 0.1) / 3, 9);
  });

  test('TPOT is undefined for a single output token and without usage', () => {
    expect(deriveTimings({ startedAt: 0, tokenAt: [50], endedAt: 60, usage: { completion_tokens: 1 } }).tpot).toBeUndefined();
    expect(deriveTimings({ startedAt: 0, tokenAt: [50, 60], endedAt: 60 }).tpot).toBeUndefined();
    expect(deriveTimings({ startedAt: 0, tokenAt: [], endedAt: 60 }).ttft).toBeUndefined();
  });
});

describe('outcome classes against the emulator over loopback', () => {
  let emu: Awaited<ReturnType<typeof startEmulator>>;
  beforeAll(async () => {
    emu = await startEmulator({ model: 'm', coldStartMs: 0, itlMs: 2 });
  });
  afterAll(() => emu.close());

  const cases: Array<[FaultMode, string, number?]> = [
    ['none', 'success'],
    ['http_500', 'http_5xx'],
    ['http_503', 'rejected_overload'],
    ['error_chunk', 'stream_error'],
    ['no_done', 'incomplete_stream'],
    ['garbled_sse', 'bad_response'],
    ['empty_completion', 'empty_completion'],
    ['die_mid_stream', 'incomplete_stream'],
    ['never_headers', 'timeout_before_first_token', 300],
    ['stall_after_headers', 'timeout_before_first_token', 300],
    ['slow_first_token', 'timeout_before_first_token', 300],
    ['stall_mid_stream', 'timeout_mid_stream', 300],
  ];
  test.each(cases)('fault %s → outcome %s', async (mode, outcome, timeoutMs) => {
    emu.emulator.fault = { mode };
    const r = await stream(emu.url, {}, timeoutMs ?? 3000);
    emu.emulator.fault = { mode: 'none' };
    expect(r.outcome).toBe(outcome);
    if (outcome !== 'success') expect(r.detail).toBeTruthy();
    if (timeoutMs) expect(r.endedAt - r.startedAt).toBeLessThan(timeoutMs + 500);
  });

  test('a wrong model name is http_4xx with the server message', async () => {
    const r = await stream(emu.url, { body: { model: 'nope', prompt: 'x', stream: true } });
    expect(r.outcome).toBe('http_4xx');
    expect(r.detail).toContain('does not exist');
  });

  test('nothing listening is connect_error naming the refusal', async () => {
    const server = createServer();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    await new Promise<void>((r) => server.close(() => r()));
    const r = await stream(`http://127.0.0.1:${port}`);
    expect(r.outcome).toBe('connect_error');
    expect(r.errorCode).toBe('ECONNREFUSED');
    expect(r.detail).toContain('connection refused');
  });

  test('shutdown abort is reported as aborted, not as a timeout', async () => {
    emu.emulator.fault = { mode: 'never_headers' };
    const shutdown = new AbortController();
    setTimeout(() => shutdown.abort(), 100);
    const r = await stream(emu.url, { signal: shutdown.signal }, 5000);
    emu.emulator.fault = { mode: 'none' };
    expect(r.aborted).toBe(true);
  });

  test('successful streams carry usage and exactly max_tokens content chunks', async () => {
    const r = await stream(emu.url);
    expect(r.outcome).toBe('success');
    expect(r.tokenAt).toHaveLength(4);
    expect(r.usage?.completion_tokens).toBe(4);
    expect(r.usage?.prompt_tokens).toBeGreaterThan(0);
  });
});
