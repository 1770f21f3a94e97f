import { expect, test } from 'vitest';
import { runLoadChecked } from '../../src/bench/load.js';
import { VllmClient } from '../../src/vllm/client.js';
import { sseCompletion, startFakeVllm } from '../helpers/fake-vllm.js';

test('bench honours Retry-After from a server that sheds load (429), then carries on', async () => {
  const stream = sseCompletion({ tokens: 1 });
  const vllm = await startFakeVllm({
    routes: {
      '/v1/completions': (req, res) =>
        vllm.count('/v1/completions') === 1 ? void res.writeHead(429, { 'retry-after': '1', 'content-type': 'application/json' }).end('{"error":{"message":"too many requests"}}') : stream(req, res),
    },
  });
  const client = new VllmClient({ baseUrl: vllm.url, maxResponseBytes: 1 << 20 });
  try {
    const { records, stopped } = await runLoadChecked({ client, model: 'm' }, { concurrency: 1, requests: 2, body: () => ({ prompt: 'x', max_tokens: 1 }), timeoutMs: 5000, signal: new AbortController().signal });
    expect(stopped).toBeUndefined();
    expect(records.map((r) => r.outcome)).toEqual(['rejected_overload', 'success']);
    expect(records[1]!.start - records[0]!.end).toBeGreaterThanOrEqual(990);
  } finally {
    await client.close();
    await vllm.close();
  }
});
