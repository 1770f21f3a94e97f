/** Command-line errors a user meets: one line on stderr, exit 2, no stack trace. */
import { describe, expect, test } from 'vitest';
import { runCli } from '../src/cli.js';

const cli = async (args: string[]) => {
  let out = '';
  let err = '';
  const code = await runCli(args, { stdout: (t) => (out += t), stderr: (t) => (err += t), signal: new AbortController().signal, env: {} });
  return { code, out, err };
};

describe('CLI errors are one line and exit 2', () => {
  test('dashboards --out to a path that cannot be a folder', async () => {
    const r = await cli(['dashboards', '--out', '/dev/null/dashboards']);
    expect(r.code).toBe(2);
    expect(r.err).toBe('vllm-probe dashboards: /dev/null/dashboards: not a directory\n');
  });
  test('rules --config naming a missing file', async () => {
    const r = await cli(['rules', '--config', '/nonexistent/vllm-probe.yaml']);
    expect(r.code).toBe(2);
    expect(r.err.trim().split('\n')).toHaveLength(1);
    expect(r.err).not.toMatch(/\n\s+at /);
  });
  test('target.url ending in /v1 is refused with the URL to use instead', async () => {
    const r = await cli(['check-config', 'test/fixtures/config/invalid-url-v1.yaml']);
    expect(r.code).toBe(2);
    expect(r.err).toBe('test/fixtures/config/invalid-url-v1.yaml: target.url: expected vLLM\'s base URL without /v1 (its /health, /metrics and /tokenize are at the root), got "http://127.0.0.1:8000/v1": use "http://127.0.0.1:8000"\n');
  });
  test('emulate --vllm-version that is not a version', async () => {
    const r = await cli(['emulate', '--vllm-version', 'latest']);
    expect(r.code).toBe(2);
    expect(r.err).toBe('--vllm-version: expected a vLLM version such as 0.26.0, got "latest"\n');
  });
  test('serve --target with /v1 is refused the same way', async () => {
    const r = await cli(['serve', '--config', 'test/fixtures/config/valid-minimal.yaml', '--target', 'http://127.0.0.1:8000/v1/']);
    expect(r.code).toBe(2);
    expect(r.err).toContain('--target: target.url: expected vLLM\'s base URL without /v1');
  });
});
