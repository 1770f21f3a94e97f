#!/usr/bin/env node
// One line per second of what /status said while the diagnosis scenarios run (diagnosis-scenarios.sh).
//
//   node scripts/gpu/diagnosis-recorder.mjs --daemon http://127.0.0.1:9470 --vllm http://127.0.0.1:18000 \
//     --phase-file /tmp/diag/phase --out /tmp/diag/seconds.tsv
//
// Each second, at once: vllm-probe's GET /status?format=text (HTTP code and first line), vLLM's
// GET /health (code) and GET /metrics (generation tokens, running, waiting, preemptions, KV usage,
// sleep state). Columns (tab-separated, a header first):
//   epoch_ms utc phase t_phase_s status_http health gen_tokens running waiting preemptions kv_pct awake first_line
// "-" where vLLM did not answer; status_http 0 when the daemon did not answer within 950 ms.
// The phase is the first word of --phase-file (the driver writes "NAME EPOCH_MS" there).
// Stops on SIGTERM/SIGINT. Node 20+, no dependencies.
import { appendFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';

const args = Object.fromEntries(
  process.argv.slice(2).reduce((pairs, a, i, all) => (a.startsWith('--') ? [...pairs, [a.slice(2), all[i + 1]]] : pairs), []),
);
const daemon = args.daemon ?? 'http://127.0.0.1:9470';
const vllm = args.vllm ?? 'http://127.0.0.1:18000';
const phaseFile = args['phase-file'];
const out = args.out ?? '/dev/stdout';
const everyMs = Number(args['interval-ms'] ?? 1000);
const timeoutMs = Math.min(950, everyMs - 50);

const COLUMNS = ['epoch_ms', 'utc', 'phase', 't_phase_s', 'status_http', 'health', 'gen_tokens', 'running', 'waiting', 'preemptions', 'kv_pct', 'awake', 'first_line'];
if (out !== '/dev/stdout' && !existsSync(out)) writeFileSync(out, `${COLUMNS.join('\t')}\n`);

async function get(url) {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    return { code: res.status, text: await res.text() };
  } catch {
    return { code: 0, text: '' };
  }
}

/** Sum of a family's samples (all label sets), or null when absent. */
function family(text, name, labelFilter) {
  let sum = null;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (labelFilter && !line.includes(labelFilter)) continue;
    const v = Number(line.slice(line.lastIndexOf(' ') + 1));
    if (Number.isFinite(v)) sum = (sum ?? 0) + v;
  }
  return sum;
}

function phase() {
  if (!phaseFile) return ['-', NaN];
  try {
    const [name, since] = readFileSync(phaseFile, 'utf8').trim().split(/\s+/);
    return [name || '-', Number(since)];
  } catch {
    return ['-', NaN];
  }
}

const fmt = (v, digits = 0) => (v === null || v === undefined || Number.isNaN(v) ? '-' : digits ? v.toFixed(digits) : String(Math.round(v)));

let busy = false;
async function tick() {
  if (busy) return; // never two ticks at once: a slow second is skipped, not doubled
  busy = true;
  const at = Date.now();
  try {
    const [status, health, metrics] = await Promise.all([get(`${daemon}/status?format=text`), get(`${vllm}/health`), get(`${vllm}/metrics`)]);
    const m = metrics.code === 200 ? metrics.text : '';
    const [name, since] = phase();
    const awake = m ? family(m, 'vllm:engine_sleep_state', 'sleep_state="awake"') : null;
    const kv = m ? family(m, 'vllm:kv_cache_usage_perc') ?? family(m, 'vllm:gpu_cache_usage_perc') : null;
    const first = status.code ? (status.text.split('\n')[0] ?? '').replace(/\t/g, ' ') : '(no answer)';
    const row = [
      at,
      new Date(at).toISOString().slice(11, 19),
      name,
      Number.isFinite(since) ? ((at - since) / 1000).toFixed(0) : '-',
      status.code,
      health.code || '-',
      fmt(m ? family(m, 'vllm:generation_tokens_total') : null),
      fmt(m ? family(m, 'vllm:num_requests_running') : null),
      fmt(m ? family(m, 'vllm:num_requests_waiting') : null),
      fmt(m ? family(m, 'vllm:num_preemptions_total') : null),
      kv === null ? '-' : (kv * 100).toFixed(0),
      fmt(awake),
      first,
    ];
    appendFileSync(out, `${row.join('\t')}\n`);
  } finally {
    busy = false;
  }
}

const timer = setInterval(tick, everyMs);
void tick();
const stop = () => {
  clearInterval(timer);
  setTimeout(() => process.exit(0), timeoutMs + 100);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
