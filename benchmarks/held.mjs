/**
 * 2b. Streams held: vllm-probe's runLoad (benchmarks/ceiling-client.mjs, pinned to CPU 0)
 * holding N concurrent streams against benchmarks/sse-server (`-itl-ms 100`: 10 events/s per
 * stream, CPU 1), 50–150 tokens per request. N is held when every sampled instant had N open, no
 * request failed, runLoad's event-loop delay p99 stayed ≤ 5 ms and its RSS ≤ 180 MB.
 *
 * Beside each level, a control process on the same core (benchmarks/eld-control.mjs) measures
 * only its own event-loop delay over the same window: the floor that the machine (other
 * processes, the client beside it) puts under any ELD figure on that core right now.
 */
import { join } from 'node:path';
import { appendSection, BENCH_DIR, contention, fmt, hasTaskset, min, pass, sleep, spawnTracked, startSseServer, table } from './lib.mjs';

export const title = '2b. Streams held (runLoad, 10 events/s per stream, one core)';

const ELD_LIMIT_MS = 5;
const RSS_LIMIT_MB = 180;

async function runJson(args, cpu) {
  const child = spawnTracked(process.execPath, args, { cpu });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  const code = await new Promise((r) => child.on('exit', r));
  if (code !== 0) throw new Error(`${args[0]} exited ${code}: ${child.stderrTail().slice(-1500)}`);
  return JSON.parse(out.trim().split('\n').pop());
}

export async function run(ctx) {
  const { quick, log } = ctx;
  const contended = contention();
  const levels = quick ? [2000] : [1000, 2000, 4000];
  const durationMs = quick ? 8000 : 15_000;
  const warmupMs = quick ? 4000 : 6000;
  const server = await startSseServer({ itlMs: 100 }, { cpu: 1 });
  const rows = [];
  try {
    for (const n of levels) {
      const client = runJson([join(BENCH_DIR, 'ceiling-client.mjs'), JSON.stringify({ baseUrl: server.url, model: 'bench-model', prompt: 'Write one sentence about the ocean.', concurrency: n, durationMs, warmupMs, maxTokensRange: [50, 150] })], 0);
      const control = sleep(warmupMs).then(() => runJson([join(BENCH_DIR, 'eld-control.mjs'), String(durationMs)], 0));
      const [o, c] = await Promise.all([client, control]);
      const held = o.errors === 0 && min(o.openAt) >= n && o.eldSamples > 100 && o.eldP99Ms <= ELD_LIMIT_MS && o.rssMB <= RSS_LIMIT_MB;
      rows.push({ n, o, c, held });
      log(`  held c=${n}: open ${o.openAt.join('/')}, ${fmt(o.eventsPerS, 0)} events/s, ELD p99 ${fmt(o.eldP99Ms, 2)} ms (control ${fmt(c.eldP99Ms, 2)}), CPU ${fmt(o.cpuPct, 0)} %, run-queue wait ${fmt(o.runqWaitPct, 0)} %, RSS ${fmt(o.rssMB, 0)} MB, errors ${o.errors} → ${held ? 'held' : 'not held'}\n`);
    }
  } finally {
    await server.stop();
  }
  const t = table(
    ['concurrent streams', 'open at 25/50/75 % of window', 'events/s', 'runLoad ELD p50 / p99 / max (ms)', 'control ELD p50 / p99 / max (ms)', 'client CPU %', 'run-queue wait %', 'RSS (MB)', 'errors', 'held'],
    rows.map(({ n, o, c, held }) => [n, o.openAt.join(' / '), fmt(o.eventsPerS, 0), `${fmt(o.eldP50Ms, 2)} / ${fmt(o.eldP99Ms, 2)} / ${fmt(o.eldMaxMs, 1)}`, `${fmt(c.eldP50Ms, 2)} / ${fmt(c.eldP99Ms, 2)} / ${fmt(c.eldMaxMs, 1)}`, fmt(o.cpuPct, 0), fmt(o.runqWaitPct, 1), fmt(o.rssMB, 0), o.errors, held ? 'yes' : 'no']),
  );
  const r2 = rows.find((r) => r.n === 2000);
  const ok = !!r2?.held;
  const md = [
    `Server \`${server.command}\` on CPU 1; client \`node benchmarks/ceiling-client.mjs '{"concurrency":N,"durationMs":${durationMs},"warmupMs":${warmupMs},"maxTokensRange":[50,150],…}'\` (runLoad on one VllmClient, connections = N) on CPU 0${hasTaskset() ? '' : ' (taskset unavailable: not pinned)'}; beside it on CPU 0 over the same window, \`node benchmarks/eld-control.mjs ${durationMs}\` (a process that only measures its own event-loop delay: the machine's floor). ELD = \`monitorEventLoopDelay\`, 1 ms resolution, recorded interval − 1 ms. Run-queue wait % = time runLoad's main thread was runnable but not running (\`/proc/self/schedstat\`).`,
    '',
    t,
    '',
    `Target: 2,000 streams with ELD p99 ≤ ${ELD_LIMIT_MS} ms and RSS ≤ ${RSS_LIMIT_MB} MB → ${pass(ok)}${r2 ? ` (ELD p99 ${fmt(r2.o.eldP99Ms, 2)} ms with the control at ${fmt(r2.c.eldP99Ms, 2)} ms; RSS ${fmt(r2.o.rssMB, 0)} MB)` : ''}.`,
  ].join('\n');
  appendSection(title, md, { contention: contended, mode: quick ? '--quick' : 'full' });
  return {
    title,
    markdown: md,
    summary: [{ metric: '2,000 streams: ELD p99 (control) / RSS', value: r2 ? `${fmt(r2.o.eldP99Ms, 2)} ms (control ${fmt(r2.c.eldP99Ms, 2)}) / ${fmt(r2.o.rssMB, 0)} MB` : 'n/a', target: `≤ ${ELD_LIMIT_MS} ms / ≤ ${RSS_LIMIT_MB} MB`, ok }],
  };
}
