import { afterEach, expect, test } from 'vitest';
import { startDaemon, testConfig, waitFor } from '../helpers/daemon.js';
import { sseCompletion, startFakeVllm } from '../helpers/fake-vllm.js';

const cleanups: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  while (cleanups.length) await Promise.resolve(cleanups.pop()!()).catch(() => undefined);
});

test('a probe told Retry-After waits that long before its next request, then keeps its interval again', async () => {
  // The first two completions are shed with 429 + Retry-After: 3 s; later ones succeed.
  const stream = sseCompletion({ tokens: 1 });
  const vllm = await startFakeVllm({
    model: 'm',
    routes: {
      '/v1/completions': (req, res) =>
        vllm.count('/v1/completions') <= 2 ? void res.writeHead(429, { 'retry-after': '3', 'content-type': 'application/json' }).end('{"error":{"message":"server busy"}}') : stream(req, res),
    },
  });
  cleanups.push(vllm.close);
  const posts = () => vllm.requests.filter((r) => r.path === '/v1/completions').map((r) => r.at);
  const d = await startDaemon(testConfig(vllm.url, { target: { model: 'm' }, scrape: { enabled: false } }));
  cleanups.push(() => d.stop());

  await waitFor(() => posts().length >= 5, 30_000);
  const at = posts();
  expect(at.length).toBeGreaterThanOrEqual(5);
  const gaps = at.slice(1).map((t, i) => t - at[i]!);
  // The probe runs every 1 s; after each 429 the next request comes no sooner than 3 s later.
  expect(gaps[0]).toBeGreaterThanOrEqual(2900);
  expect(gaps[1]).toBeGreaterThanOrEqual(2900);
  // Once answered normally, the schedule is back to its interval (slots every second).
  expect(Math.min(...gaps.slice(2))).toBeLessThan(2500);
});
