/**
 * A configurable fake vLLM for loopback tests: a node:http server on 127.0.0.1, port 0, that
 * answers /health, /metrics, /v1/models and streaming /v1/completions and /v1/chat/completions
 * like vLLM 0.32 does, records every request, and lets a test replace any route. Use it where a
 * test needs an answer the emulator (src/emulator/) cannot give: a status code, a body, a
 * stream that never ends, a /metrics text changed between scrapes. The shape follows the style
 * guide (test/helpers/fake-vllm.ts there; elastic/synthetics `__tests__/utils/server.ts`).
 */
import { readFileSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** A captured vLLM 0.32.0 /metrics (model "tiny-llama"), the default /metrics answer. */
export const REAL_METRICS = readFileSync(new URL('../fixtures/vllm/metrics-v0.32.0.txt', import.meta.url), 'utf8');

/** One request the fake saw; `body` is the whole request body as text. */
export interface SeenRequest {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
  at: number;
}

/** Answers one request; the request body has already been read into `req.body`. May be async. */
export type Route = (req: SeenRequest, res: ServerResponse) => void | Promise<void>;

export interface SseOptions {
  /** Tokens streamed, one chunk each (default 2). */
  tokens: number;
  /** Delay before the first token, ms (default 0). */
  firstTokenDelayMs: number;
  /** Delay between tokens, ms (default 0). */
  itlMs: number;
  /** Send the usage chunk (stream_options.include_usage) before [DONE] (default true). */
  usage: boolean;
}

export interface FakeVllmOptions {
  /** The served model: /v1/models answers it, and completions for another model get vLLM's 404. */
  model?: string;
  /** /health's status code, read per request (default 200). */
  health?: number | (() => number);
  /** /metrics' body, read per request so a test can change it between scrapes (default REAL_METRICS). */
  metrics?: string | (() => string);
  /** How completions stream (default: 2 tokens at once, with usage). */
  sse?: Partial<SseOptions>;
  /** Routes by path (query ignored); they win over the defaults above. */
  routes?: Record<string, Route>;
}

export interface FakeVllm {
  /** Base URL without a trailing slash, as config stores it. */
  url: string;
  port: number;
  /** Every request, in arrival order. */
  readonly requests: SeenRequest[];
  /** How many requests reached `path`. */
  count(path: string): number;
  /** Closes open connections (streams included) and the server. */
  close(): Promise<void>;
}

const json = (res: ServerResponse, status: number, body: unknown) => void res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));

/** vLLM's error body (src/emulator/server.ts has the captured shapes). */
export function vllmError(res: ServerResponse, status: number, message: string): void {
  json(res, status, { error: { message, type: status === 404 ? 'NotFoundError' : 'BadRequestError', param: null, code: status } });
}

/** A route streaming an OpenAI-style completion (text for /v1/completions, delta for chat). */
export function sseCompletion(options: Partial<SseOptions> = {}): Route {
  const { tokens = 2, firstTokenDelayMs = 0, itlMs = 0, usage = true } = options;
  return async (req, res) => {
    const chat = req.path.endsWith('/chat/completions');
    const model = (JSON.parse(req.body || '{}') as { model?: string }).model ?? '';
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8' });
    const wait = (ms: number) => (ms > 0 ? new Promise((r) => setTimeout(r, ms)) : undefined);
    await wait(firstTokenDelayMs);
    for (let i = 0; i < tokens && !res.destroyed; i++) {
      if (i > 0) await wait(itlMs);
      const choice = chat ? { index: 0, delta: { content: `t${i}` }, finish_reason: null } : { index: 0, text: `t${i}`, finish_reason: null };
      res.write(`data: ${JSON.stringify({ id: 'cmpl-fake', object: chat ? 'chat.completion.chunk' : 'text_completion', model, choices: [choice] })}\n\n`);
    }
    if (res.destroyed) return;
    if (usage) res.write(`data: ${JSON.stringify({ id: 'cmpl-fake', model, choices: [], usage: { prompt_tokens: 3, completion_tokens: tokens, total_tokens: 3 + tokens } })}\n\n`);
    res.end('data: [DONE]\n\n');
  };
}

/** Starts the fake on 127.0.0.1 at a free port. The caller closes it. */
export async function startFakeVllm(options: FakeVllmOptions = {}): Promise<FakeVllm> {
  const model = options.model ?? 'fake-model';
  const requests: SeenRequest[] = [];
  const stream = sseCompletion(options.sse);
  const completions: Route = (req, res) => {
    const asked = (JSON.parse(req.body || '{}') as { model?: string }).model;
    if (asked !== model) return vllmError(res, 404, `The model \`${asked}\` does not exist.`);
    return stream(req, res);
  };
  const defaults: Record<string, Route> = {
    '/health': (_req, res) => void res.writeHead(typeof options.health === 'function' ? options.health() : (options.health ?? 200)).end(),
    '/metrics': (_req, res) =>
      void res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' }).end(typeof options.metrics === 'function' ? options.metrics() : (options.metrics ?? REAL_METRICS)),
    '/v1/models': (_req, res) => json(res, 200, { object: 'list', data: [{ id: model, object: 'model', owned_by: 'vllm', root: model, max_model_len: 4096 }] }),
    '/v1/completions': completions,
    '/v1/chat/completions': completions,
  };
  const routes = { ...defaults, ...options.routes };
  const server = createServer((req: IncomingMessage, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const seen: SeenRequest = { method: req.method ?? 'GET', path: (req.url ?? '/').split('?')[0]!, headers: req.headers, body: Buffer.concat(chunks).toString(), at: Date.now() };
      requests.push(seen);
      const route = routes[seen.path];
      if (!route) return vllmError(res, 404, 'Not Found');
      Promise.resolve(route(seen, res)).catch((err: Error) => {
        if (!res.headersSent) vllmError(res, 500, `fake vLLM route failed: ${err.message}`);
        else res.destroy(err);
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    requests,
    count: (path) => requests.filter((r) => r.path === path).length,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
