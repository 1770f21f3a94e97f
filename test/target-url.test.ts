/**
 * One target-URL parser (src/target-url.ts) behind every entry point: config's target.url and
 * targets[].url, /probe's target parameter and bench's --target. Each spelling is put through
 * all four and must come out the same: the same base URL, or the same refusal after each
 * entry point's own field name (issue 26: they had disagreed on /v1, schemes and credentials).
 */
import { describe, expect, test } from 'vitest';
import { parseConfig } from '../src/config.js';
import { benchTarget } from '../src/bench/common.js';
import { parseTarget } from '../src/fleet/probe.js';
import { parseTargetUrl, withoutTrailingSlashes } from '../src/target-url.js';

/** What each entry point makes of `text`: the base URL, or its error message. */
function throughConfig(text: string): string {
  try {
    return parseConfig({ target: { url: text } }).target.url;
  } catch (err) {
    return (err as Error).message;
  }
}
function throughConfigTargets(text: string): string {
  try {
    return parseConfig({ modules: { m: { kind: 'models' } }, targets: [{ url: text, modules: ['m'] }] }).targets[0]!.url;
  } catch (err) {
    return (err as Error).message;
  }
}
function throughProbe(text: string): string {
  const r = parseTarget(text);
  return typeof r === 'string' ? r : withoutTrailingSlashes(r.href);
}
function throughBench(text: string): string {
  try {
    return benchTarget(text);
  } catch (err) {
    return (err as Error).message;
  }
}

const ACCEPTED: Array<[string, string]> = [
  ['http://127.0.0.1:8000', 'http://127.0.0.1:8000'],
  ['http://127.0.0.1:8000/', 'http://127.0.0.1:8000'],
  ['http://127.0.0.1:8000///', 'http://127.0.0.1:8000'],
  ['HTTP://VLLM-0.Internal:8000', 'http://vllm-0.internal:8000'],
  ['127.0.0.1:8000', 'http://127.0.0.1:8000'],
  ['vllm-0.internal:8000', 'http://vllm-0.internal:8000'],
  ['https://gw.internal/llama/', 'https://gw.internal/llama'],
  ['https://gw.internal/v1beta', 'https://gw.internal/v1beta'],
  ['http://[::1]:8000/', 'http://[::1]:8000'],
];

const REFUSED: Array<[string, string]> = [
  ['ftp://example/', 'expected an http(s) URL like "http://127.0.0.1:8000", got "ftp://example/"'],
  ['file:///etc/passwd', 'expected an http(s) URL like "http://127.0.0.1:8000", got "file:///etc/passwd"'],
  ['http://exa mple:8000', 'expected an http(s) URL like "http://127.0.0.1:8000" or HOST:PORT, got "http://exa mple:8000"'],
  ['http://127.0.0.1:99999', 'expected an http(s) URL like "http://127.0.0.1:8000" or HOST:PORT, got "http://127.0.0.1:99999"'],
  ['http://127.0.0.1:8000/?x=1', 'expected a base URL without query or fragment, got "http://127.0.0.1:8000/?x=1"'],
  ['http://127.0.0.1:8000?', 'expected a base URL without query or fragment, got "http://127.0.0.1:8000?"'],
  ['http://127.0.0.1:8000#frag', 'expected a base URL without query or fragment, got "http://127.0.0.1:8000#frag"'],
  ['http://127.0.0.1:8000/v1', 'expected vLLM\'s base URL without /v1 (its /health, /metrics and /tokenize are at the root), got "http://127.0.0.1:8000/v1": use "http://127.0.0.1:8000"'],
  ['http://127.0.0.1:8000/v1//', 'expected vLLM\'s base URL without /v1 (its /health, /metrics and /tokenize are at the root), got "http://127.0.0.1:8000/v1//": use "http://127.0.0.1:8000"'],
  ['127.0.0.1:8000/v1', 'expected vLLM\'s base URL without /v1 (its /health, /metrics and /tokenize are at the root), got "127.0.0.1:8000/v1": use "http://127.0.0.1:8000"'],
  ['https://gw.internal/llama/v1', 'expected vLLM\'s base URL without /v1 (its /health, /metrics and /tokenize are at the root), got "https://gw.internal/llama/v1": use "https://gw.internal/llama"'],
];

describe('one target URL parser', () => {
  test.each(ACCEPTED)('%s is accepted everywhere as %s', (text, base) => {
    expect(throughConfig(text)).toBe(base);
    expect(throughConfigTargets(text)).toBe(base);
    expect(throughProbe(text)).toBe(base);
    expect(throughBench(text)).toBe(base);
  });

  test.each(REFUSED)('%s is refused everywhere with the same words', (text, error) => {
    expect(throughConfig(text)).toBe(`<config>: target.url: ${error}`);
    expect(throughConfigTargets(text)).toBe(`<config>: targets[0].url: ${error}`);
    expect(throughProbe(text)).toBe(`target: ${error}`);
    expect(throughBench(text)).toBe(`--target: ${error}`);
  });

  test('credentials are refused everywhere, never echoed, and each entry point says where the key goes', () => {
    for (const text of ['http://admin:hunter2@127.0.0.1:8000', 'http://:hunter2@127.0.0.1:8000', 'http://hunter2@127.0.0.1:8000']) {
      expect(throughConfig(text)).toBe('<config>: target.url: expected a URL without credentials (they would show in logs and /status; the API key goes in target.api_key_env or api_key_file)');
      expect(throughConfigTargets(text)).toBe("<config>: targets[0].url: expected a URL without credentials (they would show in logs and /status; the API key goes in the module's api_key_env or api_key_file)");
      expect(throughProbe(text)).toBe('target: expected a URL without credentials (they would show in logs and /status; use a module with api_key_env or api_key_file)');
      expect(throughBench(text)).toBe('--target: expected a URL without credentials (they would show in logs and /status; bench reads the API key from the variable named by --api-key-env)');
    }
  });

  test('a URL the WHATWG parser refuses is quoted without its password, on one line', () => {
    const r = parseTargetUrl('http://u:hunter2@exa mple\n:8000');
    expect(r).toEqual({ ok: false, error: 'expected an http(s) URL like "http://127.0.0.1:8000" or HOST:PORT, got "http://***@exa mple\\\\n:8000"' });
  });

  test('bench without --target takes the local default', () => {
    expect(benchTarget(undefined)).toBe('http://127.0.0.1:8000');
  });
});
