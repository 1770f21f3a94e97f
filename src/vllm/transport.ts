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
import { performance } from 'node:perf_hooks';
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

/**
 * The context `onRequestStart` gets from the node pool. `beganAt`: performance.now() when this
 * request began to reach the server: just before the connect() (or name lookup) of its own new
 * connection, or just before it was written to a kept one. Before that Node builds the
 * ClientRequest, the Agent does its bookkeeping and net builds the socket, 0.2–0.26 ms of cold
 * code at a probe every 15 s (docs/benchmarks.md, benchmark 1): the instrument's time, not
 * vLLM's, which the probe's clock leaves out (src/vllm/stream.ts). Absent where the pool cannot
 * tell (undici's; a queued request that got a connection opened later).
 */
export interface RequestStartContext {
  beganAt?: number;
}

/**
 * The node pool's controller also says when the socket read that carried the current chunk
 * returned (performance.now()), before Node's HTTP parser and response stream ran on it (~0.04 ms).
 */
export interface ReadTimedController extends Dispatcher.DispatchController {
  readAt?: number;
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
class NodeController implements ReadTimedController {
  readAt: number | undefined;
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
  // The Agent creates a request's socket synchronously inside send() when none is free, so the
  // socket created during one dispatch's send() is that request's. net queues the connect() (or
  // the name lookup) for the next tick; a tick queued just before it runs just before it, once
  // the synchronous request building around it is done: that instant is when the request began
  // to reach the server.
  let opening: RequestStartContext | undefined;
  const createConnection = agent.createConnection.bind(agent);
  agent.createConnection = (options, callback) => {
    const began: RequestStartContext = (opening = {});
    process.nextTick(() => (began.beganAt = performance.now()));
    return createConnection(options, callback);
  };
  const hostname = url.hostname.replace(/^\[(.*)\]$/, '$1');
  const port = url.port === '' ? (tls ? 443 : 80) : Number(url.port);
  const inFlight = new Set<Promise<void>>();
  let closed = false;

  return {
    dispatch(o, handler) {
      if (closed) throw new Error('the client is closed');
      const headers: Record<string, string | number> = { ...o.headers };
      if (o.body !== undefined) headers['content-length'] = Buffer.byteLength(o.body);
      opening = undefined;
      const req = send({ agent, hostname, port, method: o.method, path: o.path, headers, maxHeaderSize: MAX_HEADER_BYTES });
      const context: RequestStartContext = opening ?? {};
      opening = undefined;
      const controller = new NodeController(req);
      let finished = false;
      let connectTimer: NodeJS.Timeout | undefined;
      let release!: () => void;
      const settledPromise = new Promise<void>((r) => (release = r));
      inFlight.add(settledPromise);
      let readSocket: Socket | undefined;
      const onRead = () => (controller.readAt = performance.now());
      const finish = () => {
        finished = true;
        readSocket?.removeListener('data', onRead);
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
        if (!finished) handler.onRequestStart?.(controller, context);
      };
      req.on('socket', (socket: Socket) => {
        if (finished) return;
        // Ahead of Node's own listener, which parses the read and emits the response's data.
        readSocket = socket;
        socket.prependListener('data', onRead);
        // A kept connection: Node writes the request right after this event.
        if (!socket.connecting) {
          context.beganAt ??= performance.now();
          return started();
        }
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
