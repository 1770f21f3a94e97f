/**
 * 2b. Streams held: vllm-probe's runLoad (benchmarks/ceiling-client.mjs, pinned to CPU 0)
 * holding 2,000 concurrent streams against benchmarks/sse-server (`-itl-ms 100`: 10 events/s
 * per stream, CPU 1), in two shapes: every request 150 tokens (15 s: the lock-step case of
 * issue 28, where all streams ended and restarted together every 15 s) and 50–150 tokens.
 * 2,000 are held when every sampled instant had 2,000 open, no request failed, runLoad's
 * event-loop delay stayed at p99 ≤ 10 ms and max ≤ 30 ms, and its RSS ≤ 180 MB.
 *
 * Each shape runs 3 times (1 with --quick), interleaved in rotated order, and the table gives
 * the median (min–max). With BENCH_BASELINE_DIST=/abs/path/to/another/dist (a build of an
 * earlier commit) that build runs in the same rotation, so the two share the machine's load.
 *
 * Beside each run, a control process on the same core (benchmarks/eld-control.mjs) measures
 * only its own event-loop delay over the same window: the floor that the machine (other
 * processes, the client beside it) puts under any ELD figure on that core right now.
 */
import { join } from 'node:path';
import { appendSection, BENCH_DIR, contention, fmt, hasTaskset, median, pass, sleep, spawnTracked, spread, startSseServer, table } from './lib.mjs';

export const title = '2b. Streams held (runLoad, 2,000 streams at 10 events/s, one core)';

const ELD_P99_LIMIT_MS = 10;
const ELD_MAX_LIMIT_MS = 30;
const RSS_LIMIT_MB = 180;
const N = 2000;

async function runJson(args, cpu, nodeArgs = []) {
  const child = spawnTracked(process.execPath, [...nodeArgs, ...args], { cpu });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  const code = await new Promise((r) => child.on('exit', r));
  if (code !== 0) throw new Error(`${args[0]} exited ${code}: ${child.stderrTail().slice(-1500)}`);
  return JSON.parse(out.trim().split('\n').pop());
}

const SHAPES = {
  'fixed 150': { maxTokens: 150 },
  '50–150': { maxTokensRange: [50, 150] },
};

export async function run(ctx) {
  const { quick, log } = ctx;
  const contended = contention();
  const rounds = quick ? 1 : 3;
  const durationMs = quick ? 10_000 : 20_000;
  const warmupMs = quick ? 4000 : 6000;
  const baseline = process.env.BENCH_BASELINE_DIST;
  // A process confined to one core gets nothing from V8's parallel and concurrent GC threads:
  // they share the core with the main thread, which waits for them. The second variant runs
  // the same build with V8's GC on the main thread only.
  const builds = { current: {}, 'current, --single-threaded-gc': { nodeArgs: ['--single-threaded-gc'] }, ...(baseline ? { baseline: { dist: baseline } } : {}) };
  const variants = Object.keys(builds).flatMap((b) => Object.keys(SHAPES).map((s) => ({ build: b, shape: s })));
  const server = await startSseServer({ itlMs: 100 }, { cpu: 1 });
  const runs = [];
  try {
    for (let r = 0; r < rounds; r++) {
      const order = [...variants.slice(r % variants.length), ...variants.slice(0, r % variants.length)];
      for (const v of order) {
        const load = contention();
        const opts = { baseUrl: server.url, model: 'bench-model', prompt: 'Write one sentence about the ocean.', concurrency: N, durationMs, warmupMs, abortAtEnd: true, ...SHAPES[v.shape], ...(builds[v.build].dist ? { dist: builds[v.build].dist } : {}) };
        const client = runJson([join(BENCH_DIR, 'ceiling-client.mjs'), JSON.stringify(opts)], 0, builds[v.build].nodeArgs);
        const control = sleep(warmupMs).then(() => runJson([join(BENCH_DIR, 'eld-control.mjs'), String(durationMs)], 0));
        // Events/s as the server counted them over the window (streams cut at its end are not in the client's records).
        const served = sleep(warmupMs).then(async () => {
          const a = server.stats();
          await sleep(durationMs);
          const b = server.stats();
          return ((b.events - a.events) / (b.ms - a.ms)) * 1000;
        });
        const [o, c, eventsPerS] = await Promise.all([client, control, served]);
        o.eventsPerS = eventsPerS;
        const held = o.errors === 0 && Math.min(...o.openAt) >= N && o.eldSamples > 100 && o.eldP99Ms <= ELD_P99_LIMIT_MS && o.eldMaxMs <= ELD_MAX_LIMIT_MS && o.rssMaxMB <= RSS_LIMIT_MB;
        runs.push({ ...v, round: r, o, c, held, load: load.text });
        log(`  round ${r + 1} ${v.build} ${v.shape}: open ${o.openAt.join('/')}, ${fmt(o.eventsPerS, 0)} events/s, ELD p99 ${fmt(o.eldP99Ms, 2)} max ${fmt(o.eldMaxMs, 1)} ms (control ${fmt(c.eldP99Ms, 2)} / ${fmt(c.eldMaxMs, 1)}), CPU ${fmt(o.cpuPct, 0)} %, run-queue wait ${fmt(o.runqWaitPct, 0)} %, RSS max ${fmt(o.rssMaxMB, 0)} MB, errors ${o.errors} → ${held ? 'held' : 'not held'}; other load before: ${load.text}\n`);
      }
    }
  } finally {
    await server.stop();
  }
  const tRuns = table(
    ['round', 'build', 'lengths', 'open at 25/50/75 %', 'events/s', 'runLoad ELD p50 / p99 / max (ms)', 'control ELD p50 / p99 / max (ms)', 'client CPU %', 'run-queue wait %', 'RSS max (MB)', 'errors', 'held', 'other load just before'],
    runs.map(({ round, build, shape, o, c, held, load }) => [round + 1, build, shape, o.openAt.join(' / '), fmt(o.eventsPerS, 0), `${fmt(o.eldP50Ms, 2)} / ${fmt(o.eldP99Ms, 2)} / ${fmt(o.eldMaxMs, 1)}`, `${fmt(c.eldP50Ms, 2)} / ${fmt(c.eldP99Ms, 2)} / ${fmt(c.eldMaxMs, 1)}`, fmt(o.cpuPct, 0), fmt(o.runqWaitPct, 1), fmt(o.rssMaxMB, 0), o.errors, held ? 'yes' : 'no', load]),
  );
  const of = (v) => runs.filter((x) => x.build === v.build && x.shape === v.shape);
  const tMed = table(
    ['build', 'lengths', 'runLoad ELD p99 (ms)', 'runLoad ELD max (ms)', 'control ELD p99 / max (ms)', 'RSS max (MB)', 'client CPU %', 'held'],
    variants.map((v) => {
      const rs = of(v);
      // A client starved so long that its ELD monitor recorded (almost) nothing has no ELD figure.
      const eldRs = rs.filter((x) => x.o.eldSamples > 100);
      return [v.build, v.shape, spread(eldRs.map((x) => x.o.eldP99Ms), 2), spread(eldRs.map((x) => x.o.eldMaxMs), 1), `${fmt(median(rs.map((x) => x.c.eldP99Ms)), 2)} / ${fmt(median(rs.map((x) => x.c.eldMaxMs)), 1)}`, spread(rs.map((x) => x.o.rssMaxMB), 0), spread(rs.map((x) => x.o.cpuPct), 0), `${rs.filter((x) => x.held).length} of ${rs.length}`];
    }),
  );
  const cur = variants.filter((v) => v.build.startsWith('current')).map(of);
  const med = (rs, k) => median(rs.filter((x) => !k.startsWith('eld') || x.o.eldSamples > 100).map((x) => x.o[k]));
  const okOf = (rs) => med(rs, 'eldP99Ms') <= ELD_P99_LIMIT_MS && med(rs, 'eldMaxMs') <= ELD_MAX_LIMIT_MS && med(rs, 'rssMaxMB') <= RSS_LIMIT_MB && rs.every((x) => x.o.errors === 0);
  const ok = cur.every(okOf);
  const md = [
    `Server \`${server.command}\` on CPU 1; client \`node benchmarks/ceiling-client.mjs '{"concurrency":${N},"durationMs":${durationMs},"warmupMs":${warmupMs},"abortAtEnd":true,"maxTokens":150 | "maxTokensRange":[50,150],…}'\` (runLoad on one VllmClient, connections = ${N}) on CPU 0${hasTaskset() ? '' : ' (taskset unavailable: not pinned)'}; beside it on CPU 0 over the same window, \`node benchmarks/eld-control.mjs ${durationMs}\` (a process that only measures its own event-loop delay: the machine's floor). ELD = \`monitorEventLoopDelay\`, 1 ms resolution, recorded interval − 1 ms, over the window after the warm-up. RSS max = sampled every 500 ms over the window. Run-queue wait % = time runLoad's main thread was runnable but not running (\`/proc/self/schedstat\`). ${rounds} round(s), variants in rotated order${baseline ? `; "baseline" = the build in BENCH_BASELINE_DIST (${baseline.replace(/^.*\/(?=[^/]+\/dist$)/, '…/')})` : ''}.`,
    '',
    'Median (min–max) per variant:',
    '',
    tMed,
    '',
    'Every run:',
    '',
    tRuns,
    '',
    `Target: ${N.toLocaleString('en-US')} streams with ELD p99 ≤ ${ELD_P99_LIMIT_MS} ms, max ≤ ${ELD_MAX_LIMIT_MS} ms and RSS ≤ ${RSS_LIMIT_MB} MB (medians, both lengths) → current build ${pass(variants.filter((v) => v.build === 'current').map(of).every(okOf))}, with \`--single-threaded-gc\` ${pass(variants.filter((v) => v.build !== 'current' && v.build.startsWith('current')).map(of).every(okOf))}.`,
  ].join('\n');
  appendSection(title, md, { contention: contended, mode: quick ? '--quick' : 'full' });
  const summaryOf = (rs) => `ELD p99 ${spread(rs.map((x) => x.o.eldP99Ms), 1)} ms, max ${spread(rs.map((x) => x.o.eldMaxMs), 0)} ms, RSS ${spread(rs.map((x) => x.o.rssMaxMB), 0)} MB`;
  return {
    title,
    markdown: md,
    summary: variants.map((v) => ({ metric: `${N} streams, ${v.shape} tokens (${v.build})`, value: summaryOf(of(v)), target: v.build.startsWith('current') ? `p99 ≤ ${ELD_P99_LIMIT_MS}, max ≤ ${ELD_MAX_LIMIT_MS} ms; ≤ ${RSS_LIMIT_MB} MB` : '(before)', ok: v.build.startsWith('current') ? okOf(of(v)) : undefined })),
  };
}
