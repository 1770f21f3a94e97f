/**
 * The emulator against saved captures from a real vLLM (test/fixtures/vllm/*-v0.32.0.*, and
 * metrics-v0.26.0-cuda.txt for the 0.26.0 metric set):
 * same vllm:* family names, types and label names; same SSE chunk structure; same error
 * body shapes. test/e2e/agreement.test.ts repeats this live against a running vLLM.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { familyShape, sseShape, jsonShape } from '../helpers/shapes.js';
import { startEmulator } from '../helpers/daemon.js';

const VERSION = '0.32.0';
const fixture = (name: string) => readFileSync(`test/fixtures/vllm/${name}-v${VERSION}.${name.startsWith('metrics') || name.startsWith('sse') ? 'txt' : 'json'}`, 'utf8');

let emu: Awaited<ReturnType<typeof startEmulator>>;
beforeAll(async () => {
  emu = await startEmulator({ model: 'tiny-llama', coldStartMs: 0, itlMs: 1 });
});
afterAll(() => emu.close());

const postTo = (base: string, path: string, body: unknown, headers: Record<string, string> = { 'content-type': 'application/json' }) =>
  fetch(`${base}${path}`, { method: 'POST', headers, body: typeof body === 'string' ? body : JSON.stringify(body) });
const post = (path: string, body: unknown, headers?: Record<string, string>) => postTo(emu.url, path, body, headers);

// Both captured metric sets: 0.32.0 (CPU) and 0.26.0 (CUDA, from the H200 run).
describe.each([
  ['0.32.0', undefined, 'metrics-v0.32.0.txt'],
  ['0.26.0', '0.26.0', 'metrics-v0.26.0-cuda.txt'],
])('/metrics as vLLM %s', (_label, version, capture) => {
  test('every real vllm:* family exists with the same type and label names, and no other', async () => {
    const own = version ? await startEmulator({ model: 'tiny-llama', coldStartMs: 0, itlMs: 1, version }) : emu;
    try {
      await postTo(own.url, '/v1/completions', { model: 'tiny-llama', prompt: 'hello there', max_tokens: 4, stream: true, stream_options: { include_usage: true } }).then((r) => r.text());
      const res = await fetch(`${own.url}/metrics`);
      expect(res.headers.get('content-type')).toBe('text/plain; version=1.0.0; charset=utf-8');
      expect(familyShape(await res.text())).toEqual(familyShape(readFileSync(`test/fixtures/vllm/${capture}`, 'utf8')));
    } finally {
      if (own !== emu) await own.close();
    }
  });
});

describe('emulator agrees with real vLLM 0.32.0', () => {
  test('completions SSE: same chunk keys in the same order of chunk kinds', async () => {
    const text = await (await post('/v1/completions', { model: 'tiny-llama', prompt: 'hello there', max_tokens: 16, stream: true, stream_options: { include_usage: true }, ignore_eos: true })).text();
    expect(sseShape(text)).toEqual(sseShape(fixture('sse-completions')));
  });

  test('chat SSE: role chunk, content chunks, finishing chunk, usage chunk, [DONE]', async () => {
    const text = await (await post('/v1/chat/completions', { model: 'tiny-llama', messages: [{ role: 'user', content: 'hi' }], max_tokens: 16, stream: true, stream_options: { include_usage: true }, ignore_eos: true })).text();
    expect(sseShape(text)).toEqual(sseShape(fixture('sse-chat')));
  });

  test.each([
    ['error-404-model', '/v1/completions', { model: 'no-such-model', prompt: 'x', max_tokens: 4 }, 404],
    ['error-400', '/v1/completions', { model: 'tiny-llama', prompt: 'x', max_tokens: -1 }, 400],
  ])('%s has the same body shape and status', async (name, path, body, status) => {
    const res = await post(path, body);
    expect(res.status).toBe(status);
    expect(jsonShape(await res.json())).toEqual(jsonShape(JSON.parse(fixture(name))));
  });

  test('wrong content type is a 400 with the real message', async () => {
    const res = await post('/tokenize', 'x', { 'content-type': 'text/plain' });
    expect(res.status).toBe(400);
    expect(await res.json()).toEqual(JSON.parse(fixture('error-400-content-type')));
  });

  test('/v1/models, /version and /tokenize have the real shapes', async () => {
    expect(jsonShape(await (await fetch(`${emu.url}/v1/models`)).json())).toEqual(jsonShape(JSON.parse(fixture('models'))));
    expect(jsonShape(await (await fetch(`${emu.url}/version`)).json())).toEqual(jsonShape(JSON.parse(fixture('version'))));
    expect(jsonShape(await (await post('/tokenize', { model: 'tiny-llama', prompt: 'hello world' })).json())).toEqual(jsonShape(JSON.parse(fixture('tokenize'))));
  });
});
