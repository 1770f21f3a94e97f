/**
 * The one HTTP client for a vLLM server. Everything in vllm-probe that talks to vLLM goes
 * through it, so every read has the same size cap, timeout, abort, auth and keep-alive.
 *
 * Keep-alive: uvicorn closes idle connections after 5 s without saying so; an idle socket kept
 * longer is found dead only when a request is written to it (UND_ERR_SOCKET / ECONNRESET). We
 * keep idle sockets 4 s and, for idempotent reads, retry once when a request fails on the
 * socket before any response byte arrived.
 */
import type { Dispatcher } from 'undici';
import { SourceError } from '../errors.js';
import { oneLine } from '../reason.js';
import { describeErrorBody, describeNetworkError, headerValue } from './answers.js';
import { parseExposition, type Exposition } from './exposition.js';
import { streamCompletion, type StreamRequest, type StreamResult } from './stream.js';
import { createTransport, type Transport, type TransportKind } from './transport.js';

export interface VllmClientOptions {
  /** Base URL without a trailing slash; may carry a path prefix (a gateway route). */
  baseUrl: string;
  apiKey?: string;
  /** Cap for every non-streaming read, bytes. */
  maxResponseBytes: number;
  /** Cap for one streamed answer, bytes (default: 16 × maxResponseBytes, at least 64 MiB). */
  maxStreamBytes?: number;
  connections?: number;
  connectTimeoutMs?: number;
  /** Idle socket lifetime; keep it below the server's keep-alive timeout (uvicorn: 5 s). */
  keepAliveMs?: number;
  /** The connection pool (transport.ts): node:http (default) or undici's, for bench load. */
  transport?: TransportKind;
}

export interface CappedResponse {
  status: number;
  body: string;
  truncated: boolean;
  contentType: string;
  headers: Record<string, string>;
}

export interface ModelInfo {
  id: string;
  root?: string;
  parent?: string;
  max_model_len?: number;
}

export class VllmClient {
  readonly baseUrl: string;
  readonly apiKey: string | undefined;
  readonly maxResponseBytes: number;
  readonly maxStreamBytes: number;
  private readonly origin: string;
  private readonly prefix: string;
  private readonly transport: Transport;
  private readonly authHeaders: Record<string, string>;
  /** Set once /v1/completions/render answered that it is not served here. */
  private renderUnavailable = false;

  constructor(opts: VllmClientOptions) {
    const url = new URL(opts.baseUrl);
    this.baseUrl = opts.baseUrl.replace(/\/+$/, '');
    this.origin = url.origin;
    this.prefix = url.pathname.replace(/\/+$/, '');
    this.apiKey = opts.apiKey;
    this.maxResponseBytes = opts.maxResponseBytes;
    this.maxStreamBytes = opts.maxStreamBytes ?? Math.max(64 * 1024 * 1024, opts.maxResponseBytes * 16);
    const keepAlive = opts.keepAliveMs ?? 4000;
    // One pool for the one origin, kept for the client's life (undici's Agent dropped its
    // per-origin pool when the last connection closed, and rebuilding it cost ~0.3 ms per probe).
    this.transport = createTransport(opts.transport ?? 'node', this.origin, {
      connectTimeoutMs: opts.connectTimeoutMs ?? 5000,
      keepAliveMs: keepAlive,
      connections: opts.connections ?? 64,
    });
    this.authHeaders = opts.apiKey ? { authorization: `Bearer ${opts.apiKey}` } : {};
  }

  /** GET `path` (below the base URL), reading at most `maxBytes`. Throws SourceError on network failures. */
  get(path: string, signal: AbortSignal, maxBytes = this.maxResponseBytes): Promise<CappedResponse> {
    return this.idempotent(() => this.capped('GET', path, undefined, signal, maxBytes));
  }

  /** POST JSON to `path`, reading at most `maxBytes` of the answer. Used for side-effect-free calls. */
  postJson(path: string, body: unknown, signal: AbortSignal, maxBytes = this.maxResponseBytes): Promise<CappedResponse> {
    return this.idempotent(() => this.capped('POST', path, JSON.stringify(body), signal, maxBytes));
  }

  /** One streaming completion (or chat completion); see stream.ts. Never throws for server faults. */
  stream(req: Omit<StreamRequest, 'maxBytes'> & { maxBytes?: number }): Promise<StreamResult> {
    return streamCompletion(this.transport, this.origin, this.prefix, this.authHeaders, { maxBytes: this.maxStreamBytes, ...req });
  }

  /** GET /health: 200 healthy, 503 engine dead. */
  async health(signal: AbortSignal): Promise<{ status: number }> {
    const res = await this.get('/health', signal, 64 * 1024);
    return { status: res.status };
  }

  /**
   * vLLM's /is_sleeping (sleep mode's dev endpoint, VLLM_SERVER_DEV_MODE=1): true or false, or
   * undefined when it is not served. It stays true between the steps of a level-2 wake-up, while
   * vllm:engine_sleep_state already says awake.
   */
  async isSleeping(signal: AbortSignal): Promise<boolean | undefined> {
    const res = await this.get('/is_sleeping', signal, 4 * 1024);
    if (res.status !== 200 || res.truncated) return undefined;
    const v = jsonField(res.body, 'is_sleeping');
    return typeof v === 'boolean' ? v : undefined;
  }

  /** vLLM's version from /version, or undefined when it does not say. */
  async version(signal: AbortSignal): Promise<string | undefined> {
    const res = await this.get('/version', signal, 64 * 1024);
    if (res.status !== 200 || res.truncated) return undefined;
    const v = jsonField(res.body, 'version');
    return typeof v === 'string' ? oneLine(v, 64) : undefined;
  }

  /** Served models from /v1/models (base models first). Throws SourceError when the answer is unusable. */
  async models(signal: AbortSignal): Promise<ModelInfo[]> {
    const res = await this.get('/v1/models', signal, 1024 * 1024);
    if (res.truncated) throw new SourceError('too_large', '/v1/models answer larger than 1 MiB');
    if (res.status !== 200) throw new SourceError('http_status', `/v1/models answered HTTP ${res.status}: ${describeErrorBody(res.body, res.contentType)}`, { status: res.status });
    const data = jsonField(res.body, 'data');
    if (!Array.isArray(data)) throw new SourceError('parse_error', `/v1/models is not an OpenAI model list: ${describeErrorBody(res.body, res.contentType)}`);
    const out: ModelInfo[] = [];
    for (const m of data.slice(0, 1000)) {
      if (!m || typeof m !== 'object' || typeof (m as { id?: unknown }).id !== 'string') continue;
      const r = m as Record<string, unknown>;
      // Verbatim: the id is sent back in every request, and vLLM's default served name (the
      // --model path) can be long; a cut one got 404 from a healthy vLLM (issue 23). Shorten
      // only where it is shown (displayModelId).
      const info: ModelInfo = { id: r.id as string };
      if (typeof r.root === 'string') info.root = r.root;
      if (typeof r.parent === 'string') info.parent = r.parent;
      if (typeof r.max_model_len === 'number' && Number.isFinite(r.max_model_len)) info.max_model_len = r.max_model_len;
      out.push(info);
    }
    // LoRA adapters list their base model as parent; base models first.
    return out.sort((a, b) => Number(a.parent !== undefined) - Number(b.parent !== undefined));
  }

  /** GET /metrics, capped. */
  metrics(signal: AbortSignal): Promise<CappedResponse> {
    return this.get('/metrics', signal);
  }

  /** /metrics parsed, or undefined when it cannot be read or parsed (callers that only want a number). */
  async exposition(signal: AbortSignal): Promise<Exposition | undefined> {
    try {
      const res = await this.metrics(signal);
      if (res.status !== 200 || res.truncated) return undefined;
      return parseExposition(res.body);
    } catch {
      return undefined;
    }
  }

  /** vllm:cache_config_info's labels (block size, blocks, KV bytes, prefix caching…), or undefined. */
  async cacheConfig(signal: AbortSignal): Promise<Record<string, string> | undefined> {
    const exp = await this.exposition(signal);
    return exp?.get('vllm:cache_config_info')?.samples[0]?.labels ?? exp?.get('vllm_cache_config_info')?.samples[0]?.labels;
  }

  /** Token count of `prompt` from /tokenize; undefined when the server cannot say. */
  async tokenize(model: string, prompt: string, signal: AbortSignal): Promise<number | undefined> {
    try {
      const res = await this.postJson('/tokenize', { ...(model ? { model } : {}), prompt, add_special_tokens: true }, signal, 4 * 1024 * 1024);
      if (res.status !== 200 || res.truncated) return undefined;
      const count = jsonField(res.body, 'count');
      return typeof count === 'number' && Number.isFinite(count) && count >= 0 ? count : undefined;
    } catch {
      return undefined;
    }
  }

  /**
   * The token ids vLLM would feed the model for `prompt` (BOS and all), from
   * /v1/completions/render (vLLM 0.32, served with --enable-scale-out). Undefined where the
   * server cannot say: 403 without the flag, 404 before the route existed; after such an answer
   * the route is not asked again (promptTokens falls back to /tokenize).
   */
  async render(model: string, prompt: string, signal: AbortSignal): Promise<number[] | undefined> {
    if (this.renderUnavailable) return undefined;
    try {
      const res = await this.postJson('/v1/completions/render', { ...(model ? { model } : {}), prompt }, signal, 4 * 1024 * 1024);
      if (res.status === 403 || res.status === 404 || res.status === 405 || res.status === 501) this.renderUnavailable = true;
      if (res.status !== 200 || res.truncated) return undefined;
      const parsed = JSON.parse(res.body) as unknown;
      const first = Array.isArray(parsed) ? (parsed[0] as { token_ids?: unknown } | undefined) : undefined;
      const ids = first?.token_ids;
      return Array.isArray(ids) && ids.every((t) => typeof t === 'number') ? (ids as number[]) : undefined;
    } catch {
      return undefined;
    }
  }

  /** Exact prompt length: /v1/completions/render where the server has it, else /tokenize. */
  async promptTokens(model: string, prompt: string, signal: AbortSignal): Promise<{ count: number; via: 'render' | 'tokenize' } | undefined> {
    const ids = await this.render(model, prompt, signal);
    if (ids) return { count: ids.length, via: 'render' };
    const count = await this.tokenize(model, prompt, signal);
    return count === undefined ? undefined : { count, via: 'tokenize' };
  }

  /**
   * Waits until /health answers 200, polling every 500 ms, up to `timeoutMs`. `alive` lets a
   * caller that started the server stop waiting when it died. Resolves false on timeout.
   */
  async waitHealthy(timeoutMs: number, signal: AbortSignal, alive: () => boolean = () => true): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!signal.aborted && Date.now() < deadline && alive()) {
      const ok = await this.health(AbortSignal.any([signal, AbortSignal.timeout(2000)])).then((h) => h.status === 200, () => false);
      if (ok) return true;
      await new Promise((r) => setTimeout(r, 500));
    }
    return false;
  }

  async close(): Promise<void> {
    await this.transport.close().catch(() => this.transport.destroy());
  }

  /** Closes every connection now, requests in flight included (close() waits for them). */
  async destroy(): Promise<void> {
    await this.transport.destroy().catch(() => undefined);
  }

  /** Runs a read once more when it failed on a socket the server had already closed. */
  private async idempotent<T>(attempt: () => Promise<T>): Promise<T> {
    try {
      return await attempt();
    } catch (err) {
      if (err instanceof StaleSocketError) return attempt().catch((e: unknown) => {
        throw e instanceof StaleSocketError ? e.asSourceError() : e;
      });
      throw err;
    }
  }

  private capped(method: 'GET' | 'POST', path: string, body: string | undefined, signal: AbortSignal, maxBytes: number): Promise<CappedResponse> {
    const headers: Record<string, string> = { ...this.authHeaders };
    if (body !== undefined) headers['content-type'] = 'application/json';
    return new Promise<CappedResponse>((resolve, reject) => {
      const parts: Buffer[] = [];
      let size = 0;
      let truncated = false;
      let status = 0;
      let responded = false;
      let contentType = '';
      let responseHeaders: Record<string, string> = {};
      let controller: Dispatcher.DispatchController | undefined;
      let done = false;
      const finish = (fn: () => void) => {
        if (done) return;
        done = true;
        signal.removeEventListener('abort', onAbort);
        fn();
      };
      const onAbort = () => {
        finish(() => reject(new SourceError("timeout", `${path} did not answer within the timeout`)));
        controller?.abort(new Error('aborted'));
      };
      if (signal.aborted) return onAbort();
      signal.addEventListener('abort', onAbort, { once: true });
      const handler: Dispatcher.DispatchHandler = {
        onRequestStart(ctrl) {
          controller = ctrl;
          if (done) ctrl.abort(new Error('aborted'));
        },
        onResponseStart(_ctrl, statusCode, h) {
          responded = true;
          status = statusCode;
          contentType = headerValue(h['content-type']);
          responseHeaders = {};
          for (const [k, v] of Object.entries(h)) if (v !== undefined) responseHeaders[k] = headerValue(v).slice(0, 256);
        },
        onResponseData(ctrl, chunk) {
          if (size + chunk.length > maxBytes) {
            parts.push(chunk.subarray(0, maxBytes - size));
            size = maxBytes;
            truncated = true;
            // Resolve first: abort() calls onResponseError synchronously.
            finish(() => resolve({ status, body: Buffer.concat(parts).toString('utf8'), truncated, contentType, headers: responseHeaders }));
            ctrl.abort(new Error('response too large'));
            return;
          }
          parts.push(chunk);
          size += chunk.length;
        },
        onResponseEnd() {
          finish(() => resolve({ status, body: Buffer.concat(parts).toString('utf8'), truncated, contentType, headers: responseHeaders }));
        },
        onResponseError(_ctrl, err) {
          if (done) return;
          const net = describeNetworkError(err);
          if (!responded && net.kind === 'socket') return finish(() => reject(new StaleSocketError(path, net.words, err)));
          const reason = net.kind === 'timeout' ? 'timeout' : net.kind === 'headers_overflow' ? 'too_large' : 'connect_error';
          finish(() => reject(new SourceError(reason, `${path}: ${net.kind === 'connect' ? `cannot reach vLLM: ${net.words}` : net.words}`, { cause: err })));
        },
      };
      try {
        this.transport.dispatch({ origin: this.origin, path: this.prefix + path, method, headers, ...(body !== undefined ? { body } : {}) }, handler);
      } catch (err) {
        finish(() => reject(new SourceError('internal', `${path}: request not sent: ${(err as Error).message}`)));
      }
    });
  }
}

/** A read that failed on the socket before any answer: worth one retry on a fresh connection. */
class StaleSocketError extends Error {
  constructor(
    private readonly path: string,
    private readonly words: string,
    override readonly cause: unknown,
  ) {
    super(words);
  }
  asSourceError(): SourceError {
    return new SourceError('connect_error', `${this.path}: cannot reach vLLM: ${this.words}`, { cause: this.cause });
  }
}

/** A model id as shown in words (/status, logs): one line and cut; never what is sent. */
export function displayModelId(id: string): string {
  return oneLine(id, 120);
}

function jsonField(body: string, field: string): unknown {
  try {
    const parsed = JSON.parse(body) as unknown;
    return parsed && typeof parsed === 'object' ? (parsed as Record<string, unknown>)[field] : undefined;
  } catch {
    return undefined;
  }
}
