/**
 * 3. Daemon footprint: `node dist/main.js serve --config FILE` as a child process at the
 * default config (TTFT probe every 15 s, prefix probe every 60 s with a 1024-token prefix,
 * vLLM scrape every 15 s, GPU + host collectors every 15 s) against the emulator (its own
 * process, default timings) and a fake nvidia-smi replaying the H100 capture in
 * test/fixtures/nvidia-smi/h100-580. Only target.url, listen and gpu.nvidia_smi_path differ
 * from the defaults.
 *
 * Samples /proc/PID/stat (utime+stime: the daemon's own CPU; cutime+cstime: the nvidia-smi
 * children it waited for, reported apart because the fake is a Node script whose start-up
 * costs far more than the real binary's) and /proc/PID/status (VmRSS, VmHWM) every 5 s; the V8
 * heap comes from benchmarks/heap-reporter.mjs over IPC every 10 s. The first 30 s after
 * /readyz (start-up, first probe and calibration) are excluded from the steady-state figures.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync, closeSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseExposition } from '../dist/vllm/exposition.js';
import { appendSection, BENCH_DIR, contention, cpuPct, fmt, freePort, max, median, min, pass, procSample, REPO, sleep, spawnTracked, spread, startEmulator, table } from './lib.mjs';

/** An hour: issue 28 asks that the daemon's RSS be shown level over one (BENCH_FOOTPRINT_MINUTES to change it). */
const DEFAULT_MINUTES = 60;

/**
 * The node binary that runs the daemons, the floor and the emulators: BENCH_NODE (e.g. the
 * container image's Node from scripts/install-node-lts, under .cache/), else the one running this.
 */
const NODE = process.env.BENCH_NODE || process.execPath;
const nodeVersion = () => execFileSync(NODE, ['--version'], { encoding: 'utf8' }).trim();

export const title = `3. Daemon footprint (default config, ${process.argv.includes('--quick') ? 1 : Number(process.env.BENCH_FOOTPRINT_MINUTES ?? DEFAULT_MINUTES)} min; variants and the bare-Node floor side by side)`;

/**
 * The daemon's /proc sample, with the CPU of its engine watch's pidfd helper (a perl child,
 * src/host/process-exits.ts) added to its own: the helper does the daemon's work. Its RSS is
 * kept apart (`helperRss`).
 */
function daemonSample(pid) {
  const own = procSample(pid);
  let helperCpuS = 0;
  let helperRss = 0;
  for (const child of childrenOf(pid)) {
    try {
      if (readFileSync(`/proc/${child}/comm`, 'utf8').trim() !== 'perl') continue;
      const s = procSample(child);
      helperCpuS += s.cpuS;
      helperRss += s.rss;
    } catch {
      // gone meanwhile
    }
  }
  return { ...own, cpuS: own.cpuS + helperCpuS, helperCpuS, helperRss };
}

function childrenOf(pid) {
  const pids = [];
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) pids.push(...readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').split(' ').filter(Boolean).map(Number));
  } catch {
    // the daemon exited meanwhile
  }
  return pids;
}

/**
 * A fake nvidia-smi (test/helpers/fake-nvidia-smi.cjs) answering with the H100 capture under
 * load. With `vllmPid`, the captured compute process is that pid (the emulator standing in for
 * vLLM's process on the GPU, as a sidecar that sees vLLM's processes finds it).
 */
export function makeFakeNvidiaSmi(dir, { vllmPid } = {}) {
  const fixtures = join(REPO, 'test', 'fixtures', 'nvidia-smi', 'h100-580');
  const sections = new Map();
  let current = '';
  for (const line of readFileSync(join(fixtures, 'query-load.txt'), 'utf8').split('\n')) {
    if (line.startsWith('## ')) {
      current = line.slice(3).trim();
      sections.set(current, []);
    } else if (line.trim() !== '') sections.get(current)?.push(line);
  }
  const fields = sections.get('csv')[0].split(',').map((h) => h.trim().replace(/\s*\[.*\]$/, ''));
  const gpus = (sections.get('csv,noheader,nounits') ?? []).map((row) => Object.fromEntries(row.split(',').map((cell, i) => [fields[i], cell.trim()])));
  const appHeader = sections.get('compute-apps')[0].split(',').map((h) => h.trim().replace(/\s*\[.*\]$/, ''));
  const apps = (sections.get('compute-apps noheader nounits') ?? []).map((row) => {
    const cells = row.split(',').map((c) => c.trim());
    const get = (name) => cells[appHeader.indexOf(name)] ?? '';
    return { gpu_uuid: get('gpu_uuid'), pid: vllmPid === undefined ? get('pid') : String(vllmPid), process_name: get('process_name'), used_gpu_memory: get('used_gpu_memory') };
  });
  const scenario = { helpText: readFileSync(join(fixtures, 'help-query-gpu.txt'), 'utf8'), gpus, apps };
  const path = join(dir, 'nvidia-smi');
  writeFileSync(path, `#!${process.execPath}\n${readFileSync(join(REPO, 'test', 'helpers', 'fake-nvidia-smi.cjs'), 'utf8')}`);
  chmodSync(path, 0o755);
  writeFileSync(join(dir, 'scenario.json'), JSON.stringify(scenario));
  return { path, calls: () => (existsSync(join(dir, 'calls.jsonl')) ? readFileSync(join(dir, 'calls.jsonl'), 'utf8').split('\n').filter(Boolean).length : 0) };
}

/**
 * Where the RSS comes from: a bare Node process, Node importing each dependency alone, and Node
 * importing every daemon module without starting it (RSS split into anonymous = private and
 * file-backed = mostly the node binary's own code pages, shared between Node processes).
 */
async function importBreakdown() {
  const cases = [
    ['bare node (no imports)', ''],
    ...['undici', 'zod', 'prom-client', 'yaml', 'pino', 'bcryptjs'].map((m) => [`node + import('${m}')`, `await import('${m}');`]),
    // what the daemon loads of undici (src/vllm/client.ts)
    ["node + undici's Pool module only (what VllmClient loads)", `(await import('node:module')).createRequire(import.meta.url)('undici/lib/dispatcher/pool.js');`],
    // file-backed RSS: ICU data pages of the node binary, touched by timezone-aware Intl (node-cron did on every tick; src/schedule.ts does not)
    ['node + one Intl.DateTimeFormat with a timeZone, formatToParts once', `new Intl.DateTimeFormat('en-US', { timeZone: 'UTC', year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit', weekday: 'short', hour12: false }).formatToParts(new Date());`],
    ['node + every daemon module (dist/cli.js, dist/app.js), not started', `await import('./dist/cli.js'); await import('./dist/app.js');`],
  ];
  const rows = [];
  for (const [label, code] of cases) {
    // median of 3 processes per case
    const got = [];
    for (let i = 0; i < 3; i++) {
      const child = spawnTracked(NODE, ['--input-type=module', '-e', `${code} process.stdout.write('READY\\n'); setInterval(() => {}, 1000);`], { readyRe: /READY/ });
      await child.ready;
      await sleep(1500);
      got.push(procSample(child.pid));
      await child.stop('SIGKILL');
    }
    const mid = (k) => median(got.map((g) => g[k] / 2 ** 20));
    rows.push({ label, rss: mid('rss'), anon: mid('rssAnon'), file: mid('rssFile') });
  }
  const bare = rows[0];
  return rows.map((r) => ({ ...r, dAnon: r.anon - bare.anon, dRss: r.rss - bare.rss }));
}

async function getText(url) {
  const res = await fetch(url, { signal: AbortSignal.timeout(5000) });
  return { status: res.status, body: await res.text() };
}

/** /metrics of a daemon, asked up to 3 times (10 s each): with 9 daemons side by side on a busy machine one answer can be late. */
async function metricsOf(url) {
  let last;
  for (let i = 0; i < 3; i++) {
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(10_000) });
      return await res.text();
    } catch (err) {
      last = err;
    }
  }
  throw new Error(`${url} did not answer 3 times`, { cause: last });
}

/** Sum of a family's samples by one label (e.g. probe + token_type). */
function sumBy(expo, family, keyOf) {
  const out = {};
  for (const s of expo.get(family)?.samples ?? []) {
    const k = keyOf(s.labels);
    out[k] = (out[k] ?? 0) + s.value;
  }
  return out;
}

/** Runs the daemon at the default config against the emulator for `minutes` after `warmupS`. */
export async function measureDaemon({ minutes, warmupS, log, arenaMax = process.env.MALLOC_ARENA_MAX ?? '2', floor = false, env = {}, main = join(process.env.BENCH_DAEMON_DIST ?? join(REPO, 'dist'), 'main.js'), nodeFlags = (process.env.BENCH_DAEMON_NODE_FLAGS ?? '').split(' ').filter(Boolean), node = NODE, scrape = [], noPerl = false }) {
  const dir = mkdtempSync(join(tmpdir(), 'vllm-probe-footprint-'));
  if (noPerl) env = { ...env, PATH: `${noPerlDir(dir)}:${process.env.PATH}` };
  const emu = await startEmulator({}, { execPath: node });
  const fake = makeFakeNvidiaSmi(dir, { vllmPid: emu.pid });
  const port = await freePort();
  const configFile = join(dir, 'config.yaml');
  // `scrape`: lines under scrape: that a variant sets (e.g. engine_watch: false); nothing else differs.
  writeFileSync(configFile, [`listen: 127.0.0.1:${port}`, 'target:', `  url: ${emu.url}`, 'gpu:', `  nvidia_smi_path: ${fake.path}`, ...(scrape.length ? ['scrape:', ...scrape.map((l) => `  ${l}`)] : []), ''].join('\n'));
  const logFile = join(dir, 'daemon.log');
  const logFd = openSync(logFile, 'w');
  const base = `http://127.0.0.1:${port}`;
  // floor: benchmarks/floor.mjs, a bare Node process making the same requests, instead of the daemon
  const args = floor ? ['--import', join(BENCH_DIR, 'heap-reporter.mjs'), join(BENCH_DIR, 'floor.mjs'), emu.url, fake.path] : [...nodeFlags, '--import', join(BENCH_DIR, 'heap-reporter.mjs'), main, 'serve', '--config', configFile];
  log(`  emulator ${emu.url} (own process); daemon: MALLOC_ARENA_MAX=${arenaMax} ${node === process.execPath ? 'node' : node.replaceAll(REPO + '/', '')} ${args.join(' ').replaceAll(REPO + '/', '')} (listen ${base})${scrape.length ? `, config scrape: ${scrape.join(', ')}` : ''}; ${minutes} min after a ${warmupS} s warm-up\n`);
  // As the container image runs it (Dockerfile: MALLOC_ARENA_MAX=2); MALLOC_ARENA_MAX= (empty) measures glibc's default.
  const daemon = spawnTracked(node, args, { stdio: ['ignore', logFd, 'pipe', 'ipc'], env: { MALLOC_ARENA_MAX: arenaMax, ...env } });
  closeSync(logFd);
  const heap = [];
  daemon.on('message', (m) => {
    if (m?.kind === 'mem') heap.push({ t: performance.now(), ...m });
  });
  const samples = [];
  let result;
  try {
    const tStart = performance.now();
    for (;;) {
      if (daemon.exitCode !== null) throw new Error(`daemon exited (${daemon.exitCode}): ${daemon.stderrTail()}`);
      const ok = floor ? readFileSync(logFile, 'utf8').includes('READY') : await getText(`${base}/readyz`).then((r) => r.status === 200, () => false);
      if (ok) break;
      if (performance.now() - tStart > 30_000) throw new Error('daemon not ready after 30 s');
      await sleep(200);
    }
    const readyS = (performance.now() - tStart) / 1000;
    const startup = daemonSample(daemon.pid);
    await sleep(warmupS * 1000);
    const metricsBefore = floor ? new Map() : parseExposition(await metricsOf(`${base}/metrics`));
    const t0 = performance.now();
    const endAt = t0 + minutes * 60_000;
    samples.push(daemonSample(daemon.pid));
    let lastLog = t0;
    while (performance.now() < endAt) {
      await sleep(Math.min(5000, Math.max(0, endAt - performance.now())));
      samples.push(daemonSample(daemon.pid));
      if (performance.now() - lastLog >= 60_000) {
        lastLog = performance.now();
        const s = samples[samples.length - 1];
        log(`  ${((s.t - t0) / 60000).toFixed(1)} min: RSS ${fmt(s.rss / 2 ** 20, 1)} MB, CPU so far ${fmt(cpuPct(samples[0], s), 3)} %\n`);
      }
    }
    const metricsText = floor ? '' : await metricsOf(`${base}/metrics`);
    const metricsAfter = parseExposition(metricsText);
    const first = samples[0];
    const last = samples[samples.length - 1];
    // per-minute CPU windows for the spread
    const perMin = [];
    for (let i = 0; i < samples.length; i++) {
      const j = samples.findIndex((s) => s.t >= samples[i].t + 60_000 - 1);
      if (j < 0) break;
      if (i % 12 === 0) perMin.push(cpuPct(samples[i], samples[j]));
    }
    const windowMin = (last.t - first.t) / 60_000;
    const tokKey = (l) => `${l.probe}/${l.token_type}`;
    const tokBefore = sumBy(metricsBefore, 'vllm_probe_probe_tokens_total', tokKey);
    const tokAfter = sumBy(metricsAfter, 'vllm_probe_probe_tokens_total', tokKey);
    const tokensPerMin = Object.fromEntries(Object.keys(tokAfter).map((k) => [k, (tokAfter[k] - (tokBefore[k] ?? 0)) / windowMin]));
    const reqKey = (l) => `${l.probe}/${l.outcome}`;
    const reqBefore = sumBy(metricsBefore, 'vllm_probe_requests_total', reqKey);
    const reqAfter = sumBy(metricsAfter, 'vllm_probe_requests_total', reqKey);
    const requests = Object.fromEntries(Object.entries(reqAfter).map(([k, v]) => [k, v - (reqBefore[k] ?? 0)]).filter(([, v]) => v > 0));
    const seriesCount = metricsText.split('\n').filter((l) => l && !l.startsWith('#')).length;
    const rssMB = samples.map((s) => s.rss / 2 ** 20);
    const anonMB = samples.map((s) => s.rssAnon / 2 ** 20);
    const fileMB = samples.map((s) => s.rssFile / 2 ** 20);
    const heapWin = heap.filter((h) => h.t >= first.t);
    result = {
      readyS,
      startupCpuS: startup.cpuS,
      windowMin,
      cpuPct: cpuPct(first, last),
      childCpuPct: cpuPct(first, last, 'childCpuS'),
      helperCpuPct: cpuPct(first, last, 'helperCpuS'),
      helperRssMax: max(samples.map((s) => s.helperRss / 2 ** 20)),
      perMin,
      rssMax: max(rssMB),
      rssMedian: median(rssMB),
      rssFirst: rssMB[0],
      rssLast: rssMB[rssMB.length - 1],
      // levelling off: RSS median of the last fifth of the window minus that of the second fifth
      rssLateGrowth: median(rssMB.slice(Math.floor(rssMB.length * 0.8))) - median(rssMB.slice(Math.floor(rssMB.length * 0.2), Math.floor(rssMB.length * 0.4))),
      rssSeries: rssMB.filter((_, i) => i % 12 === 0),
      anonFirst: anonMB[0],
      anonLast: anonMB[anonMB.length - 1],
      hwmMB: last.hwm / 2 ** 20,
      anonMax: max(anonMB),
      anonMedian: median(anonMB),
      fileMedian: median(fileMB),
      threads: last.threads,
      heapUsedMax: max(heapWin.map((h) => h.heapUsed / 2 ** 20)),
      heapUsedMedian: median(heapWin.map((h) => h.heapUsed / 2 ** 20)),
      heapUsedFirstMin: median(heapWin.filter((h) => h.t - first.t < 60_000).map((h) => h.heapUsed / 2 ** 20)),
      heapUsedLastMin: median(heapWin.filter((h) => last.t - h.t < 60_000).map((h) => h.heapUsed / 2 ** 20)),
      heapTotalMax: max(heapWin.map((h) => h.heapTotal / 2 ** 20)),
      externalMax: max(heapWin.map((h) => (h.external + 0) / 2 ** 20)),
      tokensPerMin,
      requests,
      seriesCount,
      nvidiaSmiCalls: fake.calls(),
      logLines: readFileSync(logFile, 'utf8').split('\n').filter(Boolean).length,
    };
  } finally {
    await daemon.stop('SIGTERM', 10_000);
    await emu.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  return result;
}

/** `dir`, with a `perl` in it that fails at once: first on PATH, it leaves the engine watch polling. */
function noPerlDir(dir) {
  writeFileSync(join(dir, 'perl'), '#!/bin/sh\necho "perl: not here (benchmarks/footprint.mjs, poll variant)" >&2\nexit 127\n');
  chmodSync(join(dir, 'perl'), 0o755);
  return dir;
}

/**
 * The variants that can run side by side (same minutes, same machine load), each `instances`
 * times. BENCH_FOOTPRINT_VARIANTS picks some (comma-separated keys); DEFAULT_VARIANTS otherwise.
 */
const VARIANTS = [
  { key: 'default', label: 'daemon, no special environment (glibc malloc defaults), as it runs on Node 20', opts: { arenaMax: '' } },
  // serve starts itself again with --v8-pool-size=1 where Node has process.execve (src/main.ts);
  // the benchmark's daemon has an IPC channel, which rules the re-exec out, so the flag is given here.
  { key: 'pool1', label: 'daemon, no special environment, as it starts itself on Node ≥ 22.15 (`--v8-pool-size=1`)', opts: { arenaMax: '', nodeFlags: ['--v8-pool-size=1'] } },
  { key: 'arena2', label: 'daemon, MALLOC_ARENA_MAX=2', opts: { arenaMax: '2' } },
  { key: 'image', label: 'daemon as the container image runs it (`--v8-pool-size=1`, MALLOC_ARENA_MAX=2)', opts: { arenaMax: '2', nodeFlags: ['--v8-pool-size=1'] } },
  { key: 'nowatch', label: 'daemon as on Node ≥ 22.15 (`--v8-pool-size=1`) with `scrape.engine_watch: false`', opts: { arenaMax: '', nodeFlags: ['--v8-pool-size=1'], scrape: ['engine_watch: false'] } },
  // The engine watch as it runs where its pidfd helper cannot (no perl, a kernel without
  // pidfd_open): a `perl` that fails comes first on PATH, and the watch polls every 100 ms.
  { key: 'poll', label: 'daemon as on Node ≥ 22.15 (`--v8-pool-size=1`), the engine watch polling (no perl on PATH)', opts: { arenaMax: '', nodeFlags: ['--v8-pool-size=1'], noPerl: true } },
  { key: 'floor', label: 'floor: bare Node making the same requests (benchmarks/floor.mjs)', opts: { arenaMax: '', floor: true } },
];
const DEFAULT_VARIANTS = ['default', 'pool1', 'nowatch', 'arena2', 'floor'];

/** The variants this run measures, in the table's order; an unknown key is an error, not a silent skip. */
function selectedVariants() {
  const keys = (process.env.BENCH_FOOTPRINT_VARIANTS ?? DEFAULT_VARIANTS.join(',')).split(',').map((k) => k.trim()).filter(Boolean);
  const unknown = keys.filter((k) => !VARIANTS.some((v) => v.key === k));
  if (unknown.length || keys.length === 0) throw new Error(`BENCH_FOOTPRINT_VARIANTS: unknown ${unknown.join(', ') || '(none given)'}; known: ${VARIANTS.map((v) => v.key).join(', ')}`);
  return VARIANTS.filter((v) => keys.includes(v.key));
}

export async function run(ctx) {
  const { quick, log } = ctx;
  const contended = contention();
  const variants = selectedVariants();
  const minutes = quick ? 1 : Number(process.env.BENCH_FOOTPRINT_MINUTES ?? DEFAULT_MINUTES);
  const warmupS = quick ? 15 : 30;
  const instances = quick ? 1 : Number(process.env.BENCH_FOOTPRINT_INSTANCES ?? 3);
  const daemons = variants.filter((v) => !v.opts.floor);
  // The variant the targets are judged on: the daemon as it starts itself where it can (pool1), else the first daemon variant.
  const lead = daemons.find((v) => v.key === 'pool1') ?? daemons[0];
  if (!lead) throw new Error('BENCH_FOOTPRINT_VARIANTS: name at least one daemon variant');
  const version = nodeVersion();
  log(`  Node ${version} (${NODE === process.execPath ? 'this one' : NODE.replaceAll(REPO + '/', '')}); variants ${variants.map((v) => v.key).join(', ')}; ${instances} instance(s) each\n`);
  // Every instance of every variant at once, started a second apart: they share the machine's load.
  const jobs = [];
  for (let i = 0; i < instances; i++) {
    for (const v of variants) {
      jobs.push({ v, i, p: sleep(jobs.length * 1000).then(() => measureDaemon({ minutes, warmupS, log: i === 0 && v === lead ? log : () => {}, ...v.opts })) });
    }
  }
  const done = await Promise.all(jobs.map((j) => j.p.then((r) => ({ ...j, r }))));
  const of = (key) => done.filter((d) => d.v.key === key).map((d) => d.r);
  log('  memory breakdown: RSS of bare Node and of Node importing each dependency…\n');
  const breakdown = await importBreakdown();
  const rs = of(lead.key);
  const r = rs[0];
  ctx.shared.footprint = r;
  const med = (xs, k) => median(xs.map((x) => x[k]));
  const floor = variants.some((v) => v.key === 'floor') ? of('floor') : undefined;
  const verdicts = (xs) => ({ rss: med(xs, 'rssMax') <= 70, flat: med(xs, 'rssLateGrowth') <= 1, cpu: med(xs, 'cpuPct') <= 0.2 });
  const { rss: rssOk, flat: flatOk, cpu: cpuOk } = verdicts(rs);
  const sideBySide = table(
    ['variant', 'RSS max (MB)', 'RSS first → last (MB, medians)', 'RSS growth, last fifth − second fifth of the window (MB)', 'private (anonymous) max (MB)', 'V8 heap used, first → last minute (MB)', 'CPU % of one core', 'threads'],
    variants.map((v) => {
      const xs = of(v.key);
      return [v.label, spread(xs.map((x) => x.rssMax), 1), `${fmt(med(xs, 'rssFirst'), 1)} → ${fmt(med(xs, 'rssLast'), 1)}`, spread(xs.map((x) => x.rssLateGrowth), 1), spread(xs.map((x) => x.anonMax), 1), `${fmt(med(xs, 'heapUsedFirstMin'), 1)} → ${fmt(med(xs, 'heapUsedLastMin'), 1)}`, spread(xs.map((x) => x.cpuPct), 3), med(xs, 'threads')];
    }),
  );
  const gap = (k) => med(rs, k) - med(floor, k);
  const floorSays = (k, digits) => (floor ? `; the floor ${fmt(med(floor, k), digits)}` : '');
  const md = [
    `Node ${version}${NODE === process.execPath ? '' : ` (BENCH_NODE=${NODE.replaceAll(REPO + '/', '')}: daemons, floor and emulators)`}. ${process.env.BENCH_DAEMON_NODE_FLAGS ? `Node flags: \`${process.env.BENCH_DAEMON_NODE_FLAGS}\`. ` : ''}Daemon: \`node --import ./benchmarks/heap-reporter.mjs dist/main.js serve --config FILE\`, FILE = \`listen: 127.0.0.1:PORT\`, \`target.url: <emulator>\`, \`gpu.nvidia_smi_path: <fake nvidia-smi, H100 capture>\` (and what a variant's label names); everything else default (log_level info, logs to a file). Floor: \`node --import ./benchmarks/heap-reporter.mjs benchmarks/floor.mjs <emulator> <fake nvidia-smi>\`. Each instance has its own emulator (own process, default timings); ${instances} instance(s) of each variant, all running at the same time (started 1 s apart), ${fmt(r.windowMin, 1)} min measured after a ${warmupS} s warm-up; samples every 5 s. Median (min–max) over the instances.`,
    '',
    sideBySide,
    '',
    ...(floor ? [`Gap ${lead.key} − floor (medians): RSS max ${fmt(gap('rssMax'), 1)} MB, private ${fmt(gap('anonMax'), 1)} MB, CPU ${fmt(gap('cpuPct'), 3)} % of a core.`, ''] : []),
    `RSS over the window, one instance each (MB, every minute): ${variants.map((v) => `${v.key}: ${of(v.key)[0].rssSeries.map((x) => fmt(x, 1)).join(', ')}`).join('; ')}.`,
    '',
    ...daemons.map((v) => {
      const ok = verdicts(of(v.key));
      return `Targets, ${v.key}${v === lead ? ' (the headline)' : ''} (medians): RSS ≤ 70 MB → ${pass(ok.rss)} (${fmt(med(of(v.key), 'rssMax'), 1)} MB${floorSays('rssMax', 1)}); levels off (RSS growth over the last fifth ≤ 1 MB) → ${pass(ok.flat)} (${fmt(med(of(v.key), 'rssLateGrowth'), 1)} MB); CPU ≤ 0.2 % of a core → ${pass(ok.cpu)} (${fmt(med(of(v.key), 'cpuPct'), 3)} %${floorSays('cpuPct', 3)}).\n`;
    }),
    `One instance of the daemon (${lead.key}) in detail:`,
    '',
    table(
      ['metric', 'value'],
      [
        ['CPU per 1-min window, median (min–max)', `${fmt(median(r.perMin), 3)} (${fmt(min(r.perMin), 3)}–${fmt(max(r.perMin), 3)}, n=${r.perMin.length})`],
        ['CPU of its nvidia-smi children (the fake is a Node script; not the daemon\'s own)', fmt(r.childCpuPct, 3)],
        ['its engine watch\'s pidfd helper (perl): CPU (included in the daemon\'s), RSS max (MB; not included)', `${fmt(r.helperCpuPct, 3)}, ${fmt(r.helperRssMax, 1)}`],
        ['VmHWM, peak RSS since start (MB)', fmt(r.hwmMB, 1)],
        ['V8 heap used max / median, heap total max (MB)', `${fmt(r.heapUsedMax, 1)} / ${fmt(r.heapUsedMedian, 1)}, ${fmt(r.heapTotalMax, 1)}`],
        ['RSS split: anonymous (private) median, file-backed median (MB)', `${fmt(r.anonMedian, 1)}, ${fmt(r.fileMedian, 1)}`],
        ['probe requests in the window (probe/outcome)', Object.entries(r.requests).map(([k, v]) => `${k} ${v}`).join(', ')],
        ['probe tokens per minute (from vllm_probe_probe_tokens_total)', Object.entries(r.tokensPerMin).map(([k, v]) => `${k} ${fmt(v, 1)}`).join(', ')],
        ['series on /metrics at the end', r.seriesCount],
        ['nvidia-smi invocations (whole run)', r.nvidiaSmiCalls],
        ['log lines (whole run)', r.logLines],
      ],
    ),
    '',
    'Where the memory comes from (separate processes, 1.5 s after the imports, median of 3 each; Δ = against bare Node):',
    '',
    table(
      ['process', 'RSS (MB)', 'anonymous (MB)', 'file-backed (MB)', 'Δ anonymous', 'Δ RSS'],
      breakdown.map((b) => [b.label, fmt(b.rss, 1), fmt(b.anon, 1), fmt(b.file, 1), b === breakdown[0] ? '' : fmt(b.dAnon, 1), b === breakdown[0] ? '' : fmt(b.dRss, 1)]),
    ),
  ].join('\n');
  appendSection(title.replace('10 min', `${minutes} min`), md, { contention: contended, mode: quick ? '--quick' : 'full' });
  const atNode = NODE === process.execPath ? '' : `, Node ${version}`;
  return {
    title,
    markdown: md,
    summary: [
      { metric: `daemon RSS max (${minutes} min${atNode}, ${lead.key})`, value: `${spread(rs.map((x) => x.rssMax), 1)} MB${floor ? ` (floor ${spread(floor.map((x) => x.rssMax), 1)})` : ''}${daemons.filter((v) => v !== lead).map((v) => `; ${v.key} ${spread(of(v.key).map((x) => x.rssMax), 1)}`).join('')}`, target: '≤ 70 MB', ok: rssOk },
      { metric: `daemon RSS growth over the last fifth (${minutes} min${atNode}, ${lead.key})`, value: `${spread(rs.map((x) => x.rssLateGrowth), 1)} MB${floor ? ` (floor ${spread(floor.map((x) => x.rssLateGrowth), 1)})` : ''}`, target: '≤ 1 MB (flat)', ok: flatOk },
      { metric: `daemon CPU (${minutes} min${atNode}, ${lead.key})`, value: `${spread(rs.map((x) => x.cpuPct), 3)} % of one core${floor ? ` (floor ${spread(floor.map((x) => x.cpuPct), 3)})` : ''}${daemons.filter((v) => v !== lead).map((v) => `; ${v.key} ${spread(of(v.key).map((x) => x.cpuPct), 3)}`).join('')}`, target: '≤ 0.2 %', ok: cpuOk },
    ],
  };
}
