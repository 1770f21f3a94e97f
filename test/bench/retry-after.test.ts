import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { expect, test } from 'vitest';
import { runLoadChecked } from '../../src/bench/load.js';
import { VllmClient } from '../../src/vllm/client.js';

test('bench honours Retry-After from a server that sheds load (429), then carries on', async () => {
  let calls = 0;
  const server = createServer((req, res) => {
    req.resume();
    if (calls++ === 0) return void res.writeHead(429, { 'retry-after': '1', 'content-type': 'application/json' }).end('{"error":{"message":"too many requests"}}');
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.end('data: {"choices":[{"text":"a"}]}\n\ndata: {"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1}}\n\ndata: [DONE]\n\n');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const client = new VllmClient({ baseUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, maxResponseBytes: 1 << 20 });
  try {
    const { records, stopped } = await runLoadChecked({ client, model: 'm' }, { concurrency: 1, requests: 2, body: () => ({ prompt: 'x', max_tokens: 1 }), timeoutMs: 5000, signal: new AbortController().signal });
    expect(stopped).toBeUndefined();
    expect(records.map((r) => r.outcome)).toEqual(['rejected_overload', 'success']);
    expect(records[1]!.start - records[0]!.end).toBeGreaterThanOrEqual(990);
  } finally {
    await client.close();
    server.close();
  }
});
