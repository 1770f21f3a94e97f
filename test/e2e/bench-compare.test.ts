/**
 * `bench compare` on two real vLLM configurations: the same CPU vLLM with prefix caching on (A)
 * and off (B), one after the other on one port (the machine is small: never both at once). The
 * prefix experiment's cache cells must come out "B worse" with an interval that excludes 0;
 * the environments must name the flag that differs; no API key in any file.
 */
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { Comparison } from '../../src/bench/compare.js';
import { runCli } from '../../src/cli.js';
import { realVllm, realVllmAvailable, type RealVllm } from './real-vllm.js';

async function cli(args: string[], env: NodeJS.ProcessEnv = {}) {
  let out = '';
  let err = '';
  const code = await runCli(args, { stdout: (t) => (out += t), stderr: (t) => (err += t), signal: new AbortController().signal, env });
  return { code, out, err };
}

describe('bench compare: prefix caching on (A) against off (B), real CPU vLLM', () => {
  let vllm: RealVllm;
  const root = mkdtempSync(join(tmpdir(), 'bench-compare-e2e-'));
  beforeAll(() => {
    if (!realVllmAvailable()) throw new Error('real vLLM venv missing: run scripts/real-vllm/setup (npm run test:e2e does)');
  });
  afterAll(async () => {
    await vllm?.stop();
  });

  test('the cached prefix is slower without caching, with an interval that excludes 0', async () => {
    vllm = await realVllm();
    const env = { VLLM_API_KEY: vllm.apiKey };
    for (const [side, extra] of [['a', []], ['b', ['--no-prefix-caching']]] as const) {
      await vllm.start([...extra]);
      try {
        const out = join(root, side);
        const prefix = await cli(['bench', 'prefix', '--target', vllm.url, '--regimes', '1024', '--concurrency', '1', '--requests', '8', '--max-tokens', '4', '--out', out], env);
        expect(prefix.code, prefix.err).toBe(0);
        const sweep = await cli(['bench', 'sweep', '--target', vllm.url, '--concurrency', '1,2', '--requests', '8', '--max-tokens', '8', '--input-tokens', '64', '--out', out], env);
        expect(sweep.code, sweep.err).toBe(0);
      } finally {
        await vllm.stop();
      }
    }
    const cmp = await cli(['bench', 'compare', join(root, 'a'), join(root, 'b'), '--out', join(root, 'compare'), '--json'], env);
    expect(cmp.code, cmp.err).toBe(0);
    const c = JSON.parse(cmp.out) as Comparison;
    const cache = c.figures.find((f) => f.experiment === 'prefix' && f.cell === 'cache, P=1024, concurrency 1')!;
    expect(cache.verdict, JSON.stringify(cache)).toBe('worse');
    expect(cache.ci![0]).toBeGreaterThan(0);
    expect(c.environment.find((e) => e.field === 'prefix caching')).toEqual({ field: 'prefix caching', a: 'on', b: 'off', differs: true });
    // Same vLLM on both sides: the same metric families.
    expect(c.metricFamilies).toMatchObject({ onlyA: [], onlyB: [] });
    expect(readFileSync(join(root, 'compare', 'compare.md'), 'utf8')).toContain('| prefix | cache, P=1024, concurrency 1 | mean TTFT |');
    for (const dir of ['a', 'b', 'compare']) {
      for (const f of readdirSync(join(root, dir))) expect(readFileSync(join(root, dir, f), 'utf8').includes(vllm.apiKey), `${dir}/${f}`).toBe(false);
    }
    process.stderr.write(`bench compare e2e: ${root}\n${readFileSync(join(root, 'compare', 'compare.md'), 'utf8')}\n`);
  }, 900_000);
});
