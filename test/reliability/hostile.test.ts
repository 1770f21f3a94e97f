/**
 * Hostile but possible answers (docs/reliability.md, "hostile answers"): each case is a server
 * on loopback answering one way, and what a user would see from vllm-probe.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createNetServer, type AddressInfo, type Server as NetServer } from 'node:net';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { gzipSync } from 'node:zlib';
import { afterAll, afterEach, describe, expect, test } from 'vitest';
import { runCli } from '../../src/cli.js';
import { formatStatusText } from '../../src/status.js';
import { parseExposition } from '../../src/vllm/exposition.js';
import { VllmClient } from '../../src/vllm/client.js';
import { deriveTimings, type StreamResult } from '../../src/vllm/stream.js';
import { sample, startDaemon, testConfig, waitFor } from '../helpers/daemon.js';

type Handler = (req: IncomingMessage, res: ServerResponse) => void;
const servers: Server[] = [];
const netServers: NetServer[] = [];
const clients: VllmClient[] = [];
afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  for (const s of netServers) s.close();
  for (const s of servers) {
    s.closeAllConnections();
    s.close();
  }
});

async function serve(handler: Handler): Promise<string> {
  const server = createServer(handler);
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

async function streamFrom(handler: Handler, timeoutMs = 3000): Promise<StreamResult> {
  const url = await serve(handler);
  const client = new VllmClient({ baseUrl: url, maxResponseBytes: 1 << 20 });
  clients.push(client);
  return client.stream({ path: '/v1/chat/completions', body: { model: 'm', messages: [{ role: 'user', content: 'hi' }], stream: true }, timeoutMs });
}

const chunk = (delta: Record<string, unknown>, extra: Record<string, unknown> = {}) => JSON.stringify({ id: 'c', object: 'chat.completion.chunk', choices: [{ index: 0, delta, finish_reason: null }], ...extra });
const USAGE = JSON.stringify({ id: 'c', choices: [], usage: { prompt_tokens: 5, completion_tokens: 2, total_tokens: 7 } });
const sse = (events: string[], eol = '\n') => events.map((e) => `data: ${e}${eol}${eol}`).join('');
const eventStream = (body: string, headers: Record<string, string> = {}): Handler => (_req, res) => {
  res.writeHead(200, { 'content-type': 'text/event-stream', ...headers });
  res.end(body);
};

describe('SSE', () => {
  test('a stream that stays open after data: [DONE] is a success, finished at [DONE]', async () => {
    const r = await streamFrom((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(sse([chunk({ content: 'a' }), chunk({ content: 'b' }), USAGE, '[DONE]'])); // and never end
    }, 5000);
    expect(r.outcome).toBe('success');
    expect(r.endedAt - r.startedAt).toBeLessThan(2000);
  });

  test('bare-CR line endings (legal SSE) lose nothing, not even a last event without a blank line', async () => {
    const body = `data: ${chunk({ content: 'a' })}\r\rdata: ${chunk({ content: 'b' })}\r\rdata: ${USAGE}\r\rdata: [DONE]\r`;
    const r = await streamFrom(eventStream(body));
    expect(r.outcome).toBe('success');
    expect(r.text).toBe('ab');
    expect(r.usage?.completion_tokens).toBe(2);
  });

  test('event: error is a stream error with its message', async () => {
    const r = await streamFrom(eventStream(`data: ${chunk({ content: 'a' })}\n\nevent: error\ndata: {"error":{"message":"engine died"}}\n\n`));
    expect(r.outcome).toBe('stream_error');
    expect(r.detail).toContain('engine died');
  });

  test('"error": null fields are not errors', async () => {
    const r = await streamFrom(eventStream(sse([chunk({ content: 'a' }, { error: null }), chunk({ content: 'b' }), USAGE, '[DONE]'])));
    expect(r.outcome).toBe('success');
    expect(r.text).toBe('ab');
  });

  // Each once counted as nothing, so a stream of them was a successful probe.
  test.for([
    ['null', /SSE data is not a completion chunk \(null\): null/],
    ['5', /not a completion chunk \(a number\)/],
    ['[{"text":"a"}]', /not a completion chunk \(a list\)/],
    ['{"id":"c","choices":null}', /without a usable choices array \(choices is null\)/],
    ['{"id":"c","choices":[null]}', /without a usable choices array \(choices\[0\] is null\)/],
    ['{"id":"c","choices":[{"index":0,"delta":{"content":"a"}},"x"]}', /\(choices\[1\] is a string\)/],
    ['{"id":"c","choices":{"0":{"text":"a"}}}', /\(choices is an object\)/],
    ['{"id":"c"}', /\(no choices\)/],
  ] as const)('a chunk %s is a bad_response naming what came', async ([data, words]) => {
    const r = await streamFrom(eventStream(sse([chunk({ content: 'a' }), data, chunk({ content: 'b' }), USAGE, '[DONE]'])));
    expect(r.outcome).toBe('bad_response');
    expect(r.detail).toMatch(words);
  });

  test('a reasoning model: TTFT at the first reasoning token, first content later; reasoning-only is a success', async () => {
    const r = await streamFrom((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(sse([chunk({ role: 'assistant', content: '' }), chunk({ reasoning_content: 'Let me think' })]));
      setTimeout(() => res.end(sse([chunk({ content: 'Answer' }), USAGE, '[DONE]'])), 150);
    });
    expect(r.outcome).toBe('success');
    const t = deriveTimings(r);
    expect(t.ttfc! - t.ttft!).toBeGreaterThanOrEqual(0.1);
    const only = await streamFrom(eventStream(sse([chunk({ reasoning: 'hmm' }), chunk({ reasoning: ' ok' }), USAGE, '[DONE]'])));
    expect(only.outcome).toBe('success');
    expect(deriveTimings(only).ttfc).toBeUndefined();
  });

  test('Content-Type is compared without regard to case', async () => {
    const r = await streamFrom(eventStream(sse([chunk({ content: 'a' }), USAGE, '[DONE]']), { 'content-type': 'Text/Event-Stream; Charset=UTF-8' }));
    expect(r.outcome).toBe('success');
  });

  test('a gzip-compressed stream is named as such (a proxy in between), not as garbage', async () => {
    const r = await streamFrom(eventStream(gzipSync(sse([chunk({ content: 'a' }), '[DONE]'])).toString('latin1'), { 'content-encoding': 'gzip' }));
    expect(r.outcome).toBe('bad_response');
    expect(r.detail).toMatch(/gzip-compressed.*proxy/);
  });

  test('a 1 MB response header is a bad response, not "vLLM unreachable"', async () => {
    const r = await streamFrom((req, res) => {
      req.socket.write(`HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nx-junk: ${'a'.repeat(1024 * 1024)}\r\n\r\n`);
      res.destroy();
    });
    expect(r.outcome).toBe('bad_response');
    expect(r.detail).toMatch(/headers are larger/);
  });

  test('a 100 MB SSE line with no newline is refused at the line cap, never buffered whole', async () => {
    let sent = 0;
    const rssBefore = process.memoryUsage().rss;
    let rssMax = rssBefore;
    const sampler = setInterval(() => (rssMax = Math.max(rssMax, process.memoryUsage().rss)), 10);
    const r = await streamFrom(async (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(sse([chunk({ content: 'a' })]));
      const piece = Buffer.alloc(64 * 1024, 'x');
      res.write('data: ');
      while (!res.destroyed && sent < 100 * 1024 * 1024) {
        sent += piece.length;
        if (!res.write(piece)) {
          await new Promise<void>((ok) => {
            const go = () => { res.off('drain', go); res.off('close', go); ok(); };
            res.on('drain', go).on('close', go);
          });
        }
      }
      res.end();
    }, 30_000).finally(() => clearInterval(sampler));
    expect(r.outcome).toBe('bad_response');
    expect(r.detail).toMatch(/an SSE line longer than 1048576 characters/);
    // Read up to the 1 MiB cap plus what socket buffers hold, not the 100 MB on offer.
    expect(sent).toBeLessThan(16 * 1024 * 1024);
    expect(rssMax - rssBefore).toBeLessThan(64 * 1024 * 1024);
  });

  test('an event of many short data: lines without a blank line has the same cap', async () => {
    const line = `data: ${'y'.repeat(1000)}\n`;
    const r = await streamFrom(eventStream(`data: ${chunk({ content: 'a' })}\n\n${line.repeat(2000)}\n`));
    expect(r.outcome).toBe('bad_response');
    expect(r.detail).toMatch(/an SSE event longer than 1048576 characters/);
  });

  test('non-numeric usage counts are dropped, never passed on', async () => {
    const r = await streamFrom(eventStream(sse([chunk({ content: 'a' }), JSON.stringify({ choices: [], usage: { prompt_tokens: 'lots', completion_tokens: -3, total_tokens: 1e400, prompt_tokens_details: { cached_tokens: 'x' } } }), '[DONE]'])));
    expect(r.outcome).toBe('success');
    expect(r.usage).toEqual({});
  });
});

describe('text that reaches /status and logs', () => {
  const cleanups: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    while (cleanups.length) await cleanups.pop()!().catch(() => undefined);
  });

  test('an error body with newlines cannot forge /status lines; a 5 MB message is capped; HTML is summarised', async () => {
    let mode: 'newlines' | 'huge' | 'html' = 'newlines';
    const url = await serve((req, res) => {
      if (req.url === '/health') return void res.writeHead(200).end();
      if (req.url === '/v1/models') return void res.writeHead(200, { 'content-type': 'application/json' }).end('{"data":[{"id":"m"}]}');
      if (mode === 'html') return void res.writeHead(502, { 'content-type': 'text/html' }).end('<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>');
      const message = mode === 'newlines' ? 'bad\nprobe_forged  healthy  all good\r\nmore' : 'x'.repeat(5 * 1024 * 1024);
      res.writeHead(500, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { message } }));
    });
    const d = await startDaemon(testConfig(url, { target: { model: 'm' }, probes: { ttft: { interval: '1s', timeout: '900ms' }, prefix: { enabled: false }, models: { enabled: false } }, scrape: { enabled: false } }));
    cleanups.push(() => d.stop());
    const failingWith = async (re: RegExp) =>
      waitFor(async () => {
        const text = await (await fetch(`${d.url}/status?format=text`)).text();
        return re.test(text) ? text : '';
      }, 10_000);
    const forged = await failingWith(/HTTP 500: bad/);
    expect(forged.split('\n').filter((l) => l.startsWith('probe_forged'))).toEqual([]);
    expect(forged).toContain('bad\\nprobe_forged');
    mode = 'huge';
    const huge = await failingWith(/HTTP 500: xxxx/);
    for (const line of huge.split('\n')) expect(line.length).toBeLessThan(2100);
    const body = (await d.status()).body as { checks: Array<{ reason: string }> };
    for (const c of body.checks) expect(c.reason.length).toBeLessThanOrEqual(300);
    mode = 'html';
    const html = await failingWith(/HTML page/);
    expect(html).toMatch(/the target answered an HTML page \("502 Bad Gateway"\): is this vLLM\?/);
    expect(sample(await d.metrics(), 'vllm_probe_requests_total', { probe: 'ttft', outcome: 'http_5xx' })).toBeGreaterThanOrEqual(3);
  });

  test('formatStatusText keeps one line per check whatever a reason holds', () => {
    const text = formatStatusText({ status: 'degraded', state: 'degraded', cause: 'c\nd', since: '2026-01-01T00:00:00Z', evidence: ['e\nf'], recent: ['g\rh'], serving: true, reasons: ['a\nb'], target: 't', model: 'm', generated_at: 'now', checks: [{ name: 'x', status: 'degraded', reason: 'one\ntwo\rthree', since: 'now', updated_at: 'now' }] });
    // headline, one recent line, one evidence line, one check line
    expect(text.trimEnd().split('\n')).toHaveLength(4);
  });
});

describe('a hostile /metrics', () => {
  const cleanups: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    while (cleanups.length) await cleanups.pop()!().catch(() => undefined);
  });
  const ESCAPES = '\u001b]0;pwned\u0007\u001b[2J';

  test('an exposition error quotes at most 200 characters of a token, control characters escaped', () => {
    let message = '';
    try {
      parseExposition(`vllm:num_requests_running{engine="0"} ${ESCAPES}${'9'.repeat(10 * 1024 * 1024)}\n`);
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toMatch(/^line 1: invalid value "\\u001b\]0;pwned\\u0007\\u001b\[2J9+…" for "vllm:num_requests_running"$/);
    expect(message.length).toBeLessThan(300);
    expect(message).not.toMatch(/[\u0000-\u001f\u007f-\u009f]/);
  });

  test('a 10 MB token, scraped every second: one short warning (not one per scrape), small RSS, /status names it', async () => {
    const token = `${ESCAPES}${'9'.repeat(10 * 1024 * 1024)}`;
    const url = await serve((req, res) => {
      if (req.url === '/metrics') return void res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end(`# TYPE vllm:num_requests_running gauge\nvllm:num_requests_running{engine="0"} ${token}\n`);
      if (req.url === '/health') return void res.writeHead(200).end();
      res.writeHead(404).end();
    });
    let logs = '';
    const sink = new Writable({ write: (c, _e, cb) => ((logs += c.toString()), cb()) });
    const rssBefore = process.memoryUsage().rss;
    let rssMax = rssBefore;
    const sampler = setInterval(() => (rssMax = Math.max(rssMax, process.memoryUsage().rss)), 20);
    cleanups.push(async () => clearInterval(sampler));
    const d = await startDaemon(testConfig(url, { probes: { ttft: { enabled: false }, prefix: { enabled: false }, models: { enabled: false } } }), { log: pino({ level: 'info' }, sink) });
    cleanups.push(() => d.stop());
    const scrapes = await waitFor(async () => {
      const n = sample(await d.metrics(), 'vllm_probe_source_errors_total', { source: 'vllm_metrics', reason: 'parse_error' }) ?? 0;
      return n >= 4 ? n : 0;
    }, 20_000);
    expect(scrapes).toBeGreaterThanOrEqual(4);
    const failures = logs.split('\n').filter((l) => l.includes('collection failed'));
    expect(failures).toHaveLength(1);
    expect(logs.length).toBeLessThan(32 * 1024);
    expect(failures[0]).toContain('invalid value \\"\\\\u001b]0;pwned');
    expect(rssMax - rssBefore).toBeLessThan(120 * 1024 * 1024);
    expect(JSON.stringify((await d.status()).body)).toMatch(/invalid value/);
  });
});

describe('explain-metrics on a hostile or stuck server', () => {
  const explain = async (args: string[]) => {
    let out = '';
    let err = '';
    const t = performance.now();
    const code = await runCli(['explain-metrics', ...args], { stdout: (s) => (out += s), stderr: (s) => (err += s), signal: new AbortController().signal, env: {} });
    return { code, out, err, ms: performance.now() - t };
  };

  test('terminal escape sequences from the server never reach the terminal; the error is one short line', async () => {
    const url = await serve((_req, res) => res.writeHead(200, { 'content-type': 'text/plain' }).end(`vllm:x{a="b"} \u001b]0;pwned\u0007\u001b[2J${'x'.repeat(10 * 1024 * 1024)}\n`));
    const r = await explain([`${url}/metrics`]);
    expect(r.code).toBe(2);
    expect(r.err).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/);
    expect(r.err.length).toBeLessThan(600);
    expect(r.err.trimEnd().split('\n')).toHaveLength(1);
  });

  test('label values with C1 control characters are escaped in the JSON it prints', async () => {
    const url = await serve((_req, res) => res.writeHead(200, { 'content-type': 'text/plain' }).end('vllm:cache_config_info{block_size="16",gpu_memory_utilization="0.9",num_gpu_blocks="\u009b2J\u001b[2J"} 1\nvllm:num_requests_running{engine="0",model_name="m\u009b31m"} 1\n'));
    const r = await explain([`${url}/metrics`]);
    expect(r.code).toBe(0);
    expect(r.out).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/);
    JSON.parse(r.out);
  });

  // A server that never answers, one that stalls after its headers, one that drips a byte a
  // second: each ends at the timeout with the word "timeout", and the URL's password is not shown.
  test.for(['accepts and never answers', 'stalls after headers', 'drips a byte a second'])('%s: --timeout honoured, says timeout, no password', async (mode) => {
    let connections = 0;
    const server = createNetServer((sock) => {
      connections++;
      sock.on('error', () => undefined);
      sock.once('data', () => {
        if (mode === 'accepts and never answers') return;
        sock.write('HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 100000\r\n\r\n# HELP');
        if (mode === 'drips a byte a second') {
          const drip = setInterval(() => (sock.destroyed ? clearInterval(drip) : sock.write('#')), 1000);
          sock.once('close', () => clearInterval(drip));
        }
      });
    });
    netServers.push(server);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    const r = await explain(['--timeout', '1500ms', `http://admin:hunter2-secret@127.0.0.1:${port}/metrics`]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/timeout/);
    expect(r.err).not.toContain('hunter2-secret');
    expect(r.ms).toBeLessThan(1500 + 2500);
    expect(connections).toBe(1);
  });
});
