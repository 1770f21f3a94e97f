/**
 * The load client's own event-loop delay (issue 28): every sweep level records it, and a
 * figure it could have moved is marked in the sweep's markdown, in `bench report` and in the
 * report's table.
 */
import { mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, test } from 'vitest';
import { clientDelayRecord } from '../../src/bench/analysis.js';
import { runCli } from '../../src/cli.js';
import { sseCompletion, startFakeVllm } from '../helpers/fake-vllm.js';

const cli = async (args: string[]) => {
  let out = '';
  let err = '';
  const code = await runCli(args, { stdout: (t) => (out += t), stderr: (t) => (err += t), signal: new AbortController().signal, env: {} });
  return { code, out, err };
};

/**
 * A fake vLLM in the client's own process: blocking in its handler stalls the client's event
 * loop while other streams wait for their first token. Request number `nth` blocks for 80 ms.
 */
function stallingVllm(nth: number) {
  const stream = sseCompletion({ tokens: 2 });
  let completions = 0;
  return startFakeVllm({
    routes: {
      '/v1/completions': (req, res) => {
        if (++completions === nth) {
          const until = performance.now() + 80;
          while (performance.now() < until);
        }
        return stream(req, res);
      },
    },
  });
}

test('a level whose client stalled records the delay, and the TTFT figures it could have moved are marked in the sweep and the report', async () => {
  const vllm = await stallingVllm(20);
  const out = join(mkdtempSync(join(tmpdir(), 'client-delay-')), 'sweep');
  try {
    const r = await cli(['bench', 'sweep', '--target', vllm.url, '--concurrency', '4', '--requests', '40', '--max-tokens', '2', '--out', out]);
    expect(r.code, r.err).toBe(0);
    const summary = JSON.parse(readFileSync(join(out, 'sweep.summary.json'), 'utf8'));
    const delay = summary.levels[0].clientDelay;
    expect(delay.maxMs).toBeGreaterThanOrEqual(70);
    expect(delay.samples).toBeGreaterThan(0);
    expect(delay.moved).toEqual(expect.arrayContaining(['p95', 'p99']));
    const md = readFileSync(join(out, 'concurrency_sweep.md'), 'utf8');
    expect(md).toMatch(/Client event-loop delay p99 \/ max \(ms\): c=4 [\d.]+ \/ [\d.]+\./);
    expect(md).toMatch(/† concurrency 4: the load client's own event loop was late by up to [\d.]+ ms .*TTFT [a-z0-9, ]*p95, p99 may be too high/);

    const rep = await cli(['bench', 'report', '--in', out]);
    expect(rep.code).toBe(0);
    const report = readFileSync(join(out, 'report.md'), 'utf8');
    expect(report).toMatch(/### Observations\n\n(- .*\n)*- † concurrency 4: the load client's own event loop was late/);
    const html = readFileSync(join(out, 'report.html'), 'utf8');
    expect(html).toMatch(/client delay p99 \/ max ms/);
    expect(html).toMatch(/\d\.\d{4} †/);
    expect(readdirSync(out)).toContain('report.html');
  } finally {
    await vllm.close();
  }
});

test('which TTFT figures a client delay could have moved: 5 % of the figure and at least 1 ms; the median against the ELD p99, the tail against the longest stall', () => {
  const ttft = { mean: 0.2, p50: 0.2, p95: 0.4, p99: 0.6 };
  expect(clientDelayRecord({ p50Ms: 0.1, p99Ms: 2, maxMs: 15, samples: 1000 }, ttft).moved).toEqual([]);
  expect(clientDelayRecord({ p50Ms: 0.1, p99Ms: 2, maxMs: 25, samples: 1000 }, ttft).moved).toEqual(['p95']);
  expect(clientDelayRecord({ p50Ms: 0.1, p99Ms: 12, maxMs: 40, samples: 1000 }, ttft).moved).toEqual(['mean', 'p50', 'p95', 'p99']);
  // A 1 ms TTFT is not "moved" by the timer's own sub-millisecond jitter.
  expect(clientDelayRecord({ p50Ms: 0, p99Ms: 0.5, maxMs: 0.9, samples: 10 }, { p50: 0.001, p95: 0.001 }).moved).toEqual([]);
  expect(clientDelayRecord({ p50Ms: 0, p99Ms: 0, maxMs: 0, samples: 0 }, {}).moved).toEqual([]);
});

test('every experiment records its client delay: a prefix run whose client stalled says so in its summary, on stderr and in the report', async () => {
  const vllm = await stallingVllm(6);
  const out = join(mkdtempSync(join(tmpdir(), 'client-delay-')), 'prefix');
  try {
    const r = await cli(['bench', 'prefix', '--target', vllm.url, '--regimes', '512', '--concurrency', '2', '--requests', '6', '--max-tokens', '2', '--out', out]);
    expect(r.code, r.err).toBe(0);
    const summary = JSON.parse(readFileSync(join(out, 'prefix.summary.json'), 'utf8'));
    expect(summary.client_delay.maxMs).toBeGreaterThanOrEqual(70);
    expect(summary.client_delay.moved).toEqual(expect.arrayContaining(['p99']));
    expect(r.err).toMatch(/bench prefix: † this run: the load client's own event loop was late by up to [\d.]+ ms/);
    const rep = await cli(['bench', 'report', '--in', out]);
    expect(rep.code).toBe(0);
    expect(readFileSync(join(out, 'report.md'), 'utf8')).toMatch(/- † bench prefix: the load client's own event loop was late/);
  } finally {
    await vllm.close();
  }
});
