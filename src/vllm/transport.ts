/**
 * The connection pool under VllmClient, in two kinds that speak one API (undici's dispatch
 * handler: onRequestStart, onResponseStart, onResponseData, onResponseEnd, onResponseError),
 * so the client and the stream timing in stream.ts are written once:
 *
 * - `node`: node:http's keep-alive Agent, for the daemon and every command that sends a few
 *   requests a minute. It costs nothing to load: the HTTP parser is Node's own.
 * - `undici`: undici's Pool, for bench load (thousands of streams; its dispatch path reads each
 *   chunk without a stream object in between). Loading it costs a process ~19 MB RSS, measured
 *   side by side with the daemon's schedule (docs/benchmarks.md, footprint): more than a quarter
 *   of the daemon's footprint for a client that reads a few responses a minute (issue 28).
 */
import { Agent as HttpAgent, request as httpRequest, type ClientRequest, type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import type * as Https from 'node:https';
import { createRequire } from 'node:module';
import type { Socket } from 'node:net';
import type { Dispatcher, Pool as UndiciPool } from 'undici';

export type TransportKind = 'node' | 'undici';

export interface TransportOptions {
  connections: number;
  connectTimeoutMs: number;
  /** Idle socket lifetime; below the server's keep-alive timeout (uvicorn: 5 s). */
  keepAliveMs: number;
}

export interface DispatchOptions {
  origin: string;
  path: string;
  method: 'GET' | 'POST';
  headers: Record<string, string>;
  body?: string;
}

/** What VllmClient and streamCompletion need of a connection pool. */
export interface Transport {
  dispatch(opts: DispatchOptions, handler: Dispatcher.DispatchHandler): void;
  /** Lets requests in flight finish, then closes every connection. */
  close(): Promise<void>;
  /** Closes every connection now, requests in flight included. */
  destroy(): Promise<void>;
}

export function createTransport(kind: TransportKind, origin: string, opts: TransportOptions): Transport {
  return kind === 'undici' ? undiciTransport(origin, opts) : nodeTransport(origin, opts);
}

/**
 * Only undici's Pool module (and the Client and parser under it), not the package index, which
 * also loads fetch, WebSocket and the mock agents (+9 MB RSS more). Loaded on first use, so a
 * process that never asks for it never pays for it. undici has no exports map, so the path is
 * stable within a major version.
 */
function undiciTransport(origin: string, opts: TransportOptions): Transport {
  const Pool = createRequire(import.meta.url)('undici/lib/dispatcher/pool.js') as typeof UndiciPool;
  return new Pool(origin, {
    connect: { timeout: opts.connectTimeoutMs },
    keepAliveTimeout: opts.keepAliveMs,
    keepAliveMaxTimeout: opts.keepAliveMs,
    connections: opts.connections,
  });
}

/** Node's parser refuses headers past this (undici's limit too): no normal vLLM answer comes near it. */
const MAX_HEADER_BYTES = 16 * 1024;

function connectTimeoutError(ms: number): Error {
  return Object.assign(new Error(`connect timeout after ${ms} ms`), { code: 'ETIMEDOUT' });
}

/** A request's handle for its handler: abort it, or pause and resume its body. */
class NodeController implements Dispatcher.DispatchController {
  aborted = false;
  paused = false;
  reason: Error | null = null;
  res: IncomingMessage | undefined;
  constructor(private readonly req: ClientRequest) {}
  abort(reason: Error): void {
    if (this.aborted) return;
    this.aborted = true;
    this.reason = reason;
    // Without the reason: given one, Node emits it on the socket, where no listener may be left
    // once the answer has started; the handler gets the reason from `reason` (fail() below).
    this.req.destroy();
  }
  pause(): void {
    this.paused = true;
    this.res?.pause();
  }
  resume(): void {
    this.paused = false;
    this.res?.resume();
  }
}

/** A connection lost without Node saying why (a safety net: Node names it ECONNRESET itself). */
function connectionLost(words: string): Error {
  return Object.assign(new Error(words), { code: 'ECONNRESET' });
}

function flatHeaders(h: IncomingHttpHeaders): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(h)) if (v !== undefined) out[k] = v;
  return out;
}

function nodeTransport(origin: string, opts: TransportOptions): Transport {
  const url = new URL(origin);
  const tls = url.protocol === 'https:';
  // node:https (and TLS under it) only for an https target: ~1 MB RSS a plain-HTTP sidecar skips.
  const https = tls ? (createRequire(import.meta.url)('node:https') as typeof Https) : undefined;
  // `timeout` on the Agent: an idle socket in the free list is destroyed after it (Node's Agent
  // sets it on every socket it frees); on a busy socket it only emits 'timeout', which nothing
  // here acts on, since each caller times its own request.
  const agentOptions = { keepAlive: true, maxSockets: opts.connections, timeout: opts.keepAliveMs, scheduling: 'lifo' as const };
  const agent = https ? new https.Agent(agentOptions) : new HttpAgent(agentOptions);
  const send = https ? https.request : httpRequest;
  const hostname = url.hostname.replace(/^\[(.*)\]$/, '$1');
  const port = url.port === '' ? (tls ? 443 : 80) : Number(url.port);
  const inFlight = new Set<Promise<void>>();
  let closed = false;

  return {
    dispatch(o, handler) {
      if (closed) throw new Error('the client is closed');
      const headers: Record<string, string | number> = { ...o.headers };
      if (o.body !== undefined) headers['content-length'] = Buffer.byteLength(o.body);
      const req = send({ agent, hostname, port, method: o.method, path: o.path, headers, maxHeaderSize: MAX_HEADER_BYTES });
      const controller = new NodeController(req);
      let finished = false;
      let connectTimer: NodeJS.Timeout | undefined;
      let release!: () => void;
      const settledPromise = new Promise<void>((r) => (release = r));
      inFlight.add(settledPromise);
      const finish = () => {
        finished = true;
        clearTimeout(connectTimer);
        inFlight.delete(settledPromise);
        release();
      };
      const fail = (err: Error) => {
        if (finished) return;
        finish();
        // After our own abort Node reports the socket it closed; the handler wants the reason.
        handler.onResponseError?.(controller, controller.reason ?? err);
      };
      const started = () => {
        clearTimeout(connectTimer);
        if (!finished) handler.onRequestStart?.(controller, {});
      };
      req.on('socket', (socket: Socket) => {
        if (!socket.connecting) return started();
        connectTimer = setTimeout(() => controller.abort(connectTimeoutError(opts.connectTimeoutMs)), opts.connectTimeoutMs);
        socket.once(tls ? 'secureConnect' : 'connect', started);
      });
      req.on('error', fail);
      req.on('close', () => {
        if (!controller.res) fail(connectionLost('the connection closed before an answer'));
      });
      req.on('response', (res) => {
        controller.res = res;
        if (finished) return void res.resume();
        handler.onResponseStart?.(controller, res.statusCode ?? 0, flatHeaders(res.headers), res.statusMessage ?? '');
        res.on('data', (chunk: Buffer) => {
          if (!finished) handler.onResponseData?.(controller, chunk);
        });
        res.on('end', () => {
          if (finished) return;
          finish();
          handler.onResponseEnd?.(controller, flatHeaders(res.trailers));
        });
        // A connection lost mid-body: Node destroys the response with ECONNRESET ('aborted').
        res.on('error', fail);
        res.on('close', () => fail(connectionLost('the connection closed mid-answer')));
      });
      req.end(o.body);
    },
    async close() {
      closed = true;
      await Promise.all([...inFlight]);
      agent.destroy();
    },
    async destroy() {
      closed = true;
      agent.destroy();
    },
  };
}
