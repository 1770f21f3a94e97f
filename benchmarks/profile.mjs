#!/usr/bin/env node
/**
 * CPU profiles (node --cpu-prof) of vllm-probe's client in the scenarios whose targets were
 * missed, summarised as self time per function and inclusive time per package, idle excluded.
 *
 *   node benchmarks/profile.mjs probe   # TTFT-probe requests, one at a time, 50 ms emulator
 *   node benchmarks/profile.mjs load    # runLoad, zero-delay emulator, concurrency 64
 *   node benchmarks/profile.mjs held    # runLoad, 2,000 streams at 10 events/s each
 *   [--append]                          # also append the summary to docs/benchmarks.md
 *
 * The profiled client runs in its own process (pinned to CPU 0 where taskset exists), the
 * emulator in another (CPU 1). The raw .cpuprofile stays in a temp dir (path printed) for
 * Chrome DevTools / speedscope.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { appendSection, BENCH_DIR, fmt, hasTaskset, setInvocation, startEmulator, table } from './lib.mjs';

const mode = process.argv[2];

if (mode === 'probe-child') {
  // The child: sequential probe requests exactly like the TTFT probe (fresh connection each).
  const { streamCompletion } = await import('../dist/synthetic/stream.js');
  const { createTargetClient } = await import('../dist/target.js');
  const { parseConfig } = await import('../dist/config.js');
  const url = process.argv[3];
  const n = Number(process.argv[4]);
  const config = parseConfig({ target: { url } });
  const cfg = config.probes.ttft;
  const body = { model: 'bench-model', prompt: cfg.prompt, stream: true, stream_options: { include_usage: true }, temperature: 0, max_tokens: cfg.max_tokens, ignore_eos: true, user: 'vllm-probe' };
  for (let i = 0; i < n; i++) {
    const client = createTargetClient(config, undefined);
    const timeoutSignal = AbortSignal.timeout(10_000);
    await streamCompletion({ baseUrl: url, path: '/v1/completions', body, dispatcher: client.dispatcher, signal: timeoutSignal, timeoutSignal, maxResponseBytes: 1 << 24 });
    await client.close();
    await new Promise((r) => setTimeout(r, 5));
  }
  process.exit(0);
}

const SCENARIOS = {
  probe: {
    what: 'TTFT-probe requests one at a time (fresh connection each, like a probe every 15 s) against the emulator with a 50 ms first token',
    emulator: { model: 'bench-model', baseTtftMs: 50, prefillMsPerToken: 0, coldStartMs: 0, itlMs: 1, batchSlowdown: 0 },
    args: (url) => [join(BENCH_DIR, 'profile.mjs'), 'probe-child', url, '400'],
  },
  load: {
    what: 'runLoad (bench mode) at concurrency 64 against the zero-delay emulator, 128 events per request, 10 s',
    emulator: { model: 'bench-model', baseTtftMs: 0, prefillMsPerToken: 0, coldStartMs: 0, itlMs: 0, batchSlowdown: 0, maxNumSeqs: 1_000_000 },
    args: (url) => [join(BENCH_DIR, 'ceiling-client.mjs'), JSON.stringify({ baseUrl: url, model: 'bench-model', prompt: 'Write one sentence about the ocean.', concurrency: 64, durationMs: 10_000, warmupMs: 1000, maxTokens: 128 })],
  },
  held: {
    what: 'runLoad holding 2,000 streams at 10 events/s each (emulator itlMs 100, 50–150 tokens), 15 s',
    emulator: { model: 'bench-model', baseTtftMs: 0, prefillMsPerToken: 0, coldStartMs: 0, itlMs: 100, batchSlowdown: 0, maxNumSeqs: 1_000_000 },
    args: (url) => [join(BENCH_DIR, 'ceiling-client.mjs'), JSON.stringify({ baseUrl: url, model: 'bench-model', prompt: 'Write one sentence about the ocean.', concurrency: 2000, durationMs: 15_000, warmupMs: 6000, maxTokensRange: [50, 150] })],
  },
};

/** Self time per function and inclusive time per package from a .cpuprofile, idle excluded. */
export function summariseProfile(file, top = 20) {
  const prof = JSON.parse(readFileSync(file, 'utf8'));
  const byId = new Map(prof.nodes.map((n) => [n.id, n]));
  const parent = new Map();
  for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const time = new Map();
  prof.samples.forEach((id, i) => time.set(id, (time.get(id) ?? 0) + (prof.timeDeltas[i] ?? 0)));
  const where = (cf) => {
    const u = cf.url;
    if (u.includes('/node_modules/undici/')) return 'undici';
    if (u.includes('/node_modules/eventsource-parser/')) return 'eventsource-parser';
    if (u.includes('/dist/')) return `vllm-probe ${u.slice(u.indexOf('/dist/') + 1)}`;
    if (u.includes('/benchmarks/')) return 'benchmark harness';
    if (u.startsWith('node:')) return `node ${u.split('/').slice(0, 3).join('/').replace('node:internal/', '')}`;
    if (u.startsWith('wasm://')) return 'undici llhttp (wasm)';
    return cf.functionName.startsWith('(') ? cf.functionName : 'V8 builtins / native';
  };
  const self = new Map();
  const pkg = new Map();
  let busy = 0;
  let idle = 0;
  for (const [id, t] of time) {
    const n = byId.get(id);
    if (n.callFrame.functionName === '(idle)') {
      idle += t;
      continue;
    }
    busy += t;
    const cf = n.callFrame;
    const key = `${cf.functionName || '(anonymous)'} — ${where(cf)}:${cf.lineNumber + 1}`;
    self.set(key, (self.get(key) ?? 0) + t);
    const seen = new Set();
    for (let cur = id; cur !== undefined; cur = parent.get(cur)) {
      const g = where(byId.get(cur).callFrame).replace(/^vllm-probe .*/, 'vllm-probe (dist/)').replace(/^node .*/, (m) => m.split(' ')[0] + ' ' + m.split(' ')[1].split('/')[0]);
      if (g === '(root)' || seen.has(g)) continue;
      seen.add(g);
      pkg.set(g, (pkg.get(g) ?? 0) + t);
    }
  }
  const pctOf = (t) => `${((100 * t) / busy).toFixed(1)} %`;
  return {
    busyMs: busy / 1000,
    idleMs: idle / 1000,
    self: [...self].sort((a, b) => b[1] - a[1]).slice(0, top).map(([k, t]) => [k, pctOf(t)]),
    packages: [...pkg].sort((a, b) => b[1] - a[1]).slice(0, 12).map(([k, t]) => [k, pctOf(t)]),
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const sc = SCENARIOS[mode];
  if (!sc) {
    process.stderr.write(`usage: node benchmarks/profile.mjs ${Object.keys(SCENARIOS).join('|')} [--append]\n`);
    process.exit(2);
  }
  setInvocation(process.argv.slice(2), 'node benchmarks/profile.mjs');
  const dir = mkdtempSync(join(tmpdir(), `vllm-probe-prof-${mode}-`));
  const emu = await startEmulator(sc.emulator, { cpu: 1 });
  const pinned = hasTaskset();
  const nodeArgs = ['--cpu-prof', '--cpu-prof-dir', dir, '--cpu-prof-interval', '100', ...sc.args(emu.url)];
  const t0 = performance.now();
  const code = await new Promise((resolve) => {
    const p = spawn(pinned ? 'taskset' : process.execPath, pinned ? ['-c', '0', process.execPath, ...nodeArgs] : nodeArgs, { stdio: ['ignore', 'pipe', 'inherit'] });
    p.stdout.on('data', (d) => process.stderr.write(d));
    p.on('exit', resolve);
  });
  await emu.stop();
  if (code !== 0) throw new Error(`profiled client exited ${code}`);
  const file = join(dir, readdirSync(dir).find((f) => f.endsWith('.cpuprofile')));
  const s = summariseProfile(file);
  const md = [
    `Scenario: ${sc.what}. Profile: \`node --cpu-prof --cpu-prof-interval 100\` of the client process (${fmt((performance.now() - t0) / 1000, 0)} s wall, ${fmt(s.busyMs, 0)} ms busy, ${fmt(s.idleMs, 0)} ms idle). Shares are of busy (non-idle) samples.`,
    '',
    table(['top self time', 'share'], s.self),
    '',
    table(['inclusive, by package', 'share'], s.packages),
  ].join('\n');
  process.stdout.write(`${md}\n\nraw profile: ${file}\n`);
  if (process.argv.includes('--append')) appendSection(`Profile: ${mode}`, md);
}
