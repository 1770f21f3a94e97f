#!/usr/bin/env node
/**
 * CPU profiles (node --cpu-prof) of vllm-probe's client in the scenarios whose targets were
 * missed, summarised as self time per function and inclusive time per package, idle excluded.
 *
 *   node benchmarks/profile.mjs probe   # TTFT-probe requests, one at a time, 50 ms emulator
 *   node benchmarks/profile.mjs load    # runLoad, zero-delay emulator, concurrency 64
 *   node benchmarks/profile.mjs held    # runLoad, 2,000 streams at 10 events/s each
 *   node benchmarks/profile.mjs daemon  # `serve` at the default config for 3 min (emulator + fake nvidia-smi)
 *   [--append]                          # also append the summary to docs/benchmarks.md
 *
 * The profiled client runs in its own process (pinned to CPU 0 where taskset exists), the
 * server (benchmarks/sse-server) in another (CPU 1). The raw .cpuprofile stays in a temp dir (path printed) for
 * Chrome DevTools / speedscope.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { appendSection, BENCH_DIR, fmt, hasTaskset, setInvocation, startSseServer, table } from './lib.mjs';

const mode = process.argv[2];

if (mode === 'probe-child') {
  // The child: sequential probe requests exactly like the TTFT probe: one VllmClient for the
  // run, the server closes idle connections after 20 ms, so each request connects anew.
  const { VllmClient } = await import('../dist/vllm/client.js');
  const { streamingBody } = await import('../dist/vllm/stream.js');
  const { parseConfig } = await import('../dist/config.js');
  const url = process.argv[3];
  const n = Number(process.argv[4]);
  const cfg = parseConfig({ target: { url } }).probes.ttft;
  const body = streamingBody('bench-model', { prompt: cfg.prompt, max_tokens: cfg.max_tokens, ignore_eos: true, user: 'vllm-probe' });
  const client = new VllmClient({ baseUrl: url, maxResponseBytes: 16 * 1024 * 1024 });
  for (let i = 0; i < n; i++) {
    await client.stream({ path: '/v1/completions', body, timeoutMs: 10_000 });
    await new Promise((r) => setTimeout(r, 30));
  }
  await client.close();
  process.exit(0);
}

const SCENARIOS = {
  probe: {
    what: 'TTFT-probe requests one at a time (one VllmClient, a fresh connection each: the server closes idle ones after 20 ms) against benchmarks/sse-server with the first token 50 ms after the headers',
    server: { ttftMs: 50, itlMs: 1, idleMs: 20 },
    args: (url) => [join(BENCH_DIR, 'profile.mjs'), 'probe-child', url, '400'],
  },
  load: {
    what: 'runLoad (bench mode, countOnly) at concurrency 64 against benchmarks/sse-server (zero delay), 128 events per request, 10 s',
    server: {},
    args: (url) => [join(BENCH_DIR, 'ceiling-client.mjs'), JSON.stringify({ baseUrl: url, model: 'bench-model', prompt: 'Write one sentence about the ocean.', concurrency: 64, durationMs: 10_000, warmupMs: 1000, maxTokens: 128 })],
  },
  held: {
    what: 'runLoad holding 2,000 streams at 10 events/s each (benchmarks/sse-server -itl-ms 100, 50–150 tokens), 15 s',
    server: { itlMs: 100 },
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
    const nm = /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(u);
    if (nm) return nm[1];
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

/** The daemon at the default config, profiled for `seconds` (then SIGTERM: --cpu-prof writes at exit). */
async function profileDaemon(dir, seconds) {
  const { makeFakeNvidiaSmi } = await import('./footprint.mjs');
  const { freePort, startEmulator, REPO, sleep } = await import('./lib.mjs');
  const { writeFileSync, mkdirSync } = await import('node:fs');
  const work = join(dir, 'work');
  mkdirSync(work);
  const emu = await startEmulator({}, { cpu: 1 });
  const fake = makeFakeNvidiaSmi(work, { vllmPid: emu.pid });
  const port = await freePort();
  const cfg = join(work, 'config.yaml');
  writeFileSync(cfg, [`listen: 127.0.0.1:${port}`, 'target:', `  url: ${emu.url}`, 'gpu:', `  nvidia_smi_path: ${fake.path}`, ''].join('\n'));
  const p = spawn(process.execPath, ['--cpu-prof', '--cpu-prof-dir', dir, '--cpu-prof-interval', '100', join(REPO, 'dist', 'main.js'), 'serve', '--config', cfg], { stdio: ['ignore', 'ignore', 'inherit'] });
  await sleep(seconds * 1000);
  const exited = new Promise((r) => p.on('exit', r));
  p.kill('SIGTERM');
  await exited;
  await emu.stop();
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const sc = mode === 'daemon' ? { what: '`vllm-probe serve` at the default config (TTFT, prefix and models probes, vLLM scrape, GPU via a fake nvidia-smi, host) against the emulator, 180 s including start-up' } : SCENARIOS[mode];
  if (!sc) {
    process.stderr.write(`usage: node benchmarks/profile.mjs ${[...Object.keys(SCENARIOS), 'daemon'].join('|')} [--append]\n`);
    process.exit(2);
  }
  setInvocation(process.argv.slice(2), 'node benchmarks/profile.mjs');
  const dir = mkdtempSync(join(tmpdir(), `vllm-probe-prof-${mode}-`));
  const t00 = performance.now();
  if (mode === 'daemon') await profileDaemon(dir, 180);
  const emu = mode === 'daemon' ? undefined : await startSseServer(sc.server, { cpu: 1 });
  const pinned = hasTaskset();
  const nodeArgs = emu ? ['--cpu-prof', '--cpu-prof-dir', dir, '--cpu-prof-interval', '100', ...sc.args(emu.url)] : [];
  const t0 = mode === 'daemon' ? t00 : performance.now();
  const code = mode === 'daemon' ? 0 : await new Promise((resolve) => {
    const p = spawn(pinned ? 'taskset' : process.execPath, pinned ? ['-c', '0', process.execPath, ...nodeArgs] : nodeArgs, { stdio: ['ignore', 'pipe', 'inherit'] });
    p.stdout.on('data', (d) => process.stderr.write(d));
    p.on('exit', resolve);
  });
  await emu?.stop();
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
