/**
 * One streaming request to vLLM's OpenAI-compatible API on a transport's dispatch() API
 * (transport.ts: undici's handler shape), timed in the handler: no Readable or async iterator between the socket and the SSE parser, and each
 * chunk is time-stamped when its bytes arrive, before any parsing.
 *
 * Every expected failure comes back as an `outcome` from a closed set; this module throws only
 * on bugs. Anything from the target that reaches `detail` is made one line and capped.
 */
import { performance } from 'node:perf_hooks';
import { StringDecoder } from 'node:string_decoder';
import type { Dispatcher } from 'undici';
import { oneLine } from '../reason.js';
import { describeErrorBody, describeNetworkError, headerValue, retryAfterSeconds } from './answers.js';
import type { ReadTimedController, RequestStartContext, Transport } from './transport.js';

/** Closed set of request outcomes; every probe × outcome series is created at 0. */
export const OUTCOMES = [
  'success',
  'connect_error',
  'timeout_before_first_token',
  'timeout_mid_stream',
  'http_4xx',
  'http_5xx',
  'rejected_overload',
  'stream_error',
  'incomplete_stream',
  'empty_completion',
  'bad_response',
  /** The models probe: the server does not serve the model we probe. */
  'wrong_model',
] as const;
export type Outcome = (typeof OUTCOMES)[number];

export type StreamPath = '/v1/completions' | '/v1/chat/completions';

export interface StreamRequest {
  path: StreamPath;
  body: Record<string, unknown>;
  /** Shutdown: ends the request and marks the result `aborted` (count nothing). */
  signal?: AbortSignal;
  /** The whole request's budget. One timer per request, not an AbortSignal per request. */
  timeoutMs: number;
  /** Largest stream accepted, bytes. */
  maxBytes: number;
  /** Bench mode: count token events without JSON.parse; parse only usage and error events; tokenAt keeps only the first token's time. */
  countOnly?: boolean;
  /** Sent as X-Request-Id so the request can be found in vLLM's logs. */
  requestId?: string;
}

export interface Usage {
  prompt_tokens?: number;
  completion_tokens?: number;
  total_tokens?: number;
  cached_tokens?: number;
}

export interface StreamResult {
  outcome: Outcome;
  /** True when shutdown (not the timeout) ended the request: count nothing. */
  aborted: boolean;
  status?: number;
  /** One line for logs and /status; never a label. */
  detail?: string;
  /** Error code from Node or undici (ECONNREFUSED, ECONNRESET, UND_ERR_SOCKET…), when there was one. */
  errorCode?: string;
  /** Where TTFT and E2E count from: streamCompletion says when the clock starts. */
  startedAt: number;
  /** When the transport handed the request to a socket (connect done on a fresh connection). */
  sentAt?: number;
  headersAt?: number;
  /**
   * Arrival time of each chunk that carried a generated token (content, reasoning or tool call);
   * in countOnly mode only the first (bench load needs TTFT, and a growing array per stream,
   * kept for the stream's whole life, was old-generation garbage at 2,000 streams: issue 28).
   */
  tokenAt: number[];
  /** How many chunks carried a generated token (every mode). */
  tokenChunks: number;
  /** Arrival time of the first chunk with visible content (not reasoning). */
  firstContentAt?: number;
  endedAt: number;
  usage?: Usage;
  /** Visible content text (not parsed in countOnly mode). */
  text: string;
  sawDone: boolean;
  /** From Retry-After on 429/503 answers. */
  retryAfterSeconds?: number;
  /** X-Request-Id as the server answered it. */
  requestId?: string;
  /** vLLM's own per-request timings (`--enable-per-request-metrics`), numbers only. */
  serverMetrics?: Record<string, number>;
}

/**
 * The body every streaming request of ours shares: stream with the usage chunk, greedy
 * sampling; `fields` adds the prompt or messages, max_tokens and the rest.
 */
export function streamingBody(model: string, fields: Record<string, unknown>): Record<string, unknown> {
  return { model, stream: true, stream_options: { include_usage: true }, temperature: 0, ...fields };
}

/** Derived latencies in seconds; undefined where the stream did not get that far. */
export interface StreamTimings {
  /** First generated token of any kind (reasoning models reason first). */
  ttft?: number;
  /** First visible content token. */
  ttfc?: number;
  e2e: number;
  itl: number[];
  tpot?: number;
}

/**
 * TTFT = first token chunk − start; ITL = every gap between token chunks;
 * TPOT = (E2E − TTFT) / (completion_tokens − 1) from usage, as `vllm bench serve` defines it.
 */
export function deriveTimings(r: Pick<StreamResult, 'startedAt' | 'tokenAt' | 'endedAt' | 'usage' | 'firstContentAt'>): StreamTimings {
  const e2e = (r.endedAt - r.startedAt) / 1000;
  const first = r.tokenAt[0];
  const ttft = first === undefined ? undefined : (first - r.startedAt) / 1000;
  const itl: number[] = [];
  for (let i = 1; i < r.tokenAt.length; i++) itl.push((r.tokenAt[i]! - r.tokenAt[i - 1]!) / 1000);
  const completion = r.usage?.completion_tokens;
  const tpot = ttft !== undefined && completion !== undefined && completion > 1 ? (e2e - ttft) / (completion - 1) : undefined;
  const out: StreamTimings = { e2e, itl };
  if (ttft !== undefined) out.ttft = ttft;
  if (r.firstContentAt !== undefined) out.ttfc = (r.firstContentAt - r.startedAt) / 1000;
  if (tpot !== undefined) out.tpot = tpot;
  return out;
}

const count = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : undefined);

/** Usage with only finite, non-negative numbers: a garbled count never reaches prom-client. */
export function cleanUsage(raw: unknown): Usage | undefined {
  if (!raw || typeof raw !== 'object') return undefined;
  const u = raw as Record<string, unknown>;
  const out: Usage = {};
  const p = count(u.prompt_tokens);
  const c = count(u.completion_tokens);
  const t = count(u.total_tokens);
  const details = u.prompt_tokens_details;
  const cached = details && typeof details === 'object' ? count((details as Record<string, unknown>).cached_tokens) : undefined;
  if (p !== undefined) out.prompt_tokens = p;
  if (c !== undefined) out.completion_tokens = c;
  if (t !== undefined) out.total_tokens = t;
  if (cached !== undefined) out.cached_tokens = cached;
  return out;
}

/** What one parsed chunk carried: content text, and whether any token (reasoning included). */
function chunkTokens(chunk: Record<string, unknown>): { content: string; token: boolean } {
  const choices = chunk.choices;
  let content = '';
  let token = false;
  if (!Array.isArray(choices)) return { content, token };
  for (const choice of choices) {
    const c = choice as Record<string, unknown>;
    if (typeof c.text === 'string' && c.text.length > 0) content += c.text;
    const delta = c.delta;
    if (delta && typeof delta === 'object') {
      const d = delta as Record<string, unknown>;
      if (typeof d.content === 'string' && d.content.length > 0) content += d.content;
      if ((typeof d.reasoning_content === 'string' && d.reasoning_content.length > 0) || (typeof d.reasoning === 'string' && d.reasoning.length > 0)) token = true;
      if (Array.isArray(d.tool_calls) && d.tool_calls.length > 0) token = true;
    }
  }
  return { content, token: token || content.length > 0 };
}

/** JSON value kinds in words, for saying what came instead of what was expected. */
function describeJson(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  return typeof v === 'object' ? 'an object' : `a ${typeof v}`;
}

/**
 * Why a chunk's `choices` cannot be used, or undefined when it can: an array (empty in vLLM's
 * usage chunk) whose entries are all objects.
 */
function unusableChoices(choices: unknown): string | undefined {
  if (choices === undefined) return 'no choices';
  if (!Array.isArray(choices)) return `choices is ${describeJson(choices)}`;
  const bad = choices.findIndex((c) => !c || typeof c !== 'object' || Array.isArray(c));
  return bad < 0 ? undefined : `choices[${bad}] is ${describeJson(choices[bad])}`;
}

function numbersOf(raw: unknown): Record<string, number> | undefined {
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) return undefined;
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(raw as Record<string, unknown>)) if (typeof v === 'number' && Number.isFinite(v)) out[k] = v;
  return Object.keys(out).length ? out : undefined;
}

const TOKEN_HINT = /"(?:text|content|reasoning_content|reasoning)":"(?!")/;
/** countOnly: a chunk that must be parsed (usage, an error, vLLM's per-request metrics). One regex scan costs a fifth of three includes(). */
const PARSE_HINT = /"(?:usage":\{|error":|metrics":\{)/;
const TOOL_HINT = /"tool_calls":\[\{/;

/**
 * The longest SSE line or event (its `data:` lines joined) accepted, in characters. vLLM sends
 * one token per chunk, well under a KiB even with logprobs; without a cap one line with no
 * newline is buffered up to the whole stream cap (256 MiB by default): a 100 MB line took the
 * daemon to 715 MB RSS and stalled /healthz for over a second (issue 23).
 */
export const SSE_MAX_LINE_CHARS = 1024 * 1024;

/**
 * Server-sent events as the spec defines them: lines end in CRLF, LF or a bare CR (a CR at the
 * end of one chunk may pair with an LF at the start of the next); `data:` lines join with LF; an
 * empty line dispatches; comments (`:`) are ignored. `end()` flushes a last event that was
 * not followed by a blank line, so a bare-CR stream never loses its final event.
 *
 * A line or event longer than `maxLineChars` is never buffered past the cap: the parser sets
 * `tooLong` (what overflowed) and ignores the rest of the input.
 */
export class SseParser {
  private buffer = '';
  private data: string[] = [];
  private dataChars = 0;
  private event = '';
  private pendingCr = false;
  private started = false;
  /** Set once a line or an event passed the cap; nothing more is parsed after it. */
  tooLong: string | undefined;
  // StringDecoder, not TextDecoder: a third of the cost per chunk (docs/benchmarks.md, benchmark 2);
  // the same UTF-8 decoding with split multi-byte characters kept; the BOM is dropped by hand below.
  private readonly decoder = new StringDecoder('utf8');

  constructor(
    private readonly onEvent: (event: string, data: string) => void,
    private readonly maxLineChars = SSE_MAX_LINE_CHARS,
  ) {}

  feed(bytes: Uint8Array): void {
    if (this.tooLong) return;
    let text = this.decoder.write(bytes as Buffer);
    if (!this.started && text.length > 0) {
      this.started = true;
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    }
    this.lines(text);
  }

  end(): void {
    if (this.tooLong) return;
    this.lines(this.decoder.end());
    if (this.buffer.length) this.line(this.buffer);
    this.buffer = '';
    this.dispatch();
  }

  private overflow(what: string): void {
    this.tooLong = what;
    this.buffer = '';
    this.data = [];
    this.dataChars = 0;
  }

  private lines(text: string): void {
    // A line still open that this text does not end: only the new text is searched, so a long
    // line costs linear time (re-scanning the whole buffer per chunk was quadratic).
    if (this.buffer.length > 0 && !this.pendingCr && text.indexOf('\n') < 0 && text.indexOf('\r') < 0) {
      if (this.buffer.length + text.length > this.maxLineChars) return this.overflow(`an SSE line longer than ${this.maxLineChars} characters`);
      this.buffer += text;
      return;
    }
    let s = this.buffer.length > 0 ? this.buffer + text : text;
    this.buffer = '';
    let start = 0;
    if (this.pendingCr && s.startsWith('\n')) start = 1;
    this.pendingCr = false;
    if (s.indexOf('\r', start) < 0) {
      // LF-only (what vLLM sends): line ends by indexOf, several times faster than a char loop
      for (let i = s.indexOf('\n', start); i >= 0; i = s.indexOf('\n', start)) {
        if (i - start > this.maxLineChars) return this.overflow(`an SSE line longer than ${this.maxLineChars} characters`);
        this.line(s.slice(start, i));
        if (this.tooLong) return;
        start = i + 1;
      }
      return this.keep(s, start);
    }
    for (let i = start; i < s.length; i++) {
      const c = s.charCodeAt(i);
      if (c !== 10 && c !== 13) continue;
      if (i - start > this.maxLineChars) return this.overflow(`an SSE line longer than ${this.maxLineChars} characters`);
      this.line(s.slice(start, i));
      if (this.tooLong) return;
      if (c === 13) {
        if (i + 1 === s.length) this.pendingCr = true;
        else if (s.charCodeAt(i + 1) === 10) i++;
      }
      start = i + 1;
    }
    this.keep(s, start);
  }

  /** Keeps the unfinished tail of `s` for the next chunk, unless it already passes the cap. */
  private keep(s: string, start: number): void {
    if (s.length - start > this.maxLineChars) return this.overflow(`an SSE line longer than ${this.maxLineChars} characters`);
    this.buffer = s.slice(start);
  }

  private line(line: string): void {
    if (line === '') return this.dispatch();
    if (line.charCodeAt(0) === 58) return; // ':' comment
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.charCodeAt(0) === 32) value = value.slice(1);
    if (field === 'data') {
      // Many short data: lines with no blank line between them make one event: it has the same cap.
      this.dataChars += value.length + 1;
      if (this.dataChars > this.maxLineChars) return this.overflow(`an SSE event longer than ${this.maxLineChars} characters`);
      this.data.push(value);
    } else if (field === 'event') this.event = value;
  }

  private dispatch(): void {
    if (this.data.length === 0) {
      this.event = '';
      return;
    }
    const data = this.data.length === 1 ? this.data[0]! : this.data.join('\n');
    const event = this.event || 'message';
    this.data = [];
    this.dataChars = 0;
    this.event = '';
    this.onEvent(event, data);
  }
}

/** Grace for the end of a response after `data: [DONE]` before we close it ourselves. */
const AFTER_DONE_GRACE_MS = 1000;
/** How much of an error body is read to explain it. */
const ERROR_BODY_BYTES = 64 * 1024;

/**
 * Sends one streaming request through `transport` and classifies how it ended. The clock
 * starts when the request begins to reach the server, where the transport says when that was
 * (RequestStartContext: just before its new connection's connect() or name lookup, or before it
 * is written to a kept one), else when it is handed to the transport: a fresh connection's connect time counts, as
 * it does for a real client, and Node's own request building does not. A chunk is timed at the
 * socket read that brought it, where the transport knows it (issue 28).
 */
export function streamCompletion(transport: Transport, origin: string, pathPrefix: string, headers: Record<string, string>, req: StreamRequest): Promise<StreamResult> {
  const startedAt = performance.now();
  const result: StreamResult = { outcome: 'success', aborted: false, startedAt, tokenAt: [], tokenChunks: 0, endedAt: startedAt, text: '', sawDone: false };
  return new Promise<StreamResult>((resolve) => {
    let settled = false;
    let controller: Dispatcher.DispatchController | undefined;
    let abortWith: Error | undefined;
    let failure: { outcome: Outcome; detail: string } | undefined;
    let errorBody: Buffer[] | undefined;
    let errorBytes = 0;
    let bytes = 0;
    let chunkTime = 0;
    let dataEvents = 0;
    let lastData = '';
    let timedOut = false;
    let graceTimer: NodeJS.Timeout | undefined;

    const cleanup = () => {
      clearTimeout(timer);
      if (graceTimer) clearTimeout(graceTimer);
      req.signal?.removeEventListener('abort', onShutdown);
    };
    const settle = (outcome: Outcome, detail?: string) => {
      if (settled) return;
      settled = true;
      result.outcome = outcome;
      if (detail !== undefined) result.detail = oneLine(detail);
      result.endedAt = performance.now();
      if (!result.sawDone || outcome !== 'success') cleanup();
      resolve(result);
    };
    const abort = (err: Error) => {
      abortWith = err;
      controller?.abort(err);
    };
    const onShutdown = () => {
      result.aborted = true;
      settle('connect_error', 'aborted by shutdown');
      abort(new Error('shutdown'));
    };
    const timer = setTimeout(() => {
      timedOut = true;
      const got = result.tokenChunks;
      if (got > 0) settle("timeout_mid_stream", `no end of stream within the timeout after ${got} token chunks`);
      else settle('timeout_before_first_token', result.headersAt !== undefined ? 'headers received but no token within the timeout' : 'no response headers within the timeout');
      abort(new Error('timeout'));
    }, req.timeoutMs);
    if (req.signal?.aborted) {
      onShutdown();
      return;
    }
    req.signal?.addEventListener('abort', onShutdown, { once: true });

    const tokenSeen = () => {
      if (!req.countOnly || result.tokenChunks === 0) result.tokenAt.push(chunkTime);
      result.tokenChunks++;
    };
    const onData = (event: string, data: string) => {
      if (failure || result.sawDone) return;
      if (event === 'error') {
        failure = { outcome: 'stream_error', detail: `error event in stream: ${describeErrorBody(data, '')}` };
        return;
      }
      if (data === '[DONE]') {
        result.sawDone = true;
        return;
      }
      dataEvents++;
      lastData = data;
      if (req.countOnly && !PARSE_HINT.test(data)) {
        if (TOKEN_HINT.test(data) || TOOL_HINT.test(data)) tokenSeen();
        return;
      }
      let chunk: unknown;
      try {
        chunk = JSON.parse(data);
      } catch {
        failure = { outcome: 'bad_response', detail: `unparsable SSE data: ${data.slice(0, 80)}` };
        return;
      }
      if (!chunk || typeof chunk !== 'object' || Array.isArray(chunk)) {
        // `data: null`, a number, a list: not a completion chunk. Counting it as nothing made a
        // stream of them a successful probe (issue 23).
        failure = { outcome: 'bad_response', detail: `SSE data is not a completion chunk (${describeJson(chunk)}): ${data.slice(0, 80)}` };
        return;
      }
      const c = chunk as Record<string, unknown>;
      if (c.error !== undefined && c.error !== null) {
        // vLLM 0.32 refuses a request that raced past its pre-response admission check
        // (--max-num-queued-reqs) inside a 200 stream: an error chunk with code 503 (issue 19).
        const code = (c.error as { code?: unknown }).code;
        const overload = code === 503 || code === 429;
        failure = { outcome: overload ? 'rejected_overload' : 'stream_error', detail: `${overload ? `HTTP 200 stream refused with code ${code}` : 'error chunk in stream'}: ${describeErrorBody(data, 'application/json')}` };
        return;
      }
      const unusable = unusableChoices(c.choices);
      if (unusable) {
        failure = { outcome: 'bad_response', detail: `completion chunk without a usable choices array (${unusable}): ${data.slice(0, 80)}` };
        return;
      }
      const { content, token } = chunkTokens(c);
      if (token) tokenSeen();
      if (content.length > 0) {
        result.firstContentAt ??= chunkTime;
        if (!req.countOnly) result.text += content;
      }
      const usage = cleanUsage(c.usage);
      if (usage) result.usage = usage;
      const metrics = numbersOf(c.metrics);
      if (metrics) result.serverMetrics = metrics;
    };
    const parser = new SseParser(onData);

    const finishStream = () => {
      if (failure) return settle(failure.outcome, failure.detail);
      if (!result.sawDone) return settle('incomplete_stream', 'stream ended without data: [DONE]');
      if (result.tokenChunks === 0) {
        // Say what the stream did carry: a model whose tokens all decode to nothing (special or
        // partial UTF-8 tokens) looks different from a server that sent no chunks at all.
        const generated = result.usage?.completion_tokens;
        return settle('empty_completion', `stream finished without any generated token (${dataEvents} data events${generated !== undefined ? `, usage says ${generated} completion tokens` : ''}; last: ${lastData.slice(0, 160)})`);
      }
      settle('success');
    };

    const handler: Dispatcher.DispatchHandler = {
      onRequestStart(ctrl, context: RequestStartContext | undefined) {
        controller = ctrl;
        result.sentAt = performance.now();
        if (!settled && context?.beganAt !== undefined && context.beganAt > result.startedAt) result.startedAt = result.endedAt = context.beganAt;
        if (abortWith) ctrl.abort(abortWith);
      },
      onResponseStart(ctrl: ReadTimedController, statusCode, headers) {
        controller = ctrl;
        result.headersAt = ctrl.readAt ?? performance.now();
        result.status = statusCode;
        const requestId = headerValue(headers['x-request-id']);
        if (requestId) result.requestId = requestId.slice(0, 128);
        const contentType = headerValue(headers['content-type']);
        if (statusCode >= 400 || !/^text\/event-stream\b/i.test(contentType)) {
          errorBody = [];
          if (statusCode === 429 || statusCode === 503) {
            const after = retryAfterSeconds(headerValue(headers['retry-after']));
            if (after !== undefined) result.retryAfterSeconds = after;
          }
          return;
        }
        const encoding = headerValue(headers['content-encoding']).toLowerCase();
        if (encoding && encoding !== 'identity') {
          failure = { outcome: 'bad_response', detail: `the event stream is ${encoding}-compressed (content-encoding: ${encoding}); vLLM never compresses it, so a proxy in between does, and it buffers tokens` };
          errorBody = [];
        }
      },
      onResponseData(ctrl: ReadTimedController, chunk) {
        chunkTime = ctrl.readAt ?? performance.now();
        if (settled && !result.sawDone) return;
        if (errorBody) {
          if (errorBytes < ERROR_BODY_BYTES) {
            errorBody.push(chunk.subarray(0, ERROR_BODY_BYTES - errorBytes));
            errorBytes += chunk.length;
          }
          return;
        }
        bytes += chunk.length;
        if (bytes > req.maxBytes) {
          failure ??= { outcome: 'bad_response', detail: `stream larger than ${req.maxBytes} bytes` };
          finishStream();
          ctrl.abort(new Error('too large'));
          return;
        }
        parser.feed(chunk);
        if (parser.tooLong) failure ??= { outcome: 'bad_response', detail: `${parser.tooLong} (after ${bytes} bytes of the stream); vLLM sends one short line per token` };
        if (failure?.outcome === 'bad_response') {
          finishStream();
          ctrl.abort(new Error('bad response'));
        } else if (result.sawDone && !settled) {
          // Timings are complete at [DONE]; a server that keeps the stream open gets a grace
          // period to end it, then the connection is closed by us.
          finishStream();
          graceTimer = setTimeout(() => {
            cleanup();
            controller?.abort(new Error('stream kept open after [DONE]'));
          }, AFTER_DONE_GRACE_MS);
        }
      },
      onResponseEnd() {
        if (result.sawDone && settled) {
          cleanup();
          return;
        }
        if (errorBody) {
          const status = result.status ?? 0;
          const body = Buffer.concat(errorBody).toString('utf8');
          if (failure) return settle(failure.outcome, failure.detail);
          if (status === 429 || status === 503) return settle('rejected_overload', `HTTP ${status}: ${describeErrorBody(body, '')}${result.retryAfterSeconds !== undefined ? ` (Retry-After ${result.retryAfterSeconds} s)` : ''}`);
          if (status >= 500) return settle('http_5xx', `HTTP ${status}: ${describeErrorBody(body, '')}`);
          if (status >= 400) return settle('http_4xx', `HTTP ${status}: ${describeErrorBody(body, '')}`);
          return settle('bad_response', `HTTP ${status} but not an event stream: ${describeErrorBody(body, '')}`);
        }
        parser.end();
        finishStream();
      },
      onResponseError(_ctrl, err) {
        if (settled) {
          cleanup();
          return;
        }
        if (timedOut || result.aborted) return;
        const net = describeNetworkError(err);
        if (net.code) result.errorCode = net.code;
        if (failure) return settle(failure.outcome, failure.detail);
        if (net.kind === 'headers_overflow') return settle('bad_response', net.words);
        if (result.headersAt === undefined) return settle('connect_error', `connection failed: ${net.words}`);
        settle('incomplete_stream', `connection lost mid-stream: ${net.words}`);
      },
    };
    const requestHeaders: Record<string, string> = { ...headers, 'content-type': 'application/json', accept: 'text/event-stream' };
    if (req.requestId) requestHeaders['x-request-id'] = req.requestId;
    const payload = JSON.stringify(req.body);
    try {
      // The clock starts here at the earliest, when the built request is handed to the transport (the
      // transport may move it later: onRequestStart), not before building it: with cold caches, as
      // every probe 15 s apart runs, building the timer, parser, headers and body took 0.10 ms of
      // the 0.39 ms median probe overhead (docs/benchmarks.md, benchmark 1).
      result.startedAt = performance.now();
      result.endedAt = result.startedAt;
      transport.dispatch({ origin, path: pathPrefix + req.path, method: 'POST', headers: requestHeaders, body: payload }, handler);
    } catch (err) {
      settle('connect_error', `request not sent: ${(err as Error).message}`);
    }
  });
}
