/**
 * Every read from vLLM is capped. A hostile target answers each side read (/version,
 * /v1/models, /tokenize, /metrics) with an endless body; the daemon reads only its cap, stays
 * small, keeps answering /healthz, and says what it saw.
 */
import type { ServerResponse } from 'node:http';
import { afterEach, expect, test } from 'vitest';
import { sample, startDaemon, testConfig, waitFor } from '../helpers/daemon.js';
import { REAL_METRICS, startFakeVllm } from '../helpers/fake-vllm.js';

const cleanups: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  while (cleanups.length) await Promise.resolve(cleanups.pop()!()).catch(() => undefined);
});

/** Writes up to 200 MB of `line`, honouring backpressure, until the client goes away. */
async function endless(res: ServerResponse, contentType: string, line: string, sent: Map<string, number>, key: string) {
  res.writeHead(200, { 'content-type': contentType });
  const chunk = Buffer.from(line.repeat(Math.ceil(65536 / line.length)));
  let total = 0;
  while (!res.destroyed && total < 200 * 1024 * 1024) {
    total += chunk.length;
    sent.set(key, Math.max(sent.get(key) ?? 0, total));
    if (!res.write(chunk)) await new Promise((r) => { res.once('drain', r); res.once('close', r); });
  }
  res.end();
}

test('oversized /version, /v1/models, /tokenize and /metrics: capped reads, small daemon, /healthz answers', async () => {
  const sent = new Map<string, number>();
  const vllm = await startFakeVllm({
    routes: {
      '/version': (req, res) => endless(res, 'application/json', '{"version":"0.32.0"', sent, req.path),
      '/v1/models': (req, res) => endless(res, 'application/json', '{"object":"list","data":[{"id":"m"},', sent, req.path),
      '/tokenize': (req, res) => endless(res, 'application/json', '{"count":1,"tokens":[1,2,3', sent, req.path),
      // The first scrapes are a real capture, so the daemon sees a new vLLM process and asks /version.
      '/metrics': (req, res) =>
        vllm.count('/metrics') <= 2 ? void res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end(REAL_METRICS) : endless(res, 'text/plain; version=0.0.4', '# HELP vllm:x padding\n', sent, req.path),
    },
  });
  cleanups.push(vllm.close);
  const url = vllm.url;

  const rssBefore = process.memoryUsage().rss;
  let rssMax = rssBefore;
  const sampler = setInterval(() => (rssMax = Math.max(rssMax, process.memoryUsage().rss)), 20);
  cleanups.push(() => clearInterval(sampler));
  const daemon = await startDaemon(
    testConfig(url, {
      target: { max_response_bytes: 1024 * 1024 },
      probes: { ttft: { interval: '1s', timeout: '900ms' }, prefix: { enabled: true, interval: '2s', timeout: '1500ms', prefix_tokens: [64] }, models: { interval: '1s', timeout: '900ms' } },
    }),
  );
  cleanups.push(() => daemon.stop());

  // Wait until every side read was tried at least twice over, checking /healthz meanwhile.
  const slowest = { ms: 0 };
  const allSeen = await waitFor(async () => {
    const t0 = Date.now();
    const hz = await fetch(`${daemon.url}/healthz`);
    slowest.ms = Math.max(slowest.ms, Date.now() - t0);
    expect(hz.status).toBe(200);
    return ['/version', '/v1/models', '/tokenize', '/metrics'].every((p) => vllm.count(p) > 0) && (sample(await daemon.metrics(), 'vllm_probe_source_errors_total', { source: 'vllm_metrics', reason: 'too_large' }) ?? 0) > 0;
  }, 15_000, 200);
  expect(allSeen).toBe(true);
  // What the daemon took from each endless answer stayed near its cap (socket buffers aside),
  // not the 200 MB on offer.
  for (const [path, bytes] of sent) expect(bytes, path).toBeLessThan(24 * 1024 * 1024);
  expect(rssMax - rssBefore).toBeLessThan(150 * 1024 * 1024);
  expect(slowest.ms).toBeLessThan(1000);
  const status = await daemon.status();
  expect(JSON.stringify(status.body)).toMatch(/\/metrics is larger than 1048576 bytes/);
  expect(JSON.stringify(status.body)).toMatch(/\/v1\/models answer larger than 1 MiB/);
}, 30_000);
