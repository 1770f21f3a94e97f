/**
 * 1. Probe overhead: TTFT as measured by vllm-probe's client (streamCompletion: undici + the
 * eventsource-parser) against a minimal raw-socket client (node:net, a hand-written HTTP/1.1
 * request, timestamp at the socket read that carries the first `data:` event with content),
 * both against the emulator in another process with a fixed 50 ms first-token delay.
 * Interleaved in pairs (order alternates: ABBA), the paired difference is the overhead.
 *
 * Two connection modes:
 *  - fresh: a new TCP connection per request for both clients. This is what the daemon's TTFT
 *    probe does in production: it runs every 15 s and servers close idle keep-alive
 *    connections after ~5 s (uvicorn, the emulator), so each probe connects anew.
 *  - keep-alive: both reuse one connection (what `bench` load does).
 */
import { connect } from 'node:net';
import { performance } from 'node:perf_hooks';
import { parseConfig } from '../dist/config.js';
import { deriveTimings, streamCompletion } from '../dist/synthetic/stream.js';
import { PROBE_USER } from '../dist/synthetic/ttft.js';
import { createTargetClient } from '../dist/target.js';
import { streamCompletionDispatch } from './candidate-stream.mjs';
import { appendSection, contention, fmt, max, median, pass, pct, sleep, spread, startEmulator, table } from './lib.mjs';

export const title = '1. Probe overhead (vllm-probe client vs raw socket)';

const MODEL = 'bench-model';

/** The TTFT probe's body with the default config (probes.ttft). */
function probeBody() {
  const cfg = parseConfig({}).probes.ttft;
  return {
    model: MODEL,
    stream: true,
    stream_options: { include_usage: true },
    temperature: 0,
    max_tokens: cfg.max_tokens,
    ignore_eos: true,
    user: PROBE_USER,
    prompt: cfg.prompt,
  };
}

/** Finds the first complete SSE event with non-empty choices[*].text in `text` from `from`. */
function firstContent(text, from) {
  let i = from;
  for (;;) {
    const start = text.indexOf('data: ', i);
    if (start < 0) return { found: false, next: i };
    const end = text.indexOf('\n\n', start);
    if (end < 0) return { found: false, next: start };
    const data = text.slice(start + 6, end);
    i = end + 2;
    if (data[0] !== '{') continue;
    try {
      const chunk = JSON.parse(data);
      if (Array.isArray(chunk.choices) && chunk.choices.some((c) => typeof c.text === 'string' && c.text.length > 0)) return { found: true, next: i };
    } catch {
      // a chunk-size line inside: cannot happen with one event per HTTP chunk; skip
    }
  }
}

/** Raw HTTP/1.1 over node:net. fresh: one connection per request, closed at the first token. */
class RawClient {
  constructor(url, body, keepAlive) {
    const u = new URL(url);
    this.host = u.hostname;
    this.port = Number(u.port);
    this.keepAlive = keepAlive;
    const json = JSON.stringify(body);
    this.payload = Buffer.from(
      `POST /v1/completions HTTP/1.1\r\nHost: ${u.host}\r\nContent-Type: application/json\r\nAccept: text/event-stream\r\n` +
        `Connection: ${keepAlive ? 'keep-alive' : 'close'}\r\nContent-Length: ${Buffer.byteLength(json)}\r\n\r\n${json}`,
    );
    this.socket = undefined;
  }

  /** Resolves with TTFT in ms once the response is done (keep-alive) or at the first token (fresh). */
  request() {
    return new Promise((resolve, reject) => {
      const t0 = performance.now();
      let sock = this.socket;
      if (!sock || sock.destroyed) {
        sock = connect(this.port, this.host);
        sock.setNoDelay(true);
        if (this.keepAlive) this.socket = sock;
      }
      let text = '';
      let bodyAt = -1;
      let scan = 0;
      let ttft;
      const onData = (d) => {
        const t = performance.now();
        text += d.toString('latin1');
        if (bodyAt < 0) {
          const h = text.indexOf('\r\n\r\n');
          if (h < 0) return;
          bodyAt = h + 4;
          scan = bodyAt;
        }
        if (ttft === undefined) {
          const r = firstContent(text, scan);
          scan = r.next;
          if (r.found) {
            ttft = t - t0;
            if (!this.keepAlive) {
              cleanup();
              sock.destroy();
              return resolve(ttft);
            }
          }
        }
        // keep-alive: read to the end of the chunked body before the next request
        if (ttft !== undefined && text.endsWith('\r\n0\r\n\r\n')) {
          cleanup();
          resolve(ttft);
        }
      };
      const onError = (err) => {
        cleanup();
        reject(err);
      };
      const onClose = () => {
        cleanup();
        if (ttft !== undefined) resolve(ttft);
        else reject(new Error('raw client: connection closed before the first token'));
      };
      const cleanup = () => {
        sock.off('data', onData);
        sock.off('error', onError);
        sock.off('close', onClose);
      };
      sock.on('data', onData);
      sock.on('error', onError);
      sock.on('close', onClose);
      sock.write(this.payload);
    });
  }

  close() {
    this.socket?.destroy();
  }
}

/** vllm-probe's client exactly as the TTFT probe calls it (dispatcher from createTargetClient). */
class ProbeClient {
  constructor(url, body, keepAlive, impl = 'current') {
    this.config = parseConfig({ target: { url } });
    this.body = body;
    this.keepAlive = keepAlive;
    this.impl = impl;
    this.client = keepAlive ? createTargetClient(this.config, undefined) : undefined;
  }

  async request() {
    // fresh mode: a new Agent per request. In production the daemon keeps one Agent, but undici
    // drops the origin's pool when its last connection closes (the server's 5 s idle close,
    // probes every 15 s), so every probe builds a new pool + connection just like this.
    const client = this.client ?? createTargetClient(this.config, undefined);
    try {
      const timeoutSignal = AbortSignal.timeout(10_000);
      const req = {
        baseUrl: client.baseUrl,
        path: '/v1/completions',
        body: this.body,
        dispatcher: client.dispatcher,
        signal: timeoutSignal,
        timeoutSignal,
        maxResponseBytes: client.maxResponseBytes,
      };
      const r = this.impl === 'current' ? await streamCompletion(req) : await streamCompletionDispatch(req);
      if (r.outcome !== 'success') throw new Error(`probe client: ${r.outcome} ${r.detail ?? ''}`);
      // candidate-sent: the clock starts when undici hands the request to the socket
      if (this.impl === 'candidate-sent') return r.contentAt[0] - r.sentAt;
      return deriveTimings(r).ttft * 1000;
    } finally {
      if (!this.client) await client.close();
    }
  }

  async close() {
    await this.client?.close();
  }
}

/**
 * Where vllm-probe's extra time goes (the profile evidence for this benchmark): undici's
 * diagnostics channels give the moment it starts connecting, is connected and has written the
 * request; wrapping the connection's socket.read() gives the moment the bytes carrying the first
 * token were read from the kernel. Compared with the raw client's connect and write times.
 */
async function attribution(url, n) {
  const dc = await import('node:diagnostics_channel');
  const body = probeBody();
  const config = parseConfig({ target: { url } });
  let m = {};
  let reads = [];
  const on = {
    'undici:client:beforeConnect': () => (m.beforeConnect = performance.now()),
    'undici:client:connected': ({ socket }) => {
      m.connected = performance.now();
      const orig = socket.read;
      socket.read = function (...args) {
        const chunk = orig.apply(this, args);
        if (chunk) reads.push(performance.now());
        return chunk;
      };
    },
    'undici:client:sendHeaders': () => (m.sent = performance.now()),
    'undici:request:headers': () => (m.headers = performance.now()),
  };
  for (const [ch, fn] of Object.entries(on)) dc.subscribe(ch, fn);
  const rows = [];
  const rawRows = [];
  const u = new URL(url);
  const json = JSON.stringify(body);
  const payload = `POST /v1/completions HTTP/1.1\r\nHost: ${u.host}\r\nContent-Type: application/json\r\nAccept: text/event-stream\r\nConnection: close\r\nContent-Length: ${Buffer.byteLength(json)}\r\n\r\n${json}`;
  try {
    for (let i = -10; i < n; i++) {
      m = {};
      reads = [];
      const client = createTargetClient(config, undefined);
      const timeoutSignal = AbortSignal.timeout(10_000);
      const r = await streamCompletion({ baseUrl: url, path: '/v1/completions', body, dispatcher: client.dispatcher, signal: timeoutSignal, timeoutSignal, maxResponseBytes: 1 << 24 });
      await client.close();
      const first = r.contentAt[0];
      const firstRead = reads.filter((t) => t <= first).pop();
      if (i >= 0) rows.push({ toConnect: m.beforeConnect - r.startedAt, connect: m.connected - m.beforeConnect, toWritten: m.sent - r.startedAt, readToTimestamp: first - firstRead });
      await sleep(3);
      // raw: connect + one write, timestamps of 'connect' and of the write's completion
      const t0 = performance.now();
      const raw = await new Promise((resolve, reject) => {
        const x = { };
        const sock = connect(Number(u.port), u.hostname, () => (x.connected = performance.now()));
        sock.setNoDelay(true);
        sock.write(payload, () => (x.written = performance.now()));
        sock.on('data', () => {
          sock.destroy();
          resolve(x);
        });
        sock.on('error', reject);
      });
      if (i >= 0) rawRows.push({ connect: raw.connected - t0, toWritten: raw.written - t0 });
      await sleep(3);
    }
  } finally {
    for (const [ch, fn] of Object.entries(on)) dc.unsubscribe(ch, fn);
  }
  const med = (xs, k) => median(xs.map((x) => x[k]));
  return {
    n,
    probe: { toConnect: med(rows, 'toConnect'), connect: med(rows, 'connect'), toWritten: med(rows, 'toWritten'), readToTimestamp: med(rows, 'readToTimestamp'), readToTimestampP99: pct(rows.map((x) => x.readToTimestamp), 99) },
    raw: { connect: med(rawRows, 'connect'), toWritten: med(rawRows, 'toWritten') },
  };
}

const CLIENTS_FRESH = ['probe', 'candidate', 'raw', 'control'];
const CLIENTS_KA = ['probe', 'candidate', 'candidateSent', 'raw', 'control'];

/**
 * One run: every iteration sends one request with each of four clients, in an order rotated
 * each iteration: vllm-probe's streamCompletion ("probe"), the dispatch-based candidate, the
 * raw-socket reference ("raw") and a second, identical raw client ("control"). control − raw is
 * an A/A pair: its spread is the noise floor of the paired difference on this machine now.
 */
async function pairedRun(url, keepAlive, iterations, warmup) {
  const body = probeBody();
  const CLIENTS = keepAlive ? CLIENTS_KA : CLIENTS_FRESH;
  const clients = {
    probe: new ProbeClient(url, body, keepAlive, 'current'),
    candidate: new ProbeClient(url, body, keepAlive, 'candidate'),
    ...(keepAlive ? { candidateSent: new ProbeClient(url, body, keepAlive, 'candidate-sent') } : {}),
    raw: new RawClient(url, body, keepAlive),
    control: new RawClient(url, body, keepAlive),
  };
  const ms = Object.fromEntries(CLIENTS.map((c) => [c, []]));
  try {
    for (let i = -warmup; i < iterations; i++) {
      const k = ((i % CLIENTS.length) + CLIENTS.length) % CLIENTS.length;
      const order = [...CLIENTS.slice(k), ...CLIENTS.slice(0, k)];
      const got = {};
      for (const c of order) {
        got[c] = await clients[c].request();
        await sleep(3);
      }
      if (i >= 0) for (const c of CLIENTS) ms[c].push(got[c]);
    }
  } finally {
    for (const c of Object.values(clients)) await c.close();
  }
  const diffs = (c) => ms[c].map((v, i) => v - ms.raw[i]);
  const stats = (c) => {
    const d = diffs(c);
    return { median: median(d), p99: pct(d, 99), p1: pct(d, 1), max: max(d), ttftMedian: median(ms[c]) };
  };
  return { iterations, probe: stats('probe'), candidate: stats('candidate'), ...(keepAlive ? { candidateSent: stats('candidateSent') } : {}), control: stats('control'), rawMedian: median(ms.raw) };
}

export async function run(ctx) {
  const { quick, log } = ctx;
  const contended = contention();
  const emuOptions = { model: MODEL, baseTtftMs: 50, prefillMsPerToken: 0, coldStartMs: 0, itlMs: 1, batchSlowdown: 0 };
  const emu = await startEmulator(emuOptions, { preciseTimers: true });
  log(`  emulator (own process, pid ${emu.pid}) on ${emu.url}: ${JSON.stringify(emuOptions)}\n`);
  const plan = quick
    ? [
        { mode: 'fresh', runs: 1, pairs: 100 },
        { mode: 'keep-alive', runs: 1, pairs: 100 },
      ]
    : [
        { mode: 'fresh', runs: 3, pairs: 500 },
        { mode: 'keep-alive', runs: 1, pairs: 500 },
      ];
  const results = {};
  try {
    for (const p of plan) {
      results[p.mode] = [];
      for (let r = 0; r < p.runs; r++) {
        const t0 = performance.now();
        const res = await pairedRun(emu.url, p.mode === 'keep-alive', p.pairs, 20);
        results[p.mode].push(res);
        log(
          `  ${p.mode} run ${r + 1}/${p.runs}: ${p.pairs} iterations in ${((performance.now() - t0) / 1000).toFixed(0)} s; probe − raw median ${fmt(res.probe.median)} ms, p99 ${fmt(res.probe.p99)} ms; ` +
            `candidate ${fmt(res.candidate.median)} / ${fmt(res.candidate.p99)}; control (A/A) ${fmt(res.control.median)} / ${fmt(res.control.p99)}\n`,
        );
      }
    }
    log('  attribution: undici diagnostics channels + socket.read timestamps…\n');
    results.attribution = await attribution(emu.url, quick ? 50 : 200);
  } finally {
    await emu.stop();
  }
  const att = results.attribution;
  delete results.attribution;

  const rows = [];
  for (const [mode, runs] of Object.entries(results)) {
    for (const [client, label] of [
      ['probe', 'vllm-probe streamCompletion (current)'],
      ['candidate', 'candidate: undici dispatch handler'],
      ['candidateSent', 'candidate + clock from the request write (onRequestStart)'],
      ['control', 'control: 2nd raw client (A/A noise floor)'],
    ]) {
      if (!runs[0][client]) continue;
      rows.push([
        mode,
        label,
        `${runs.length} × ${runs[0].iterations}`,
        spread(runs.map((r) => r[client].ttftMedian), 2),
        spread(runs.map((r) => r[client].median)),
        spread(runs.map((r) => r[client].p99)),
        spread(runs.map((r) => r[client].p1)),
      ]);
    }
  }
  const fresh = results.fresh;
  const med = median(fresh.map((r) => r.probe.median));
  const p99 = median(fresh.map((r) => r.probe.p99));
  const ctlP99 = median(fresh.map((r) => r.control.p99));
  const medOk = med <= 0.2;
  const p99Ok = p99 <= 1;
  const md = [
    `Emulator in its own process with exact timers (\`benchmarks/emulator-proc.mjs --precise-timers\`): \`${JSON.stringify(emuOptions)}\` — first token 50 ms after the request body is read, then one token per ms.`,
    `Request: the TTFT probe's body (\`/v1/completions\`, default prompt, max_tokens 16, ignore_eos, stream + include_usage). Each iteration sends one request per client in a rotated order; 20 warm-up iterations dropped per run; 3 ms between requests.`,
    `Difference = client's TTFT − raw-socket TTFT of the same iteration, in ms. Spread = median (min–max) over runs. The raw client (node:net, one write of a hand-made HTTP/1.1 request, timestamp at the socket read carrying the first content event) is the reference.`,
    '',
    table(['mode', 'client', 'runs × iterations', 'TTFT median (ms)', 'diff median', 'diff p99', 'diff p1'], rows),
    '',
    `Raw reference TTFT median: ${spread(fresh.map((r) => r.rawMedian), 2)} ms (fresh).`,
    '',
    `Where vllm-probe's extra time goes (fresh connection, medians of ${att.n} requests; undici diagnostics channels and a wrapped socket.read()):`,
    '',
    table(
      ['phase (ms)', 'vllm-probe (streamCompletion → undici request())', 'raw socket'],
      [
        ['start → connect() begins', fmt(att.probe.toConnect), '≈ 0'],
        ['TCP connect', fmt(att.probe.connect), fmt(att.raw.connect)],
        ['start → request written to the socket', fmt(att.probe.toWritten), fmt(att.raw.toWritten)],
        ['socket read with the first token → TTFT timestamp (median / p99)', `${fmt(att.probe.readToTimestamp)} / ${fmt(att.probe.readToTimestampP99)}`, '0 (timestamp in the read callback)'],
      ],
    ),
    '',
    `Target (fresh connection = the probe's production mode, vllm-probe's current client): median ≤ 0.2 ms → ${pass(medOk)} (${fmt(med)} ms); p99 ≤ 1 ms → ${pass(p99Ok)} (${fmt(p99)} ms; the A/A control's p99 in the same runs is ${fmt(ctlP99)} ms).`,
  ].join('\n');
  appendSection(title, md, { contention: contended, mode: quick ? '--quick' : 'full' });
  const ka = results['keep-alive'];
  return {
    title,
    markdown: md,
    summary: [
      { metric: 'probe overhead, median of paired diff (fresh conn.)', value: `${spread(fresh.map((r) => r.probe.median))} ms`, target: '≤ 0.2 ms', ok: medOk },
      { metric: 'probe overhead, p99 of paired diff (fresh conn.)', value: `${spread(fresh.map((r) => r.probe.p99))} ms (A/A noise floor p99 ${fmt(ctlP99)})`, target: '≤ 1 ms', ok: p99Ok },
      { metric: 'candidate (dispatch handler), median / p99 (fresh)', value: `${spread(fresh.map((r) => r.candidate.median))} / ${spread(fresh.map((r) => r.candidate.p99))} ms`, target: '(after, src/ change)', ok: undefined },
      ...(ka
        ? [
            { metric: 'probe overhead, median / p99 (keep-alive)', value: `${spread(ka.map((r) => r.probe.median))} / ${spread(ka.map((r) => r.probe.p99))} ms`, target: '(info)', ok: undefined },
            { metric: 'candidate + clock from request write, median / p99 (keep-alive)', value: `${spread(ka.map((r) => r.candidateSent.median))} / ${spread(ka.map((r) => r.candidateSent.p99))} ms`, target: '(after, src/ change)', ok: undefined },
          ]
        : []),
    ],
  };
}
