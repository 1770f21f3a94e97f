import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Writable } from 'node:stream';
import bcrypt from 'bcryptjs';
import fc from 'fast-check';
import { pino } from 'pino';
import { afterEach, describe, expect, test } from 'vitest';
import { ConfigError, loadConfig, parseConfig } from '../../src/config.js';
import { runCli } from '../../src/cli.js';
import { loadWebConfig } from '../../src/exporter/web-config.js';
import { startDaemon, startEmulator, testConfig, waitFor } from '../helpers/daemon.js';

const SECRET = 'sk-super-secret-4f9a2c';
const cleanups: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  while (cleanups.length) await Promise.resolve(cleanups.pop()!()).catch(() => undefined);
});
const io = () => {
  const o = { out: '', err: '' };
  return { o, io: { stdout: (t: string) => (o.out += t), stderr: (t: string) => (o.err += t), signal: new AbortController().signal, env: { VLLM_API_KEY: SECRET } } };
};

describe('the API key never leaks', () => {
  test('not in logs at any level, /status, /metrics or error messages — with the right and the wrong key', async () => {
    let logs = '';
    const sink = new Writable({ write: (chunk, _enc, cb) => ((logs += chunk.toString()), cb()) });
    const log = pino({ level: 'trace' }, sink);
    for (const serverKey of [SECRET, 'sk-other-key']) {
      const emu = await startEmulator({ apiKey: serverKey, coldStartMs: 0, fault: { mode: 'none' } });
      cleanups.push(emu.close);
      const d = await startDaemon(testConfig(emu.url, { target: { api_key_env: 'KEY' }, probes: { prefix: { enabled: true, interval: '2s', timeout: '1500ms', prefix_tokens: [64] } } }), { env: { KEY: SECRET }, log });
      cleanups.push(() => d.stop());
      await waitFor(async () => ((await d.metrics()).match(/vllm_probe_requests_total\{probe="ttft".*\} [1-9]/) ? true : undefined), 8000);
      emu.emulator.fault = { mode: 'http_500' };
      await new Promise((r) => setTimeout(r, 1500));
      const everything = [logs, await d.metrics(), JSON.stringify((await d.status()).body), await (await fetch(`${d.url}/status?format=text`)).text()];
      for (const text of everything) expect(text).not.toContain(SECRET);
    }
    expect(logs).toContain('"level":20'); // debug lines (successful probes) were written too
    expect(logs).toContain('probe failed');
  });

  test('not in bench outputs', async () => {
    const emu = await startEmulator({ apiKey: SECRET, coldStartMs: 0, model: 'm' });
    cleanups.push(emu.close);
    const out = mkdtempSync(join(tmpdir(), 'bench-'));
    const { o, io: cliIo } = io();
    expect(await runCli(['bench', 'kv', '--target', emu.url, '--out', out, '--json'], cliIo)).toBe(0);
    expect(o.out + o.err).not.toContain(SECRET);
    for (const f of readdirSync(out)) expect(readFileSync(join(out, f), 'utf8'), f).not.toContain(SECRET);
  });

  test('the config schema has no place for a key, only its env var or file', () => {
    expect(() => parseConfig({ target: { api_key: SECRET } })).toThrowError(/target\.api_key: unknown key/);
  });
});

/** A daemon against a fresh emulator, behind the given web config; resolves with its URL. */
async function daemonWithWebConfig(webConfig: string): Promise<{ url: string; file: string }> {
  const file = join(mkdtempSync(join(tmpdir(), 'webcfg-')), 'web.yml');
  writeFileSync(file, webConfig);
  const emu = await startEmulator({ coldStartMs: 0 });
  cleanups.push(emu.close);
  const controller = new AbortController();
  let url = '';
  const { runDaemon } = await import('../../src/app.js');
  const done = runDaemon({ config: testConfig(emu.url), signal: controller.signal, log: pino({ level: 'silent' }), env: {}, webConfigFile: file, onListen: (a) => (url = `http://127.0.0.1:${a.port}`) });
  cleanups.push(async () => (controller.abort(), await done));
  await waitFor(() => url, 5000);
  return { url, file };
}

describe('web config: basic auth and TLS (exporter-toolkit format)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'web-'));
  const hash = bcrypt.hashSync('s3cret', 8);

  test('basic auth protects /metrics, /status and /-/reload; /healthz stays open; bcrypt checked', async () => {
    const { url, file } = await daemonWithWebConfig(`basic_auth_users:\n  prom: ${hash}\nhttp_server_config:\n  headers:\n    X-Content-Type-Options: nosniff\n`);
    const auth = (u: string, p: string) => ({ authorization: `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}` });
    for (const path of ['/metrics', '/status', '/-/reload', '/']) {
      const res = await fetch(`${url}${path}`, { method: path === '/-/reload' ? 'POST' : 'GET' });
      expect(res.status, path).toBe(401);
      expect(res.headers.get('www-authenticate')).toBe('Basic realm="vllm-probe"');
    }
    expect((await fetch(`${url}/metrics`, { headers: auth('prom', 'wrong') })).status).toBe(401);
    expect((await fetch(`${url}/metrics`, { headers: auth('nobody', 's3cret') })).status).toBe(401);
    const ok = await fetch(`${url}/metrics`, { headers: auth('prom', 's3cret') });
    expect(ok.status).toBe(200);
    expect(ok.headers.get('x-content-type-options')).toBe('nosniff');
    expect((await fetch(`${url}/healthz`)).status).toBe(200);
    // rotate the password without a restart
    writeFileSync(file, `basic_auth_users:\n  prom: ${bcrypt.hashSync('n3w', 8)}\n`);
    await new Promise((r) => setTimeout(r, 20));
    expect((await fetch(`${url}/metrics`, { headers: auth('prom', 's3cret') })).status).toBe(401);
    expect((await fetch(`${url}/metrics`, { headers: auth('prom', 'n3w') })).status).toBe(200);
  });

  test('a rotated-in file with a header value ending in a newline keeps the last good file: no 500', async () => {
    const { url, file } = await daemonWithWebConfig(`basic_auth_users:\n  prom: ${hash}\nhttp_server_config:\n  headers:\n    X-Frame-Options: DENY\n`);
    const auth = { authorization: `Basic ${Buffer.from('prom:s3cret').toString('base64')}` };
    expect((await fetch(`${url}/metrics`, { headers: auth })).status).toBe(200);
    writeFileSync(file, `basic_auth_users:\n  prom: ${hash}\nhttp_server_config:\n  headers:\n    X-Frame-Options: |\n      SAMEORIGIN\n`);
    const rotated = Date.now() / 1000 + 5;
    utimesSync(file, rotated, rotated); // a later mtime, whatever the file system's clock granularity
    for (const path of ['/metrics', '/status']) {
      const res = await fetch(`${url}${path}`, { headers: auth });
      expect(res.status, path).toBe(200);
      expect(res.headers.get('x-frame-options')).toBe('DENY');
    }
  });

  test('TLS with a certificate from the web config', async () => {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'), '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
    const file = join(dir, 'tls.yml');
    writeFileSync(file, `tls_server_config:\n  cert_file: ${join(dir, 'cert.pem')}\n  key_file: ${join(dir, 'key.pem')}\nbasic_auth_users:\n  prom: ${hash}\n`);
    const emu = await startEmulator({ coldStartMs: 0 });
    cleanups.push(emu.close);
    const controller = new AbortController();
    let port = 0;
    const { runDaemon } = await import('../../src/app.js');
    const done = runDaemon({ config: testConfig(emu.url), signal: controller.signal, log: pino({ level: 'silent' }), env: {}, webConfigFile: file, onListen: (a) => (port = a.port) });
    cleanups.push(async () => (controller.abort(), await done));
    await waitFor(() => port, 5000);
    const get = (path: string, headers: Record<string, string> = {}) =>
      new Promise<{ code: number; protocol: string }>((resolve, reject) => {
        const req = httpsRequest({ host: '127.0.0.1', port, path, ca: readFileSync(join(dir, 'cert.pem')), headers }, (res) => {
          res.resume();
          resolve({ code: res.statusCode!, protocol: (res.socket as import('node:tls').TLSSocket).getProtocol() ?? '' });
        });
        req.on('error', reject);
        req.end();
      });
    expect(await get('/healthz')).toEqual({ code: 200, protocol: expect.stringMatching(/^TLSv1\.[23]$/) });
    expect((await get('/metrics')).code).toBe(401);
    expect((await get('/metrics', { authorization: `Basic ${Buffer.from('prom:s3cret').toString('base64')}` })).code).toBe(200);
    await expect(fetch(`http://127.0.0.1:${port}/healthz`)).rejects.toThrow(); // plain HTTP refused
  });

  test.each([
    ['basic_auth_users:\n  prom: plaintext\n', 'basic_auth_users.prom: expected a bcrypt hash like "$2y$10$…"'],
    ['tls_server_config:\n  cert_file: /nope/cert.pem\n  key_file: /nope/key.pem\n', 'tls_server_config.cert_file: expected a readable file, got "/nope/cert.pem" (ENOENT)'],
    ['tls_server_config:\n  cert_file: a\n  key_file: b\n  min_version: TLS99\n', 'tls_server_config.min_version:'],
    ['basic_auth: {}\n', '(top level): unknown key(s) basic_auth'],
    [`tls_server_config:\n  cert_file: ${__filename}\n  key_file: ${__filename}\n`, 'tls_server_config: cert_file and key_file are not a usable PEM certificate and key'],
    ['http_server_config:\n  headers:\n    Content-Security-Policy: |\n      default-src \'self\'\n', 'http_server_config.headers.Content-Security-Policy: expected one line, got a value that ends in a line break (a YAML "|" block adds one: use "|-" or a quoted string)'],
    ['http_server_config:\n  headers:\n    X-A: "a\\u0000b"\n', 'http_server_config.headers.X-A: expected a header value without line breaks or control characters, got "a\\\\u0000b"'],
    ['http_server_config:\n  headers:\n    "X A": b\n', 'http_server_config.headers.X A: expected a header name'],
  ])('bad web config %j exits 2 naming the field', async (text, message) => {
    const file = join(dir, `bad-${Math.random()}.yml`);
    writeFileSync(file, text);
    expect(() => loadWebConfig(file)).toThrowError(ConfigError);
    const { o, io: cliIo } = io();
    const code = await runCli(['serve', '--config', 'config/vllm-probe.example.yaml', '--web.config.file', file], cliIo);
    expect(code).toBe(2);
    expect(o.err).toContain(`${file}: ${message}`);
    expect(o.err).not.toMatch(/\n\s+at /);
  });
});

describe('bad input never crashes the config loader (property-based)', () => {
  test('random YAML documents: either a valid config or a ConfigError, never anything else', () => {
    const dir = mkdtempSync(join(tmpdir(), 'fuzz-'));
    const file = join(dir, 'c.yaml');
    const scalar = fc.oneof(fc.string(), fc.integer(), fc.double(), fc.boolean(), fc.constant(null), fc.constantFrom('15s', '1m', 'ten', '-1s', 'http://x:1', '0.0.0.0:9470'));
    const key = fc.constantFrom('listen', 'target', 'url', 'probes', 'ttft', 'prefix', 'interval', 'timeout', 'slo', 'status', 'gpu', 'max_tokens', 'bogus', 'model', 'prefix_tokens');
    const value = fc.letrec((tie) => ({
      node: fc.oneof({ depthSize: 'small' }, scalar, fc.array(tie('node'), { maxLength: 3 }), fc.dictionary(key, tie('node'), { maxKeys: 4 })),
    })).node;
    fc.assert(
      fc.property(fc.oneof(value.map((v) => JSON.stringify(v)), fc.string()), (text) => {
        writeFileSync(file, text);
        try {
          loadConfig(file);
        } catch (err) {
          if (!(err instanceof ConfigError)) throw err;
          for (const line of err.message.split('\n')) expect(line.startsWith(`${file}: `)).toBe(true);
        }
      }),
      { numRuns: 400 },
    );
  });
});

describe('limits on what the daemon reads and accepts', () => {
  test('request bodies over 64 KiB are refused; unknown paths are 404; no /probe?target= proxy exists', async () => {
    const emu = await startEmulator({ coldStartMs: 0 });
    cleanups.push(emu.close);
    const d = await startDaemon(testConfig(emu.url));
    cleanups.push(() => d.stop());
    expect((await fetch(`${d.url}/-/reload`, { method: 'POST', body: 'x'.repeat(70 * 1024) })).status).toBe(413);
    expect((await fetch(`${d.url}/probe?target=http://169.254.169.254/`)).status).toBe(404);
  });
});

describe('request bodies', () => {
  test('a chunked body past 64 KiB is refused with 413, and /healthz keeps answering', async () => {
    const emu = await startEmulator({ coldStartMs: 0 });
    cleanups.push(emu.close);
    const d = await startDaemon(testConfig(emu.url));
    cleanups.push(() => d.stop());
    const { request } = await import('node:http');
    const url = new URL(`${d.url}/-/reload`);
    const code = await new Promise<number>((resolve, reject) => {
      const req = request({ host: url.hostname, port: url.port, path: url.pathname, method: 'POST', headers: { 'transfer-encoding': 'chunked' } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      const piece = Buffer.alloc(16 * 1024, 'a');
      let sent = 0;
      const write = () => {
        while (sent < 4 * 1024 * 1024) {
          sent += piece.length;
          if (!req.write(piece)) return void req.once('drain', write);
        }
        req.end();
      };
      write();
    });
    expect(code).toBe(413);
    expect((await fetch(`${d.url}/healthz`)).status).toBe(200);
  });
});

describe('basic auth under attack', () => {
  const hash = bcrypt.hashSync('s3cret', 8);

  const daemonWithAuth = async () => (await daemonWithWebConfig(`basic_auth_users:\n  prom: ${hash}\n`)).url;
  const basic = (u: string, p: string) => ({ authorization: `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}` });

  test('an unknown user takes about as long as a known one (no user enumeration by timing)', async () => {
    const url = await daemonWithAuth();
    await fetch(`${url}/metrics`, { headers: basic('nobody', 'warm-up') }); // the dummy hash is made once
    const median = async (user: string) => {
      const times: number[] = [];
      for (let i = 0; i < 7; i++) {
        const t = performance.now();
        expect((await fetch(`${url}/metrics`, { headers: basic(user, `wrong-${user}-${i}`) })).status).toBe(401);
        times.push(performance.now() - t);
      }
      return times.sort((a, b) => a - b)[3]!;
    };
    const known = await median('prom');
    const unknown = await median('mallory');
    expect(unknown / known).toBeGreaterThan(0.33); // before: ~50x faster
    expect(unknown / known).toBeLessThan(3);
  });

  test('40 parallel bad logins do not stall /healthz or the event loop; each is refused (401, or 429 past the queue)', async () => {
    // Cost 11: each check takes a few hundred ms of CPU, the cost a real deployment picks.
    const url = (await daemonWithWebConfig(`basic_auth_users:\n  prom: ${bcrypt.hashSync('s3cret', 11)}\n`)).url;
    // The flood comes from another process, as it would: only the daemon's loop is measured here.
    const { spawn } = await import('node:child_process');
    const flood = spawn(process.execPath, ['-e', `
      const url = ${JSON.stringify(`${url}/metrics`)};
      const h = (i) => ({ authorization: 'Basic ' + Buffer.from('prom:bad-' + i).toString('base64') });
      Promise.all(Array.from({ length: 40 }, (_, i) => fetch(url, { headers: h(i) }).then((r) => r.status)))
        .then((codes) => process.stdout.write(JSON.stringify(codes)));
    `]);
    let out = '';
    flood.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const finished = new Promise<void>((r) => flood.once('exit', () => r()));
    // Measure /healthz and how busy the daemon's event loop is until the flood is answered.
    const elu = performance.eventLoopUtilization();
    const healthz: number[] = [];
    while (out === '') {
      const t = performance.now();
      expect((await fetch(`${url}/healthz`)).status).toBe(200);
      healthz.push(performance.now() - t);
      await new Promise((r) => setTimeout(r, 20));
    }
    const busy = performance.eventLoopUtilization(elu).utilization;
    await finished;
    const codes = JSON.parse(out) as number[];
    expect(codes).toHaveLength(40);
    expect(codes.every((c) => c === 401 || c === 429)).toBe(true);
    expect(codes).toContain(429); // the flood was concurrent: it filled the queue
    expect(healthz.length).toBeGreaterThan(3);
    // bcrypt on the loop (bcryptjs' async API runs in slices of up to 100 ms) kept it over 90 %
    // busy for the whole flood; on the worker the loop only answers requests.
    expect(busy).toBeLessThan(0.5);
    expect(Math.max(...healthz)).toBeLessThan(1000);
  });

  test('a right password is checked once and then cached; a wrong one never evicts it', async () => {
    const url = (await daemonWithWebConfig(`basic_auth_users:\n  prom: ${bcrypt.hashSync('s3cret', 11)}\n`)).url;
    expect((await fetch(`${url}/metrics`, { headers: basic('prom', 's3cret') })).status).toBe(200);
    const t = performance.now();
    for (let i = 0; i < 5; i++) expect((await fetch(`${url}/healthz`, { headers: basic('prom', 's3cret') })).status).toBe(200);
    expect((await fetch(`${url}/metrics`, { headers: basic('prom', 'wrong') })).status).toBe(401);
    const cached = performance.now();
    expect((await fetch(`${url}/metrics`, { headers: basic('prom', 's3cret') })).status).toBe(200);
    // A cost-11 check takes 100 ms or more; a cached one is a hash lookup.
    expect(performance.now() - cached).toBeLessThan(100);
    expect(cached - t).toBeGreaterThan(0);
  });
});
