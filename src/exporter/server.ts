/**
 * The daemon's HTTP surface: /metrics, /probe, /healthz, /readyz, /status, /-/reload and a
 * landing page. Handlers read from the current Runtime; only /probe calls vLLM, because its
 * caller asked for exactly that (src/fleet/probe.ts), so a sick vLLM can never make /metrics
 * or /healthz slow.
 */
import { createServer, type IncomingMessage, type RequestListener, type Server, type ServerResponse } from 'node:http';
import type * as Https from 'node:https';
import { createRequire } from 'node:module';
import type { Registry } from '../prom-client.js';
import { mergeExpositions } from '../fleet/exposition.js';
import { oneLine } from '../reason.js';
import { formatStatusText, type StatusReport } from '../status.js';

export interface ServerState {
  registry(): Registry;
  /** Central mode: one registry per static target, rendered into /metrics with the daemon's. */
  targetRegistries?(): readonly Registry[];
  /** GET /probe (fleet mode); the one handler that calls upstream, on the caller's request. */
  probe?(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void>;
  ready(): boolean;
  status(): StatusReport;
  /** Central mode: one static target's own report (`/status?target=URL`), undefined when not listed. */
  targetStatus?(url: string): StatusReport | undefined;
  targetUrls?(): readonly string[];
  /** Re-reads the config; resolves with an error message when the new config is rejected. */
  reload(): Promise<string | undefined>;
}

export interface Authorizer {
  /** Resolves true when the request may see a protected endpoint; answers 401 itself otherwise. */
  check(req: IncomingMessage, res: ServerResponse): Promise<boolean>;
}

/** /healthz stays open so kubelet and Docker health checks need no credentials. */
const OPEN_PATHS = new Set(['/healthz', '/-/healthy']);

/** An HTTP server, or HTTPS when `tls` is given (web config tls_server_config). */
export function createHttpServer(state: ServerState, auth?: Authorizer, tls?: Https.ServerOptions): Server {
  const listener: RequestListener = (req, res) => {
    void handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' });
      res.end(`internal error: ${(err as Error).message}\n`);
    });
  };
  // node:https (and TLS) loaded only when the web config asks for TLS: ~1 MB RSS otherwise.
  const server: Server = tls ? (createRequire(import.meta.url)('node:https') as typeof Https).createServer(tls, listener) : createServer(listener);
  // Slow clients must not pin sockets forever.
  server.requestTimeout = 30_000;
  server.headersTimeout = 10_000;
  server.maxHeadersCount = 100;

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const path = url.pathname;
    // The daemon takes no request bodies; refuse big ones instead of buffering them, counted as
    // they arrive so a chunked body (no content-length) is bounded too.
    if (Number(req.headers['content-length'] ?? 0) > MAX_BODY_BYTES || !(await discardBody(req))) {
      res.setHeader('connection', 'close');
      return send(res, 413, 'request body too large\n');
    }
    if (!OPEN_PATHS.has(path) && auth && !(await auth.check(req, res))) return;
    switch (path) {
      case '/metrics': {
        const registry = state.registry();
        const targets = state.targetRegistries?.() ?? [];
        const body = targets.length ? mergeExpositions(await Promise.all([registry, ...targets].map((r) => r.metrics()))) : await registry.metrics();
        res.writeHead(200, { 'content-type': registry.contentType });
        res.end(body);
        return;
      }
      case '/probe':
        if (!state.probe) return send(res, 404, 'not found\n');
        if (req.method !== 'GET' && req.method !== 'HEAD') {
          res.setHeader('allow', 'GET');
          return send(res, 405, 'use GET /probe?target=URL&module=NAME\n');
        }
        return state.probe(req, res, url);
      case '/healthz':
      case '/-/healthy':
        return send(res, 200, 'ok\n');
      case '/readyz':
      case '/-/ready':
        return state.ready() ? send(res, 200, 'ready\n') : send(res, 503, 'not ready: config loading or first probe cycle not finished\n');
      case '/status': {
        const target = url.searchParams.get('target');
        const report = target === null ? state.status() : state.targetStatus?.(target);
        if (!report) {
          const urls = state.targetUrls?.() ?? [];
          return send(res, 404, `${oneLine(`no static target ${target ?? ''} in targets:`, 300)} ${urls.length ? `(the targets are ${oneLine(urls.join(', '), 1000)})` : '(this daemon has no targets: list)'}\n`);
        }
        // 503 only when vLLM itself cannot serve (down, crashed, wedged, starting): a load balancer
        // must not drain a replica for the prober's own config, a planned sleep or a slow minute.
        const code = report.serving ? 200 : 503;
        if (url.searchParams.get('format') === 'text') return send(res, code, formatStatusText(report));
        res.writeHead(code, { 'content-type': 'application/json' });
        res.end(`${JSON.stringify(report, null, 2)}\n`);
        return;
      }
      case '/-/reload': {
        if (req.method !== 'POST') {
          res.setHeader('allow', 'POST');
          return send(res, 405, 'use POST to reload the config\n');
        }
        const error = await state.reload();
        return error ? send(res, 500, `reload failed, previous config kept:\n${error}\n`) : send(res, 200, 'config reloaded\n');
      }
      case '/':
        return send(
          res,
          200,
          [
            'vllm-probe',
            '',
            '/metrics              Prometheus metrics',
            '/probe?target=URL&module=NAME[&debug=true]',
            '                      one probe of a target (fleet mode; needs probe_endpoint.allow)',
            '/status               on-call verdict (JSON); /status?format=text for one line per check',
            '/status?target=URL    one static target\'s own checks (central mode, targets:)',
            '/healthz              process liveness (never depends on vLLM)',
            '/readyz               config loaded and first probe cycle finished',
            'POST /-/reload        re-read the config file',
            '',
          ].join('\n'),
        );
      default:
        return send(res, 404, 'not found\n');
    }
  }
  return server;
}

const MAX_BODY_BYTES = 64 * 1024;

/** Reads and drops a request body; false (and the socket closed) once it passes the cap. */
function discardBody(req: IncomingMessage): Promise<boolean> {
  if (req.headers['content-length'] === undefined && req.headers['transfer-encoding'] === undefined) return Promise.resolve(true);
  return new Promise((resolve) => {
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        req.removeAllListeners('data');
        req.pause();
        resolve(false);
      }
    });
    req.once('end', () => resolve(true));
    req.once('error', () => resolve(false));
  });
}

function send(res: ServerResponse, code: number, text: string): void {
  res.writeHead(code, { 'content-type': 'text/plain; charset=utf-8' });
  res.end(text);
}
