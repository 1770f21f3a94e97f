/**
 * What a user notices when a bench run goes wrong or is run twice: failures end the run with
 * one line naming the reason and exit non-zero, nothing is concluded from failed cells, runs
 * sharing a folder all survive, and the measured numbers are not polluted by the prefix cache.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { createServer, request as httpRequest, type RequestListener, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, onTestFinished, test } from 'vitest';
import { runBench } from '../../src/bench/commands.js';
import { runCli } from '../../src/cli.js';
import { startEmulator } from '../helpers/daemon.js';
import { freePort } from '../helpers/prometheus.js';

const cli = async (args: string[], env: NodeJS.ProcessEnv = {}) => {
  let out = '';
  let err = '';
  const code = await runCli(args, { stdout: (t) => (out += t), stderr: (t) => (err += t), signal: new AbortController().signal, env });
  return { code, out, err };
};
const tmp = (name: string) => join(mkdtempSync(join(tmpdir(), `${name}-`)), 'out');

/** Listens on a loopback port; `handler` answers everything. */
async function serve(handler: RequestListener): Promise<{ url: string; close: () => Promise<void> }> {
  const server: Server = createServer(handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, close: () => new Promise((r) => (server.closeAllConnections(), server.close(() => r()))) };
}

let emu: Awaited<ReturnType<typeof startEmulator>>;
beforeAll(async () => {
  emu = await startEmulator({ model: 'bench-model', maxNumSeqs: 4, itlMs: 2, coldStartMs: 0, batchSlowdown: 0 });
});
afterAll(() => emu.close());

describe('a failing run says why in one line, exits non-zero and writes no conclusions', () => {
  test('dead port: exit 1, "connection refused", no files', async () => {
    const out = tmp('dead');
    const r = await cli(['bench', 'sweep', '--target', `http://127.0.0.1:${await freePort()}`, '--concurrency', '1', '--requests', '3', '--out', out]);
    expect(r.code).toBe(1);
    expect(r.err.trim().split('\n')).toHaveLength(1);
    expect(r.err).toMatch(/^vllm-probe bench: http:\/\/127\.0\.0\.1:\d+\/v1\/models: cannot reach vLLM: connection refused\n$/);
    expect(existsSync(out)).toBe(false);
  });

  test('dead port with --model: the target is checked before any load, one line, no files', async () => {
    const out = tmp('dead-model');
    const r = await cli(['bench', 'sweep', '--target', `http://127.0.0.1:${await freePort()}`, '--model', 'm', '--concurrency', '2', '--duration', '60s', '--max-failures', '3', '--out', out]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/^vllm-probe bench: http:\/\/127\.0\.0\.1:\d+\/v1\/models: cannot reach vLLM: connection refused\n$/);
    expect(existsSync(out)).toBe(false);
  });

  test.each(['kv', 'sweep', 'cold-warm', 'prefix'])('%s --model nope: exit 1 naming the served models, before any request, no files', async (experiment) => {
    let completions = 0;
    const upstream = new URL(emu.url);
    const counting = await serve((req, res) => {
      if (req.url === '/v1/completions') completions++;
      const up = httpRequest({ host: upstream.hostname, port: upstream.port, path: req.url, method: req.method, headers: req.headers }, (ur) => {
        res.writeHead(ur.statusCode ?? 502, ur.headers);
        ur.pipe(res);
      });
      req.pipe(up);
    });
    onTestFinished(() => counting.close());
    const out = tmp('nope');
    const r = await cli(['bench', experiment, '--target', counting.url, '--model', 'nope', '--out', out]);
    expect(r.code).toBe(1);
    expect(r.err).toBe(`vllm-probe bench: --model nope: ${counting.url} does not serve it (served: bench-model)\n`);
    expect(completions).toBe(0);
    expect(existsSync(out)).toBe(false);
  });

  test('prefix --baseline that does not serve the model: exit 1 before any request', async () => {
    const other = await startEmulator({ model: 'other-model', coldStartMs: 0 });
    onTestFinished(() => other.close());
    const r = await cli(['bench', 'prefix', '--target', emu.url, '--baseline', other.url, '--out', tmp('baseline')]);
    expect(r.code).toBe(1);
    expect(r.err).toBe(`vllm-probe bench: --baseline: model bench-model: ${other.url} does not serve it (served: other-model)\n`);
  });

  test("a listed model whose completions fail: vLLM's 404 message, a handful of requests (not thousands), no summary", async () => {
    // /v1/models lists the model (it passes the check before the run), then every completion
    // answers vLLM's 404, as when a LoRA adapter is unloaded after the run started.
    let completions = 0;
    const fake = await serve((req, res) => {
      req.resume();
      if (req.url === '/v1/models') return res.writeHead(200, { 'content-type': 'application/json' }).end('{"object":"list","data":[{"id":"no-such-model","object":"model"}]}');
      if (req.url === '/v1/completions') completions++;
      res.writeHead(404, { 'content-type': 'application/json' }).end(readFileSync('test/fixtures/vllm/error-404-model-v0.32.0.json'));
    });
    onTestFinished(() => fake.close());
    const out = tmp('404');
    const r = await cli(['bench', 'sweep', '--target', fake.url, '--model', 'no-such-model', '--concurrency', '4', '--duration', '30s', '--out', out]);
    expect(r.code).toBe(1);
    expect(r.err).toContain('stopped after 5 failed requests in a row: http 4xx: HTTP 404: The model `no-such-model` does not exist.');
    expect(completions).toBeLessThanOrEqual(8); // 5 in a row, plus at most the other workers' in-flight ones
    expect(existsSync(out)).toBe(false);
  });

  test('missing API key: names the variable that supplies it', async () => {
    const locked = await startEmulator({ model: 'm', apiKey: 'sekret', coldStartMs: 0 });
    onTestFinished(() => locked.close());
    const r = await cli(['bench', 'prefix', '--target', locked.url, '--out', tmp('401')]);
    expect(r.code).toBe(1);
    expect(r.err).toBe(`vllm-probe bench: HTTP 401 from ${locked.url}/v1/models: the API key is missing (the bench reads it from $VLLM_API_KEY; --api-key-env NAME picks another variable)\n`);
  });

  test('a target that is not vLLM (an HTML page) is named as such', async () => {
    const web = await serve((req, res) => {
      req.resume();
      res.writeHead(200, { 'content-type': 'text/html' }).end('<!doctype html><html><head><title>Welcome to nginx!</title></head><body>hi</body></html>');
    });
    onTestFinished(() => web.close());
    const r = await cli(['bench', 'sweep', '--target', web.url, '--out', tmp('html')]);
    expect(r.code).toBe(1);
    expect(r.err).toBe(`vllm-probe bench: ${web.url}/v1/models is not an OpenAI model list: the target answered an HTML page ("Welcome to nginx!"): is this vLLM?\n`);
  });

  test('a prefix longer than max_model_len is refused before any request', async () => {
    const r = await cli(['bench', 'prefix', '--target', emu.url, '--regimes', '512,8192', '--out', tmp('long')]);
    expect(r.code).toBe(2);
    expect(r.err).toBe("vllm-probe bench: --regimes: 8192 plus the suffix (32) and --max-tokens (32) do not fit in this server's max_model_len 8192\n");
  });

  test('a target ending in /v1 is refused with the fix', async () => {
    const r = await cli(['bench', 'sweep', '--target', `${emu.url}/v1`]);
    expect(r.code).toBe(2);
    expect(r.err).toBe(`vllm-probe bench: --target: expected vLLM's base URL without /v1 (its /health, /metrics and /tokenize are at the root), got "${emu.url}/v1": use "${emu.url}"\n`);
  });

  test('intermittent failures: the sweep runs, but draws no knee and says why', async () => {
    // Every 3rd completion fails with vLLM's 500 body; the rest go to the emulator.
    let n = 0;
    const upstream = new URL(emu.url);
    const flaky = await serve((req, res) => {
      if (req.url === '/v1/completions' && ++n % 3 === 0) {
        req.resume();
        res.writeHead(500, { 'content-type': 'application/json' }).end('{"error":{"message":"EngineCore encountered an issue","type":"InternalServerError","code":500}}');
        return;
      }
      const up = httpRequest({ host: upstream.hostname, port: upstream.port, path: req.url, method: req.method, headers: req.headers }, (ur) => {
        res.writeHead(ur.statusCode ?? 502, ur.headers);
        ur.pipe(res);
      });
      req.pipe(up);
    });
    onTestFinished(() => flaky.close());
    const out = tmp('flaky');
    const r = await cli(['bench', 'sweep', '--target', flaky.url, '--concurrency', '1,2,4', '--requests', '6', '--max-tokens', '4', '--out', out, '--json']);
    expect(r.code, r.err).toBe(0);
    const s = JSON.parse(r.out) as { knee: unknown; conclusion_withheld: string[] };
    expect(s.knee).toBeNull();
    expect(s.conclusion_withheld.join(' ')).toContain('HTTP 500: EngineCore encountered an issue');
    const md = readFileSync(join(out, 'concurrency_sweep.md'), 'utf8');
    expect(md).toContain('**No conclusion about the knee**');
    expect(md).not.toContain('No knee in range');
  });
});

describe('runs and measurements a user can trust', () => {
  test('two sweeps into one folder both survive; the report covers both and names each target', async () => {
    const other = await startEmulator({ model: 'other-model', itlMs: 2, coldStartMs: 0 });
    onTestFinished(() => other.close());
    const out = tmp('two');
    for (const url of [emu.url, other.url]) {
      const r = await cli(['bench', 'sweep', '--target', url, '--concurrency', '1,2', '--requests', '3', '--max-tokens', '2', '--input-tokens', '16', '--out', out]);
      expect(r.code, r.err).toBe(0);
    }
    const files = readdirSync(out).sort();
    expect(files).toContain('sweep.summary.json');
    expect(files).toContain('sweep-2.summary.json');
    expect(files).toContain('concurrency_sweep.csv');
    expect(files).toContain('concurrency_sweep-2.csv');
    const rep = await cli(['bench', 'report', '--in', out]);
    expect(rep.code, rep.err).toBe(0);
    const md = readFileSync(join(out, 'report.md'), 'utf8');
    expect(md).toContain(`2 bench runs under ${out}, against 2 targets`);
    expect(md).toContain(`## Target ${emu.url}`);
    expect(md).toContain(`## Target ${other.url}`);
    expect(md).toContain('model: other-model');
  });

  test('sweep: no request is served from the prefix cache; --input-tokens is measured with /tokenize; --requests per level', async () => {
    const hits = () => emu.emulator.metrics.counters.prefix_cache_hits;
    const before = hits();
    const r = await cli(['bench', 'sweep', '--target', emu.url, '--concurrency', '1,4', '--requests', '8', '--max-tokens', '2', '--input-tokens', '96', '--out', tmp('unique'), '--json']);
    expect(r.code, r.err).toBe(0);
    expect(hits() - before).toBe(0);
    const s = JSON.parse(r.out) as { input_tokens_measured: number; mean_prompt_tokens: number; levels: Array<{ requests: number; errors: number }> };
    expect(Math.abs(s.input_tokens_measured - 96)).toBeLessThanOrEqual(2);
    expect(Math.abs(s.mean_prompt_tokens - 96)).toBeLessThanOrEqual(4);
    expect(s.levels.map((l) => l.requests + l.errors)).toEqual([8, 8]);
  });

  test('prefix at concurrency > 1: cached tokens never exceed the prefix', async () => {
    const r = await cli(['bench', 'prefix', '--target', emu.url, '--regimes', '256', '--concurrency', '1,4', '--requests', '8', '--max-tokens', '2', '--out', tmp('prefix'), '--json']);
    expect(r.code, r.err).toBe(0);
    const rows = (JSON.parse(r.out) as { rows: Array<{ mode: string; mean_cached_tokens: number; prefix_regime: number }> }).rows;
    for (const row of rows.filter((x) => x.mode === 'cache')) {
      expect(row.mean_cached_tokens).toBeGreaterThan(0);
      expect(row.mean_cached_tokens).toBeLessThanOrEqual(256 + 16); // the prefix, to the next 16-token block
    }
    for (const row of rows.filter((x) => x.mode === 'no_cache')) expect(row.mean_cached_tokens).toBe(0);
  });

  test('cold-warm: warm_1 in the summary is the request right after the cold one', async () => {
    const restart = `node -e "fetch('${emu.url}/_emulator/restart',{method:'POST'}).then(r=>process.exit(r.ok?0:1))"`;
    const r = await cli(['bench', 'cold-warm', '--target', emu.url, '--restart-cmd', restart, '--runs', '3', '--max-tokens', '2', '--out', tmp('cw'), '--json']);
    expect(r.code, r.err).toBe(0);
    const s = JSON.parse(r.out) as { ttft: { warm1: number }; runs: Array<{ run: string; ttft_s: number }> };
    expect(s.runs.map((x) => x.run)).toEqual(['cold_1', 'warm_1', 'warm_2', 'warm_3', 'warm_4']);
    expect(s.ttft.warm1).toBe(s.runs[1]!.ttft_s);
  });

  test('progress off a terminal: one line per cell with the time left', async () => {
    const r = await cli(['bench', 'sweep', '--target', emu.url, '--concurrency', '1,2,4', '--requests', '3', '--max-tokens', '2', '--input-tokens', '16', '--out', tmp('progress')]);
    expect(r.code, r.err).toBe(0);
    const lines = r.err.trim().split('\n');
    expect(lines).toHaveLength(3);
    expect(lines[0]).toMatch(/^\[1\/3\] concurrency 1: [\d.]+ req\/s, [\d.]+ tok\/s, p95 TTFT \d+ ms, 0 errors, about \d+ s left$/);
    expect(lines[2]).toMatch(/^\[3\/3\] concurrency 4: .*0 errors$/);
    expect(r.err).not.toContain('\r');
  });

  test('progress on a terminal: the line is cleared and redrawn, each cell still ends on its own line', async () => {
    let err = '';
    const code = await runBench(['sweep', '--target', emu.url, '--concurrency', '1,2', '--requests', '4', '--max-tokens', '2', '--input-tokens', '16', '--out', tmp('tty')], { stdout: () => undefined, stderr: (t) => (err += t), signal: new AbortController().signal, env: {}, isTTY: true });
    expect(code).toBe(0);
    expect(err).toContain('\r\x1b[2K[1/2] concurrency 1: ');
    expect(err).toMatch(/\r\x1b\[2K\[2\/2\] concurrency 2: .*0 errors\n$/);
  });

  test('each experiment has its own --help, in plain words', async () => {
    const texts: string[] = [];
    for (const e of ['cold-warm', 'prefix', 'sweep', 'kv', 'kv-scaling', 'report']) {
      const r = await cli(['bench', e, '--help']);
      expect(r.code).toBe(0);
      expect(r.out).toMatch(new RegExp(`^Usage: vllm-probe bench ${e}`));
      texts.push(r.out);
    }
    expect(texts[2]).toContain('--input-tokens');
    expect(texts[2]).not.toContain('--restart-cmd');
    const general = (await cli(['bench', '--help'])).out;
    for (const t of [...texts, general]) expect(t).not.toMatch(/seed|Tier \d/i);
  });
});
