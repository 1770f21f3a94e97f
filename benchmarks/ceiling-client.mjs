/**
 * Child process of the ceiling benchmark: runs vllm-probe's load generator (runLoad from
 * dist/bench/load.js, the engine of `vllm-probe bench`) at one concurrency against a target
 * and reports, as one JSON line on stdout, what it sustained and what it cost this process:
 * SSE content events/s, requests, errors, its own event-loop delay (perf_hooks
 * monitorEventLoopDelay, 1 ms resolution; delay = recorded interval − resolution), CPU % of one
 * core, and the most streams that were open at the same time (from the request records).
 *
 *   node benchmarks/ceiling-client.mjs '{"baseUrl":…,"model":…,"concurrency":64,"durationMs":10000,
 *                                        "warmupMs":2000,"maxTokens":128,"prompt":"…"}'
 *   ("maxTokensRange":[50,150] instead of maxTokens: a deterministic spread of lengths;
 *    "abortAtEnd":true ends the streams still open when the window ends instead of draining them;
 *    "dist":"/abs/path/dist" runs another build of the project)
 *
 * The parent pins it to one core with taskset. The first warmupMs of the load are excluded
 * from every figure (connections opening, JIT).
 */
import { readFileSync } from 'node:fs';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';

const o = JSON.parse(process.argv[2]);
// "dist": another build of the project (an absolute path), e.g. the code before a change, so a
// benchmark can interleave the two (held.mjs with BENCH_BASELINE_DIST).
const dist = o.dist ?? new URL('../dist', import.meta.url).pathname;
const { runLoadChecked } = await import(`${dist}/bench/load.js`);
const { VllmClient } = await import(`${dist}/vllm/client.js`);
const RES_MS = 1;
const eld = monitorEventLoopDelay({ resolution: RES_MS });
// The client `vllm-probe bench` builds (bench/commands.ts): one Pool for the origin, a connection per worker.
const client = new VllmClient({ baseUrl: o.baseUrl, maxResponseBytes: 16 * 1024 * 1024, connections: o.concurrency, connectTimeoutMs: 10_000, transport: 'undici' }); // as benchClient() (src/bench/http.ts)

/** /proc/self/schedstat: ns on CPU, ns waiting on a run queue (preempted by other processes). */
function schedstat() {
  try {
    const [run, wait] = readFileSync('/proc/self/schedstat', 'utf8').trim().split(/\s+/).map(Number);
    return { run, wait };
  } catch {
    return undefined;
  }
}

let cpu0;
let t0;
let sched0;
let sched1;
let t1;
let cpu1;
let endTimer;
const endWindow = () => {
  eld.disable();
  sched1 = schedstat();
  cpu1 = process.cpuUsage(cpu0);
  t1 = performance.now();
};
const warmTimer = setTimeout(() => {
  eld.reset();
  eld.enable();
  cpu0 = process.cpuUsage();
  sched0 = schedstat();
  t0 = performance.now();
  // The measured window ends when runLoad stops issuing requests (in-flight ones then drain).
  // Armed here, not at start-up: when a starved event loop runs both timers late they must
  // not fire in the same tick (an empty window); windowS in the output says how long it was.
  endTimer = setTimeout(endWindow, Math.max(0, startedAt + o.warmupMs + o.durationMs - performance.now()));
}, o.warmupMs);
const start = performance.now();
const startedAt = start;
// RSS sampled every 500 ms over the measured window: the most it reached, not the end value.
let rssMaxMB = 0;
const rssTimer = setInterval(() => {
  if (t0 !== undefined && t1 === undefined) rssMaxMB = Math.max(rssMaxMB, process.memoryUsage.rss() / 2 ** 20);
}, 500);
let inFlight = 0;
const openSamples = [];
const stream = client.stream.bind(client);
client.stream = (req) => {
  inFlight++;
  return stream(req).finally(() => inFlight--);
};
for (const f of [0.25, 0.5, 0.75]) setTimeout(() => openSamples.push(inFlight), o.warmupMs + f * o.durationMs).unref();
const stop = new AbortController();
if (o.abortAtEnd) setTimeout(() => stop.abort(), o.warmupMs + o.durationMs + 50).unref();
const result = await runLoadChecked(
  { client, model: o.model },
  {
    maxConsecutiveFailures: Infinity,
    backoffMs: 0,
    warmupMs: o.warmupMs,
    concurrency: o.concurrency,
    durationMs: o.warmupMs + o.durationMs,
    // maxTokensRange: varied lengths (deterministic), so closed-loop streams do not all end and
    // restart in the same instant (fixed lengths keep the workers in lock-step bursts)
    body: o.maxTokensRange
      ? (i) => ({ prompt: o.prompt, max_tokens: o.maxTokensRange[0] + ((i * 7919) % (o.maxTokensRange[1] - o.maxTokensRange[0] + 1)), ignore_eos: true })
      : () => ({ prompt: o.prompt, max_tokens: o.maxTokens, ignore_eos: true }),
    timeoutMs: o.timeoutMs ?? 120_000,
    signal: stop.signal, // runLoad puts one listener on it, whatever the concurrency
  },
);
const records = result.records;
const end = performance.now();
clearInterval(rssTimer);
clearTimeout(warmTimer);
clearTimeout(endTimer);
eld.disable();
sched1 ??= schedstat();
t1 ??= end;
const cpu = cpu1 ?? process.cpuUsage(cpu0 ?? { user: 0, system: 0 });
await client.close();

// Measured window: requests that started after the warm-up.
const warm = o.warmupMs;
const measured = records.filter((r) => r.start >= warm);
const ok = measured.filter((r) => r.outcome === 'success');
const first = Math.min(...measured.map((r) => r.start));
const last = Math.max(...measured.map((r) => r.end));
const spanS = (last - first) / 1000;
const events = ok.reduce((a, r) => a + (r.outputTokens ?? 0), 0);
// Events inside the measured window [warm, warm + duration]: each request's tokens spread evenly
// over its [start, end] (long streams cross the window's edges).
const w0 = warm;
const w1 = warm + o.durationMs;
let windowEvents = 0;
for (const r of records) {
  if (r.outcome !== 'success' || !r.outputTokens) continue;
  const overlap = Math.min(r.end, w1) - Math.max(r.start, w0);
  if (overlap > 0) windowEvents += r.outputTokens * (r.end > r.start ? overlap / (r.end - r.start) : 1);
}

// Most requests in flight at once (sweep over start/end of every record, warm-up included).
const edges = [];
for (const r of records) {
  edges.push([r.start, 1], [r.end, -1]);
}
edges.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
let open = 0;
let maxOpen = 0;
for (const [, d] of edges) {
  open += d;
  maxOpen = Math.max(maxOpen, open);
}
// Streams open at 25/50/75 % of the measured window (a held stream is open at every instant of
// it), counted as they are handed to the client and settle (records miss aborted streams).
const openAt = openSamples;

const q = (p) => Math.max(0, eld.percentile(p) / 1e6 - RES_MS);
const wallS = (t1 - (t0 ?? start)) / 1000;
const runqWaitPct = sched0 && sched1 ? ((sched1.wait - sched0.wait) / 1e6 / (wallS * 1000)) * 100 : null;
const errorsByOutcome = {};
for (const r of measured) if (r.outcome !== 'success') errorsByOutcome[r.outcome] = (errorsByOutcome[r.outcome] ?? 0) + 1;
process.stdout.write(
  `${JSON.stringify({
    concurrency: o.concurrency,
    requests: ok.length,
    errors: measured.length - ok.length,
    errorsByOutcome,
    spanS,
    eventsPerS: windowEvents / (o.durationMs / 1000),
    eventsPerSCompleted: spanS > 0 ? events / spanS : 0,
    reqPerS: spanS > 0 ? ok.length / spanS : 0,
    eldP50Ms: q(50),
    eldP99Ms: q(99),
    eldMaxMs: Math.max(0, eld.max / 1e6 - RES_MS),
    eldSamples: eld.count,
    windowS: wallS,
    cpuPct: ((cpu.user + cpu.system) / 1000 / (wallS * 1000)) * 100,
    runqWaitPct,
    sysCpuPct: (cpu.system / 1000 / (wallS * 1000)) * 100,
    maxOpen,
    openAt,
    ttftP50Ms: pctOf(ok.map((r) => r.ttft * 1000), 50),
    ttftP99Ms: pctOf(ok.map((r) => r.ttft * 1000), 99),
    rssMB: process.memoryUsage().rss / 2 ** 20,
    rssMaxMB: Math.max(rssMaxMB, process.memoryUsage().rss / 2 ** 20),
    // runLoad's own record of its event-loop delay (whole load after the warm-up, drain
    // included); absent in builds before issue 28.
    clientDelay: result.clientDelay ?? null,
  })}\n`,
);

function pctOf(xs, p) {
  const s = xs.filter(Number.isFinite).sort((a, b) => a - b);
  if (!s.length) return null;
  const idx = (p / 100) * (s.length - 1);
  const lo = Math.floor(idx);
  return s[lo] + (s[Math.ceil(idx)] - s[lo]) * (idx - lo);
}
