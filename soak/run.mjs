#!/usr/bin/env node
/**
 * Accelerated soak (`npm run soak`): the daemon's runtime with 1 s schedules against the
 * emulator (in a child process, so its memory is not ours), plus back-to-back extra TTFT probe
 * cycles, a prefix cycle and a collection every 50 probes, and a fault switch every 250 cycles
 * (5xx, timeouts, stalls, garbled SSE and /metrics, wedge, restarts, a hung nvidia-smi).
 * Samples RSS, heap, open file descriptors and event-loop delay; asserts growth limits after a
 * warm-up; writes the figures into docs/reliability.md. Exit 1 when a limit is exceeded.
 *
 *   npm run soak                 10,000 cycles (default)
 *   npm run soak -- --cycles 2000 --no-write
 */
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync, mkdtempSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { startRuntime } from '../dist/app.js';
import { parseConfig } from '../dist/config.js';

const { values } = parseArgs({ options: { cycles: { type: 'string', default: '10000' }, 'no-write': { type: 'boolean' } } });
const CYCLES = Number(values.cycles);
const LIMITS = { rssGrowthMiB: 25, heapGrowthMiB: 15, fdGrowth: 10, eventLoopP99Ms: 100 };

// The emulator in its own process, with fault control over HTTP.
const emulatorCode = `
import { Emulator } from ${JSON.stringify(new URL('../dist/emulator/server.js', import.meta.url).href)};
const e = new Emulator({ model: 'soak-model', coldStartMs: 5, itlMs: 0.2, baseTtftMs: 1, prefillMsPerToken: 0.002 });
const u = await e.listen(0, '127.0.0.1');
process.stdout.write(u.origin + '\\n');
`;
const emu = spawn(process.execPath, ['--input-type=module', '-e', emulatorCode], { stdio: ['ignore', 'pipe', 'inherit'] });
const emuUrl = await new Promise((resolve) => emu.stdout.once('data', (d) => resolve(d.toString().trim())));
const fault = (mode) => fetch(`${emuUrl}/_emulator/fault`, { method: 'POST', body: JSON.stringify({ mode, delay_ms: 400 }) });

// The tests' fake nvidia-smi (test/helpers/fake-nvidia-smi.cjs) fed with the real H100 capture;
// its scenario file is rewritten to make it hang.
const dir = mkdtempSync(join(os.tmpdir(), 'soak-'));
const fixtures = new URL('../test/fixtures/nvidia-smi/h100-580/', import.meta.url);
const sections = new Map();
let section = '';
for (const line of readFileSync(new URL('query-load.txt', fixtures), 'utf8').split('\n')) {
  if (line.startsWith('## ')) sections.set((section = line.slice(3).trim()), []);
  else if (line.trim()) sections.get(section)?.push(line);
}
const fields = sections.get('csv')[0].split(',').map((h) => h.trim().replace(/\s*\[.*\]$/, ''));
const gpus = (sections.get('csv,noheader,nounits') ?? []).map((row) => Object.fromEntries(row.split(',').map((c, i) => [fields[i], c.trim()])));
const scenario = { helpText: readFileSync(new URL('help-query-gpu.txt', fixtures), 'utf8'), gpus, apps: [] };
const smi = join(dir, 'nvidia-smi');
writeFileSync(smi, `#!${process.execPath}\n${readFileSync(new URL('../test/helpers/fake-nvidia-smi.cjs', import.meta.url), 'utf8')}`, { mode: 0o755 });
const smiHangs = (hang) => writeFileSync(join(dir, 'scenario.json'), JSON.stringify({ ...scenario, commands: hang ? { 'query-gpu': { hang: true } } : {} }));
smiHangs(false);

const config = parseConfig({
  listen: '127.0.0.1:0',
  log_level: 'silent',
  target: { url: emuUrl },
  probes: { ttft: { interval: '1s', timeout: '300ms' }, prefix: { interval: '1s', timeout: '800ms', prefix_tokens: [256] } },
  scrape: { interval: '1s', timeout: '300ms' },
  gpu: { enabled: true, nvidia_smi_path: smi, interval: '1s', timeout: '300ms' },
  status: { window: '1m' },
});
const shutdown = new AbortController();
const runtime = startRuntime(config, pino({ level: 'silent' }), shutdown.signal, {});

const eld = monitorEventLoopDelay({ resolution: 10 });
eld.enable();
const samples = [];
const fds = () => readdirSync('/proc/self/fd').length;
const sample = (cycle) => {
  const m = process.memoryUsage();
  samples.push({ cycle, t: performance.now() / 1000, rssMiB: m.rss / 2 ** 20, heapMiB: m.heapUsed / 2 ** 20, fds: fds(), eldP99Ms: eld.percentile(99) / 1e6, eldMaxMs: eld.max / 1e6 });
  eld.reset();
};

const FAULTS = ['none', 'http_500', 'none', 'never_headers', 'none', 'stall_mid_stream', 'none', 'garbled_sse', 'none', 'metrics_garbled', 'none', 'die_mid_stream', 'none', 'wedge', 'none', 'restart', 'none', 'gpu_hang', 'none', 'no_done'];
const started = performance.now();
let faultIndex = 0;
for (let cycle = 1; cycle <= CYCLES; cycle++) {
  if (cycle % 250 === 0) {
    const f = FAULTS[faultIndex++ % FAULTS.length];
    smiHangs(f === 'gpu_hang');
    if (f === 'restart') await fetch(`${emuUrl}/_emulator/restart`, { method: 'POST' });
    else if (f !== 'gpu_hang') await fault(f);
  }
  await runtime.runProbe('ttft');
  if (cycle % 50 === 0) await Promise.all([runtime.runProbe('prefix'), runtime.collectNow()]);
  if (cycle % 500 === 0 || cycle === 1) {
    if (global.gc) global.gc();
    sample(cycle);
    process.stderr.write(`\rcycle ${cycle}/${CYCLES}  rss ${samples.at(-1).rssMiB.toFixed(1)} MiB  heap ${samples.at(-1).heapMiB.toFixed(1)} MiB  fds ${samples.at(-1).fds}`);
  }
}
process.stderr.write('\n');
const seconds = (performance.now() - started) / 1000;
const text = await runtime.registry.metrics();
const outcomes = [...text.matchAll(/^vllm_probe_requests_total\{probe="ttft",model="[^"]*",outcome="([a-z_0-9]+)"\} (\d+)/gm)].map((m) => [m[1], Number(m[2])]).filter(([, n]) => n > 0);
shutdown.abort();
await runtime.stop();
emu.kill();

// Growth after warm-up: from the sample at 20 % of the run to the last one.
const warm = samples.find((s) => s.cycle >= CYCLES * 0.2) ?? samples[0];
const last = samples.at(-1);
const growth = { rssMiB: last.rssMiB - warm.rssMiB, heapMiB: last.heapMiB - warm.heapMiB, fds: last.fds - warm.fds };
const eldP99 = Math.max(...samples.slice(1).map((s) => s.eldP99Ms));
const checks = [
  ['RSS growth after warm-up', `${growth.rssMiB.toFixed(1)} MiB`, `≤ ${LIMITS.rssGrowthMiB} MiB`, growth.rssMiB <= LIMITS.rssGrowthMiB],
  ['heap growth after warm-up', `${growth.heapMiB.toFixed(1)} MiB`, `≤ ${LIMITS.heapGrowthMiB} MiB`, growth.heapMiB <= LIMITS.heapGrowthMiB],
  ['open fds growth after warm-up', String(growth.fds), `≤ ${LIMITS.fdGrowth}`, growth.fds <= LIMITS.fdGrowth],
  ['worst event-loop delay p99 per window', `${eldP99.toFixed(1)} ms`, `≤ ${LIMITS.eventLoopP99Ms} ms`, eldP99 <= LIMITS.eventLoopP99Ms],
];
const table = (rows, head) => [`| ${head.join(' | ')} |`, `| ${head.map(() => '---').join(' | ')} |`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');
const report = [
  `### Soak run ${new Date().toISOString()}`,
  '',
  `Command: \`npm run soak -- --cycles ${CYCLES}\` on ${os.cpus().length} × ${os.cpus()[0]?.model}, Node ${process.version}. ${CYCLES} TTFT probe cycles (plus ${Math.floor(CYCLES / 50)} prefix cycles and collections, and the 1 s schedules) in ${seconds.toFixed(0)} s; a fault switch every 250 cycles: ${[...new Set(FAULTS)].join(', ')}.`,
  '',
  `Outcomes counted: ${outcomes.map(([o, n]) => `${o} ${n}`).join(', ')}.`,
  '',
  table(checks.map(([a, b, c, ok]) => [a, b, c, ok ? 'ok' : '**exceeded**']), ['measure', 'value', 'limit', 'result']),
  '',
  table(samples.map((s) => [s.cycle, s.rssMiB.toFixed(1), s.heapMiB.toFixed(1), s.fds, s.eldP99Ms.toFixed(1), s.eldMaxMs.toFixed(1)]), ['cycle', 'RSS MiB', 'heap MiB', 'fds', 'loop delay p99 ms', 'max ms']),
  '',
].join('\n');
process.stdout.write(`${report}\n`);
if (!values['no-write']) {
  const doc = new URL('../docs/reliability.md', import.meta.url);
  const current = readFileSync(doc, 'utf8');
  const marker = '## Soak results';
  const head = current.includes(marker) ? current.slice(0, current.indexOf(marker)) : `${current.trimEnd()}\n\n`;
  writeFileSync(doc, `${head}${marker}\n\nThe latest run of \`npm run soak\` (it replaces this section).\n\n${report}`);
}
const failed = checks.filter((c) => !c[3]);
if (failed.length) {
  process.stderr.write(`soak: limits exceeded: ${failed.map((c) => c[0]).join(', ')}\n`);
  process.exit(1);
}
process.exit(0);
