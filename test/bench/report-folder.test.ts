/**
 * `bench report` over odd folders (issue 23): it reports every readable run, names every entry
 * it skipped and why, and never follows a link out of the folder or to a place twice.
 */
import { mkdirSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, test } from 'vitest';
import { runCli } from '../../src/cli.js';

const T = 'http://10.0.0.5:8000';
const kv = (at: string) => ({ experiment: 'kv', target: T, collected_at: at, capacity_tokens: 65536, block_size: 16, max_model_len: 4096, bytes_per_token: 131072, table: [{ context_tokens: 4096, max_concurrent_sequences: 16, kv_mib_per_sequence: 512 }] });

async function report(dir: string) {
  let out = '';
  let err = '';
  const code = await runCli(['bench', 'report', '--in', dir], { stdout: (s) => (out += s), stderr: (s) => (err += s), signal: new AbortController().signal, env: {} });
  return { code, out, err, md: code === 0 ? readFileSync(join(dir, 'report.md'), 'utf8') : '' };
}

test('dangling and looping links, a link out of the folder, a link to a folder already seen, half-written files and another version\'s shape: every good run reported, every odd entry named', async () => {
  const root = mkdtempSync(join(tmpdir(), 'report-odd-'));
  const dir = join(root, 'runs');
  const outside = join(root, 'outside');
  mkdirSync(join(dir, 'a'), { recursive: true });
  mkdirSync(join(dir, 'b'), { recursive: true });
  mkdirSync(outside);
  writeFileSync(join(dir, 'a', 'kv.summary.json'), JSON.stringify(kv('2026-01-01T00:00:00Z')));
  writeFileSync(join(dir, 'b', 'kv.summary.json'), JSON.stringify(kv('2026-01-02T00:00:00Z')));
  writeFileSync(join(dir, 'b', 'environment.json'), '{"target": "http://10.0.0.5:8000", "vllm_ver'); // half-written
  writeFileSync(join(outside, 'kv.summary.json'), JSON.stringify(kv('2026-01-03T00:00:00Z')));
  symlinkSync(join(dir, 'nowhere'), join(dir, 'dangling'));
  symlinkSync(join(dir, 'loop'), join(dir, 'loop'));
  symlinkSync(outside, join(dir, 'out'));
  symlinkSync(join(dir, 'a'), join(dir, 'a-again'));
  writeFileSync(join(dir, 'sweep.summary.json'), JSON.stringify({ experiment: 'sweep', target: T, collected_at: '2026-01-04T00:00:00Z', levels: { '1': {} }, knee: null }));
  writeFileSync(join(dir, 'prefix.summary.json'), '{"experiment": "prefix", "rows": [');
  const r = await report(dir);
  expect(r.err).not.toMatch(/\n\s+at /);
  expect(r.code).toBe(0);
  expect(r.md).toMatch(/2 bench runs under/);
  expect(r.md).toContain('a/kv.summary.json');
  expect(r.md).toContain('b/kv.summary.json');
  const skipped = r.md.slice(r.md.indexOf('## Skipped'));
  expect(r.md.slice(0, r.md.indexOf('## Skipped'))).not.toContain('outside');
  expect(skipped).toMatch(/`dangling`: a link to nothing \(ENOENT\)/);
  expect(skipped).toMatch(/`loop`: .*ELOOP/);
  expect(skipped).toMatch(/`out`: a link out of the folder/);
  expect(skipped).toMatch(/`a-again`: a link to a folder already read \(a\)/);
  expect(skipped).toMatch(/`prefix.summary.json`: not valid JSON \(half-written\?\)/);
  expect(skipped).toMatch(/`sweep.summary.json`: .*sweep.levels is not a list/);
  expect(skipped).toMatch(/`b\/environment.json`: not valid JSON/);
  for (const name of ['dangling', 'loop', 'out', 'a-again', 'prefix.summary.json', 'sweep.summary.json']) expect(r.err).toContain(name);
});

test('missing numbers read n/a, never "Cannot read properties of null"', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'report-null-'));
  writeFileSync(join(dir, 'kv.summary.json'), JSON.stringify({ ...kv('2026-01-01T00:00:00Z'), bytes_per_token: null, max_model_len: null }));
  writeFileSync(join(dir, 'cold-warm.summary.json'), JSON.stringify({ experiment: 'cold-warm', target: T, collected_at: '2026-01-02T00:00:00Z', ttft: { cold: null, median: 0.05, coldWarmFactor: null, spreadPct: null }, e2e: { median: null }, runs: [] }));
  const r = await report(dir);
  expect(r.err).toBe('');
  expect(r.code).toBe(0);
  expect(r.md).toMatch(/cold TTFT n\/a vs warm median 50 ms \(n\/a×\), warm spread n\/a %/);
});
