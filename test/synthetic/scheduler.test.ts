import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, expect, test } from 'vitest';
import { startDaemon, testConfig, waitFor } from '../helpers/daemon.js';

const cleanups: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  while (cleanups.length) await Promise.resolve(cleanups.pop()!()).catch(() => undefined);
});

const SSE = 'data: {"choices":[{"index":0,"text":"hi"}]}\n\ndata: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":1}}\n\ndata: [DONE]\n\n';

test('a probe told Retry-After waits that long before its next request, then keeps its interval again', async () => {
  // The first two completions are shed with 429 + Retry-After: 3 s; later ones succeed.
  const posts: number[] = [];
  const server = createServer((req, res) => {
    req.resume();
    if (req.method !== 'POST') return void res.writeHead(req.url === '/health' ? 200 : 404).end();
    posts.push(Date.now());
    if (posts.length <= 2) return void res.writeHead(429, { 'retry-after': '3', 'content-type': 'application/json' }).end('{"error":{"message":"server busy"}}');
    res.writeHead(200, { 'content-type': 'text/event-stream' }).end(SSE);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => new Promise((resolve) => server.close(resolve)));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const d = await startDaemon(testConfig(url, { target: { model: 'm' }, scrape: { enabled: false } }));
  cleanups.push(() => d.stop());

  await waitFor(() => posts.length >= 5, 30_000);
  expect(posts.length).toBeGreaterThanOrEqual(5);
  const gaps = posts.slice(1).map((t, i) => t - posts[i]!);
  // The probe runs every 1 s; after each 429 the next request comes no sooner than 3 s later.
  expect(gaps[0]).toBeGreaterThanOrEqual(2900);
  expect(gaps[1]).toBeGreaterThanOrEqual(2900);
  // Once answered normally, the schedule is back to its interval (slots every second).
  expect(Math.min(...gaps.slice(2))).toBeLessThan(2500);
});
