/**
 * One streaming request to vLLM's OpenAI-compatible API, timed chunk by chunk.
 *
 * Every expected failure comes back as an `outcome` value from a closed set; this function
 * throws only on bugs. Timestamps are `performance.now()` milliseconds taken when the bytes
 * of a chunk arrive, before JSON parsing, so parsing cost does not inflate TTFT.
 */
import { performance } from 'node:perf_hooks';
import { createParser } from 'eventsource-parser';
import { errors as undiciErrors, request, type Dispatcher } from 'undici';
import type { Outcome } from '../metrics.js';

export interface StreamRequest {
  baseUrl: string;
  path: '/v1/completions' | '/v1/chat/completions';
  body: Record<string, unknown>;
  apiKey?: string;
  dispatcher: Dispatcher;
  /** Aborts the request: shutdown or the probe timeout. */
  signal: AbortSignal;
  /** Tells a timeout apart from shutdown when `signal` fires. */
  timeoutSignal?: AbortSignal;
  maxResponseBytes: number;
}

export interface Usage {
  prompt_tokens?: number;
  completion_tokens?: number;
  total_tokens?: number;
  prompt_tokens_details?: { cached_tokens?: number | null } | null;
}

export interface StreamResult {
  outcome: Outcome;
  /** True when the shutdown signal (not the timeout) ended the request: count nothing. */
  aborted: boolean;
  status?: number;
  /** Human-readable detail for logs and /status; never a label. */
  detail?: string;
  /** Error code from undici or Node (ECONNREFUSED, UND_ERR_SOCKET…), when there was one. */
  errorCode?: string;
  startedAt: number;
  headersAt?: number;
  /** Arrival time of each chunk that carried non-empty content, in order. */
  contentAt: number[];
  endedAt: number;
  usage?: Usage;
  text: string;
  sawDone: boolean;
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
  ttft?: number;
  e2e: number;
  itl: number[];
  tpot?: number;
}

/**
 * TTFT = first content chunk − start; ITL = every gap between content chunks;
 * TPOT = (E2E − TTFT) / (completion_tokens − 1) from usage, as `vllm bench serve` defines it;
 * E2E = end of stream − start.
 */
export function deriveTimings(r: Pick<StreamResult, 'startedAt' | 'contentAt' | 'endedAt' | 'usage'>): StreamTimings {
  const e2e = (r.endedAt - r.startedAt) / 1000;
  const first = r.contentAt[0];
  const ttft = first === undefined ? undefined : (first - r.startedAt) / 1000;
  const itl: number[] = [];
  for (let i = 1; i < r.contentAt.length; i++) itl.push((r.contentAt[i]! - r.contentAt[i - 1]!) / 1000);
  const completion = r.usage?.completion_tokens;
  const tpot = ttft !== undefined && completion !== undefined && completion > 1 ? (e2e - ttft) / (completion - 1) : undefined;
  return { ttft, e2e, itl, tpot };
}

/** Text carried by one parsed chunk: completions use `text`, chat uses `delta.content`. */
function chunkContent(chunk: Record<string, unknown>): string {
  const choices = chunk.choices;
  if (!Array.isArray(choices)) return '';
  let text = '';
  for (const choice of choices as Array<Record<string, unknown>>) {
    if (typeof choice.text === 'string') text += choice.text;
    const delta = choice.delta as Record<string, unknown> | undefined;
    if (delta && typeof delta.content === 'string') text += delta.content;
  }
  return text;
}

const CONNECT_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'UND_ERR_CONNECT_TIMEOUT', 'EADDRNOTAVAIL']);

function errorCode(err: unknown): string | undefined {
  let e: unknown = err;
  for (let depth = 0; e && depth < 4; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string') return code;
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

/** Pulls the message out of vLLM's error bodies (current, flat and the 401 shape). */
export function errorMessage(body: string): string {
  try {
    const parsed = JSON.parse(body) as Record<string, unknown>;
    const err = parsed.error;
    if (typeof err === 'string') return err;
    if (err && typeof err === 'object' && typeof (err as { message?: unknown }).message === 'string') {
      return (err as { message: string }).message;
    }
    if (typeof parsed.message === 'string') return parsed.message;
  } catch {
    // not JSON: fall through to the raw text
  }
  return body.slice(0, 200);
}

/** Sends one streaming request and classifies how it ended. */
export async function streamCompletion(req: StreamRequest): Promise<StreamResult> {
  const startedAt = performance.now();
  const result: StreamResult = { outcome: 'success', aborted: false, startedAt, contentAt: [], endedAt: startedAt, text: '', sawDone: false };
  const finish = (outcome: Outcome, detail?: string): StreamResult => {
    result.outcome = outcome;
    if (detail !== undefined) result.detail = detail;
    result.endedAt = performance.now();
    return result;
  };
  const headers: Record<string, string> = { 'content-type': 'application/json', accept: 'text/event-stream' };
  if (req.apiKey) headers.authorization = `Bearer ${req.apiKey}`;

  let response: Dispatcher.ResponseData;
  try {
    response = await request(`${req.baseUrl}${req.path}`, {
      method: 'POST',
      headers,
      body: JSON.stringify(req.body),
      dispatcher: req.dispatcher,
      signal: req.signal,
    });
  } catch (err) {
    return classifyThrow(err, req, result, finish);
  }
  result.headersAt = performance.now();
  result.status = response.statusCode;

  if (response.statusCode >= 400) {
    const body = await readCapped(response.body, 64 * 1024).catch(() => '');
    const kind: Outcome = response.statusCode >= 500 ? 'http_5xx' : 'http_4xx';
    return finish(kind, `HTTP ${response.statusCode}: ${errorMessage(body)}`);
  }
  const contentType = String(response.headers['content-type'] ?? '');
  if (!contentType.includes('text/event-stream')) {
    await response.body.dump().catch(() => undefined);
    return finish('bad_response', `HTTP ${response.statusCode} with content-type "${contentType}" instead of text/event-stream`);
  }

  let failure: { outcome: Outcome; detail: string } | undefined;
  let chunkTime = 0;
  const parser = createParser({
    onEvent(event) {
      if (failure || result.sawDone) return;
      if (event.data === '[DONE]') {
        result.sawDone = true;
        return;
      }
      let chunk: Record<string, unknown>;
      try {
        chunk = JSON.parse(event.data) as Record<string, unknown>;
      } catch {
        failure = { outcome: 'bad_response', detail: `unparsable SSE data: ${event.data.slice(0, 80)}` };
        return;
      }
      if (chunk.error !== undefined) {
        failure = { outcome: 'stream_error', detail: `error chunk in stream: ${errorMessage(JSON.stringify(chunk))}` };
        return;
      }
      const text = chunkContent(chunk);
      if (text.length > 0) {
        result.contentAt.push(chunkTime);
        result.text += text;
      }
      if (chunk.usage && typeof chunk.usage === 'object') result.usage = chunk.usage as Usage;
    },
  });
  const decoder = new TextDecoder();
  let bytes = 0;
  try {
    for await (const data of response.body) {
      chunkTime = performance.now();
      bytes += (data as Buffer).length;
      if (bytes > req.maxResponseBytes) {
        failure ??= { outcome: 'bad_response', detail: `stream larger than ${req.maxResponseBytes} bytes` };
        break;
      }
      parser.feed(decoder.decode(data as Buffer, { stream: true }));
      if (failure?.outcome === 'bad_response') break;
    }
  } catch (err) {
    if (!failure) return classifyThrow(err, req, result, finish);
  } finally {
    response.body.destroy();
  }
  if (failure) return finish(failure.outcome, failure.detail);
  if (!result.sawDone) return finish('incomplete_stream', 'stream ended without data: [DONE]');
  if (result.contentAt.length === 0) return finish('empty_completion', 'stream finished without any content');
  return finish('success');
}

function classifyThrow(
  err: unknown,
  req: StreamRequest,
  result: StreamResult,
  finish: (o: Outcome, d?: string) => StreamResult,
): StreamResult {
  const code = errorCode(err);
  if (code !== undefined) result.errorCode = code;
  const gotFirstToken = result.contentAt.length > 0;
  if (req.signal.aborted) {
    if (req.timeoutSignal?.aborted) {
      return gotFirstToken
        ? finish('timeout_mid_stream', `no end of stream within the timeout after ${result.contentAt.length} content chunks`)
        : finish('timeout_before_first_token', result.headersAt ? 'headers received but no token within the timeout' : 'no response headers within the timeout');
    }
    result.aborted = true;
    return finish('connect_error', 'aborted by shutdown');
  }
  if (code && CONNECT_CODES.has(code) && result.headersAt === undefined) {
    return finish('connect_error', `connection failed: ${describeCode(code)}`);
  }
  if (err instanceof undiciErrors.HeadersTimeoutError) return finish('timeout_before_first_token', 'no response headers within the timeout');
  if (result.headersAt === undefined) {
    return finish('connect_error', `connection failed before response headers: ${describeCode(code) || (err as Error).message}`);
  }
  return finish('incomplete_stream', `connection lost mid-stream: ${describeCode(code) || (err as Error).message}`);
}

function describeCode(code: string | undefined): string {
  switch (code) {
    case 'ECONNREFUSED':
      return 'connection refused';
    case 'ECONNRESET':
      return 'connection reset';
    case 'UND_ERR_SOCKET':
      return 'the server closed the connection';
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return 'host name not found';
    case 'UND_ERR_CONNECT_TIMEOUT':
      return 'connect timeout';
    case undefined:
      return '';
    default:
      return code;
  }
}

/** Reads at most `max` bytes of a body as text, then discards the rest. */
export async function readCapped(body: Dispatcher.ResponseData['body'], max: number): Promise<string> {
  const parts: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    const buf = chunk as Buffer;
    if (size + buf.length > max) {
      parts.push(buf.subarray(0, max - size));
      body.destroy();
      break;
    }
    parts.push(buf);
    size += buf.length;
  }
  return Buffer.concat(parts).toString('utf8');
}
