#!/usr/bin/env node
// Closed-loop streaming load for the diagnosis scenarios (diagnosis-scenarios.sh): WORKERS clients,
// each sending one streaming /v1/completions after another (ignore_eos, a fixed max_tokens), every
// prompt unique from its first token (so prefix caching saves nothing) and ~PROMPT_TOKENS long
// (calibrated once with vLLM's /tokenize).
//
//   node scripts/gpu/diagnosis-load.mjs --url http://127.0.0.1:18000 --model tiny-llama \
//     --workers 256 --prompt-tokens 1000 --max-tokens 256 [--duration 60] [--out summary.json]
//
// Runs for --duration seconds (0: until SIGTERM), then aborts what is in flight and writes a JSON
// summary (requests finished, HTTP codes, errors, client TTFT p50/p95, tokens received) to --out
// and stdout. Node 20+, no dependencies.
import { writeFileSync } from 'node:fs';

const args = Object.fromEntries(
  process.argv.slice(2).reduce((pairs, a, i, all) => (a.startsWith('--') ? [...pairs, [a.slice(2), all[i + 1]]] : pairs), []),
);
const url = args.url ?? 'http://127.0.0.1:18000';
const model = args.model ?? 'tiny-llama';
const workers = Number(args.workers ?? 16);
const promptTokens = Number(args['prompt-tokens'] ?? 1000);
const maxTokens = Number(args['max-tokens'] ?? 256);
const durationS = Number(args.duration ?? 0);
const headers = { 'content-type': 'application/json', ...(process.env.VLLM_API_KEY ? { authorization: `Bearer ${process.env.VLLM_API_KEY}` } : {}) };

const WORDS = 'the server model token request latency cache prefix metric engine queue batch stream prompt output input memory throughput gauge counter histogram bucket probe health time people year way day world school state family group country problem hand part place case week company system program question work number night point home water room'.split(' ');
const text = (n, seed) => Array.from({ length: n }, (_, i) => WORDS[(seed * 7919 + i * 31) % WORDS.length]).join(' ');

/** Words per token of this tokenizer, from one /tokenize call (1 when /tokenize is missing). */
async function wordsPerToken() {
  try {
    const sample = text(400, 1);
    const res = await fetch(`${url}/tokenize`, { method: 'POST', headers, body: JSON.stringify({ model, prompt: sample }), signal: AbortSignal.timeout(10_000) });
    const body = await res.json();
    const n = body.count ?? body.tokens?.length;
    return n ? 400 / n : 1;
  } catch {
    return 1;
  }
}

const abort = new AbortController();
const stats = { started_at: new Date().toISOString(), workers, prompt_tokens_target: promptTokens, max_tokens: maxTokens, requests: 0, finished: 0, http: {}, errors: {}, tokens: 0, ttft_s: [] };
const count = (map, key) => (map[key] = (map[key] ?? 0) + 1);

async function one(w, prompt) {
  for (let i = 0; !abort.signal.aborted; i++) {
    const t0 = performance.now();
    stats.requests++;
    try {
      const res = await fetch(`${url}/v1/completions`, {
        method: 'POST',
        headers,
        body: JSON.stringify({ model, prompt: `${w}-${i}-${Math.random().toString(36).slice(2)} ${prompt}`, max_tokens: maxTokens, ignore_eos: true, stream: true, temperature: 0, stream_options: { include_usage: true } }),
        signal: abort.signal,
      });
      count(stats.http, res.status);
      if (!res.ok || !res.body) {
        await res.text().catch(() => '');
        await new Promise((r) => setTimeout(r, 250));
        continue;
      }
      let first = true;
      let tail = '';
      const decoder = new TextDecoder();
      for await (const chunk of res.body) {
        if (first) {
          stats.ttft_s.push((performance.now() - t0) / 1000);
          first = false;
        }
        tail = (tail + decoder.decode(chunk, { stream: true })).slice(-2000);
      }
      const usage = tail.match(/"completion_tokens":\s*(\d+)/g)?.at(-1);
      if (usage) stats.tokens += Number(usage.split(':')[1]);
      if (tail.includes('[DONE]')) stats.finished++;
      else count(stats.errors, 'stream ended without [DONE]');
    } catch (e) {
      if (abort.signal.aborted) break;
      count(stats.errors, String(e?.cause?.code ?? e?.name ?? e).slice(0, 60));
      await new Promise((r) => setTimeout(r, 250));
    }
  }
}

function summary() {
  const t = [...stats.ttft_s].sort((a, b) => a - b);
  const pct = (p) => (t.length ? Number(t[Math.min(t.length - 1, Math.floor(p * t.length))].toFixed(3)) : null);
  const { ttft_s, ...rest } = stats;
  return { ...rest, ended_at: new Date().toISOString(), first_tokens: t.length, ttft_p50_s: pct(0.5), ttft_p95_s: pct(0.95), ttft_max_s: t.length ? Number(t.at(-1).toFixed(3)) : null };
}

let ended = false;
function end() {
  if (ended) return;
  ended = true;
  abort.abort();
  const s = JSON.stringify(summary());
  if (args.out) writeFileSync(args.out, `${s}\n`);
  console.log(s);
  setTimeout(() => process.exit(0), 200);
}
process.on('SIGTERM', end);
process.on('SIGINT', end);

const wpt = await wordsPerToken();
const prompt = text(Math.max(1, Math.round(promptTokens * wpt)), 7);
stats.words_per_token = Number(wpt.toFixed(3));
if (durationS > 0) setTimeout(end, durationS * 1000);
await Promise.all(Array.from({ length: workers }, (_, w) => one(w, prompt)));
end();
