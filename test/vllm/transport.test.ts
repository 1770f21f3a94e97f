/**
 * The two connection pools under VllmClient (src/vllm/transport.ts): node:http for the daemon,
 * undici for bench load. Whatever a server does, both must end a request the same way, since
 * the daemon's verdicts and the bench's figures are read against each other.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import diagnostics from 'node:diagnostics_channel';
import { createServer as createTcpServer, type AddressInfo, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { afterEach, describe, expect, test } from 'vitest';
import { SourceError } from '../../src/errors.js';
import { VllmClient } from '../../src/vllm/client.js';
import { deriveTimings, streamCompletion, type StreamResult } from '../../src/vllm/stream.js';
import { createTransport, type RequestStartContext, type Transport, type TransportKind } from '../../src/vllm/transport.js';

const KINDS: TransportKind[] = ['node', 'undici'];
const cleanup: (() => Promise<unknown> | void)[] = [];
afterEach(async () => {
  await Promise.allSettled(cleanup.splice(0).map((f) => f()));
});

async function serve(handler: (req: IncomingMessage, res: ServerResponse) => void, tune?: (s: Server) => void): Promise<{ url: string; server: Server; sockets: Socket[] }> {
  const server = createServer(handler);
  tune?.(server);
  const sockets: Socket[] = [];
  server.on('connection', (s) => sockets.push(s));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  cleanup.push(() => {
    server.closeAllConnections();
    return new Promise((r) => server.close(r));
  });
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server, sockets };
}

function client(url: string, transport: TransportKind, extra: Partial<ConstructorParameters<typeof VllmClient>[0]> = {}): VllmClient {
  const c = new VllmClient({ baseUrl: url, maxResponseBytes: 1 << 20, transport, ...extra });
  cleanup.push(() => c.destroy());
  return c;
}

function streamOnce(c: VllmClient, timeoutMs = 3000): Promise<StreamResult> {
  return c.stream({ path: '/v1/completions', body: { model: 'm', prompt: 'hi', max_tokens: 2 }, timeoutMs });
}

async function until(cond: () => boolean, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const TOKEN = (t: string) => `data: {"id":"c","choices":[{"index":0,"text":"${t}"}]}\n\n`;

/** Server behaviours and how a probe must read each, whichever pool sends it. */
const BEHAVIOURS: { name: string; handler: (req: IncomingMessage, res: ServerResponse) => void; outcome: StreamResult['outcome']; detail?: RegExp; status?: number; tokens: number }[] = [
  {
    name: 'a normal stream',
    handler: (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.end(`${TOKEN('a')}${TOKEN('b')}data: [DONE]\n\n`);
    },
    outcome: 'success',
    status: 200,
    tokens: 2,
  },
  {
    name: 'a 503 with Retry-After',
    handler: (_req, res) => {
      res.writeHead(503, { 'content-type': 'application/json', 'retry-after': '7' });
      res.end('{"error":{"message":"overloaded"}}');
    },
    outcome: 'rejected_overload',
    detail: /overloaded.*Retry-After 7 s/,
    status: 503,
    tokens: 0,
  },
  {
    name: 'a connection reset after one token',
    handler: (req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(TOKEN('a'), () => setTimeout(() => req.socket.destroy(), 50));
    },
    outcome: 'incomplete_stream',
    detail: /connection lost mid-stream/,
    status: 200,
    tokens: 1,
  },
  {
    name: 'response headers past 16 KiB',
    handler: (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'x-junk': 'j'.repeat(20_000) });
      res.end('data: [DONE]\n\n');
    },
    outcome: 'bad_response',
    detail: /larger than 16 KiB/,
    tokens: 0,
  },
  {
    name: 'headers, then nothing',
    handler: (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.flushHeaders();
    },
    outcome: 'timeout_before_first_token',
    detail: /headers received but no token/,
    status: 200,
    tokens: 0,
  },
];

describe('node:http and undici pools end every request alike', () => {
  for (const b of BEHAVIOURS) {
    test(`${b.name}: ${b.outcome}`, async () => {
      const { url } = await serve(b.handler);
      const got = await Promise.all(KINDS.map((k) => streamOnce(client(url, k), 800)));
      for (const r of got) {
        expect(r.outcome).toBe(b.outcome);
        if (b.detail) expect(r.detail).toMatch(b.detail);
        expect(r.status).toBe(b.status);
        expect(r.tokenChunks).toBe(b.tokens);
      }
    });
  }

  test('a refused connection is connect_error, and a read of it a SourceError naming it', async () => {
    const { url, server } = await serve(() => undefined);
    await new Promise((r) => server.close(r));
    for (const k of KINDS) {
      const c = client(url, k);
      const r = await streamOnce(c);
      expect(r.outcome).toBe('connect_error');
      expect(r.errorCode).toBe('ECONNREFUSED');
      const err = await c.get('/health', AbortSignal.timeout(2000)).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(SourceError);
      expect((err as SourceError).message).toMatch(/cannot reach vLLM: connection refused/);
    }
  });

  test('an https target that never finishes the TLS handshake is a connect timeout after connectTimeoutMs', async () => {
    const held: Socket[] = [];
    const tcp = createTcpServer((s) => held.push(s)); // accepts, never answers the ClientHello
    await new Promise<void>((r) => tcp.listen(0, '127.0.0.1', r));
    cleanup.push(() => {
      for (const s of held) s.destroy();
      return new Promise((r) => tcp.close(r));
    });
    const url = `https://127.0.0.1:${(tcp.address() as AddressInfo).port}`;
    for (const k of KINDS) {
      const started = Date.now();
      const err = await client(url, k, { connectTimeoutMs: 300 }).get('/health', AbortSignal.timeout(5000)).catch((e: unknown) => e);
      expect((err as SourceError).reason).toBe('connect_error');
      expect((err as SourceError).message).toMatch(/connect timeout/i);
      expect(Date.now() - started).toBeLessThan(4000); // the connect timer, not the caller's 5 s signal
    }
  });
});

describe('the node:http pool (the daemon)', () => {
  test("a probe's clock starts where its request begins to reach the server, after Node built it; a token counts from the read that brought it", async () => {
    const { url, sockets } = await serve((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.end(`${TOKEN('a')}data: [DONE]\n\n`);
    }, (s) => (s.keepAliveTimeout = 60_000));
    const pool = createTransport('node', url, { connections: 1, connectTimeoutMs: 2000, keepAliveMs: 60_000 });
    cleanup.push(() => pool.destroy());
    // Net's channel fires once a new socket exists: before a fresh request's clock starts.
    const socketsCreatedAt: number[] = [];
    const clientSockets: Socket[] = [];
    const onSocket = (m: unknown) => (socketsCreatedAt.push(performance.now()), clientSockets.push((m as { socket: Socket }).socket));
    diagnostics.subscribe('net.client.socket', onSocket);
    cleanup.push(() => void diagnostics.unsubscribe('net.client.socket', onSocket));
    const contexts: (RequestStartContext | undefined)[] = [];
    const handlerRanAt: number[] = [];
    let dispatchReturnedAt = 0;
    const seeing: Transport = {
      dispatch: (o, handler) => {
        pool.dispatch(o, {
          ...handler,
          onRequestStart: (c, ctx: RequestStartContext | undefined) => (contexts.push(ctx), handler.onRequestStart?.(c, ctx)),
          onResponseData: (c, chunk) => (handlerRanAt.push(performance.now()), handler.onResponseData?.(c, chunk)),
        });
        dispatchReturnedAt = performance.now();
      },
      close: () => pool.close(),
      destroy: () => pool.destroy(),
    };
    const once = async () => {
      handlerRanAt.length = 0;
      const r = await streamCompletion(seeing, url, '', {}, { path: '/v1/completions', body: { model: 'm', prompt: 'hi', max_tokens: 1 }, timeoutMs: 3000, maxBytes: 1 << 20 });
      expect(r.outcome).toBe('success');
      // The token's time is the socket read's, taken before the parser handed the chunk on.
      expect(r.tokenAt[0]).toBeLessThan(handlerRanAt[0]!);
      return { r, beganAt: contexts.at(-1)?.beganAt };
    };
    const fresh = await once();
    expect(socketsCreatedAt).toHaveLength(1);
    // After the request was built, its socket created and dispatch returned; before the connect ended.
    expect(fresh.beganAt).toBeGreaterThan(socketsCreatedAt[0]!);
    expect(fresh.beganAt).toBeGreaterThanOrEqual(dispatchReturnedAt);
    expect(fresh.beganAt).toBeLessThanOrEqual(fresh.r.sentAt!);
    expect(fresh.r.startedAt).toBe(fresh.beganAt);
    expect(deriveTimings(fresh.r).ttft).toBeCloseTo((fresh.r.tokenAt[0]! - fresh.beganAt!) / 1000, 9);

    const kept = await once();
    expect(sockets).toHaveLength(1); // the same connection, no new socket
    expect(socketsCreatedAt).toHaveLength(1);
    expect(kept.beganAt).toBeGreaterThanOrEqual(dispatchReturnedAt);
    expect(kept.r.startedAt).toBe(kept.beganAt);
    expect(kept.r.startedAt).toBeLessThanOrEqual(kept.r.sentAt!);
    // A kept socket keeps no listener of a finished request.
    const listeners = clientSockets[0]!.listenerCount('data');
    for (let i = 0; i < 3; i++) await once();
    expect(clientSockets[0]!.listenerCount('data')).toBe(listeners);
  });

  test('keeps one connection for requests in a row, and closes it once idle for keepAliveMs', async () => {
    const { url, sockets } = await serve((_req, res) => res.end('ok'), (s) => (s.keepAliveTimeout = 60_000));
    const c = client(url, 'node', { keepAliveMs: 300 });
    for (let i = 0; i < 3; i++) expect((await c.get('/health', AbortSignal.timeout(2000))).body).toBe('ok');
    expect(sockets).toHaveLength(1);
    await until(() => sockets[0]!.destroyed, 'the idle connection to close');
    expect((await c.get('/health', AbortSignal.timeout(2000))).status).toBe(200); // a new connection
    expect(sockets).toHaveLength(2);
  });

  test('a read on a connection the server closed while idle is sent again on a fresh one', async () => {
    // The server keeps idle connections 100 ms, the client 4 s (as uvicorn's 5 s against a
    // client that keeps longer): the second read may find its socket dead, and must not fail.
    const { url, sockets } = await serve((_req, res) => res.end('ok'), (s) => (s.keepAliveTimeout = 100));
    const c = client(url, 'node', { keepAliveMs: 4000 });
    for (let i = 0; i < 5; i++) {
      expect((await c.get('/health', AbortSignal.timeout(2000))).body).toBe('ok');
      const n = sockets.length;
      await until(() => sockets[n - 1]!.destroyed, 'the server to close the idle connection');
    }
  });

  test('close() lets a request in flight finish; destroy() ends it', async () => {
    let answer: (() => void) | undefined;
    const { url } = await serve((_req, res) => {
      answer = () => res.end('late');
    });
    const c = client(url, 'node');
    const pending = c.get('/slow', AbortSignal.timeout(5000));
    await until(() => answer !== undefined, 'the request to arrive');
    const closed = c.close();
    answer!();
    expect((await pending).body).toBe('late');
    await closed;

    answer = undefined;
    const d = client(url, 'node');
    const cut = d.get('/slow', AbortSignal.timeout(5000)).catch((e: unknown) => e);
    await until(() => answer !== undefined, 'the second request to arrive');
    await d.destroy();
    expect(await cut).toBeInstanceOf(SourceError);
  });
});
