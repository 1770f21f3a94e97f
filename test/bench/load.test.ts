import type { ServerResponse } from 'node:http';
import { expect, test } from 'vitest';
import { runLoad } from '../../src/bench/load.js';
import { VllmClient } from '../../src/vllm/client.js';
import { waitFor } from '../helpers/daemon.js';
import { startFakeVllm } from '../helpers/fake-vllm.js';

test('stopping a load of 50 open streams ends every one, without piling listeners on the caller\'s signal', async () => {
  // Streams that start and never finish, like a server mid-generation.
  const open = new Set<ServerResponse>();
  const vllm = await startFakeVllm({
    routes: {
      '/v1/completions': (_req, res) => {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.write('data: {"choices":[{"index":0,"text":"a"}]}\n\n');
        open.add(res);
        res.on('close', () => open.delete(res));
      },
    },
  });
  const client = new VllmClient({ baseUrl: vllm.url, maxResponseBytes: 1 << 20, connections: 64 });
  const warnings: string[] = [];
  const onWarning = (w: Error) => warnings.push(`${w.name}: ${w.message}`);
  process.on('warning', onWarning);
  try {
    const controller = new AbortController();
    const load = runLoad({ client, model: 'm' }, { concurrency: 50, requests: 50, body: () => ({ prompt: 'x', max_tokens: 1000 }), timeoutMs: 60_000, signal: controller.signal });
    expect(await waitFor(() => open.size === 50, 20_000)).toBe(true);
    controller.abort(new Error('stop'));
    const records = await load;
    expect(records).toEqual([]); // aborted requests are not results
    expect(await waitFor(() => open.size === 0, 10_000)).toBe(true); // every stream closed
    await new Promise((r) => setImmediate(r)); // warnings are emitted on the next tick
    expect(warnings.filter((w) => w.startsWith('MaxListenersExceededWarning'))).toEqual([]);
  } finally {
    process.off('warning', onWarning);
    await client.close();
    await vllm.close();
  }
});
