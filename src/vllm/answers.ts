/**
 * How vLLM (and what stands in front of it) answers when things go wrong, turned into words:
 * error bodies (vLLM's JSON shapes, HTML pages from proxies), network errors by code, and the
 * headers that matter (Retry-After, X-Request-Id). Every result is one line and capped.
 */
import { oneLine } from '../reason.js';

/** A header value as one string (Node and undici give string | string[] | undefined). */
export function headerValue(v: string | string[] | undefined): string {
  return Array.isArray(v) ? (v[0] ?? '') : (v ?? '');
}

/** Retry-After in seconds (delta-seconds or an HTTP date), capped at an hour; undefined if absent or garbled. */
export function retryAfterSeconds(value: string, now = Date.now()): number | undefined {
  const v = value.trim();
  if (v === '') return undefined;
  if (/^\d+$/.test(v)) return Math.min(3600, Number(v));
  const at = Date.parse(v);
  if (!Number.isFinite(at)) return undefined;
  return Math.min(3600, Math.max(0, Math.round((at - now) / 1000)));
}

const looksHtml = (body: string, contentType: string) => /text\/html/i.test(contentType) || /^\s*<(!doctype|html|head|body)\b/i.test(body);

/** The message inside vLLM's error bodies (current, flat and the 401 shape), or a summary of what came instead. */
export function describeErrorBody(body: string, contentType: string): string {
  if (looksHtml(body, contentType)) {
    const title = /<title[^>]*>([^<]{1,120})/i.exec(body)?.[1]?.trim();
    return `the target answered an HTML page${title ? ` ("${oneLine(title, 80)}")` : ''}: is this vLLM?`;
  }
  const trimmed = body.trim();
  if (trimmed === '') return '(empty body)';
  try {
    const parsed = JSON.parse(trimmed) as unknown;
    if (parsed && typeof parsed === 'object') {
      const p = parsed as Record<string, unknown>;
      const err = p.error;
      if (typeof err === 'string') return oneLine(err);
      if (err && typeof err === 'object' && typeof (err as { message?: unknown }).message === 'string') return oneLine((err as { message: string }).message);
      if (typeof p.message === 'string') return oneLine(p.message);
      if (typeof p.detail === 'string') return oneLine(p.detail);
    }
  } catch {
    // not JSON: fall through to the raw text
  }
  return oneLine(trimmed, 200);
}

export type NetworkErrorKind = 'timeout' | 'connect' | 'socket' | 'headers_overflow' | 'other';

const CONNECT_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'ETIMEDOUT', 'UND_ERR_CONNECT_TIMEOUT', 'EADDRNOTAVAIL']);
/** Node's and undici's names for response headers past 16 KiB. */
const HEADERS_OVERFLOW_CODES = new Set(['HPE_HEADER_OVERFLOW', 'UND_ERR_HEADERS_OVERFLOW']);
const HEADERS_OVERFLOW_WORDS = 'the response headers are larger than 16 KiB: this is not a normal vLLM answer';
const WORDS: Record<string, string> = {
  ECONNREFUSED: 'connection refused',
  ECONNRESET: 'connection reset',
  UND_ERR_SOCKET: 'the server closed the connection',
  ENOTFOUND: 'host name not found',
  EAI_AGAIN: 'host name not found',
  ETIMEDOUT: 'connect timeout',
  UND_ERR_CONNECT_TIMEOUT: 'connect timeout',
  HPE_HEADER_OVERFLOW: HEADERS_OVERFLOW_WORDS,
  UND_ERR_HEADERS_OVERFLOW: HEADERS_OVERFLOW_WORDS,
  UND_ERR_HEADERS_TIMEOUT: 'no response headers in time',
  UND_ERR_BODY_TIMEOUT: 'the body stopped arriving',
};

function codeOf(err: unknown): string | undefined {
  let e: unknown = err;
  for (let depth = 0; e && depth < 4; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string') return code;
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

/** A network error classified by its code (never by its message text), with words for people. */
export function describeNetworkError(err: unknown): { kind: NetworkErrorKind; code?: string; words: string } {
  const code = codeOf(err);
  const words = oneLine(code ? (WORDS[code] ?? code) : (err as Error)?.message ?? String(err), 200);
  const base = code ? { code, words } : { words };
  if ((err as Error)?.name === 'AbortError' || code === 'UND_ERR_ABORTED' || code === 'ABORT_ERR' || code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT') return { kind: 'timeout', ...base };
  if (code && HEADERS_OVERFLOW_CODES.has(code)) return { kind: 'headers_overflow', ...base };
  if (code && CONNECT_CODES.has(code)) return { kind: 'connect', ...base };
  if (code === 'UND_ERR_SOCKET' || code === 'ECONNRESET' || code === 'EPIPE') return { kind: 'socket', ...base };
  return { kind: 'other', ...base };
}
