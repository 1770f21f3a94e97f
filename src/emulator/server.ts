/**
 * A stand-in for a vLLM server (OpenAI-compatible API, /metrics, /health, /tokenize…) with a
 * timing model and fault modes, for the demo, dashboard work without a GPU, and fast tests.
 * It is not the reference: test/e2e checks it against a real vLLM.
 *
 * Timing model: a request waits for one of `maxNumSeqs` slots; TTFT = base + prefill cost of
 * the *uncached* prompt tokens (slower with more running requests) + a cold-start penalty on
 * the first request after (re)start; then one token every ITL, which also grows with the
 * number of running requests. Throughput therefore saturates and latency climbs: a knee.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { EngineMetrics, metricSetOf, type CustomBuckets } from './engine-metrics.js';
import { PrefixCache, tokenize } from './kv-cache.js';

export { FAULT_MODES, type Fault, type FaultMode } from './faults.js';
import type { Fault, FaultMode } from './faults.js';
import { FAULT_MODES } from './faults.js';

export interface EmulatorOptions {
  model?: string;
  maxModelLen?: number;
  apiKey?: string;
  /** What /version says; also picks the metric set (metricSetOf): "0.26.0" serves 0.26.0's families. */
  version?: string;
  blockSize?: number;
  numGpuBlocks?: number;
  prefixCaching?: boolean;
  baseTtftMs?: number;
  prefillMsPerToken?: number;
  itlMs?: number;
  /** Fractional slowdown of prefill and decode per running request. */
  batchSlowdown?: number;
  maxNumSeqs?: number;
  coldStartMs?: number;
  /** Answer 400 to requests carrying cache_salt, as servers without salt support may. */
  rejectCacheSalt?: boolean;
  /** vLLM --enable-per-request-metrics: a `metrics` object on the usage chunk and JSON bodies. */
  perRequestMetrics?: boolean;
  /** vLLM --enable-request-id-headers: every response carries X-Request-Id (the request's, else a new one). */
  requestIdHeaders?: boolean;
  /** vLLM --max-num-queued-reqs: more unfinished (running + waiting) requests than this get HTTP 503. */
  maxNumQueuedReqs?: number;
  /** vLLM --custom-histogram-buckets (validated with parseCustomBuckets). */
  customHistogramBuckets?: CustomBuckets;
  /** vLLM --enable-scale-out: serves /v1/completions/render and /v1/chat/completions/render (403 otherwise). */
  enableScaleOut?: boolean;
  /**
   * vLLM --enable-sleep-mode with VLLM_SERVER_DEV_MODE=1: serves POST /sleep, POST /wake_up,
   * GET /is_sleeping and POST /collective_rpc (404 otherwise, as vLLM without them).
   */
  enableSleepMode?: boolean;
  fault?: Fault;
  /** Serve normally for this long after listen(), then switch to `fault` (a crash the daemon saw coming). */
  faultAfterMs?: number;
}

/** vLLM's QueueOverflowError text (vllm/exceptions.py), sent with HTTP 503. */
export const QUEUE_FULL_MESSAGE = 'The engine is currently busy and cannot accept new requests. Please try again later or on a different instance.';

/** What vLLM answers (HTTP 500) once its EngineCore process died (EngineDeadError, measured on 0.26 CUDA). */
export const ENGINE_DEAD_MESSAGE = 'EngineCore encountered an issue. See stack trace (above) for the root cause.';

/** How long /sleep and /wake_up take (measured 0.02–0.12 s and 0.03 s on vLLM 0.26 with a small model). */
const SLEEP_CALL_MS = 30;

/**
 * Other clients' load in the modes that reproduce a busy vLLM: what its gauges read and how
 * fast its counters grow, after `t` seconds in the mode. The numbers follow the measured runs
 * (vllm-states.md): KV pressure 3–4 running, ~60 waiting for capacity, KV 0.95–0.998, ~260
 * tok/s, a preemption every ~5 s; saturation at --max-num-seqs with a growing queue and KV ≤ 0.8.
 */
function backgroundLoad(mode: FaultMode, t: number, o: { maxNumSeqs: number; itlMs: number; batchSlowdown: number }) {
  const full = { running: o.maxNumSeqs, kv: 0.78, tokensPerSecond: (o.maxNumSeqs * 1000) / (o.itlMs * (1 + o.batchSlowdown * (o.maxNumSeqs - 1))), preemptionsPerSecond: 0 };
  switch (mode) {
    case 'kv_pressure':
      return { running: Math.min(4, o.maxNumSeqs), waiting: 60, kv: 0.974 + 0.024 * Math.sin(t), tokensPerSecond: 260, preemptionsPerSecond: 0.2, rejectionsPerSecond: 0 };
    case 'saturated':
      return { ...full, waiting: Math.min(4 * o.maxNumSeqs, 16 + Math.floor(2 * t)), rejectionsPerSecond: 0 };
    case 'shedding':
      return { ...full, waiting: o.maxNumSeqs, rejectionsPerSecond: 2 };
    default:
      return undefined;
  }
}

const WORDS = ['the', 'sea', 'is', 'calm', 'and', 'blue', 'under', 'a', 'wide', 'sky', 'waves', 'roll', 'softly', 'onto', 'warm', 'sand'];
/** Resolves after `ms` or on abort; removes its listener so long streams do not pile them up. */
const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    if (signal?.aborted || ms <= 0) return resolve();
    const onAbort = () => {
      clearTimeout(t);
      resolve();
    };
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });

function errorBody(status: number, type: string, message: string, param: string | null = null) {
  return JSON.stringify({ error: { message, type, param, code: status } });
}

export class Emulator {
  readonly options: Required<Omit<EmulatorOptions, 'apiKey' | 'fault' | 'maxNumQueuedReqs'>> & { apiKey?: string; maxNumQueuedReqs?: number };
  metrics!: EngineMetrics;
  cache!: PrefixCache;
  /** Called for every request received, before it is answered (tests count what reaches vLLM). */
  onRequest: (method: string, path: string) => void = () => undefined;
  private currentFault: Fault = { mode: 'none' };
  private readonly pendingFault: Fault | undefined;
  private faultTimer: NodeJS.Timeout | undefined;
  private deathTimer: NodeJS.Timeout | undefined;
  /** When the current fault began, and when the background load's counters were last advanced (ms). */
  private faultSince = Date.now();
  private loadAdvancedAt = Date.now();
  /** Fractions of counter increments not yet whole. Preemptions start half-way: the first comes sooner. */
  private readonly carry = { tokens: 0, preemptions: 0.5, rejections: 0 };
  /** Requests made to wait behind the background load of kv_pressure / saturated (they count as waiting). */
  private behindLoad = 0;
  /** Sleep mode: the level and the tags still asleep (vLLM's executor sleeping_tags); undefined while awake. */
  private sleeping: { level: number; tags: Set<string> } | undefined;
  /** Requests that arrived while asleep: not in any engine gauge (vLLM 0.26 shows 0 waiting). */
  private heldAsleep = 0;
  private wakeWaiters: Array<() => void> = [];
  private cold = true;
  private running = 0;
  /** Requests a wedged engine holds: they stay "running" after the client gives up. */
  private stuck = 0;
  private readonly queue: Array<() => void> = [];
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  private readonly startedAt = Date.now();

  constructor(options: EmulatorOptions = {}) {
    this.options = {
      model: options.model ?? 'emulated-model',
      maxModelLen: options.maxModelLen ?? 8192,
      version: options.version ?? '0.32.0+emulator',
      blockSize: options.blockSize ?? 16,
      numGpuBlocks: options.numGpuBlocks ?? 4096,
      prefixCaching: options.prefixCaching ?? true,
      baseTtftMs: options.baseTtftMs ?? 12,
      prefillMsPerToken: options.prefillMsPerToken ?? 0.08,
      itlMs: options.itlMs ?? 8,
      batchSlowdown: options.batchSlowdown ?? 0.03,
      maxNumSeqs: options.maxNumSeqs ?? 64,
      coldStartMs: options.coldStartMs ?? 250,
      rejectCacheSalt: options.rejectCacheSalt ?? false,
      perRequestMetrics: options.perRequestMetrics ?? false,
      requestIdHeaders: options.requestIdHeaders ?? false,
      customHistogramBuckets: options.customHistogramBuckets ?? {},
      enableScaleOut: options.enableScaleOut ?? false,
      enableSleepMode: options.enableSleepMode ?? false,
      faultAfterMs: options.faultAfterMs ?? 0,
      ...(options.maxNumQueuedReqs !== undefined ? { maxNumQueuedReqs: options.maxNumQueuedReqs } : {}),
      ...(options.apiKey ? { apiKey: options.apiKey } : {}),
    };
    this.restart();
    if (options.faultAfterMs) this.pendingFault = options.fault;
    else if (options.fault) this.fault = options.fault;
  }

  get fault(): Fault {
    return this.currentFault;
  }

  /** Switches the fault mode; engine_dead closes the listener `delayMs` (default 1400) later. */
  set fault(f: Fault) {
    this.advanceLoad();
    if (f.mode !== this.currentFault.mode) {
      this.faultSince = Date.now();
      this.carry.preemptions = 0.5;
    }
    this.currentFault = f;
    this.scheduleDeath();
  }

  /** vLLM's API server shuts itself down after its engine died: 1.4 s on an H100 (vllm-states.md). */
  private scheduleDeath(): void {
    clearTimeout(this.deathTimer);
    this.deathTimer = undefined;
    if (this.currentFault.mode !== 'engine_dead' || !this.server) return;
    this.deathTimer = setTimeout(() => void this.close(), this.currentFault.delayMs ?? 1400);
  }

  /** Whether sleep mode has the engine asleep now (what GET /is_sleeping says). */
  get isSleeping(): boolean {
    return this.sleeping !== undefined;
  }

  /** Simulates a process restart: counters, cache and start time reset; next request is cold. */
  restart(): void {
    const o = this.options;
    this.metrics = new EngineMetrics(o.model, o.maxModelLen, { blockSize: o.blockSize, numGpuBlocks: o.numGpuBlocks, prefixCaching: o.prefixCaching }, Date.now() / 1000, o.customHistogramBuckets, metricSetOf(o.version));
    this.cache = new PrefixCache(o.blockSize, o.numGpuBlocks, o.prefixCaching);
    this.cold = true;
    // A new process starts awake.
    this.sleeping = undefined;
    for (const wake of this.wakeWaiters.splice(0)) wake();
  }

  async listen(port = 0, host = '127.0.0.1'): Promise<URL> {
    this.server = createServer((req, res) => void this.route(req, res).catch(() => res.destroy()));
    this.server.on('connection', (s) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(port, host, () => resolve());
    });
    const addr = this.server.address() as AddressInfo;
    if (this.pendingFault) {
      const pending = this.pendingFault;
      this.faultTimer = setTimeout(() => (this.fault = pending), this.options.faultAfterMs);
    }
    this.scheduleDeath();
    return new URL(`http://${addr.family === 'IPv6' ? `[${addr.address}]` : addr.address}:${addr.port}`);
  }

  async close(): Promise<void> {
    clearTimeout(this.faultTimer);
    clearTimeout(this.deathTimer);
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private updateKvUsage(): void {
    // A sleeping engine takes no step, so vLLM's gauges keep what its last step said.
    if (this.sleeping) return;
    // Usage is dominated by running sequences; cached free blocks do not count as used.
    const inFlightBlocks = this.running * Math.ceil(256 / this.options.blockSize);
    const bg = backgroundLoad(this.fault.mode, (Date.now() - this.faultSince) / 1000, this.options);
    this.metrics.kvUsage = Math.min(1, Math.max(bg?.kv ?? 0, inFlightBlocks / this.options.numGpuBlocks));
    if (this.fault.mode !== 'wedge') this.stuck = 0;
    this.metrics.running = this.running + this.stuck + (bg?.running ?? 0);
    this.metrics.waiting = this.queue.length + this.behindLoad + (bg?.waiting ?? 0);
  }

  /** Adds what the background load generated, preempted and had refused since the last call. */
  private advanceLoad(now = Date.now()): void {
    const dt = Math.max(0, (now - this.loadAdvancedAt) / 1000);
    this.loadAdvancedAt = now;
    const bg = this.sleeping ? undefined : backgroundLoad(this.fault.mode, (now - this.faultSince) / 1000, this.options);
    if (!bg) return;
    const whole = (key: keyof typeof this.carry, rate: number) => {
      this.carry[key] += rate * dt;
      const n = Math.floor(this.carry[key]);
      this.carry[key] -= n;
      return n;
    };
    this.metrics.counters.generation_tokens += whole('tokens', bg.tokensPerSecond);
    this.metrics.counters.num_preemptions += whole('preemptions', bg.preemptionsPerSecond);
    this.metrics.admissionRejections.max_num_queued_reqs += whole('rejections', bg.rejectionsPerSecond);
  }

  /** Resolves once sleep mode has the engine awake again (at once when it is), or on abort. */
  private async untilAwake(signal: AbortSignal): Promise<void> {
    if (!this.sleeping || signal.aborted) return;
    await new Promise<void>((resolve) => {
      this.wakeWaiters.push(resolve);
      signal.addEventListener('abort', () => resolve(), { once: true });
    });
  }

  private async acquireSlot(signal: AbortSignal): Promise<boolean> {
    if (this.running < this.options.maxNumSeqs) {
      this.running++;
      this.updateKvUsage();
      return true;
    }
    await new Promise<void>((resolve) => {
      const grant = () => resolve();
      this.queue.push(grant);
      this.updateKvUsage();
      signal.addEventListener('abort', () => {
        const i = this.queue.indexOf(grant);
        if (i >= 0) this.queue.splice(i, 1);
        this.updateKvUsage();
        resolve();
      }, { once: true });
    });
    if (signal.aborted) return false;
    this.running++;
    this.updateKvUsage();
    return true;
  }

  private releaseSlot(): void {
    this.running--;
    const next = this.queue.shift();
    this.updateKvUsage();
    next?.();
  }

  private async route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://x');
    const path = url.pathname.replace(/\/$/, '') || '/';
    this.onRequest(req.method ?? 'GET', path);
    // vLLM's XRequestIdMiddleware: on every response, the request's own id or a fresh uuid4 hex.
    if (this.options.requestIdHeaders) res.setHeader('x-request-id', headerValue(req, 'x-request-id') ?? randomUUID().replace(/-/g, ''));
    if (path.startsWith('/v1') && this.options.apiKey) {
      const auth = req.headers.authorization ?? '';
      if (!/^bearer\s+/i.test(auth) || auth.replace(/^bearer\s+/i, '') !== this.options.apiKey) {
        return this.json(res, 401, JSON.stringify({ error: 'Unauthorized' }));
      }
    }
    switch (`${req.method} ${path}`) {
      case 'GET /health':
      case 'GET /ping':
      case 'POST /ping':
        res.writeHead(this.fault.mode === 'health_503' || this.fault.mode === 'engine_dead' ? 503 : 200).end();
        return;
      case 'GET /version':
        return this.json(res, 200, JSON.stringify({ version: this.options.version }));
      case 'GET /metrics':
        return this.serveMetrics(res);
      case 'GET /v1/models':
        return this.json(res, 200, JSON.stringify(this.modelsBody()));
      case 'POST /tokenize':
        return this.tokenizeRoute(req, res);
      case 'POST /v1/completions':
        return this.completion(req, res, false);
      case 'POST /v1/chat/completions':
        return this.completion(req, res, true);
      case 'POST /v1/completions/render':
        return this.render(req, res, false);
      case 'POST /v1/chat/completions/render':
        return this.render(req, res, true);
      case 'POST /_emulator/fault': {
        const body = await readJson(req);
        const mode = (body as { mode?: unknown })?.mode;
        if (typeof mode !== 'string' || !(FAULT_MODES as readonly string[]).includes(mode)) {
          return this.json(res, 400, JSON.stringify({ error: `mode must be one of ${FAULT_MODES.join(', ')}` }));
        }
        const delay = (body as { delay_ms?: unknown }).delay_ms;
        this.fault = { mode: mode as FaultMode, ...(typeof delay === 'number' ? { delayMs: delay } : {}) };
        return this.json(res, 200, JSON.stringify(this.fault));
      }
      case 'POST /sleep':
      case 'POST /wake_up':
      case 'GET /is_sleeping':
      case 'POST /collective_rpc':
        if (!this.options.enableSleepMode) return this.json(res, 404, JSON.stringify({ detail: 'Not Found' }));
        return this.sleepModeRoute(path, url, req, res);
      case 'POST /_emulator/restart':
        this.restart();
        return this.json(res, 200, '{"restarted":true}');
      default:
        return this.json(res, 404, JSON.stringify({ detail: 'Not Found' }));
    }
  }

  /**
   * vLLM's sleep-mode dev endpoints as measured on 0.26 (vllm-states.md "Sleep mode") and as
   * AsyncLLM.sleep / wake_up do them: the sleep state gauge follows each call (any wake_up call
   * sets it awake, even one that wakes only some tags), while /is_sleeping stays true until every
   * tag is awake, and requests wait until then.
   */
  private async sleepModeRoute(path: string, url: URL, req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (path === '/is_sleeping') return this.json(res, 200, JSON.stringify({ is_sleeping: this.isSleeping }));
    if (path === '/collective_rpc') {
      const body = (await readJson(req)) as { method?: unknown } | undefined;
      // Only the step of a level-2 wake-up is emulated; vLLM fails other worker methods with 500 too when they do not exist.
      if (body?.method !== 'reload_weights') return void res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' }).end('Internal Server Error');
      await sleep(SLEEP_CALL_MS);
      return this.json(res, 200, JSON.stringify({ results: [null] }));
    }
    if (path === '/sleep') {
      const level = Number(url.searchParams.get('level') ?? '1');
      // vLLM does int(level): anything else is an unhandled ValueError.
      if (!Number.isInteger(level)) return void res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' }).end('Internal Server Error');
      if (!this.sleeping) {
        this.updateKvUsage();
        this.advanceLoad();
        this.sleeping = { level, tags: new Set(['weights', 'kv_cache']) };
        // Both levels discard the KV cache (level 1 offloads the weights, level 2 drops them too).
        this.cache.clear();
      }
      await sleep(SLEEP_CALL_MS);
      this.metrics.sleepState = { awake: 0, weights_offloaded: level === 1 ? 1 : 0, discard_all: level === 2 ? 1 : 0 };
      return void res.writeHead(200, { 'content-length': '0' }).end();
    }
    const tags = url.searchParams.getAll('tags');
    if (this.sleeping && tags.every((t) => this.sleeping!.tags.has(t))) {
      await sleep(SLEEP_CALL_MS);
      if (tags.length) for (const t of tags) this.sleeping.tags.delete(t);
      else this.sleeping.tags.clear();
      if (this.sleeping.tags.size === 0) {
        this.sleeping = undefined;
        this.loadAdvancedAt = Date.now();
        const waiters = this.wakeWaiters;
        this.wakeWaiters = [];
        for (const w of waiters) w();
      }
    }
    this.metrics.sleepState = { awake: 1, weights_offloaded: 0, discard_all: 0 };
    return void res.writeHead(200, { 'content-length': '0' }).end();
  }

  private json(res: ServerResponse, status: number, body: string): void {
    res.writeHead(status, { 'content-type': 'application/json' }).end(body);
  }

  private modelsBody() {
    const created = Math.floor(this.startedAt / 1000);
    return {
      object: 'list',
      data: [
        {
          id: this.options.model,
          object: 'model',
          created,
          owned_by: 'vllm',
          root: this.options.model,
          parent: null,
          max_model_len: this.options.maxModelLen,
          permission: [
            {
              id: `modelperm-${randomBytes(16).toString('hex')}`,
              object: 'model_permission',
              created,
              allow_create_engine: false,
              allow_sampling: true,
              allow_logprobs: true,
              allow_search_indices: false,
              allow_view: true,
              allow_fine_tuning: false,
              organization: '*',
              group: null,
              is_blocking: false,
            },
          ],
        },
      ],
    };
  }

  private async serveMetrics(res: ServerResponse): Promise<void> {
    const mode = this.fault.mode;
    if (mode === 'metrics_slow') await sleep(this.fault.delayMs ?? 10_000);
    // vLLM 0.32 (prometheus_client ≥ 0.21) advertises text format 1.0.0 for the same bytes.
    const headers = { 'content-type': 'text/plain; version=1.0.0; charset=utf-8' };
    if (mode === 'metrics_empty') return void res.writeHead(200, headers).end('');
    if (mode === 'metrics_garbled') return void res.writeHead(200, headers).end('vllm:num_requests_running{engine="0" 1\n<html>oops</html>\n');
    if (mode === 'metrics_huge') {
      res.writeHead(200, headers);
      const line = `# ${'x'.repeat(1000)}\n`;
      for (let i = 0; i < 40_000 && !res.destroyed; i++) {
        if (!res.write(line)) await new Promise((r) => res.once('drain', r));
      }
      return void res.end();
    }
    this.updateKvUsage();
    this.advanceLoad();
    res.writeHead(200, headers).end(this.metrics.render());
  }

  private async tokenizeRoute(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (!String(req.headers['content-type'] ?? '').includes('application/json')) {
      return this.json(res, 400, errorBody(400, 'Bad Request', "1 validation error:\n  Unsupported Media Type: Only 'application/json' is allowed"));
    }
    const body = (await readJson(req)) as { prompt?: unknown; messages?: unknown; add_special_tokens?: unknown } | undefined;
    const text = typeof body?.prompt === 'string' ? body.prompt : Array.isArray(body?.messages) ? chatText(body.messages) : undefined;
    if (text === undefined) return this.json(res, 400, errorBody(400, 'BadRequestError', 'Either prompt or messages must be given'));
    const tokens = tokenize(text, body?.add_special_tokens !== false);
    return this.json(res, 200, JSON.stringify({ count: tokens.length, max_model_len: this.options.maxModelLen, tokens, token_strs: null }));
  }

  /**
   * /v1/completions/render and /v1/chat/completions/render: the templated prompt's token ids
   * without generating, shaped like vLLM 0.32's GenerateRequest (test/fixtures/vllm/render-*).
   * Like vLLM, 403 unless started with --enable-scale-out.
   */
  private async render(req: IncomingMessage, res: ServerResponse, chat: boolean): Promise<void> {
    if (!this.options.enableScaleOut) {
      return this.json(res, 403, errorBody(403, 'PermissionDeniedError', 'Scale-out endpoints are disabled. Restart vllm serve with --enable-scale-out to enable them.'));
    }
    if (!String(req.headers['content-type'] ?? '').includes('application/json')) {
      return this.json(res, 400, errorBody(400, 'Bad Request', "1 validation error:\n  Unsupported Media Type: Only 'application/json' is allowed"));
    }
    const body = (await readJson(req)) as Record<string, unknown> | undefined;
    if (body?.model !== undefined && body.model !== '' && body.model !== this.options.model) {
      return this.json(res, 404, errorBody(404, 'NotFoundError', `The model \`${String(body.model)}\` does not exist. Valid aliases: ${this.options.model}.`, 'model'));
    }
    const text = chat ? (Array.isArray(body?.messages) ? chatText(body.messages) : undefined) : typeof body?.prompt === 'string' ? body.prompt : undefined;
    if (text === undefined) return this.json(res, 400, errorBody(400, 'BadRequestError', chat ? 'messages is required' : 'prompt is required', chat ? 'messages' : 'prompt'));
    const tokens = tokenize(text, true);
    const maxTokens = typeof body?.max_tokens === 'number' ? body.max_tokens : chat ? this.options.maxModelLen - tokens.length : undefined;
    const rendered = {
      request_id: `${chat ? 'chatcmpl' : 'cmpl'}-${headerValue(req, 'x-request-id') ?? randomBytes(8).toString('hex')}`,
      token_ids: tokens,
      token_offsets: null,
      features: null,
      content_parts: null,
      sampling_params: {
        presence_penalty: 0.0,
        frequency_penalty: 0.0,
        repetition_penalty: 1.0,
        temperature: 1.0,
        top_p: 1.0,
        min_p: 0.0,
        stop: [],
        stop_token_ids: [],
        ...(maxTokens !== undefined ? { max_tokens: maxTokens } : {}),
        output_kind: 2,
        skip_clone: true,
        bad_words: [],
        skip_reading_prefix_cache: false,
      },
      model: this.options.model,
      reasoning_ended: null,
      reasoning_parser_kwargs: null,
      return_token_ids: null,
      output_mode: 'tokens',
      stream: false,
      stream_options: null,
      cache_salt: typeof body?.cache_salt === 'string' ? body.cache_salt : null,
      priority: 0,
      kv_transfer_params: null,
      ec_transfer_params: null,
    };
    return this.json(res, 200, JSON.stringify(chat ? rendered : [rendered]));
  }

  /** Unfinished requests as vLLM's admission check counts them: running plus waiting. */
  private get unfinished(): number {
    return this.running + this.queue.length + this.behindLoad + this.heldAsleep;
  }

  /**
   * The per-request `metrics` object of --enable-per-request-metrics, computed as vLLM's
   * build_per_request_timing_metrics does: TTFT from *scheduling* (queue time is separate),
   * generation time first to last token, ITL over generated - 1 gaps, tokens/s over scheduled → last.
   */
  private perRequestMetrics(t: { arrival: number; scheduled: number; firstToken: number; lastToken: number; generated: number }) {
    const ms = (x: number) => Number(x.toFixed(6));
    const inference = t.lastToken - t.scheduled;
    return {
      time_to_first_token_ms: ms(t.firstToken - t.scheduled),
      generation_time_ms: ms(t.lastToken - t.firstToken),
      queue_time_ms: ms(t.scheduled - t.arrival),
      ...(t.generated > 1 ? { mean_itl_ms: ms((t.lastToken - t.firstToken) / (t.generated - 1)) } : {}),
      ...(inference > 0 ? { tokens_per_second: (t.generated / inference) * 1000 } : {}),
    };
  }

  private async completion(req: IncomingMessage, res: ServerResponse, chat: boolean): Promise<void> {
    const body = (await readJson(req)) as Record<string, unknown> | undefined;
    if (!body) return this.json(res, 400, errorBody(400, 'BadRequestError', 'Expecting value: line 1 column 1 (char 0)'));
    if (body.model !== undefined && body.model !== '' && body.model !== this.options.model) {
      return this.json(res, 404, errorBody(404, 'NotFoundError', `The model \`${String(body.model)}\` does not exist. Valid aliases: ${this.options.model}.`, 'model'));
    }
    const maxTokens = body.max_tokens === undefined ? 16 : body.max_tokens;
    if (typeof maxTokens !== 'number' || !Number.isInteger(maxTokens) || maxTokens < 1) {
      return this.json(res, 400, errorBody(400, 'BadRequestError', `max_tokens must be at least 1, got ${String(maxTokens)}. (parameter=max_tokens, value=${String(maxTokens)})`, 'max_tokens'));
    }
    const text = chat ? (Array.isArray(body.messages) ? chatText(body.messages) : undefined) : typeof body.prompt === 'string' ? body.prompt : undefined;
    if (text === undefined) return this.json(res, 400, errorBody(400, 'BadRequestError', chat ? 'messages is required' : 'prompt is required', chat ? 'messages' : 'prompt'));
    const tokens = tokenize(text, true);
    if (tokens.length + maxTokens > this.options.maxModelLen) {
      return this.json(
        res,
        400,
        errorBody(400, 'BadRequestError', `This model's maximum context length is ${this.options.maxModelLen} tokens. However, your request has ${tokens.length + maxTokens} tokens (${tokens.length} in the messages, ${maxTokens} in the completion). Please reduce the length of the messages or completion.`),
      );
    }
    const stream = body.stream === true;
    const includeUsage = (body.stream_options as { include_usage?: unknown } | undefined)?.include_usage === true;
    const salt = typeof body.cache_salt === 'string' ? body.cache_salt : undefined;
    if (salt !== undefined && this.options.rejectCacheSalt) {
      return this.json(res, 400, errorBody(400, 'BadRequestError', 'Extra inputs are not permitted (parameter=cache_salt)', 'cache_salt'));
    }
    const mode = this.fault.mode;

    // vLLM's admission check (AsyncLLM.check_admission) before any response starts: HTTP 503.
    // (A burst that races past that check gets the same error as a chunk in a 200 stream
    // instead; test/fixtures/vllm/sse-error-503-queue-full-v0.32.0.txt.)
    const limit = this.options.maxNumQueuedReqs;
    if (limit !== undefined && this.unfinished + 1 > limit) {
      this.metrics.admissionRejections.max_num_queued_reqs++;
      return this.json(res, 503, errorBody(503, 'Service Unavailable', QUEUE_FULL_MESSAGE));
    }
    if (mode === 'never_headers') return; // hold the socket; the client's timeout must fire
    if (mode === 'http_500') return this.json(res, 500, errorBody(500, 'InternalServerError', 'emulated internal error'));
    if (mode === 'http_503') return this.json(res, 503, errorBody(503, 'ServiceUnavailableError', 'emulated: service unavailable'));
    if (mode === 'engine_dead') return this.json(res, 500, errorBody(500, 'InternalServerError', ENGINE_DEAD_MESSAGE));
    if (mode === 'shedding') {
      this.metrics.admissionRejections.max_num_queued_reqs++;
      if (this.fault.delayMs !== undefined) res.setHeader('retry-after', String(Math.ceil(this.fault.delayMs / 1000)));
      return this.json(res, 503, errorBody(503, 'Service Unavailable', QUEUE_FULL_MESSAGE));
    }

    const abort = new AbortController();
    res.on('close', () => abort.abort());
    const arrival = performance.now();
    const sse = () => {
      if (res.headersSent) return;
      res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache' });
      res.flushHeaders();
    };
    if (this.sleeping) {
      // vLLM 0.26 asleep: a stream gets its headers at once, and every request waits, unanswered
      // and in no gauge, until the engine is awake again.
      if (stream) sse();
      this.heldAsleep++;
      await this.untilAwake(abort.signal);
      this.heldAsleep--;
      if (abort.signal.aborted) return;
    }
    if (mode === 'kv_pressure' || mode === 'saturated') {
      // A new request queues behind the others' load (measured TTFT: 54 s p50 under KV pressure, 0.8–4 s saturated).
      if (stream) sse();
      this.behindLoad++;
      await sleep(this.fault.delayMs ?? (mode === 'kv_pressure' ? 30_000 : 1000), abort.signal);
      this.behindLoad--;
      if (abort.signal.aborted) return;
    }
    if (!(await this.acquireSlot(abort.signal))) return;
    try {
      const scheduled = performance.now();
      const cached = this.cache.lookupAndInsert(tokens, salt);
      const uncached = tokens.length - cached;
      const m = this.metrics;
      m.counters.prefix_cache_queries += tokens.length;
      m.counters.prefix_cache_hits += cached;
      // vLLM takes a client's X-Request-Id as its request id (serving.py _base_request_id).
      const id = `${chat ? 'chatcmpl' : 'cmpl'}-${headerValue(req, 'x-request-id') ?? randomBytes(8).toString('hex')}`;
      const created = Math.floor(Date.now() / 1000);
      const object = chat ? 'chat.completion.chunk' : 'text_completion';
      const chunk = (choices: unknown[], extra: Record<string, unknown> = {}) => `data: ${JSON.stringify({ id, object, created, model: this.options.model, choices, ...extra })}\n\n`;
      const load = 1 + this.options.batchSlowdown * (this.running - 1);
      let ttftMs = (this.options.baseTtftMs + this.options.prefillMsPerToken * uncached) * load;
      if (this.cold) {
        ttftMs += this.options.coldStartMs;
        this.cold = false;
      }
      if (mode === 'slow_first_token') ttftMs += this.fault.delayMs ?? 5000;

      if (!stream) {
        // Non-streaming: one JSON body after the whole generation.
        await sleep(ttftMs + maxTokens * this.options.itlMs * load, abort.signal);
        await this.untilAwake(abort.signal);
        if (abort.signal.aborted) return;
        const out = Array.from({ length: maxTokens }, (_, i) => ` ${WORDS[(tokens.length + i) % WORDS.length]}`).join('');
        const end = performance.now();
        this.account({ arrival, scheduled, firstToken: scheduled + ttftMs, end, promptTokens: tokens.length, cached, generated: maxTokens, maxTokens });
        const usage = { prompt_tokens: tokens.length, total_tokens: tokens.length + maxTokens, completion_tokens: maxTokens, prompt_tokens_details: { cached_tokens: cached } };
        const choice = chat ? { index: 0, message: { role: 'assistant', content: out }, finish_reason: 'length' } : { index: 0, text: out, logprobs: null, finish_reason: 'length' };
        // JSON bodies keep null fields (vLLM dumps them with exclude_none=False).
        const metrics = this.options.perRequestMetrics
          ? { metrics: { mean_itl_ms: null, tokens_per_second: null, ...this.perRequestMetrics({ arrival, scheduled, firstToken: scheduled + ttftMs, lastToken: end, generated: maxTokens }), speculative_decoding: null } }
          : {};
        return this.json(res, 200, JSON.stringify({ id, object: chat ? 'chat.completion' : 'text_completion', created, model: this.options.model, choices: [choice], usage, ...metrics }));
      }

      sse();
      if (mode === 'wedge') this.stuck++;
      if (mode === 'stall_after_headers' || mode === 'wedge') {
        await new Promise<void>((resolve) => abort.signal.addEventListener('abort', () => resolve(), { once: true }));
        return;
      }
      await sleep(ttftMs, abort.signal);
      await this.untilAwake(abort.signal);
      if (abort.signal.aborted) return;
      const firstToken = performance.now();
      if (mode === 'garbled_sse') {
        res.end('data: {"id": "cmpl-broken", "choices": [{"text": "unterminated\n\ndata: [DONE]\n\n');
        return;
      }
      // Shapes as vLLM 0.32.0 sends them (test/fixtures/vllm/sse-*-v0.32.0.txt), nulls included.
      if (chat) res.write(chunk([{ index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }], { prompt_token_ids: null, prompt_text: null }));
      let generated = 0;
      let lastTokenAt = firstToken;
      if (mode !== 'empty_completion') {
        for (let i = 0; i < maxTokens; i++) {
          if (i > 0) await sleep(this.options.itlMs * (1 + this.options.batchSlowdown * (this.running - 1)), abort.signal);
          await this.untilAwake(abort.signal);
          if (abort.signal.aborted) return;
          const word = ` ${WORDS[(tokens.length + i) % WORDS.length]}`;
          const last = i === maxTokens - 1;
          const choice = chat
            ? { index: 0, delta: { content: word }, logprobs: null, finish_reason: last ? 'length' : null, ...(last ? { stop_reason: null } : {}), token_ids: null }
            : { index: 0, text: word, logprobs: null, finish_reason: last ? 'length' : null, stop_reason: null, prompt_token_ids: null, token_ids: null };
          res.write(chunk([choice]));
          lastTokenAt = performance.now();
          generated++;
          m.counters.generation_tokens++;
          m.h.iteration_tokens_total.observe(1);
          if (i === 1 && mode === 'die_mid_stream') return void res.destroy();
          if (i === 1 && mode === 'stall_mid_stream') {
            await new Promise<void>((resolve) => abort.signal.addEventListener('abort', () => resolve(), { once: true }));
            return;
          }
          if (i === 1 && mode === 'error_chunk') {
            res.end(`data: ${errorBody(500, 'InternalServerError', 'emulated error during generation')}\n\ndata: [DONE]\n\n`);
            this.metrics.success.error++;
            return;
          }
        }
      }
      if (includeUsage) {
        const details = chat ? { cached_tokens: cached, created_cache_tokens: 0 } : { cached_tokens: cached };
        // Per-request metrics ride on the usage chunk only (vLLM 0.32 serving.py), nulls dropped.
        const metrics = this.options.perRequestMetrics ? { metrics: this.perRequestMetrics({ arrival, scheduled, firstToken, lastToken: lastTokenAt, generated }) } : {};
        res.write(chunk([], { usage: { prompt_tokens: tokens.length, total_tokens: tokens.length + generated, completion_tokens: generated, prompt_tokens_details: details }, system_fingerprint: `vllm-${this.options.version}`, ...metrics }));
      }
      if (mode === 'no_done') return void res.end();
      res.end('data: [DONE]\n\n');
      this.account({ arrival, scheduled, firstToken, end: performance.now(), promptTokens: tokens.length, cached, generated, maxTokens });
    } finally {
      this.releaseSlot();
    }
  }

  /** Updates vLLM's per-request histograms and counters for one finished request. */
  private account(r: { arrival: number; scheduled: number; firstToken: number; end: number; promptTokens: number; cached: number; generated: number; maxTokens: number }): void {
    const m = this.metrics;
    const s = (ms: number) => ms / 1000;
    m.counters.prompt_tokens += r.promptTokens;
    m.counters.prompt_tokens_cached += r.cached;
    m.bySource.local_cache_hit += r.cached;
    m.bySource.local_compute += r.promptTokens - r.cached;
    m.success.length++;
    m.h.time_to_first_token_seconds.observe(s(r.firstToken - r.arrival));
    m.h.e2e_request_latency_seconds.observe(s(r.end - r.arrival));
    m.h.request_queue_time_seconds.observe(s(r.scheduled - r.arrival));
    m.h.request_prefill_time_seconds.observe(s(r.firstToken - r.scheduled));
    m.h.request_decode_time_seconds.observe(s(r.end - r.firstToken));
    m.h.request_inference_time_seconds.observe(s(r.end - r.scheduled));
    const tpot = r.generated > 1 ? s(r.end - r.firstToken) / (r.generated - 1) : 0;
    m.h.request_time_per_output_token_seconds.observe(tpot);
    if (r.generated > 1) m.h.inter_token_latency_seconds.observe(tpot);
    m.h.request_prompt_tokens.observe(r.promptTokens);
    m.h.request_generation_tokens.observe(r.generated);
    m.h.request_prefill_kv_computed_tokens.observe(r.promptTokens - r.cached);
    m.h.request_max_num_generation_tokens.observe(r.maxTokens);
    m.h.request_params_max_tokens.observe(r.maxTokens);
    m.h.request_params_n.observe(1);
    m.h.request_num_preemptions.observe(0); // every finished request, never preempted here
    m.h.iteration_tokens_total.observe(r.promptTokens - r.cached);
  }
}

/** The simple chat template the emulator applies before counting tokens. */
function chatText(messages: unknown[]): string {
  return messages.map((m) => `<|${String((m as { role?: unknown }).role ?? 'user')}|> ${String((m as { content?: unknown }).content ?? '')}`).join('\n') + '\n<|assistant|>';
}

function headerValue(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const parts: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > 8 * 1024 * 1024) return undefined;
    parts.push(chunk as Buffer);
  }
  try {
    return JSON.parse(Buffer.concat(parts).toString('utf8'));
  } catch {
    return undefined;
  }
}
