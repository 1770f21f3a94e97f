/**
 * 1. Probe overhead: TTFT as measured by vllm-probe's client (VllmClient#stream, the TTFT
 * probe's call: src/vllm/stream.ts on the node:http transport) against a minimal raw-socket client
 * (node:net, a hand-written HTTP/1.1 request, timestamp at the socket read that carries the first
 * `data:` event with content), and curl's first-byte time, all against benchmarks/sse-server
 * (Go, its own process) sending the headers at once and the first token exactly 50 ms later
 * (`-precise`: sleep, then spin to the deadline). Interleaved: every iteration runs each client
 * once, in an order rotated each iteration; the paired difference is the overhead.
 *
 * Two connection modes:
 *  - fresh: a new TCP connection per request for every client. This is the TTFT probe in
 *    production: one VllmClient (one node:http keep-alive Agent) for the daemon's life, a probe every 15 s,
 *    idle sockets closed after 4 s, so each probe connects anew on the same Agent. Here the
 *    server closes idle connections after 20 ms (`-idle-ms 20`), which gives the same thing;
 *    the benchmark checks that every probe request opened exactly one connection.
 *  - keep-alive: every client reuses one connection (what `bench` load does).
 */
import { spawn } from 'node:child_process';
import diagnostics from 'node:diagnostics_channel';
import { connect } from 'node:net';
import { performance } from 'node:perf_hooks';
import { parseConfig } from '../dist/config.js';
import { PROBE_USER } from '../dist/synthetic/request.js';
import { VllmClient } from '../dist/vllm/client.js';
import { deriveTimings, streamingBody } from '../dist/vllm/stream.js';
import { appendSection, contention, fmt, max, median, pass, pct, sleep, spread, startSseServer, table } from './lib.mjs';

export const title = '1. Probe overhead (vllm-probe client vs raw socket)';

const MODEL = 'bench-model';

/** The TTFT probe's body with the default config (probes.ttft), as src/synthetic/ttft.ts builds it. */
function probeBody() {
  const cfg = parseConfig({}).probes.ttft;
  return streamingBody(MODEL, { max_tokens: cfg.max_tokens, ignore_eos: true, user: PROBE_USER, prompt: cfg.prompt });
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

  /** Resolves with { ttft, firstByte } in ms once the response is done (keep-alive) or at the first token (fresh). */
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
      let firstByte;
      const onData = (d) => {
        const t = performance.now();
        firstByte ??= t - t0;
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
              return resolve({ ttft, firstByte });
            }
          }
        }
        // keep-alive: read to the end of the chunked body before the next request
        if (ttft !== undefined && text.endsWith('\r\n0\r\n\r\n')) {
          cleanup();
          resolve({ ttft, firstByte });
        }
      };
      const onError = (err) => {
        cleanup();
        reject(err);
      };
      const onClose = () => {
        cleanup();
        if (ttft !== undefined) resolve({ ttft, firstByte });
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

/**
 * Client connections opened (Node's `net.client.socket` diagnostics channel: the daemon's
 * node:http Agent connects through net), to check that fresh mode is fresh. Requests run one at
 * a time, so a probe request's count is its own.
 */
let connects = 0;
diagnostics.subscribe('net.client.socket', () => connects++);

/**
 * vllm-probe's client as the daemon holds it: one VllmClient for the whole run (the daemon
 * builds one in app.ts with config defaults), each request exactly the TTFT probe's call.
 */
class ProbeClient {
  constructor(url, body, { fromSent = false } = {}) {
    const cfg = parseConfig({ target: { url } });
    this.client = new VllmClient({ baseUrl: url, maxResponseBytes: cfg.target.max_response_bytes ?? 16 * 1024 * 1024 });
    this.body = body;
    this.fromSent = fromSent;
    this.connectsPerRequest = [];
  }

  async request() {
    const c0 = connects;
    const r = await this.client.stream({ path: '/v1/completions', body: this.body, timeoutMs: 10_000, requestId: 'vllm-probe-ttft-bench' });
    this.connectsPerRequest.push(connects - c0);
    if (r.outcome !== 'success') throw new Error(`probe client: ${r.outcome} ${r.detail ?? ''}`);
    // fromSent: the clock from the transport's onRequestStart (connection up, request about to be written)
    const ttft = this.fromSent ? r.tokenAt[0] - r.sentAt : deriveTimings(r).ttft * 1000;
    return { ttft, firstByte: r.headersAt - (this.fromSent ? r.sentAt : r.startedAt) };
  }

  close() {
    return this.client.close();
  }
}

/**
 * curl (`-w %{time_starttransfer}`: from curl's transfer start, connect included, to the first
 * response byte) with the same request on a fresh connection. curl cannot timestamp the first
 * token, so only its first-byte time is compared (with the raw client's first byte). The process
 * start-up is outside curl's own timer.
 */
class CurlClient {
  constructor(url, body) {
    this.args = ['-sS', '-N', '-o', '/dev/null', '-w', '%{time_starttransfer}', '-H', 'content-type: application/json', '-H', 'accept: text/event-stream', '--data-binary', JSON.stringify(body), `${url}/v1/completions`];
  }

  request() {
    return new Promise((resolve, reject) => {
      const p = spawn('curl', this.args, { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      p.stdout.on('data', (d) => (out += d));
      p.on('error', reject);
      p.on('exit', (code) => (code === 0 ? resolve({ ttft: NaN, firstByte: Number(out) * 1000 }) : reject(new Error(`curl exited ${code}`))));
    });
  }

  close() {}
}

/**
 * Where vllm-probe's time goes on a fresh connection (Node's `net.client.socket` channel: connect
 * begins; the socket's 'connect' event; its first _write/_writev: request headers and body
 * handed to the socket; its 'data' events: the read that carried the first token) against the raw
 * client's connect and write.
 */
async function attribution(url, n) {
  const body = probeBody();
  let m = {};
  let reads = [];
  let measuring = false; // only the probe's sockets, not the raw client's below
  const on = {
    'net.client.socket': ({ socket }) => {
      if (!measuring) return;
      m.beforeConnect = performance.now();
      socket.once('connect', () => (m.connected = performance.now()));
      // Writable calls _write or _writev (corked) once the bytes go to the handle.
      for (const k of ['_write', '_writev']) {
        const orig = socket[k];
        socket[k] = function (...args) {
          m.sent ??= performance.now();
          return orig.apply(this, args);
        };
      }
      // node:http reads in flowing mode: each read arrives as a 'data' event (no read() call).
      socket.prependListener('data', () => reads.push(performance.now()));
    },
  };
  for (const [ch, fn] of Object.entries(on)) diagnostics.subscribe(ch, fn);
  const rows = [];
  const rawRows = [];
  const u = new URL(url);
  const json = JSON.stringify(body);
  const payload = `POST /v1/completions HTTP/1.1\r\nHost: ${u.host}\r\nContent-Type: application/json\r\nAccept: text/event-stream\r\nConnection: close\r\nContent-Length: ${Buffer.byteLength(json)}\r\n\r\n${json}`;
  const probe = new ProbeClient(url, body);
  try {
    for (let i = -10; i < n; i++) {
      m = {};
      reads = [];
      measuring = true;
      const called = performance.now();
      const r = await probe.client.stream({ path: '/v1/completions', body, timeoutMs: 10_000 });
      measuring = false;
      const first = r.tokenAt[0];
      // The probe stamps a chunk at its socket's read (src/vllm/transport.ts), in a listener that
      // runs just before this one: the read that carried the token is the first one at or after it.
      const firstRead = reads.find((t) => t >= first) ?? reads.filter((t) => t <= first).pop();
      if (i >= 0 && m.beforeConnect !== undefined) rows.push({ toClock: r.startedAt - called, socketToClock: r.startedAt - m.beforeConnect, connect: m.connected - r.startedAt, toWritten: m.sent - r.startedAt, toOnRequestStart: r.sentAt - r.startedAt, readToTimestamp: first - firstRead });
      await sleep(30);
      const t0 = performance.now();
      const raw = await new Promise((resolve, reject) => {
        const x = {};
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
      await sleep(30);
    }
  } finally {
    for (const [ch, fn] of Object.entries(on)) diagnostics.unsubscribe(ch, fn);
    await probe.close();
  }
  const med = (xs, k) => median(xs.map((x) => x[k]));
  return {
    n: rows.length,
    probe: { toClock: med(rows, 'toClock'), socketToClock: med(rows, 'socketToClock'), connect: med(rows, 'connect'), toWritten: med(rows, 'toWritten'), toOnRequestStart: med(rows, 'toOnRequestStart'), readToTimestamp: med(rows, 'readToTimestamp'), readToTimestampP99: pct(rows.map((x) => x.readToTimestamp), 99) },
    raw: { connect: med(rawRows, 'connect'), toWritten: med(rawRows, 'toWritten') },
  };
}

const CLIENTS_FRESH = ['probe', 'raw', 'control', 'curl'];
const CLIENTS_KA = ['probe', 'probeSent', 'raw', 'control'];

/**
 * One run: every iteration sends one request with each client, in an order rotated each
 * iteration. control − raw is an A/A pair (two identical raw clients): its spread is the noise
 * floor of a paired difference on this machine now.
 */
async function pairedRun(url, keepAlive, iterations, warmup) {
  const body = probeBody();
  const CLIENTS = keepAlive ? CLIENTS_KA : CLIENTS_FRESH;
  const clients = {
    probe: new ProbeClient(url, body),
    ...(keepAlive ? { probeSent: new ProbeClient(url, body, { fromSent: true }) } : { curl: new CurlClient(url, body) }),
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
        await sleep(5);
      }
      if (i >= 0) for (const c of CLIENTS) ms[c].push(got[c]);
    }
  } finally {
    for (const c of Object.values(clients)) await c.close();
  }
  const stats = (c, key = 'ttft') => {
    const d = ms[c].map((v, i) => v[key] - ms.raw[i][key]);
    return { median: median(d), p99: pct(d, 99), p1: pct(d, 1), max: max(d), ttftMedian: median(ms[c].map((v) => v[key])) };
  };
  const out = { iterations, raw: { ttftMedian: median(ms.raw.map((v) => v.ttft)), firstByteMedian: median(ms.raw.map((v) => v.firstByte)) } };
  for (const c of CLIENTS) if (c !== 'raw' && c !== 'curl') out[c] = stats(c);
  for (const c of CLIENTS) if (c !== 'raw') out[`${c}FirstByte`] = stats(c, 'firstByte');
  // the probe's own connection count per measured request (fresh mode must be 1)
  const cpr = clients.probe.connectsPerRequest.slice(warmup);
  out.probeConnectsPerRequest = { min: Math.min(...cpr), max: Math.max(...cpr), mean: cpr.reduce((a, b) => a + b, 0) / cpr.length };
  return out;
}

export async function run(ctx) {
  const { quick, log } = ctx;
  const contended = contention();
  const serverOptions = { ttftMs: 50, itlMs: 1, precise: true };
  // fresh: the server closes a connection idle 20 ms, so each probe request connects anew on its Agent
  const fresh = await startSseServer({ ...serverOptions, idleMs: 20 });
  const ka = await startSseServer({ ...serverOptions, idleMs: 5000 });
  log(`  SSE server (Go, own process) pids ${fresh.pid} (fresh, -idle-ms 20) / ${ka.pid} (keep-alive): first token 50 ms after the headers, then 1 per ms\n`);
  const plan = quick
    ? [
        { mode: 'fresh', runs: 1, pairs: 100 },
        { mode: 'keep-alive', runs: 1, pairs: 100 },
      ]
    : [
        { mode: 'fresh', runs: 3, pairs: 250 },
        { mode: 'keep-alive', runs: 1, pairs: 250 },
      ];
  const results = {};
  let att;
  try {
    for (const p of plan) {
      results[p.mode] = [];
      for (let r = 0; r < p.runs; r++) {
        const t0 = performance.now();
        const res = await pairedRun((p.mode === 'fresh' ? fresh : ka).url, p.mode === 'keep-alive', p.pairs, 20);
        results[p.mode].push(res);
        log(
          `  ${p.mode} run ${r + 1}/${p.runs}: ${p.pairs} iterations in ${((performance.now() - t0) / 1000).toFixed(0)} s; probe − raw median ${fmt(res.probe.median)} ms, p99 ${fmt(res.probe.p99)} ms; control (A/A) ${fmt(res.control.median)} / ${fmt(res.control.p99)}` +
            `${res.curlFirstByte ? `; first byte: probe ${fmt(res.probeFirstByte.median)}, curl ${fmt(res.curlFirstByte.median)}` : ''}; probe connections per request ${res.probeConnectsPerRequest.min}–${res.probeConnectsPerRequest.max}\n`,
        );
      }
    }
    log('  attribution: net.client.socket channel, socket connect/write/data timestamps…\n');
    att = await attribution(fresh.url, quick ? 50 : 100);
  } finally {
    await fresh.stop();
    await ka.stop();
  }

  const rows = [];
  for (const [mode, runs] of Object.entries(results)) {
    for (const [client, label, key] of [
      ['probe', 'vllm-probe VllmClient#stream (the TTFT probe), first token', 'ttft'],
      ['probeFirstByte', 'vllm-probe, first byte (response headers)', 'firstByte'],
      ['probeSent', 'vllm-probe, clock from the transport\'s onRequestStart (StreamResult.sentAt), first token', 'ttft'],
      ['curlFirstByte', 'curl 7.88 `-w %{time_starttransfer}`, first byte', 'firstByte'],
      ['control', 'control: 2nd raw client (A/A noise floor), first token', 'ttft'],
      ['controlFirstByte', 'control: 2nd raw client, first byte', 'firstByte'],
    ]) {
      if (!runs[0][client]) continue;
      rows.push([mode, label, `${runs.length} × ${runs[0].iterations}`, spread(runs.map((r) => r[client].ttftMedian), 2), spread(runs.map((r) => r[client].median)), spread(runs.map((r) => r[client].p99)), spread(runs.map((r) => r[client].p1)), key === 'ttft' ? 'first token' : 'first byte']);
    }
  }
  const f = results.fresh;
  const med = median(f.map((r) => r.probe.median));
  const p99 = median(f.map((r) => r.probe.p99));
  const ctlP99 = median(f.map((r) => r.control.p99));
  const curlMed = median(f.map((r) => r.curlFirstByte.median));
  const probeFbMed = median(f.map((r) => r.probeFirstByte.median));
  const medOk = med <= 0.15;
  const p99Ok = p99 <= 1;
  // Issue 28: within 0.2 ms of curl on a fresh connection (first byte against first byte: curl cannot time a token).
  const curlOk = probeFbMed - curlMed <= 0.2;
  const cpr = f.map((r) => r.probeConnectsPerRequest);
  const md = [
    `Server: \`benchmarks/sse-server\` (Go, own process, \`-ttft-ms 50 -itl-ms 1 -precise\`): response headers at once, the first token exactly 50 ms after them (sleep, then spin to the deadline), then one token per ms; fresh mode \`-idle-ms 20\` (it closes a connection idle 20 ms), keep-alive mode \`-idle-ms 5000\`.`,
    `Request: the TTFT probe's body (\`/v1/completions\`, default prompt, max_tokens 16, ignore_eos, stream + include_usage, user \`vllm-probe\`). vllm-probe's client: one \`VllmClient\` (one node:http keep-alive Agent) for the whole run, as the daemon holds it; each request is the probe's \`client.stream({ path, body, timeoutMs, requestId })\`. In fresh mode every probe request opened ${cpr.every((x) => x.min === 1 && x.max === 1) ? 'exactly one' : `${Math.min(...cpr.map((x) => x.min))}–${Math.max(...cpr.map((x) => x.max))}`} connection (Node's net.client.socket diagnostics channel). Each iteration runs each client once, in rotated order; 20 warm-up iterations dropped per run; 5 ms between requests.`,
    `Difference = client − raw-socket client of the same iteration, in ms, for the first token (TTFT) or the first response byte. The raw client (node:net, one write of a hand-made HTTP/1.1 request, timestamps in the socket's read callback) is the reference. Spread = median (min–max) over runs.`,
    '',
    table(['mode', 'client', 'runs × iterations', 'median (ms)', 'diff median', 'diff p99', 'diff p1', 'of'], rows),
    '',
    `Raw reference medians: first token ${spread(f.map((r) => r.raw.ttftMedian), 2)} ms, first byte ${spread(f.map((r) => r.raw.firstByteMedian), 3)} ms (fresh).`,
    '',
    `Where vllm-probe's time goes (fresh connection, medians of ${att.n} requests; net.client.socket channel and the socket's connect, first write and data events):`,
    '',
    table(
      ['phase (ms)', 'vllm-probe (VllmClient#stream → node:http)', 'raw socket'],
      [
        ['client.stream() called → clock start (building the request and the socket: left out of TTFT)', fmt(att.probe.toClock), ''],
        ['socket created → clock start', fmt(att.probe.socketToClock), ''],
        ['start → TCP connected', fmt(att.probe.connect), fmt(att.raw.connect)],
        ['start → onRequestStart (sentAt)', fmt(att.probe.toOnRequestStart), ''],
        ['start → request headers written to the socket', fmt(att.probe.toWritten), fmt(att.raw.toWritten)],
        ['socket read with the first token → TTFT timestamp (median / p99)', `${fmt(att.probe.readToTimestamp)} / ${fmt(att.probe.readToTimestampP99)}`, '0 (timestamp in the read callback)'],
      ],
    ),
    '',
    `Targets (fresh connection): median ≤ 0.15 ms → ${pass(medOk)} (${fmt(med)} ms); p99 ≤ 1 ms → ${pass(p99Ok)} (${fmt(p99)} ms; the A/A control's p99 in the same runs is ${fmt(ctlP99)} ms); first byte within 0.2 ms of curl's → ${pass(curlOk)} (${fmt(probeFbMed - curlMed)} ms behind curl; curl − raw first byte ${fmt(curlMed)} ms; vllm-probe − raw: first byte ${fmt(probeFbMed)} ms, first token ${fmt(med)} ms).`,
  ].join('\n');
  appendSection(title, md, { contention: contended, mode: quick ? '--quick' : 'full' });
  const k = results['keep-alive'];
  return {
    title,
    markdown: md,
    summary: [
      { metric: 'probe overhead, median of paired diff (fresh conn.)', value: `${spread(f.map((r) => r.probe.median))} ms`, target: '≤ 0.15 ms', ok: medOk },
      { metric: 'probe overhead, p99 of paired diff (fresh conn.)', value: `${spread(f.map((r) => r.probe.p99))} ms (A/A noise floor p99 ${fmt(ctlP99)})`, target: '≤ 1 ms', ok: p99Ok },
      { metric: 'vs curl first byte (fresh), overhead over raw', value: `curl ${spread(f.map((r) => r.curlFirstByte.median))} ms; probe first byte ${spread(f.map((r) => r.probeFirstByte.median))}, first token ${fmt(med)}`, target: '≤ curl + 0.2 ms', ok: curlOk },
      ...(k
        ? [
            { metric: 'probe overhead, median / p99 (keep-alive)', value: `${spread(k.map((r) => r.probe.median))} / ${spread(k.map((r) => r.probe.p99))} ms`, target: '(info)', ok: undefined },
            { metric: 'probe from sentAt, median / p99 (keep-alive)', value: `${spread(k.map((r) => r.probeSent.median))} / ${spread(k.map((r) => r.probeSent.p99))} ms`, target: '(info)', ok: undefined },
          ]
        : []),
    ],
  };
}
