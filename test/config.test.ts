import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { ConfigError, isEvenInterval, loadConfig, parseConfig, parseDuration, readApiKey } from '../src/config.js';
import { runCli } from '../src/cli.js';

const dir = 'test/fixtures/config';

/** The problems parseConfig reports for `raw` (none when it is valid). */
function problems(raw: unknown): string[] {
  try {
    parseConfig(raw, 'c.yaml');
  } catch (err) {
    return (err as ConfigError).problems;
  }
  return [];
}

/** Exact messages, one per rule (the blackbox_exporter config_test.go pattern). */
const INVALID: Array<[string, string]> = [
  ['invalid-type.yaml', 'probes.ttft.max_tokens: expected number, got "sixteen"'],
  ['invalid-unknown-key.yaml', 'target.modle: unknown key (check the spelling; see config/vllm-probe.example.yaml)'],
  ['invalid-url.yaml', 'target.url: expected an http(s) URL like "http://127.0.0.1:8000", got "ftp://example/"'],
  ['invalid-duration.yaml', 'probes.ttft.interval: expected a duration like "15s" of at least 1s, got "ten seconds"'],
  ['invalid-interval.yaml', 'probes.ttft.interval: expected an interval that divides a minute, an hour or a day evenly (1s, 5s, 15s, 30s, 1m, 5m, 1h…), got "7s"'],
  ['invalid-negative.yaml', 'status.kv_cache_usage_degraded: expected a number ≥ 0, got number -0.5'],
  ['invalid-slo-order.yaml', 'slo.ttft.critical_threshold: expected a duration above threshold (2s), got 1s'],
  ['invalid-timeout.yaml', 'probes.ttft.timeout: expected a duration below probes.ttft.interval (5s), got 10s'],
  ['invalid-yaml.yaml', '(yaml) line 4: Missing closing "quote'],
  ['invalid-api-key-file.yaml', 'target.api_key_file: expected a readable file, got "/nonexistent/vllm-probe/api-key" (ENOENT)'],
  ['invalid-enum.yaml', 'probes.ttft.endpoint: expected one of "completions", "chat", got "responses"'],
  ['invalid-listen.yaml', 'listen: expected HOST:PORT like "0.0.0.0:9470", got number 9470'],
  ['invalid-objective.yaml', 'slo.availability.objective: expected a number < 1, got number 99.9'],
  ['invalid-both-keys.yaml', 'target.api_key_file: expected only one of api_key_env and api_key_file, got both'],
  ['invalid-prefix-list.yaml', 'probes.prefix.prefix_tokens: expected a list of at least 1 item(s), got 0'],
  ['invalid-engine-watch.yaml', 'scrape.engine_watch: expected false or a duration from "10ms" to "1s" (the API server outlives a dead engine by 0.3–1.4 s), got "5s"'],
];

describe('config validation', () => {
  test.each(INVALID)('%s is rejected with the file and field path', (file, message) => {
    const path = join(dir, file);
    let err: unknown;
    try {
      loadConfig(path);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).message).toBe(`${path}: ${message}`);
  });

  test.each(INVALID)('check-config %s exits 2 with that message and no stack trace', async (file, message) => {
    let out = '';
    let errText = '';
    const code = await runCli(['check-config', join(dir, file)], { stdout: (t) => (out += t), stderr: (t) => (errText += t), signal: new AbortController().signal, env: {} });
    expect(code).toBe(2);
    expect(errText).toBe(`${join(dir, file)}: ${message}\n`);
    expect(errText).not.toMatch(/\n\s+at /);
    expect(out).toBe('');
  });

  test('the engine watch runs every 100 ms unless set: a duration, or false for none', () => {
    expect(parseConfig({}).scrape.engine_watch).toBe(0.1);
    expect(parseConfig({ scrape: { engine_watch: '250ms' } }).scrape.engine_watch).toBe(0.25);
    expect(parseConfig({ scrape: { engine_watch: false } }).scrape.engine_watch).toBe(false);
    expect(problems({ scrape: { engine_watch: true } })).toEqual(['scrape.engine_watch: expected false or a duration from "10ms" to "1s" (the API server outlives a dead engine by 0.3–1.4 s), got boolean true']);
    expect(problems({ scrape: { engine_watch: '5ms' } })).toHaveLength(1);
  });

  test('several problems are all reported, one line each', () => {
    const d = mkdtempSync(join(tmpdir(), 'cfg-'));
    const f = join(d, 'multi.yaml');
    writeFileSync(f, 'listen: 1\nprobes:\n  ttft:\n    max_tokens: 0\n    bogus: 1\n');
    expect(() => loadConfig(f)).toThrowError(ConfigError);
    try {
      loadConfig(f);
    } catch (e) {
      const lines = (e as Error).message.split('\n');
      expect(lines).toHaveLength(3);
      expect(lines.every((l) => l.startsWith(`${f}: `))).toBe(true);
    }
  });

  test('the example config and an empty file are valid and give the documented defaults', () => {
    const example = loadConfig('config/vllm-probe.example.yaml');
    const empty = loadConfig(join(dir, 'valid-empty.yaml'));
    expect(example).toEqual(empty);
    expect(empty.target.url).toBe('http://127.0.0.1:8000');
    expect(empty.listen).toBe('0.0.0.0:9470');
    expect(empty.probes.ttft.interval).toBe(15);
    expect(empty.probes.ttft.max_tokens).toBe(16);
    expect(empty.slo.ttft.threshold).toBe(0.5);
  });

  test('check-config on a valid file exits 0', async () => {
    let out = '';
    const code = await runCli(['check-config', 'config/vllm-probe.example.yaml'], { stdout: (t) => (out += t), stderr: () => undefined, signal: new AbortController().signal, env: {} });
    expect(code).toBe(0);
    expect(out).toContain('valid');
  });

  test('durations parse like Prometheus durations', () => {
    expect(parseDuration('15s')).toBe(15);
    expect(parseDuration('1m30s')).toBe(90);
    expect(parseDuration('250ms')).toBe(0.25);
    expect(parseDuration('1h')).toBe(3600);
    expect(parseDuration('15')).toBeUndefined();
    expect(parseDuration('s')).toBeUndefined();
    expect(parseDuration('1x')).toBeUndefined();
  });

  test('intervals must fall on the same clock slots every minute, hour or day', () => {
    for (const ok of [1, 15, 30, 60, 300, 1800, 3600, 7200, 86400]) expect(isEvenInterval(ok), String(ok)).toBe(true);
    for (const bad of [7, 90, 45 * 60, 5 * 3600, 2 * 86400, 0.5]) expect(isEvenInterval(bad), String(bad)).toBe(false);
  });

  test('the API key comes from the named env var or file, trimmed', () => {
    const d = mkdtempSync(join(tmpdir(), 'key-'));
    const keyFile = join(d, 'key');
    writeFileSync(keyFile, 'sk-from-file\n');
    const cfgFile = join(d, 'c.yaml');
    writeFileSync(cfgFile, `target:\n  api_key_file: ${keyFile}\n`);
    expect(readApiKey(loadConfig(cfgFile))).toBe('sk-from-file');
    writeFileSync(cfgFile, 'target:\n  api_key_env: MY_KEY\n');
    expect(readApiKey(loadConfig(cfgFile), { MY_KEY: ' sk-env ' })).toBe('sk-env');
  });
});

describe('hostile config files', () => {
  test('URL credentials are rejected and never echoed; a fragment or query is rejected', () => {
    for (const url of ['http://:hunter2@127.0.0.1:8000', 'http://admin:hunter2@127.0.0.1:8000', 'http://127.0.0.1:8000#frag', 'http://127.0.0.1:8000/?x=1']) {
      let message = '';
      try {
        parseConfig({ target: { url } });
      } catch (err) {
        message = (err as Error).message;
      }
      expect(message, url).toMatch(/target\.url: expected (a URL without credentials|a base URL without query or fragment)/);
      expect(message).not.toContain('hunter2');
    }
  });

  test('a FIFO as the API key file is refused at once instead of blocking the event loop', async () => {
    if (process.platform !== 'linux') return;
    const { execFileSync } = await import('node:child_process');
    const { mkdtempSync, writeFileSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const dir = mkdtempSync(join(tmpdir(), 'fifo-'));
    execFileSync('mkfifo', [join(dir, 'key')]);
    writeFileSync(join(dir, 'c.yaml'), `target:\n  api_key_file: ${join(dir, 'key')}\n`);
    const started = Date.now();
    expect(() => loadConfig(join(dir, 'c.yaml'))).toThrowError(/target\.api_key_file: expected a readable file.*not a regular file/);
    expect(Date.now() - started).toBeLessThan(2000);
  });

  test('duplicate keys are found with their line, and the check grows linearly with the file', async () => {
    const { mkdtempSync, writeFileSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const dir = mkdtempSync(join(tmpdir(), 'dup-'));
    writeFileSync(join(dir, 'dup.yaml'), 'listen: 0.0.0.0:1\nlog_level: info\nlisten: 0.0.0.0:2\n');
    expect(() => loadConfig(join(dir, 'dup.yaml'))).toThrowError(/\(yaml\) line 3: duplicate key "listen"/);
    const big = (n: number) => {
      const f = join(dir, `big-${n}.yaml`);
      writeFileSync(f, `x:\n${Array.from({ length: n }, (_, i) => `  k${i}: 1`).join('\n')}\n`);
      return f;
    };
    // The fastest of three runs each, so a busy machine's pauses do not count.
    const time = (f: string) =>
      Math.min(
        ...[0, 1, 2].map(() => {
          const t = performance.now();
          expect(() => loadConfig(f)).toThrowError(/x: unknown key/);
          return performance.now() - t;
        }),
      );
    const small = big(2000);
    const large = big(16000);
    const ratio = time(large) / time(small);
    expect(ratio).toBeLessThan(24); // 8× the keys: linear ~8; the old quadratic check ~64
  });
});

describe('probes.<kind>.mode and max_interval (issue 25)', () => {
  test('inference probes default to always with max_interval 5m (prefix 15m); the models probe has neither', () => {
    const c = parseConfig({});
    expect([c.probes.ttft.mode, c.probes.ttft.max_interval, c.probes.prefix.mode, c.probes.prefix.max_interval]).toEqual(['always', 300, 'always', 900]);
    expect(c.probes.models).not.toHaveProperty('mode');
    expect(parseConfig({ probes: { ttft: { mode: 'when_idle', max_interval: '10m' } } }).probes.ttft).toMatchObject({ mode: 'when_idle', max_interval: 600 });
  });

  test('when_idle with max_interval below interval, an unknown mode, a mode in a fleet module: each named', () => {
    expect(problems({ probes: { prefix: { mode: 'when_idle', max_interval: '30s' } } })).toEqual(['probes.prefix.max_interval: expected a duration of at least probes.prefix.interval (1m) with mode when_idle, got 30s']);
    expect(problems({ probes: { ttft: { mode: 'sometimes' } } })).toEqual(['probes.ttft.mode: expected one of "always", "when_idle", got "sometimes"']);
    expect(problems({ modules: { t: { kind: 'ttft', mode: 'when_idle' } } })).toEqual(['modules.t.mode: unknown key (check the spelling; see config/vllm-probe.example.yaml)']);
  });

  test('a kind gets its config block, module kind and module overrides from the one table: tokenize', () => {
    expect(parseConfig({}).probes.tokenize).toEqual({ enabled: false, interval: 30, timeout: 5, prompt: 'Write one sentence about the ocean.' });
    expect(problems({ probes: { tokenize: { enabled: true, timeout: '30s' } } })).toEqual(['probes.tokenize.timeout: expected a duration below probes.tokenize.interval (30s), got 30s']);
    expect(parseConfig({ modules: { t: { kind: 'tokenize', prompt: 'hi', timeout: '2s' } } }).modules.t!.overrides).toEqual({ prompt: 'hi', timeout: 2 });
    expect(problems({ modules: { t: { kind: 'tokenize', interval: '5s' } } })).toEqual(['modules.t.interval: unknown key (check the spelling; see config/vllm-probe.example.yaml)']);
    expect(problems({ modules: { t: { kind: 'tokenize', mode: 'when_idle' } } })).toEqual(['modules.t.mode: unknown key (check the spelling; see config/vllm-probe.example.yaml)']);
  });
});
