import { expect, test } from 'vitest';
import { VllmClient } from '../../src/vllm/client.js';
import { startFakeVllm } from '../helpers/fake-vllm.js';

// Bench load (countOnly) keeps one number per stream, not one per token: at 2,000 streams the
// per-token arrays lived as long as their streams and filled the old generation (issue 28).
test.each([false, true])('countOnly %s: every token chunk is counted; only the full mode keeps every arrival time', async (countOnly) => {
  const vllm = await startFakeVllm({ model: 'm', sse: { tokens: 40 } });
  const client = new VllmClient({ baseUrl: vllm.url, maxResponseBytes: 1 << 20 });
  try {
    const r = await client.stream({ path: '/v1/completions', body: { model: 'm', prompt: 'hi', stream: true, max_tokens: 40, stream_options: { include_usage: true } }, timeoutMs: 5000, countOnly });
    expect(r.outcome).toBe('success');
    expect(r.tokenChunks).toBe(40);
    expect(r.tokenAt).toHaveLength(countOnly ? 1 : 40);
    expect(r.tokenAt[0]).toBeGreaterThanOrEqual(r.startedAt);
    expect(r.usage?.completion_tokens).toBe(40);
  } finally {
    await client.close();
    await vllm.close();
  }
});
