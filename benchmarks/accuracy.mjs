/**
 * 5. Accuracy vs a real vLLM (also the figures of docs/accuracy.md, issue 3). A real vLLM CPU
 * server (scripts/real-vllm/start on a free port, tiny random-weight Llama) and three phases:
 *
 *  A. Per-request: N probe requests, one at a time, exactly as the TTFT probe sends them
 *     (VllmClient#stream, /v1/completions, default prompt, 16 tokens, ignore_eos, temperature 0,
 *     stream + include_usage, a fresh connection each like a probe every 15 s). Around each
 *     request vLLM's /metrics is read: when vllm:time_to_first_token_seconds_count moved by
 *     exactly 1, the _sum delta is that request's server-side TTFT. Difference = client − server.
 *  B. `vllm bench serve` (from the venv) with the same request: a one-entry ShareGPT-format
 *     file holding the probe's prompt (sent verbatim), 16 output tokens, --ignore-eos, --temperature 0,
 *     --max-concurrency 1, N prompts. Server TTFT mean over the phase from /metrics deltas.
 *  C. Our client under B's conditions: N back-to-back requests on one keep-alive connection.
 *
 * B and C are compared with each other and each with the server's mean over its own phase,
 * which cancels drift between phases.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig } from '../dist/config.js';
import { PROBE_USER } from '../dist/synthetic/request.js';
import { VllmClient } from '../dist/vllm/client.js';
import { parseExposition } from '../dist/vllm/exposition.js';
import { deriveTimings, streamingBody } from '../dist/vllm/stream.js';
import { appendSection, commandLine, contention, fmt, machineFacts, max, mean, median, min, pct, REPO, sleep, table, TINY_MODEL, versions, vllmBenchServe, vllmCliWorks } from './lib.mjs';

export const title = '5. Accuracy vs real vLLM (client TTFT vs vLLM\'s own histogram and vllm bench serve)';

const ACCURACY_DOC = join(REPO, 'docs', 'accuracy.md');
const BEGIN = '<!-- accuracy:begin (written by benchmarks/accuracy.mjs; do not edit by hand) -->';
const END = '<!-- accuracy:end -->';

async function serverHist(url, family = 'vllm:time_to_first_token_seconds') {
  const res = await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(10_000) });
  const expo = parseExposition(await res.text());
  let sum = 0;
  let count = 0;
  for (const fam of expo.values()) {
    for (const s of fam.samples) {
      if (s.name === `${family}_sum`) sum += s.value;
      if (s.name === `${family}_count`) count += s.value;
    }
  }
  return { sum, count };
}

function probeBody(model) {
  const cfg = parseConfig({}).probes.ttft;
  return streamingBody(model, { max_tokens: cfg.max_tokens, ignore_eos: true, user: PROBE_USER, prompt: cfg.prompt });
}

/** One TTFT-probe request through `client` (VllmClient#stream, as src/synthetic/ttft.ts calls it). */
async function probeOnce(client, body) {
  const r = await client.stream({ path: '/v1/completions', body, timeoutMs: 30_000 });
  if (r.outcome !== 'success') throw new Error(`probe request failed: ${r.outcome} ${r.detail ?? ''}`);
  const t = deriveTimings(r);
  return { ttftMs: t.ttft * 1000, e2eMs: t.e2e * 1000, headersMs: r.headersAt - r.startedAt, promptTokens: r.usage?.prompt_tokens, outputTokens: r.usage?.completion_tokens };
}

/** Waits until the histogram's count reaches `want` (vLLM records stats just after the stream ends). */
async function histAtLeast(url, want, family) {
  for (let i = 0; i < 50; i++) {
    const h = await serverHist(url, family);
    if (h.count >= want) return h;
    await sleep(20);
  }
  return serverHist(url, family);
}

const stats = (xs) => ({ n: xs.length, mean: mean(xs), median: median(xs), p5: pct(xs, 5), p95: pct(xs, 95), min: min(xs), max: max(xs) });

export async function run(ctx) {
  const { quick, log } = ctx;
  const N = quick ? 20 : 100;
  const contendedBefore = contention();
  const real = await ctx.realVllm();
  const url = real.url;
  const model = real.model;
  const body = probeBody(model);
  const config = parseConfig({ target: { url } });

  // warm-up: the first requests after start are slower (cold)
  for (let i = 0; i < 5; i++) {
    const c = new VllmClient({ baseUrl: url, maxResponseBytes: config.target.max_response_bytes });
    await probeOnce(c, body);
    await c.close();
  }

  // A. per-request pairs
  const pairs = [];
  let skipped = 0;
  for (let i = 0; i < N; i++) {
    const before = await serverHist(url);
    const e2eBefore = await serverHist(url, 'vllm:e2e_request_latency_seconds');
    // a new client (new Pool) per request: a fresh connection, as a probe every 15 s gets
    const c = new VllmClient({ baseUrl: url, maxResponseBytes: config.target.max_response_bytes });
    const r = await probeOnce(c, body);
    await c.close();
    const after = await histAtLeast(url, before.count + 1);
    const e2eAfter = await histAtLeast(url, e2eBefore.count + 1, 'vllm:e2e_request_latency_seconds');
    if (after.count - before.count !== 1) {
      skipped++;
      continue;
    }
    const serverMs = (after.sum - before.sum) * 1000;
    const serverE2eMs = (e2eAfter.sum - e2eBefore.sum) * 1000;
    pairs.push({ ...r, serverMs, serverE2eMs, diffMs: r.ttftMs - serverMs, e2eDiffMs: r.e2eMs - serverE2eMs });
    await sleep(50);
  }
  const A = {
    client: stats(pairs.map((p) => p.ttftMs)),
    server: stats(pairs.map((p) => p.serverMs)),
    diff: stats(pairs.map((p) => p.diffMs)),
    e2eDiff: stats(pairs.map((p) => p.e2eDiffMs)),
    headers: stats(pairs.map((p) => p.headersMs)),
    promptTokens: pairs[0]?.promptTokens,
    outputTokens: pairs[0]?.outputTokens,
    skipped,
  };
  log(`  A: ${pairs.length} pairs (${skipped} skipped); client − server TTFT median ${fmt(A.diff.median)} ms, p95 ${fmt(A.diff.p95)} ms\n`);

  // B. vllm bench serve, same request, concurrency 1
  const tmp = mkdtempSync(join(tmpdir(), 'vllm-probe-accuracy-'));
  let B;
  let benchCommand;
  let benchError;
  try {
    const cli = vllmCliWorks();
    if (!cli.ok) throw new Error(cli.why);
    // The ShareGPT loader (json, no pandas: the venv's lock has no pandas, which the `custom`
    // loader needs) sends the first turn verbatim, without a chat template.
    const dataset = join(tmp, 'probe-prompt.json');
    writeFileSync(dataset, JSON.stringify([{ conversations: [{ from: 'human', value: body.prompt }, { from: 'gpt', value: 'x' }] }]));
    const h0 = await serverHist(url);
    const r = await vllmBenchServe(
      [
        '--backend', 'vllm',
        '--base-url', url,
        '--endpoint', '/v1/completions',
        '--model', model,
        '--tokenizer', TINY_MODEL,
        '--dataset-name', 'sharegpt',
        '--dataset-path', dataset,
        '--sharegpt-output-len', '16',
        '--ignore-eos',
        '--temperature', '0',
        '--max-concurrency', '1',
        '--num-prompts', String(N),
        '--request-rate', 'inf',
        '--percentile-metrics', 'ttft,e2el',
        '--metric-percentiles', '50,95',
        '--save-detailed',
        '--seed', '1',
      ],
      { resultDir: tmp, resultName: 'bench.json' },
    );
    const h1 = await histAtLeast(url, h0.count + r.result.completed);
    const ttfts = (r.result.ttfts ?? []).filter((x) => typeof x === 'number' && x > 0).map((x) => x * 1000);
    B = {
      completed: r.result.completed,
      failed: r.result.failed,
      client: stats(ttfts),
      reported: { mean: r.result.mean_ttft_ms, median: r.result.median_ttft_ms, p95: r.result.p95_ttft_ms },
      serverMean: ((h1.sum - h0.sum) / (h1.count - h0.count)) * 1000,
      serverCount: h1.count - h0.count,
      inputLen: r.result.total_input_tokens / r.result.completed,
      outputLen: r.result.total_output_tokens / r.result.completed,
    };
    benchCommand = r.command.replace(/--dataset-path \S+/, '--dataset-path probe-prompt.json').replace(/--result-dir \S+/, '--result-dir DIR').replace(/--base-url \S+/, '--base-url http://127.0.0.1:PORT').replace(TINY_MODEL, '.cache/tiny-model');
    log(`  B: vllm bench serve TTFT mean ${fmt(B.reported.mean)} ms, median ${fmt(B.reported.median)} ms; server mean ${fmt(B.serverMean)} ms\n`);
  } catch (err) {
    benchError = String(err.message ?? err).slice(0, 2000);
    log(`  B: vllm bench serve failed: ${benchError}\n`);
  }

  // C. our client back-to-back on one keep-alive connection (B's conditions)
  const agent = new VllmClient({ baseUrl: url, maxResponseBytes: config.target.max_response_bytes, connections: 1 });
  const h0 = await serverHist(url);
  const cRuns = [];
  for (let i = 0; i < N; i++) cRuns.push(await probeOnce(agent, body));
  await agent.close();
  const h1 = await histAtLeast(url, h0.count + N);
  const C = { client: stats(cRuns.map((r) => r.ttftMs)), serverMean: ((h1.sum - h0.sum) / (h1.count - h0.count)) * 1000 };
  log(`  C: our client back-to-back TTFT mean ${fmt(C.client.mean)} ms, median ${fmt(C.client.median)} ms; server mean ${fmt(C.serverMean)} ms\n`);
  rmSync(tmp, { recursive: true, force: true });

  const contendedAfter = contention();
  const row = (label, s) => [label, s.n, fmt(s.mean, 2), fmt(s.median, 2), fmt(s.p5, 2), fmt(s.p95, 2), `${fmt(s.min, 2)}–${fmt(s.max, 2)}`];
  const tA = table(['A: per request (fresh connection), ms', 'n', 'mean', 'median', 'p5', 'p95', 'range'], [
    row('client TTFT (vllm-probe)', A.client),
    row('server TTFT (Δ vllm:time_to_first_token_seconds)', A.server),
    row('**difference client − server**', A.diff),
    row('client time to response headers', A.headers),
    row('E2E difference client − server (Δ vllm:e2e_request_latency_seconds)', A.e2eDiff),
  ]);
  const tBC = B
    ? table(['B vs C: back-to-back, concurrency 1, ms', 'vllm bench serve (B)', 'vllm-probe client (C)', 'C − B'], [
        ['client TTFT mean', fmt(B.client.mean, 2), fmt(C.client.mean, 2), fmt(C.client.mean - B.client.mean, 2)],
        ['client TTFT median', fmt(B.client.median, 2), fmt(C.client.median, 2), fmt(C.client.median - B.client.median, 2)],
        ['client TTFT p95', fmt(B.client.p95, 2), fmt(C.client.p95, 2), fmt(C.client.p95 - B.client.p95, 2)],
        ['server TTFT mean over the same phase', fmt(B.serverMean, 2), fmt(C.serverMean, 2), fmt(C.serverMean - B.serverMean, 2)],
        ['**client mean − server mean** (each client\'s own gap)', fmt(B.client.mean - B.serverMean, 2), fmt(C.client.mean - C.serverMean, 2), fmt(C.client.mean - C.serverMean - (B.client.mean - B.serverMean), 2)],
      ])
    : `vllm bench serve did not run: ${benchError}`;
  const m = machineFacts();
  const v = versions();
  const figures = [
    `Measured ${new Date().toISOString().replace(/\.\d+Z$/, 'Z')} on ${m.cpu}, ${m.cores} cores, ${m.ramGiB.toFixed(1)} GiB; vLLM ${v.vllm} (CPU), tiny-llama (scripts/real-vllm), Node ${v.node}, vllm-probe ${v.probe} (git ${v.git}).`,
    `Command: \`${commandLine()}\` (benchmark 5 of \`npm run bench\`; the real vLLM is \`scripts/real-vllm/start --port <free port>\`, stopped at the end).`,
    `Other load on the machine: before ${contendedBefore.text} (load ${contendedBefore.load}); after ${contendedAfter.text} (load ${contendedAfter.load}).`,
    `Request: \`/v1/completions\`, prompt "${body.prompt}" (${A.promptTokens} prompt tokens with BOS), max_tokens 16, ignore_eos, temperature 0, stream + include_usage (${A.outputTokens} output tokens).`,
    '',
    tA,
    '',
    B ? `B: \`${benchCommand}\` — ${B.completed} completed, ${B.failed} failed, ${fmt(B.inputLen, 1)} input / ${fmt(B.outputLen, 1)} output tokens per request; its own summary: mean ${fmt(B.reported.mean, 2)}, median ${fmt(B.reported.median, 2)}, p95 ${fmt(B.reported.p95, 2)} ms. C: the same N requests with vllm-probe's VllmClient#stream on one keep-alive connection.` : '',
    '',
    tBC,
  ].join('\n');

  writeAccuracyDoc(figures);
  appendSection(title, `${figures}\n\nThese figures are also in docs/accuracy.md.`, { contention: contendedBefore, mode: quick ? '--quick' : 'full' });
  ctx.shared.accuracy = { A, B, C };
  return {
    title,
    markdown: figures,
    summary: [
      { metric: 'client − vLLM server TTFT, per request (median / p95)', value: `${fmt(A.diff.median, 2)} / ${fmt(A.diff.p95, 2)} ms (server TTFT median ${fmt(A.server.median, 1)} ms)`, target: '(report)', ok: undefined },
      {
        metric: 'vllm-probe vs vllm bench serve TTFT (mean / median, C − B)',
        value: B ? `${fmt(C.client.mean - B.client.mean, 2)} / ${fmt(C.client.median - B.client.median, 2)} ms` : `n/a (${benchError?.slice(0, 80)})`,
        target: '(report)',
        ok: undefined,
      },
    ],
  };
}

function writeAccuracyDoc(figures) {
  const block = `${BEGIN}\n${figures}\n${END}`;
  let text = existsSync(ACCURACY_DOC) ? readFileSync(ACCURACY_DOC, 'utf8') : '';
  if (text.includes(BEGIN) && text.includes(END)) {
    text = text.slice(0, text.indexOf(BEGIN)) + block + text.slice(text.indexOf(END) + END.length);
  } else {
    text = `${text || '# Measurement accuracy\n'}\n## Latest figures\n\n${block}\n`;
  }
  writeFileSync(ACCURACY_DOC, text);
}
