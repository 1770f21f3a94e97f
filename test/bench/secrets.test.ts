/**
 * No secret leaves a bench run: keys planted in the environment, in --restart-cmd and --launch
 * (as --api-key, an `env X_TOKEN=` assignment and a URL password) must not appear in any file
 * bench writes (md, csv, json, html, svg), nor in its progress output or error messages.
 */
import { mkdtempSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { Redactor } from '../../src/bench/redact.js';
import { runCli } from '../../src/cli.js';
import { startEmulator } from '../helpers/daemon.js';

const KEY = 'sk-planted-env-key-1111';
const HF = 'hf_planted_token_2222';
const CMD_KEY = 'sk-planted-cmdline-3333';
const URL_PW = 'pw-planted-4444';
const PLANTED = [KEY, HF, CMD_KEY, URL_PW];
const ENV = { VLLM_API_KEY: KEY, HF_TOKEN: HF };

const cli = async (args: string[]) => {
  let out = '';
  let err = '';
  const code = await runCli(args, { stdout: (t) => (out += t), stderr: (t) => (err += t), signal: new AbortController().signal, env: ENV });
  return { code, out, err };
};

function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => (statSync(join(dir, n)).isDirectory() ? filesUnder(join(dir, n)) : [join(dir, n)]));
}

describe('secrets are never written', () => {
  let emu: Awaited<ReturnType<typeof startEmulator>>;
  let root: string;
  let printed = '';
  beforeAll(async () => {
    emu = await startEmulator({ model: 'm', apiKey: KEY, coldStartMs: 0, itlMs: 1 });
    root = mkdtempSync(join(tmpdir(), 'bench-secrets-'));
    // The restart command carries the secrets the way real ones do: an env assignment, a flag and a URL.
    const restart = `env HF_TOKEN=${HF} node -e "fetch('${emu.url}/_emulator/restart',{method:'POST'}).then(r=>process.exit(r.ok?0:1))" -- --api-key ${CMD_KEY} --download https://user:${URL_PW}@models.example/m --hf-token ${HF}`;
    const launch = `node -e "fetch('${emu.url}/_emulator/restart',{method:'POST'}).then(r=>process.exit(r.ok?0:1))" -- --max-model-len {max_model_len} --api-key=${CMD_KEY} --hf-token ${HF}`;
    const runs = [
      ['cold-warm', '--target', emu.url, '--restart-cmd', restart, '--runs', '2', '--max-tokens', '2'],
      ['sweep', '--target', emu.url, '--concurrency', '1,2', '--requests', '3', '--max-tokens', '2', '--input-tokens', '16'],
      ['prefix', '--target', emu.url, '--regimes', '64', '--concurrency', '1', '--requests', '2', '--max-tokens', '2'],
      ['kv', '--target', emu.url],
      ['kv-scaling', '--target', emu.url, '--launch', launch, '--values', '8192'],
    ];
    for (const args of runs) {
      const r = await cli(['bench', ...args, '--out', join(root, 'runs')]);
      printed += r.out + r.err;
      expect(r.code, `${args[0]}: ${r.err}`).toBe(0);
    }
    const json = await cli(['bench', 'sweep', '--target', emu.url, '--concurrency', '1', '--requests', '2', '--max-tokens', '2', '--input-tokens', '16', '--json', '--out', join(root, 'runs')]);
    printed += json.out + json.err;
    const rep = await cli(['bench', 'report', '--in', join(root, 'runs')]);
    printed += rep.out + rep.err;
    expect(rep.code, rep.err).toBe(0);
  }, 60_000);
  afterAll(() => emu?.close());

  test('no planted secret in any output file, of every kind bench writes', () => {
    const files = filesUnder(root);
    const kinds = new Set(files.map((f) => f.split('.').pop()));
    for (const k of ['md', 'csv', 'json', 'html', 'svg']) expect(kinds, `no .${k} file was written`).toContain(k);
    for (const f of files) {
      const text = readFileSync(f, 'utf8');
      for (const s of PLANTED) expect(text.includes(s), `${s} in ${f}`).toBe(false);
    }
    // What was there is marked, so a reader knows a value was removed.
    expect(readFileSync(join(root, 'runs', 'cold_warm.md'), 'utf8')).toContain('--api-key ***');
    expect(readFileSync(join(root, 'runs', 'kv_cache_scaling.md'), 'utf8')).toContain('--api-key=***');
  });

  test('no planted secret in progress output or stdout (--json included)', () => {
    expect(printed).toContain('restarting vLLM:');
    for (const s of PLANTED) expect(printed.includes(s), s).toBe(false);
  });

  test('an error message quoting the command line is redacted too', async () => {
    const failing = `node -e "console.error(process.argv.join(' '));process.exit(3)" -- --api-key ${CMD_KEY} HF_TOKEN=${HF}`;
    const r = await cli(['bench', 'cold-warm', '--target', emu.url, '--restart-cmd', failing, '--out', join(root, 'failed')]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/--restart-cmd exited 3: .*--api-key \*\*\* HF_TOKEN=\*\*\*/);
    for (const s of PLANTED) expect(r.err.includes(s), s).toBe(false);
  });
});

describe('the redactor', () => {
  const r = new Redactor({ VLLM_API_KEY: 'sk-abcdef', OPENAI_API_KEY: 'sk-other-1', PATH: '/usr/bin', SHORT_TOKEN: 'x' });
  test.each([
    ['vllm serve m --api-key sk-zzz --port 8000', 'vllm serve m --api-key *** --port 8000'],
    ['--api-key="quoted value" next', '--api-key=*** next'],
    ['Authorization: Bearer abc.def', 'Authorization: ***'],
    ['{"Authorization":"Bearer abc"}', '{"Authorization":"***"}'],
    ['env HF_TOKEN=hf_x AWS_SECRET=y cmd', 'env HF_TOKEN=*** AWS_SECRET=*** cmd'],
    ['https://me:pw@host/x', 'https://***@host/x'],
    ['key sk-abcdef and sk-other-1 seen', 'key *** and *** seen'],
  ])('%s', (input, want) => expect(r.text(input)).toBe(want));
  test('ordinary text is left alone: --api-key-env, --max-num-batched-tokens, max_tokens, PATH', () => {
    const text = 'bench --api-key-env VLLM_API_KEY --max-num-batched-tokens 8192 max_tokens 64 /usr/bin x; 8 concurrent 4096-token sequences; a-token b';
    expect(r.text(text)).toBe(text);
  });
});
