import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { expect, test } from 'vitest';
import { runLoadChecked, STARTS_PER_TURN } from '../../src/bench/load.js';
import { VllmClient } from '../../src/vllm/client.js';

const STREAM = 'data: {"choices":[{"index":0,"text":"a"}]}\n\ndata: {"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1}}\n\ndata: [DONE]\n\n';

test('streams that all end together restart a few per event-loop turn, not all in one turn (issue 28)', async () => {
  const concurrency = 200;
  // Holds every response until all `concurrency` requests of a round are in, then ends them
  // together: fixed-length streams in lock-step, as the Go server produced at 2,000 streams.
  let held: ServerResponse[] = [];
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      held.push(res);
      if (held.length < concurrency) return;
      const round = held;
      held = [];
      for (const r of round) r.end(STREAM);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const client = new VllmClient({ baseUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, maxResponseBytes: 1 << 20, connections: concurrency });
  // Requests handed to the client per turn of the event loop (a turn ends at setImmediate).
  let turn = 0;
  let ticking = true;
  const tick = () => {
    turn++;
    if (ticking) setImmediate(tick);
  };
  setImmediate(tick);
  const perTurn = new Map<number, number>();
  const stream = client.stream.bind(client);
  client.stream = (req) => {
    perTurn.set(turn, (perTurn.get(turn) ?? 0) + 1);
    return stream(req);
  };
  try {
    const { records, clientDelay } = await runLoadChecked({ client, model: 'm' }, { concurrency, requests: 3 * concurrency, body: () => ({ prompt: 'x', max_tokens: 1 }), timeoutMs: 30_000, signal: new AbortController().signal });
    expect(records).toHaveLength(3 * concurrency);
    expect(records.every((r) => r.outcome === 'success')).toBe(true);
    expect(Math.max(...perTurn.values())).toBeLessThanOrEqual(STARTS_PER_TURN);
    expect(STARTS_PER_TURN).toBeLessThan(concurrency);
    // The run says how late its own event loop was.
    expect(clientDelay.samples).toBeGreaterThan(0);
    expect(clientDelay.maxMs).toBeGreaterThanOrEqual(clientDelay.p99Ms);
  } finally {
    ticking = false;
    await client.close();
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
});
