/**
 * vLLM's base URL as every entry point takes it: config (`target.url`, `targets[].url`), the
 * `--target` of `serve` and of bench, and `/probe?target=`. One parser, so a spelling is
 * accepted or refused the same way everywhere, with the same words (issue 26: `/probe`
 * accepted `…/v1` and then failed with a bare HTTP 404, bench accepted `ftp://` and
 * `http://user:pass@…`).
 *
 * Accepted: http or https; `HOST:PORT` alone means http; a path prefix (a gateway's
 * `https://gw/llama`). Refused: other schemes, credentials (they would print in logs and
 * /status; the API key has its own setting), a query or fragment (a pasted link), and a path
 * ending in /v1: vLLM serves /health, /metrics and /tokenize at the root, so the OpenAI-client
 * habit would 404 on all of them. Trailing slashes are stripped here and nowhere else.
 * Pure: no I/O. What it quotes back is one line, capped, with any credentials redacted.
 */
import { oneLine, redactUrl } from './reason.js';

/** A base URL: `url` parsed, `base` its text without trailing slashes (what clients and keys use). */
export type ParsedTargetUrl = { ok: true; url: URL; base: string } | { ok: false; error: string };

const SCHEME = /^[a-z][a-z0-9+.-]*:\/\//i;
const quote = (text: string) => JSON.stringify(oneLine(redactUrl(text), 200));

/** `text` without its trailing slashes: `http://h:8000//` → `http://h:8000`. */
export function withoutTrailingSlashes(text: string): string {
  return text.replace(/\/+$/, '');
}

/**
 * Parses a target base URL. Never throws: a refusal is `{ ok: false, error }`, one sentence
 * without the field name (callers put theirs in front: `target.url: …`, `--target: …`) and
 * never echoing credentials. `keyHint` says where the API key goes instead, in the caller's
 * terms (a config key, a flag, a module).
 */
export function parseTargetUrl(text: string, keyHint = 'the API key has its own setting'): ParsedTargetUrl {
  const withScheme = SCHEME.test(text) ? text : `http://${text}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    return { ok: false, error: `expected an http(s) URL like "http://127.0.0.1:8000" or HOST:PORT, got ${quote(text)}` };
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    return { ok: false, error: `expected an http(s) URL like "http://127.0.0.1:8000", got ${quote(text)}` };
  }
  if (url.username || url.password) {
    return { ok: false, error: `expected a URL without credentials (they would show in logs and /status; ${keyHint})` };
  }
  // `new URL('http://h/?')` has an empty search: the raw text tells that a query was pasted.
  if (url.search || url.hash || /[?#]/.test(text)) {
    return { ok: false, error: `expected a base URL without query or fragment, got ${quote(text)}` };
  }
  const base = withoutTrailingSlashes(url.href);
  if (/\/v1$/.test(withoutTrailingSlashes(url.pathname))) {
    return {
      ok: false,
      error: `expected vLLM's base URL without /v1 (its /health, /metrics and /tokenize are at the root), got ${quote(text)}: use "${base.replace(/\/v1$/, '')}"`,
    };
  }
  return { ok: true, url: new URL(base), base };
}
