/**
 * GET /probe on loopback: the daemon in-process, emulators as targets, and small node:http
 * servers where a test needs to see what reached the target (headers, redirects).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../src/config.js';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, onTestFinished, test } from 'vitest';
import { parseTarget, probeTimeout, targetKey } from '../../src/fleet/probe.js';
import { sample, startDaemon, startEmulator, testConfig, waitFor, type RunningDaemon } from '../helpers/daemon.js';
import { freePort } from '../helpers/prometheus.js';
import { PROMTOOL } from '../helpers/tools.js';

let emu: Awaited<ReturnType<typeof startEmulator>>;
let keyed: Awaited<ReturnType<typeof startEmulator>>;
let daemon: RunningDaemon;

const probe = (params: Record<string, string>, headers: Record<string, string> = {}) => fetch(`${daemon.url}/probe?${new URLSearchParams(params)}`, { headers });

/** A plain server recording the headers of every request; answers with `answer`. */
async function recorder(answer: (res: import('node:http').ServerResponse) => void) {
  const seen: Array<{ url: string; headers: IncomingHttpHeaders }> = [];
  const server: Server = createServer((req, res) => {
    seen.push({ url: req.url ?? '', headers: req.headers });
    answer(res);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  onTestFinished(() => new Promise<void>((r) => server.close(() => r())));
  return { port, seen };
}

beforeAll(async () => {
  emu = await startEmulator({ model: 'fleet-model', coldStartMs: 0, baseTtftMs: 20, itlMs: 2 });
  keyed = await startEmulator({ model: 'keyed-model', coldStartMs: 0, apiKey: 'sk-fleet' });
  daemon = await startDaemon(
    testConfig('http://127.0.0.1:9', {
      probes: { ttft: { enabled: false }, prefix: { enabled: false }, models: { enabled: false } },
      scrape: { enabled: false },
      probe_endpoint: { allow: ['127.0.0.1', 'localhost'] },
      modules: {
        ttft: { kind: 'ttft', max_tokens: 4 },
        slow: { kind: 'ttft', timeout: '5s' },
        models: { kind: 'models' },
        keyed: { kind: 'ttft', max_tokens: 2, api_key_env: 'FLEET_KEY', api_key_hosts: ['127.0.0.1'] },
      },
    }),
    { env: { FLEET_KEY: 'sk-fleet' } },
  );
});

afterAll(async () => {
  await daemon?.stop();
  await emu?.close();
  await keyed?.close();
});

describe('a probe of a healthy target', () => {
  test('answers 200 with success 1, TTFT/ITL/E2E gauges and a one-hot outcome, lint-clean', async () => {
    const res = await probe({ target: emu.url, module: 'ttft' });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0.0.4/);
    const text = await res.text();
    expect(sample(text, 'vllm_probe_success')).toBe(1);
    const ttft = sample(text, 'vllm_probe_ttft_seconds')!;
    const e2e = sample(text, 'vllm_probe_e2e_seconds')!;
    expect(ttft).toBeGreaterThanOrEqual(0.019); // the emulator's 20 ms, less the ms a Node timer may fire early
    expect(e2e).toBeGreaterThan(ttft);
    expect(sample(text, 'vllm_probe_itl_seconds')).toBeGreaterThan(0);
    expect(sample(text, 'vllm_probe_duration_seconds')).toBeGreaterThanOrEqual(e2e);
    expect(sample(text, 'vllm_probe_outcome', { outcome: 'success' })).toBe(1);
    expect(sample(text, 'vllm_probe_outcome', { outcome: 'connect_error' })).toBe(0);
    // Fresh registry per request: nothing of the daemon's own, no counters.
    expect(text).not.toMatch(/vllm_probe_requests_total|vllm_probe_build_info|_bucket/);
    if (PROMTOOL) {
      const lint = spawnSync(PROMTOOL, ['check', 'metrics'], { input: text, encoding: 'utf8' });
      expect(lint.stdout + lint.stderr).toBe('');
    }
  });

  test('a bare HOST:PORT target means http, and the models module checks /health and /v1/models', async () => {
    const text = await (await probe({ target: new URL(emu.url).host, module: 'models' })).text();
    expect(sample(text, 'vllm_probe_success')).toBe(1);
    expect(text).not.toContain('vllm_probe_ttft_seconds'); // no stream, no TTFT
  });

  test('debug=true gives the probe log, the metrics and the effective module, without the key', async () => {
    const res = await probe({ target: keyed.url, module: 'keyed', debug: 'true' });
    expect(res.status).toBe(200);
    const text = await res.text();
    expect(text).toMatch(/^Logs for the probe:\n/);
    expect(text).toMatch(/beginning probe .*module="keyed"/);
    expect(text).toMatch(/request 1 finished .*outcome="success"/);
    expect(text).toContain('probe succeeded');
    expect(text).toContain('\nMetrics that would have been returned:\n');
    expect(text).toContain('vllm_probe_success 1');
    expect(text).toContain('\nModule configuration:\n');
    expect(text).toMatch(/max_tokens: 2\n/);
    expect(text).toContain('api_key: env FLEET_KEY');
    expect(text).toContain('api_key_sent: true');
    expect(text).not.toContain('sk-fleet');
  });
});

describe('a failed probe is a value', () => {
  test('a stopped target answers 200 with success 0, outcome connect_error and no latency gauges', async () => {
    const port = await freePort();
    const res = await probe({ target: `http://127.0.0.1:${port}`, module: 'ttft' });
    expect(res.status).toBe(200);
    const text = await res.text();
    expect(sample(text, 'vllm_probe_success')).toBe(0);
    expect(sample(text, 'vllm_probe_outcome', { outcome: 'connect_error' })).toBe(1);
    expect(text).not.toMatch(/vllm_probe_(ttft|itl|e2e)_seconds/);
  });

  test('the scrape timeout header minus 0.5 s caps the module timeout', async () => {
    const slow = await startEmulator({ coldStartMs: 0, fault: { mode: 'slow_first_token', delayMs: 3000 } });
    onTestFinished(() => slow.close());
    const t0 = Date.now();
    const text = await (await probe({ target: slow.url, module: 'slow' }, { 'X-Prometheus-Scrape-Timeout-Seconds': '1.5' })).text();
    const took = (Date.now() - t0) / 1000;
    expect(sample(text, 'vllm_probe_success')).toBe(0);
    expect(sample(text, 'vllm_probe_outcome', { outcome: 'timeout_before_first_token' })).toBe(1);
    expect(sample(text, 'vllm_probe_duration_seconds')).toBeGreaterThanOrEqual(0.95);
    expect(sample(text, 'vllm_probe_duration_seconds')).toBeLessThan(1.5); // the probe stopped at 1 s, not the module's 5 s
    expect(took).toBeLessThan(4); // and answered well before the module timeout (slack for a busy machine)
  });

  test('a redirect is not followed: the probe fails and the other host sees nothing', async () => {
    const elsewhere = await recorder((res) => res.end('{}'));
    const redirecting = await recorder((res) => {
      res.writeHead(302, { location: `http://127.0.0.1:${elsewhere.port}/v1/completions` });
      res.end();
    });
    const text = await (await probe({ target: `http://127.0.0.1:${redirecting.port}`, module: 'models' })).text();
    expect(sample(text, 'vllm_probe_success')).toBe(0);
    const streamed = await (await probe({ target: `http://127.0.0.1:${redirecting.port}`, module: 'ttft' })).text();
    expect(sample(streamed, 'vllm_probe_success')).toBe(0);
    expect(redirecting.seen.length).toBeGreaterThan(0);
    expect(elsewhere.seen).toEqual([]);
  });
});

describe('the API key goes only to the module hosts', () => {
  test('sent to 127.0.0.1 (in api_key_hosts): the keyed emulator accepts the probe', async () => {
    const text = await (await probe({ target: keyed.url, module: 'keyed' })).text();
    expect(sample(text, 'vllm_probe_success')).toBe(1);
  });

  test('withheld from localhost (allowed, but not in api_key_hosts): no Authorization header arrives', async () => {
    const target = await recorder((res) => {
      res.writeHead(401, { 'content-type': 'application/json' });
      res.end('{"error":{"message":"Unauthorized"}}');
    });
    const res = await probe({ target: `http://localhost:${target.port}`, module: 'keyed', debug: 'true' });
    const text = await res.text();
    expect(text).toContain('API key withheld');
    expect(text).toContain('vllm_probe_success 0');
    expect(target.seen.length).toBeGreaterThan(0);
    for (const r of target.seen) expect(r.headers.authorization).toBeUndefined();
  });
});

describe('refusals', () => {
  test('unknown or missing module → 400 naming the known modules', async () => {
    const res = await probe({ target: emu.url, module: 'nope' });
    expect(res.status).toBe(400);
    expect(await res.text()).toBe('unknown module "nope" (known modules: ttft, slow, models, keyed)\n');
    expect((await probe({ target: emu.url })).status).toBe(400);
  });

  test('missing or malformed target → 400', async () => {
    expect((await probe({ module: 'ttft' })).status).toBe(400);
    const res = await probe({ module: 'ttft', target: 'http://u:p@127.0.0.1:1' });
    expect(res.status).toBe(400);
    expect(await res.text()).toMatch(/credentials/);
  });

  test('a target ending in /v1 → 400 naming the URL to use, instead of a probe failing on /v1/v1/… (issue 26)', async () => {
    const res = await probe({ module: 'ttft', target: `${emu.url}/v1` });
    expect(res.status).toBe(400);
    expect(await res.text()).toBe(`target: expected vLLM's base URL without /v1 (its /health, /metrics and /tokenize are at the root), got "${emu.url}/v1": use "${emu.url}"\n`);
  });

  test('a target outside probe_endpoint.allow → 403 with the reason, and nothing is sent', async () => {
    const res = await probe({ target: 'http://10.1.2.3:8000', module: 'ttft' });
    expect(res.status).toBe(403);
    expect(await res.text()).toBe('target "10.1.2.3:8000" is not allowed: its host matches none of probe_endpoint.allow (127.0.0.1, localhost)\n');
    // The WHATWG parser's normal form is what is matched: 0x7f.1 is 127.0.0.1, allowed.
    expect((await probe({ target: `http://0x7f.1:${new URL(emu.url).port}`, module: 'ttft' })).status).toBe(200);
  });

  test('a third probe of one target while two are in flight → 503 naming the cap; another target still goes', async () => {
    // A target that accepts the request and then says nothing: each probe stays in flight.
    const held: Array<import('node:http').ServerResponse> = [];
    const slow = await recorder((res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      held.push(res);
    });
    const target = `http://127.0.0.1:${slow.port}`;
    const first = [probe({ target, module: 'slow' }), probe({ target, module: 'slow' })];
    await waitFor(() => slow.seen.length === 2, 10_000);
    const third = await probe({ target, module: 'ttft' });
    expect(third.status).toBe(503);
    expect(await third.text()).toBe(`2 probes of 127.0.0.1:${slow.port} already in flight (probe_endpoint.max_concurrent_per_target is 2); retry later\n`);
    expect(slow.seen).toHaveLength(2); // the refused one sent nothing
    expect((await probe({ target: emu.url, module: 'ttft' })).status).toBe(200);
    for (const res of held) res.end('data: [DONE]\n\n');
    expect((await Promise.all(first)).map((r) => r.status)).toEqual([200, 200]);
    // The slots are free again (this one is held too, and ends at the scrape timeout).
    expect((await probe({ target, module: 'ttft' }, { 'X-Prometheus-Scrape-Timeout-Seconds': '1.5' })).status).toBe(200);
    for (const res of held) res.destroy();
  });

  test('one target however it is spelt: trailing slashes, ::ffff:127.0.0.1, no scheme share one cap', async () => {
    const held: Array<import('node:http').ServerResponse> = [];
    const slow = await recorder((res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      held.push(res);
    });
    const p = slow.port;
    const spellings = [`http://127.0.0.1:${p}`, `http://127.0.0.1:${p}//`, `http://[::ffff:127.0.0.1]:${p}///`, `127.0.0.1:${p}/`, `HTTP://[0:0:0:0:0:ffff:7f00:1]:${p}`, `http://127.0.0.1.:${p}/`];
    const first = spellings.slice(0, 2).map((target) => probe({ target, module: 'slow' }));
    await waitFor(() => slow.seen.length === 2, 10_000);
    for (const target of spellings.slice(2)) {
      const res = await probe({ target, module: 'slow' });
      expect(res.status, target).toBe(503);
      expect(await res.text()).toMatch(new RegExp(`^2 probes of 127\\.0\\.0\\.1:${p} already in flight`));
    }
    expect(slow.seen).toHaveLength(2);
    for (const res of held) res.end('data: [DONE]\n\n');
    expect((await Promise.all(first)).map((r) => r.status)).toEqual([200, 200]);
    for (const res of held) res.destroy();
  });

  test('targetKey: scheme, address, port and path, however spelt', () => {
    const key = (t: string) => targetKey(parseTarget(t) as URL).key;
    expect(key('http://127.0.0.1:8000//')).toBe('http://127.0.0.1:8000');
    expect(key('[::ffff:127.0.0.1]:8000')).toBe('http://127.0.0.1:8000');
    expect(key('http://Example.COM./llama/')).toBe('http://example.com:80/llama');
    expect(key('https://[::1]')).toBe('https://[::1]:443');
    expect(key('http://10.0.0.5:8000/gw//')).not.toBe(key('http://10.0.0.5:8000/'));
  });

  test('a config reload lets a /probe in flight finish under the old config (no 503 "stopping")', async () => {
    // A target that holds the completion until released, then streams a real answer.
    const release: Array<() => void> = [];
    let open = false;
    const target = await recorder((res) => {
      const answer = () => {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        const chunk = (text: string) => `data: ${JSON.stringify({ id: 'c', choices: [{ index: 0, text }] })}\n\n`;
        res.end(`${chunk('a')}${chunk('b')}data: ${JSON.stringify({ id: 'c', choices: [], usage: { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 } })}\n\ndata: [DONE]\n\n`);
      };
      if (open) answer();
      else release.push(answer);
    });
    const dir = mkdtempSync(join(tmpdir(), 'probe-reload-'));
    const file = join(dir, 'config.yaml');
    const yaml = (model: string) =>
      `listen: 127.0.0.1:0\nlog_level: silent\ntarget:\n  url: http://127.0.0.1:9\nprobes:\n  ttft: {enabled: false}\n  prefix: {enabled: false}\n  models: {enabled: false}\nscrape: {enabled: false}\ngpu: {enabled: false}\nprobe_endpoint:\n  allow: [127.0.0.1]\nmodules:\n  held: {kind: ttft, model: ${model}, timeout: 10s, max_tokens: 2}\n`;
    writeFileSync(file, yaml('old-model'));
    const d = await startDaemon(loadConfig(file), { configFile: file });
    onTestFinished(() => d.stop());
    const answer = fetch(`${d.url}/probe?${new URLSearchParams({ target: `http://127.0.0.1:${target.port}`, module: 'held' })}`);
    await waitFor(() => release.length > 0, 10_000);
    writeFileSync(file, yaml('new-model'));
    expect((await fetch(`${d.url}/-/reload`, { method: 'POST' })).status).toBe(200);
    open = true;
    for (const go of release) go();
    const res = await answer;
    expect(res.status).toBe(200);
    expect(sample(await res.text(), 'vllm_probe_success')).toBe(1);
    expect(target.seen.some((r) => r.url.endsWith('/completions'))).toBe(true);
  });

  test('a malformed scrape-timeout header → 400', async () => {
    expect((await probe({ target: emu.url, module: 'ttft' }, { 'X-Prometheus-Scrape-Timeout-Seconds': 'soon' })).status).toBe(400);
  });

  test('without probe_endpoint.allow the endpoint is off: 404 saying so', async () => {
    const off = await startDaemon(testConfig(emu.url, { probes: { ttft: { enabled: false } }, scrape: { enabled: false }, modules: { ttft: { kind: 'ttft' } } }));
    onTestFinished(() => off.stop());
    const res = await fetch(`${off.url}/probe?target=${encodeURIComponent(emu.url)}&module=ttft`);
    expect(res.status).toBe(404);
    expect(await res.text()).toMatch(/^\/probe is off: probe_endpoint\.allow lists no hosts/);
  });
});

describe('timeout and target rules (blackbox_exporter getTimeout)', () => {
  test.each([
    [undefined, 10, 10], // no header: 120 s assumed, the module's 10 s wins
    ['15', 10, 10],
    ['5', 10, 4.5],
    ['1.5', 10, 1],
    ['0.4', 10, 10], // nothing left after the offset: the module's timeout, as blackbox does
    ['0', 10, 10],
  ] as const)('header %s, module %d s → %d s', (header, module, expected) => {
    expect(probeTimeout(header, module, 0.5)).toBe(expected);
  });

  test('malformed headers and targets are reasons, not throws', () => {
    expect(probeTimeout('-1', 10, 0.5)).toMatch(/^X-Prometheus-Scrape-Timeout-Seconds: expected a number/);
    expect(parseTarget('ftp://x')).toBe('target: expected an http(s) URL like "http://127.0.0.1:8000", got "ftp://x"');
    expect(parseTarget('http://x/?a=1')).toBe('target: expected a base URL without query or fragment, got "http://x/?a=1"');
    expect((parseTarget('10.0.0.5:8000') as URL).href).toBe('http://10.0.0.5:8000/');
    expect((parseTarget('https://gw.internal/llama') as URL).pathname).toBe('/llama');
  });
});
