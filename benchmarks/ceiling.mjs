/**
 * 2. Client ceiling (bench mode). vllm-probe's load generator (runLoad, the engine of
 * `vllm-probe bench`) and `vllm bench serve` (from the real-vLLM venv) against the same
 * emulator process in the same run. Clients are pinned to CPU 0 and the emulator to CPU 1
 * (taskset), so "on one core" is literal.
 *
 *  A. Throughput: emulator in zero-delay mode (baseTtftMs 0, itlMs 0, prefill 0, cold start 0,
 *     no batch slowdown; every output token still goes out as its own SSE event, 128 per
 *     request). runLoad at increasing concurrency; the ceiling is the highest sustained content
 *     events/s at a level where runLoad's own event-loop delay p99 stays ≤ 10 ms.
 *  B. Streams held: emulator with itlMs 100 (10 events/s per stream) and 50–150 tokens per
 *     request; N concurrent streams held when every sampled instant had N streams open, no
 *     request failed and the event-loop delay p99 stayed ≤ 10 ms.
 *  C. `vllm bench serve --backend vllm --dataset-name random` (input 8, output 128 tokens,
 *     --ignore-eos) against emulator A at several --max-concurrency values.
 *
 * Events/s = content SSE events (= output tokens, one per event) per second of the measured
 * window. Events per CPU-second normalises by the client's own CPU time, which still compares
 * the clients when the emulator (one core) is the bottleneck.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  appendSection,
  BENCH_DIR,
  contention,
  cpuPct,
  fmt,
  hasTaskset,
  max,
  median,
  min,
  pass,
  procSample,
  spread,
  startEmulator,
  table,
  TINY_MODEL,
  vllmBenchServe,
  vllmCliWorks,
} from './lib.mjs';

export const title = '2. Client ceiling (runLoad vs vllm bench serve, one core)';

const MODEL = 'bench-model';
const PROMPT = 'Write one sentence about the ocean.';
const ELD_LIMIT_MS = 10;

/** Runs benchmarks/ceiling-client.mjs pinned to CPU 0; returns its JSON plus the emulator's CPU %. */
async function clientLevel(emu, opts) {
  const pinned = hasTaskset();
  const args = [join(BENCH_DIR, 'ceiling-client.mjs'), JSON.stringify({ baseUrl: emu.url, model: MODEL, prompt: PROMPT, ...opts })];
  const a = procSample(emu.pid);
  const child = spawn(pinned ? 'taskset' : process.execPath, pinned ? ['-c', '0', process.execPath, ...args] : args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (err += d));
  const code = await new Promise((r) => child.on('exit', r));
  const b = procSample(emu.pid);
  if (code !== 0) throw new Error(`ceiling-client exited ${code}: ${err.slice(-2000)}`);
  const res = JSON.parse(out.trim().split('\n').pop());
  res.emulatorCpuPct = cpuPct(a, b);
  res.evPerCpuS = res.cpuPct > 0 ? res.eventsPerS / (res.cpuPct / 100) : NaN;
  return res;
}

async function vllmLevel(emu, concurrency, prompts, dir, tag) {
  const a = procSample(emu.pid);
  const r = await vllmBenchServe(
    [
      '--backend', 'vllm',
      '--base-url', emu.url,
      '--endpoint', '/v1/completions',
      '--model', MODEL,
      '--tokenizer', TINY_MODEL,
      '--dataset-name', 'random',
      '--random-input-len', '8',
      '--random-output-len', '128',
      '--ignore-eos',
      '--temperature', '0',
      '--max-concurrency', String(concurrency),
      '--num-prompts', String(prompts),
      '--request-rate', 'inf',
      '--percentile-metrics', 'ttft,itl',
      '--seed', '1',
    ],
    { cpu: 0, resultDir: dir, resultName: `vllm-${tag}-c${concurrency}.json` },
  );
  const b = procSample(emu.pid);
  const x = r.result;
  const eventsPerS = x.total_output_tokens / x.duration;
  return {
    concurrency,
    requests: x.completed,
    errors: x.failed,
    eventsPerS,
    cpuPct: r.clientCpuPct,
    evPerCpuS: r.clientCpuPct > 0 ? eventsPerS / (r.clientCpuPct / 100) : NaN,
    durationS: x.duration,
    ttftP50Ms: x.median_ttft_ms,
    emulatorCpuPctWholeRun: cpuPct(a, b),
    command: r.command,
  };
}

export async function run(ctx) {
  const { quick, log } = ctx;
  const contended = contention();
  const pinned = hasTaskset();
  const tmp = mkdtempSync(join(tmpdir(), 'vllm-probe-ceiling-'));
  const zero = { model: MODEL, baseTtftMs: 0, prefillMsPerToken: 0, coldStartMs: 0, itlMs: 0, batchSlowdown: 0, maxNumSeqs: 1_000_000 };
  const slow = { ...zero, itlMs: 100 };
  const levels = quick ? [16, 64, 256] : [1, 4, 16, 64, 256, 1024];
  const heldLevels = quick ? [2000] : [1000, 2000, 4000];
  const vllmLevels = quick ? [256] : [64, 256, 1024];
  const dur = quick ? 4000 : 10_000;
  const warm = quick ? 1000 : 2000;

  const throughput = [];
  const repeats = [];
  const held = [];
  const vllm = [];
  let vllmError;
  let candidate;
  const emu = await startEmulator(zero, { cpu: 1 });
  log(`  zero-delay emulator pid ${emu.pid} on ${emu.url} (CPU 1); clients on CPU 0${pinned ? '' : ' (taskset unavailable: not pinned)'}\n`);
  try {
    // A. runLoad throughput by concurrency
    for (const c of levels) {
      const r = await clientLevel(emu, { concurrency: c, durationMs: dur, warmupMs: warm, maxTokens: 128 });
      throughput.push(r);
      log(`  runLoad c=${c}: ${fmt(r.eventsPerS, 0)} events/s, ELD p99 ${fmt(r.eldP99Ms, 2)} ms, client CPU ${fmt(r.cpuPct, 0)} %, emulator CPU ${fmt(r.emulatorCpuPct, 0)} %, errors ${r.errors}\n`);
    }
    // C. vllm bench serve against the same emulator process
    const cli = vllmCliWorks();
    if (!cli.ok) {
      vllmError = cli.why;
      log(`  vllm bench serve unavailable: ${cli.why}\n`);
    } else {
      for (const c of vllmLevels) {
        try {
          const r = await vllmLevel(emu, c, quick ? 1500 : 5000, tmp, 'l');
          vllm.push(r);
          log(`  vllm bench serve c=${c}: ${fmt(r.eventsPerS, 0)} events/s, client CPU ${fmt(r.cpuPct, 0)} %, ${r.requests} requests in ${fmt(r.durationS, 1)} s\n`);
        } catch (err) {
          vllmError = String(err.message ?? err).slice(0, 1500);
          log(`  vllm bench serve c=${c} failed: ${vllmError}\n`);
          break;
        }
      }
    }
    // Repeats of the best levels, interleaved, for the spread of the ratio; plus the candidate
    // client (dispatch handler) at the best level: the "after" of the recommended src/ change
    const okLevels = throughput.filter((r) => r.eldP99Ms <= ELD_LIMIT_MS && r.errors === 0);
    const best = (okLevels.length ? okLevels : throughput).reduce((a, b) => (b.eventsPerS > a.eventsPerS ? b : a));
    const vbest = vllm.length ? vllm.reduce((a, b) => (b.eventsPerS > a.eventsPerS ? b : a)) : undefined;
    repeats.push({ ours: best, theirs: vbest });
    candidate = await clientLevel(emu, { concurrency: best.concurrency, durationMs: dur, warmupMs: warm, maxTokens: 128, impl: 'candidate' });
    log(`  candidate (dispatch handler) c=${best.concurrency}: ${fmt(candidate.eventsPerS, 0)} events/s, ${fmt(candidate.evPerCpuS, 0)} events per CPU-s, ELD p99 ${fmt(candidate.eldP99Ms, 2)} ms\n`);
    for (let i = 0; i < (quick ? 0 : 2); i++) {
      const ours = await clientLevel(emu, { concurrency: best.concurrency, durationMs: dur, warmupMs: warm, maxTokens: 128 });
      let theirs;
      if (vbest && i === 0) theirs = await vllmLevel(emu, vbest.concurrency, 5000, tmp, `r${i}`).catch(() => undefined);
      repeats.push({ ours, theirs });
      log(`  repeat ${i + 1}: runLoad c=${best.concurrency} ${fmt(ours.eventsPerS, 0)} events/s (ELD p99 ${fmt(ours.eldP99Ms, 2)} ms)${theirs ? `; vllm bench c=${vbest.concurrency} ${fmt(theirs.eventsPerS, 0)} events/s` : ''}\n`);
    }
  } finally {
    await emu.stop();
  }

  // B. streams held
  const emuSlow = await startEmulator(slow, { cpu: 1 });
  try {
    for (const n of heldLevels) {
      const r = await clientLevel(emuSlow, { concurrency: n, durationMs: quick ? 8000 : 15_000, warmupMs: quick ? 4000 : 6000, maxTokensRange: [50, 150] });
      r.held = r.errors === 0 && min(r.openAt) >= n && r.eldP99Ms <= ELD_LIMIT_MS;
      held.push(r);
      log(`  held c=${n}: open ${r.openAt.join('/')}, ${fmt(r.eventsPerS, 0)} events/s, ELD p99 ${fmt(r.eldP99Ms, 2)} ms, client CPU ${fmt(r.cpuPct, 0)} %, errors ${r.errors} → ${r.held ? 'held' : 'not held'}\n`);
    }
    // the candidate client at 2,000 streams: the "after" of the recommended change
    const r = await clientLevel(emuSlow, { concurrency: 2000, durationMs: quick ? 8000 : 15_000, warmupMs: quick ? 4000 : 6000, maxTokensRange: [50, 150], impl: 'candidate' });
    r.held = r.errors === 0 && min(r.openAt) >= 2000 && r.eldP99Ms <= ELD_LIMIT_MS;
    r.candidate = true;
    held.push(r);
    log(`  held c=2000, candidate client: ${fmt(r.eventsPerS, 0)} events/s, ELD p99 ${fmt(r.eldP99Ms, 2)} ms, client CPU ${fmt(r.cpuPct, 0)} % → ${r.held ? 'held' : 'not held'}\n`);
  } finally {
    await emuSlow.stop();
    rmSync(tmp, { recursive: true, force: true });
  }

  // Results
  const oursRuns = repeats.map((r) => r.ours.eventsPerS);
  const theirsRuns = repeats.map((r) => r.theirs?.eventsPerS).filter((x) => x !== undefined);
  const oursCpuNorm = repeats.map((r) => r.ours.evPerCpuS);
  const theirsCpuNorm = repeats.map((r) => r.theirs?.evPerCpuS).filter((x) => Number.isFinite(x));
  const ratio = theirsRuns.length ? median(oursRuns) / median(theirsRuns) : NaN;
  const ratioLo = theirsRuns.length ? min(oursRuns) / max(theirsRuns) : NaN;
  const ratioHi = theirsRuns.length ? max(oursRuns) / min(theirsRuns) : NaN;
  const cpuRatio = theirsCpuNorm.length ? median(oursCpuNorm) / median(theirsCpuNorm) : NaN;
  const best = repeats[0].ours;
  const emulatorBound = best.emulatorCpuPct >= 85 || best.cpuPct < 85;
  const maxHeld = max(held.filter((h) => h.held && !h.candidate).map((h) => h.concurrency));
  const ratioOk = ratio >= 5;
  const heldOk = maxHeld >= 2000;

  const tA = table(
    ['concurrency', 'events/s', 'requests/s', 'ELD p50 / p99 / max (ms)', 'client CPU %', 'run-queue wait %', 'events per client CPU-s', 'emulator CPU %', 'errors'],
    throughput.map((r) => [r.concurrency, fmt(r.eventsPerS, 0), fmt(r.reqPerS, 0), `${fmt(r.eldP50Ms, 2)} / ${fmt(r.eldP99Ms, 2)} / ${fmt(r.eldMaxMs, 1)}`, fmt(r.cpuPct, 0), fmt(r.runqWaitPct, 1), fmt(r.evPerCpuS, 0), fmt(r.emulatorCpuPct, 0), r.errors]),
  );
  const tC = vllm.length
    ? table(
        ['--max-concurrency', 'events/s', 'client CPU % (benchmark phase)', 'events per client CPU-s', 'requests', 'failed', 'duration (s)'],
        vllm.map((r) => [r.concurrency, fmt(r.eventsPerS, 0), fmt(r.cpuPct, 0), fmt(r.evPerCpuS, 0), r.requests, r.errors, fmt(r.durationS, 1)]),
      )
    : `vllm bench serve did not run: ${vllmError}`;
  const tB = table(
    ['concurrent streams', 'open at 25/50/75 % of window', 'events/s', 'ELD p50 / p99 / max (ms)', 'client CPU %', 'run-queue wait %', 'RSS (MB)', 'errors', 'held'],
    held.map((r) => [r.candidate ? `${r.concurrency} (candidate client)` : r.concurrency, r.openAt.join(' / '), fmt(r.eventsPerS, 0), `${fmt(r.eldP50Ms, 2)} / ${fmt(r.eldP99Ms, 2)} / ${fmt(r.eldMaxMs, 1)}`, fmt(r.cpuPct, 0), fmt(r.runqWaitPct, 1), fmt(r.rssMB, 0), r.errors, r.held ? 'yes' : 'no']),
  );
  const md = [
    `Clients pinned to CPU 0, emulator to CPU 1 (\`taskset\`${pinned ? '' : ': not available, not pinned'}). ELD = runLoad's own event-loop delay (\`monitorEventLoopDelay\`, 1 ms resolution, recorded interval − 1 ms), measured after a ${warm / 1000} s warm-up. Run-queue wait % = time runLoad's main thread was runnable but waiting for CPU 0 (\`/proc/self/schedstat\`): other processes, and the client's own V8/libuv helper threads (GC, JIT), which taskset keeps on the same core.`,
    '',
    `**A. runLoad, zero-delay emulator** (\`${JSON.stringify(zero)}\`; 128 output tokens = 128 content events per request; ${dur / 1000} s per level):`,
    '',
    tA,
    '',
    `**C. \`vllm bench serve\`, same emulator process** (\`${vllm[0]?.command.replace(/--result-dir \S+/, '--result-dir DIR').replace(/--result-filename \S+/, '--result-filename F').replace(/--base-url \S+/, '--base-url http://127.0.0.1:PORT').replace(TINY_MODEL, '.cache/tiny-model') ?? 'n/a'}\`; the CLI's ~30 s start-up is outside its measured duration; CPU % over the benchmark phase from /proc):`,
    '',
    tC,
    '',
    `**Ratio** (best runLoad level with ELD p99 ≤ ${ELD_LIMIT_MS} ms: c=${best.concurrency}; best vllm bench level: c=${repeats[0].theirs?.concurrency ?? 'n/a'}; interleaved repeats):`,
    '',
    table(
      ['', 'runLoad', 'vllm bench serve', 'ratio'],
      [
        ['sustained events/s, median (min–max)', spread(oursRuns, 0), spread(theirsRuns, 0), `${fmt(ratio, 2)}× (${fmt(ratioLo, 2)}–${fmt(ratioHi, 2)})`],
        ['events per client CPU-second', spread(oursCpuNorm, 0), spread(theirsCpuNorm, 0), `${fmt(cpuRatio, 2)}×`],
        ...(candidate
          ? [[`candidate client (dispatch handler, benchmarks/candidate-stream.mjs), same level: events/s; per CPU-s`, `${fmt(candidate.eventsPerS, 0)}; ${fmt(candidate.evPerCpuS, 0)}`, '', `${fmt(candidate.eventsPerS / median(theirsRuns), 2)}×; ${fmt(candidate.evPerCpuS / median(theirsCpuNorm), 2)}×`]]
          : []),
      ],
    ),
    '',
    emulatorBound
      ? `At the best level the emulator used ${fmt(best.emulatorCpuPct, 0)} % of its core and runLoad ${fmt(best.cpuPct, 0)} % of its own: the one-core emulator, not runLoad, limits the sustained figure, so runLoad's own ceiling is higher; the per-CPU-second row is the like-for-like comparison.`
      : `At the best level runLoad used ${fmt(best.cpuPct, 0)} % of its core (emulator ${fmt(best.emulatorCpuPct, 0)} %).`,
    '',
    `**B. Streams held** (emulator \`itlMs: 100\`, 50–150 tokens per request, so 10 events/s per stream):`,
    '',
    tB,
    '',
    `Targets: ratio ≥ 5× → ${pass(ratioOk)} (${fmt(ratio, 2)}×; per CPU-second ${fmt(cpuRatio, 2)}×); 2,000 concurrent streams held → ${pass(heldOk)} (most held: ${Number.isFinite(maxHeld) ? maxHeld : 'none'}).`,
  ].join('\n');
  appendSection(title, md, { contention: contended, mode: quick ? '--quick' : 'full' });
  return {
    title,
    markdown: md,
    summary: [
      { metric: 'runLoad ceiling, events/s (ELD p99 ≤ 10 ms)', value: `${spread(oursRuns, 0)} at c=${best.concurrency}${emulatorBound ? ' (emulator-bound)' : ''}`, target: '(info)', ok: undefined },
      { metric: 'vllm bench serve, events/s (same emulator)', value: theirsRuns.length ? `${spread(theirsRuns, 0)} at c=${repeats[0].theirs.concurrency}` : `n/a (${vllmError})`, target: '(info)', ok: undefined },
      { metric: 'ratio runLoad / vllm bench serve', value: `${fmt(ratio, 2)}× (per CPU-s ${fmt(cpuRatio, 2)}×)`, target: '≥ 5×', ok: ratioOk },
      { metric: 'concurrent streams held (ELD p99 ≤ 10 ms)', value: Number.isFinite(maxHeld) ? String(maxHeld) : 'none', target: '≥ 2,000', ok: heldOk },
    ],
  };
}
