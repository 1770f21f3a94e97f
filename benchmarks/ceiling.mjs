/**
 * 2. Client ceiling (bench mode): vllm-probe's load generator (runLoad, the engine of
 * `vllm-probe bench`, on VllmClient#stream with countOnly) against `vllm bench serve` (the
 * real-vLLM venv), GuideLLM and AIPerf (scripts/install-bench-peers), all in one run against
 * the same server process, interleaved in rotated order. Every client is pinned to CPU 0, the
 * server to CPU 1 (taskset).
 *
 * The server is benchmarks/sse-server (Go): it streams one SSE event per token, each its own
 * HTTP chunk and write, as fast as the client reads, and does nothing else, so it is not the
 * bottleneck (its CPU share is in the table). The one-core Node emulator of the previous round
 * was, and it capped the ratio.
 *
 *  A. Throughput: 128 output tokens per request, concurrency 64 for every client (and 256 for
 *     runLoad; `vllm bench serve` per CPU-second varied little with concurrency in the
 *     previous round, 63–81 k at 64–1024, and each of its runs costs ~30–150 s of start-up).
 *     Every client is measured the same way, from outside: the server counts the token
 *     events it sent (STATS every 200 ms) and the harness reads the client's CPU time, all its
 *     processes included (GuideLLM and AIPerf fork workers), at each count.
 *     The window is the part where events flowed, less its first second (start-up, JIT) and
 *     its last 0.4 s. Events per client CPU-second is the like-for-like figure.
 * Streams held (2,000 at 10 events/s each) are benchmark `held` (held.mjs).
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, existsSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { appendSection, BENCH_DIR, contention, fmt, hasTaskset, max, median, min, pass, REPO, serverCpus, spawnTracked, spread, startSseServer, table, TINY_MODEL, treeCpuS, VENV, vllmCliWorks, vllmEnv } from './lib.mjs';

export const title = '2. Client ceiling (runLoad vs vllm bench serve, GuideLLM, AIPerf; one core each)';

const MODEL = 'bench-model';
const PROMPT = 'Write one sentence about the ocean.';
const GUIDELLM = join(REPO, '.cache', 'guidellm-venv', 'bin', 'guidellm');
const AIPERF = join(REPO, '.cache', 'aiperf-venv', 'bin', 'aiperf');

/** A one-model HuggingFace cache holding .cache/tiny-model, so AIPerf loads it with HF_HUB_OFFLINE (it takes a local path for a repo id). */
function offlineHfCache(dir) {
  const snap = join(dir, 'models--bench--tiny-model', 'snapshots', '0'.repeat(40));
  mkdirSync(snap, { recursive: true });
  mkdirSync(join(dir, 'models--bench--tiny-model', 'refs'), { recursive: true });
  writeFileSync(join(dir, 'models--bench--tiny-model', 'refs', 'main'), '0'.repeat(40));
  for (const f of readdirSync(TINY_MODEL)) symlinkSync(join(TINY_MODEL, f), join(snap, f));
  return dir;
}

/** How each client is started for `c` concurrent streams of 128 tokens for about `durS` seconds. */
function clients(url, tmp, hfCache, durS) {
  const node = process.execPath;
  return {
    'vllm-probe': {
      label: 'vllm-probe runLoad (`vllm-probe bench` engine)',
      available: () => ({ ok: true }),
      cmd: (c) => [node, [join(BENCH_DIR, 'ceiling-client.mjs'), JSON.stringify({ baseUrl: url, model: MODEL, prompt: PROMPT, concurrency: c, durationMs: durS * 1000, warmupMs: 1000, maxTokens: 128 })], {}],
      own: true,
    },
    vllm: {
      label: '`vllm bench serve` (vLLM 0.32.0)',
      available: () => vllmCliWorks(),
      cmd: (c) => [
        join(VENV, 'bin', 'vllm'),
        ['bench', 'serve', '--backend', 'vllm', '--base-url', url, '--endpoint', '/v1/completions', '--model', MODEL, '--tokenizer', TINY_MODEL, '--dataset-name', 'random', '--random-input-len', '8', '--random-output-len', '128', '--ignore-eos', '--temperature', '0', '--max-concurrency', String(c), '--num-prompts', String(Math.round(durS * 500)), '--request-rate', 'inf', '--percentile-metrics', 'ttft,itl', '--seed', '1', '--disable-tqdm'],
        vllmEnv(),
      ],
    },
    guidellm: {
      label: 'GuideLLM 0.8.1',
      available: () => (existsSync(GUIDELLM) ? { ok: true } : { ok: false, why: 'not installed: run scripts/install-bench-peers' }),
      cmd: (c, tag) => [
        GUIDELLM,
        ['run', '--backend', `kind=openai_http,target=${url},request_format=/v1/completions`, '--profile', `kind=concurrent,streams=${c}`, '--constraint', `kind=max_duration,seconds=${durS}`, '--data', 'kind=synthetic_text,prompt_tokens=8,output_tokens=128', '--tokenizer', `kind=huggingface_auto,model=${TINY_MODEL}`, '--output', `kind=json,path=${join(tmp, `guidellm-${tag}.json`)}`, '--disable-console-interactive'],
        { ...vllmEnv(), HF_HOME: join(tmp, 'hf-home') },
      ],
    },
    aiperf: {
      label: 'AIPerf 0.13.0',
      available: () => (existsSync(AIPERF) ? { ok: true } : { ok: false, why: 'not installed: run scripts/install-bench-peers' }),
      cmd: (c, tag) => [
        AIPERF,
        ['profile', '--model', MODEL, '--url', url, '--endpoint-type', 'completions', '--streaming', '--concurrency', String(c), '--benchmark-duration', String(durS), '--isl', '8', '--osl', '128', '--extra-inputs', 'ignore_eos:true', '--tokenizer', 'bench/tiny-model', '--ui-type', 'none', '--no-server-metrics', '--no-gpu-telemetry', '--artifact-dir', join(tmp, `aiperf-${tag}`)],
        { ...vllmEnv(), HF_HOME: join(tmp, 'hf-home'), HF_HUB_CACHE: hfCache },
      ],
    },
  };
}

/** Commands as printed in the log (paths and ports made generic). */
const shown = (cmd, args) => `${cmd.replace(REPO + '/', '')} ${args.map((a) => (/[\s{"]/.test(a) ? `'${a}'` : a)).join(' ')}`.replaceAll(REPO + '/', '').replace(/http:\/\/127\.0\.0\.1:\d+/g, 'http://127.0.0.1:PORT').replace(/\/tmp\/vllm-probe-ceiling-\w+/g, 'TMP');

/**
 * Runs one client against `server` and measures it from outside: at every STATS line of the
 * server (200 ms) the client's process-tree CPU and the server's CPU. Returns the window figures.
 */
async function measure(server, def, c, tag, { timeoutMs = 300_000, name = tag } = {}) {
  const [cmd, args, env] = def.cmd(c, tag);
  const child = spawnTracked(cmd, args, { cpu: 0, env });
  let stdout = '';
  child.stdout.on('data', (d) => (stdout = (stdout + d.toString()).slice(-200_000)));
  const samples = [];
  const off = server.onStats((s) => {
    try {
      const tree = treeCpuS(child.pid);
      samples.push({ t: performance.now(), events: s.events, open: s.open, cpuS: tree.cpuS, procs: tree.processes, serverCpuS: server.cpuS() });
    } catch {
      // exiting
    }
  });
  const timer = setTimeout(() => child.stop('SIGKILL'), timeoutMs);
  const t0 = performance.now();
  const code = await new Promise((r) => child.on('exit', (x) => r(x)));
  clearTimeout(timer);
  off();
  const wallS = (performance.now() - t0) / 1000;
  if (code !== 0) throw new Error(`${def.label} exited ${code}: ${child.stderrTail().slice(-1500)} ${stdout.slice(-500)}`);
  // window: where the server's event count rose, less 1 s at the start and 0.4 s at the end
  const rising = samples.map((s, i) => i > 0 && s.events > samples[i - 1].events);
  const firstI = rising.indexOf(true);
  const lastI = rising.lastIndexOf(true);
  if (firstI < 0) throw new Error(`${def.label}: the server sent no events`);
  const a = samples.find((s, i) => i >= firstI && s.t >= samples[firstI].t + 1000);
  const b = [...samples].reverse().find((s, i) => samples.length - 1 - i <= lastI && s.t <= samples[lastI].t - 400);
  if (!a || !b || b.t - a.t < 1500) throw new Error(`${def.label}: measured window too short (${samples.length} samples)`);
  const spanS = (b.t - a.t) / 1000;
  const events = b.events - a.events;
  const cpuS = b.cpuS - a.cpuS;
  const own = def.own ? JSON.parse(stdout.trim().split('\n').pop()) : undefined;
  return {
    client: name,
    concurrency: c,
    eventsPerS: events / spanS,
    cpuPct: (cpuS / spanS) * 100,
    evPerCpuS: cpuS > 0 ? events / cpuS : NaN,
    serverCpuPct: ((b.serverCpuS - a.serverCpuS) / spanS) * 100,
    processes: max(samples.map((s) => s.procs)),
    windowS: spanS,
    wallS,
    own,
    command: shown(cmd, args),
  };
}

export async function run(ctx) {
  const { quick, log } = ctx;
  const contended = contention();
  const pinned = hasTaskset();
  // The server gets every core but the client's, one process per core (issue 28: on one core
  // it was at 97–99 % whenever runLoad drove it, so the ratio was the server's ceiling).
  const cores = serverCpus();
  const tmp = mkdtempSync(join(tmpdir(), 'vllm-probe-ceiling-'));
  const hfCache = offlineHfCache(join(tmp, 'hf-cache'));
  const durS = quick ? 6 : 10;
  const rounds = quick ? 1 : 3;
  const results = [];
  const unavailable = {};
  let fast;
  let paced;
  const commands = {};
  try {
    fast = await startSseServer({}, { cpu: cores.list, procs: cores.count });
    // B: the same clients at an offered load the server meets with room to spare (one token
    // every 2 ms per stream: at most 32,000 events/s at c=64), so the cost per event is the
    // client's even where A's server ran out of core.
    paced = await startSseServer({ itlMs: PACED_ITL_MS }, { cpu: cores.list, procs: cores.count });
    log(`  SSE servers (Go): A pids ${fast.pids.join(', ')}, B (-itl-ms ${PACED_ITL_MS}) pids ${paced.pids.join(', ')} (CPUs ${cores.list}); clients on CPU 0${pinned ? '' : ' (taskset unavailable: not pinned)'}\n`);
    const defs = clients(fast.url, tmp, hfCache, durS);
    const defsB = clients(paced.url, tmp, hfCache, durS);
    const names = Object.keys(defs).filter((n) => {
      const a = defs[n].available();
      if (!a.ok) {
        unavailable[n] = a.why;
        log(`  ${n}: unavailable (${a.why})\n`);
      }
      return a.ok;
    });
    // A. interleaved rounds, order rotated each round; runLoad also at c=256 (a 12 s run)
    for (let r = 0; r < rounds; r++) {
      const order = [...names.slice(r % names.length), ...names.slice(0, r % names.length)];
      const plan = order.flatMap((n) => [[n, 64, 'A'], [n, 64, 'B'], ...(!quick && n === 'vllm-probe' ? [[n, 256, 'A']] : [])]);
      for (const [n, c, mode] of plan) {
        try {
          const load = contention().text;
          const res = await measure(mode === 'A' ? fast : paced, (mode === 'A' ? defs : defsB)[n], c, `${n}-r${r}-c${c}-${mode}`, { name: n });
          res.round = r;
          res.mode = mode;
          res.load = load;
          res.headroom = res.serverCpuPct < HEADROOM * 100 * cores.count;
          results.push(res);
          commands[n] ??= res.command;
          log(`  round ${r + 1} ${mode} ${n} c=${c}: ${fmt(res.eventsPerS, 0)} events/s, client CPU ${fmt(res.cpuPct, 0)} % (${res.processes} proc.), ${fmt(res.evPerCpuS, 0)} events per CPU-s, server CPU ${fmt(res.serverCpuPct, 0)} % of ${cores.count} core(s), ${fmt(res.wallS, 0)} s wall; other load before: ${load}\n`);
        } catch (err) {
          unavailable[n] = String(err.message ?? err).slice(0, 800);
          log(`  round ${r + 1} ${mode} ${n} c=${c} failed: ${unavailable[n]}\n`);
        }
      }
    }
  } finally {
    await fast?.stop();
    await paced?.stop();
    rmSync(tmp, { recursive: true, force: true });
  }

  // Results: per mode, from the runs where the server had headroom only.
  return report({ results, unavailable, commands, cores, pinned, durS, rounds, quick, contended });
}

/** A run counts only when the server used less than this share of its cores. */
const HEADROOM = 0.8;
const PACED_ITL_MS = 2;

function report({ results, unavailable, commands, cores, pinned, durS, rounds, quick, contended }) {
  const labels = { 'vllm-probe': 'vllm-probe runLoad', vllm: 'vllm bench serve', guidellm: 'GuideLLM', aiperf: 'AIPerf' };
  const ratios = {};
  const tables = {};
  for (const mode of ['A', 'B']) {
    const r = ratiosFor(results.filter((x) => x.mode === mode), labels);
    ratios[mode] = r;
    tables[mode] = r.table;
  }
  const tA = table(
    ['round', 'mode', 'client', 'concurrency', 'events/s', 'client CPU % (all its processes)', 'processes', 'events per client CPU-s', `server CPU % (of ${cores.count} core${cores.count > 1 ? 's' : ''})`, 'server headroom', 'window (s)', 'other load just before'],
    results.map((r) => [r.round + 1, r.mode, labels[r.client], r.concurrency, fmt(r.eventsPerS, 0), fmt(r.cpuPct, 0), r.processes, fmt(r.evPerCpuS, 0), fmt(r.serverCpuPct, 0), r.headroom ? 'yes' : '**no**', fmt(r.windowS, 1), r.load]),
  );
  // The headline: A (as fast as the server streams) where it had headroom, else B.
  const head = ratios.A.vllmRatio >= 0 ? 'A' : 'B';
  const { vllmRatio, peers, ours, ratio } = ratios[head];
  const ratioOk = vllmRatio >= 4;
  const aheadOk = peers.slice(1).every((p) => !p.s || ratio(p) > 1) && peers.slice(1).some((p) => p.s);
  const md = [
    `Clients pinned to CPU 0, the server to CPU${cores.count > 1 ? 's' : ''} ${cores.list} (\`taskset\`${pinned ? '' : ': not available, not pinned'}), ${cores.count} process${cores.count > 1 ? 'es' : ''} of \`benchmarks/sse-server\` (Go) on one port (SO_REUSEPORT), so it gets every core the client does not use. **A**: \`.cache/bench-bin/sse-server -itl-ms 0\` (one SSE event per token, each its own chunk and write, as fast as the client reads; vLLM 0.32's chunk shapes). **B**: the same with \`-itl-ms ${PACED_ITL_MS}\` (a token every ${PACED_ITL_MS} ms per stream: at most ${fmt((64 * 1000) / PACED_ITL_MS, 0)} events/s at c=64), an offered load the server meets with room to spare. Each client measured from outside the same way: events = token events the server sent (its STATS line every 200 ms), CPU = the client's whole process tree (/proc, children included), over the window where events flowed minus its first 1 s and last 0.4 s. 128 output tokens per request, ${durS} s per run, ${rounds} round(s) in rotated order. **A run counts toward a ratio only when the server used less than ${HEADROOM * 100} % of its cores** (else it measured the server's ceiling, not the client's); a ratio with no such run is not reported.`,
    '',
    'Commands (PORT = the server, TMP = a temp dir; HF_HUB_OFFLINE=1, and AIPerf gets the tiny model through a one-model HuggingFace cache in TMP because it does not accept a local path offline):',
    '',
    ...Object.entries(commands).map(([n, c]) => `- ${labels[n]}: \`${c}\``),
    ...Object.entries(unavailable).map(([n, why]) => `- ${labels[n] ?? n}: **not measured** — ${why}`),
    '',
    '**Every run:**',
    '',
    tA,
    '',
    '**A. As fast as the server streams** (each client at its best level by events per CPU-s, runs with server headroom only; median (min–max) over rounds):',
    '',
    tables.A,
    '',
    `**B. Offered load ${PACED_ITL_MS} ms per token per stream, c=64** (same rule):`,
    '',
    tables.B,
    '',
    `Targets (from ${head}): ≥ 4× \`vllm bench serve\` per client CPU-second → ${Number.isFinite(vllmRatio) ? `${pass(ratioOk)} (${fmt(vllmRatio, 2)}×)` : '❔ not measured (no run with server headroom, or vllm bench serve unavailable)'}; ahead of GuideLLM and AIPerf → ${peers.slice(1).some((p) => p.s) ? pass(aheadOk) : '❔ not measured'} (${peers.slice(1).map((p) => `${labels[p.n]} ${p.s ? `${fmt(ratio(p), 1)}×` : 'not measured'}`).join(', ')}).`,
  ].join('\n');
  appendSection(title, md, { contention: contended, mode: quick ? '--quick' : 'full' });
  return {
    title,
    markdown: md,
    summary: [
      ...['A', 'B'].map((m) => ({ metric: `runLoad events per client CPU-s (${m})`, value: ratios[m].ours ? `${spread(ratios[m].ours.perCpu, 0)} at c=${ratios[m].ours.c}` : 'n/a (no run with server headroom)', target: '(info)', ok: undefined })),
      ...peers.map((p) => ({ metric: `vllm-probe ÷ ${labels[p.n]}, per client CPU-s (${head})`, value: p.s && ours ? `${fmt(ratio(p), 2)}× (${labels[p.n]} ${spread(p.s.perCpu, 0)} at c=${p.s.c})` : `n/a (${unavailable[p.n] ?? 'no run with server headroom'})`, target: p.n === 'vllm' ? '≥ 4×' : '> 1×', ok: p.s && ours ? (p.n === 'vllm' ? ratioOk : ratio(p) > 1) : undefined })),
    ],
  };
}

/** The ratio table of one mode's runs: only runs where the server had headroom count. */
function ratiosFor(results, labels) {
  const by = (n) => results.filter((r) => r.client === n && r.headroom);
  const bestLevel = (n) => {
    const rs = by(n);
    if (!rs.length) return undefined;
    const levels = [...new Set(rs.map((r) => r.concurrency))];
    return levels.map((c) => ({ c, v: median(rs.filter((r) => r.concurrency === c).map((r) => r.evPerCpuS)) })).reduce((x, y) => (y.v > x.v ? y : x)).c;
  };
  const summaryOf = (n) => {
    const c = bestLevel(n);
    if (c === undefined) return undefined;
    const rs = by(n).filter((r) => r.concurrency === c);
    return { c, perCpu: rs.map((r) => r.evPerCpuS), eps: rs.map((r) => r.eventsPerS), cpu: rs.map((r) => r.cpuPct), server: rs.map((r) => r.serverCpuPct) };
  };
  const ours = summaryOf('vllm-probe');
  const peers = ['vllm', 'guidellm', 'aiperf'].map((n) => ({ n, s: summaryOf(n) }));
  const ratio = (p) => (ours && p.s ? median(ours.perCpu) / median(p.s.perCpu) : NaN);
  const ratioEps = (p) => (ours && p.s ? median(ours.eps) / median(p.s.eps) : NaN);
  const dropped = (n) => results.filter((r) => r.client === n && !r.headroom).length;
  const t = table(
    ['client (best level)', 'events per client CPU-s, median (min–max)', 'events/s', 'server CPU %', 'vllm-probe ÷ client, per CPU-s', '… sustained events/s'],
    ['vllm-probe', ...peers.map((p) => p.n)].map((n) => {
      const s = n === 'vllm-probe' ? ours : peers.find((p) => p.n === n).s;
      const none = `not reported: ${dropped(n) ? `the server had no headroom in its ${dropped(n)} run(s)` : 'not run'}`;
      if (!s) return [labels[n], none, '', '', '', ''];
      const rel = n === 'vllm-probe' ? ['', ''] : ours ? [`${fmt(ratio({ s }), 2)}×`, `${fmt(ratioEps({ s }), 2)}×`] : ['not reported (vllm-probe had no run with server headroom)', ''];
      return [`${labels[n]} (c=${s.c})`, spread(s.perCpu, 0), spread(s.eps, 0), spread(s.server, 0), ...rel];
    }),
  );
  return { ours, peers, ratio, vllmRatio: ratio(peers[0]), table: t };
}
