/** Command-line errors a user meets: one line on stderr, exit 2, no stack trace. */
import { describe, expect, test } from 'vitest';
import { readFileSync } from 'node:fs';
import { makeLogger, runCli } from '../src/cli.js';

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

describe('help, version and usage errors', () => {
  test('the usage names --version, and --version prints the package version', async () => {
    const help = await cli(['--help']);
    expect(help.code).toBe(0);
    expect(help.out).toMatch(/^\s+vllm-probe --version\s+\S/m);
    const version = await cli(['--version']);
    expect(version.code).toBe(0);
    expect(version.out).toBe(`${(JSON.parse(readFileSync('package.json', 'utf8')) as { version: string }).version}\n`);
  });
  test('no command at all is a usage error: the usage on stderr, exit 2', async () => {
    const r = await cli([]);
    expect(r.code).toBe(2);
    expect(r.out).toBe('');
    expect(r.err).toMatch(/^vllm-probe \S+ — .*\n\nUsage:\n/);
  });
  test('help for an unknown command exits 2 with one line on stderr naming the commands', async () => {
    const r = await cli(['help', 'nosuch']);
    expect(r.code).toBe(2);
    expect(r.out).toBe('');
    expect(r.err.trim().split('\n')).toHaveLength(1);
    expect(r.err).toMatch(/unknown command "nosuch" \(known: .*serve.*check-config/);
  });
  test('help for a known command prints its options', async () => {
    const r = await cli(['help', 'serve']);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^Usage: vllm-probe serve /);
    const bench = await cli(['help', 'bench']);
    expect(bench.code).toBe(0);
    expect(bench.out).toMatch(/^Usage: vllm-probe bench /);
  });
  test('bench without an experiment is a usage error: usage on stderr, nothing on stdout, exit 2', async () => {
    const r = await cli(['bench']);
    expect(r.code).toBe(2);
    expect(r.out).toBe('');
    expect(r.err).toMatch(/^Usage: vllm-probe bench /);
  });
  test('a bad --log-level is one line naming the allowed levels, exit 2', async () => {
    const r = await cli(['serve', '--config', 'config/vllm-probe.example.yaml', '--log-level', 'loud']);
    expect(r.code).toBe(2);
    expect(r.err.trim().split('\n')).toHaveLength(1);
    expect(r.err).toMatch(/^--log-level: .*"trace", "debug", "info", "warn", "error", "fatal", "silent", got "loud"\n$/);
  });
});

describe('logs', () => {
  test('each line carries its level by name ("warn"), not pino\'s number', () => {
    const lines: string[] = [];
    const log = makeLogger('debug', { write: (line: string) => void lines.push(line) });
    log.warn({ probe: 'ttft' }, 'probe failed');
    log.debug('probe ok');
    log.info('x');
    expect(lines.map((l) => (JSON.parse(l) as { level: unknown }).level)).toEqual(['warn', 'debug', 'info']);
    expect(JSON.parse(lines[0]!)).toMatchObject({ service: 'vllm-probe', msg: 'probe failed', probe: 'ttft' });
  });
});
