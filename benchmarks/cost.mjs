/**
 * 6. Probe cost: tokens per minute the default probes send, computed from the config defaults
 * and measured from vllm_probe_probe_tokens_total over a daemon run against the emulator (the
 * footprint benchmark's run when both run; otherwise its own), and their share of the real
 * server's capacity measured with `vllm-probe bench sweep` against the real vLLM CPU server.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fillerPrompt } from '../dist/bench/load.js';
import { parseConfig } from '../dist/config.js';
import { appendSection, contention, fmt, pass, REPO, table } from './lib.mjs';
import { measureDaemon } from './footprint.mjs';

export const title = '6. Probe cost (tokens/min of the default probes, share of measured capacity)';

async function tokenize(url, model, prompt) {
  const res = await fetch(`${url}/tokenize`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model, prompt, add_special_tokens: true }),
    signal: AbortSignal.timeout(10_000),
  });
  const j = await res.json();
  return j.count ?? j.tokens?.length;
}

function runCli(args) {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [join(REPO, 'bin', 'vllm-probe.js'), ...args], { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (err += d));
    p.on('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`vllm-probe ${args.join(' ')} exited ${code}: ${err.slice(-2000)}`))));
  });
}

export async function run(ctx) {
  const { quick, log } = ctx;
  const contended = contention();
  const cfg = parseConfig({});
  const ttft = cfg.probes.ttft;
  const prefix = cfg.probes.prefix;

  // Measured, against the emulator: reuse the footprint run or run the daemon here
  let measured = ctx.shared.footprint;
  let measuredSource = 'the footprint benchmark\'s daemon run in this invocation';
  if (!measured) {
    const minutes = quick ? 2 : 5;
    log(`  running the daemon against the emulator for ${minutes} min to count probe tokens…\n`);
    measured = await measureDaemon({ minutes, warmupS: 15, log });
    measuredSource = `a ${minutes}-min daemon run (default config) against the emulator`;
  }
  const tpm = measured.tokensPerMin;
  const mIn = (tpm['ttft/input'] ?? 0) + (tpm['prefix/input'] ?? 0);
  const mOut = (tpm['ttft/output'] ?? 0) + (tpm['prefix/output'] ?? 0);

  // The real server: its token counts for the probe prompts, and its capacity
  const real = await ctx.realVllm();
  const pTtft = await tokenize(real.url, real.model, ttft.prompt);
  const ttftPerMin = 60 / ttft.interval;
  const prefixPerMin = 60 / prefix.interval;
  const reqPerCycle = 1 + prefix.hits_per_cycle;
  const meanPrefix = prefix.prefix_tokens.reduce((a, b) => a + b, 0) / prefix.prefix_tokens.length;
  const cIn = ttftPerMin * pTtft + prefixPerMin * reqPerCycle * (meanPrefix + prefix.suffix_tokens);
  const cOut = ttftPerMin * ttft.max_tokens + prefixPerMin * reqPerCycle * prefix.max_tokens;

  const out = mkdtempSync(join(tmpdir(), 'vllm-probe-sweep-'));
  // up to 64: the CPU server's output tok/s still climbs at 16 (continuous batching)
  const levels = quick ? '4,16' : '1,4,16,64';
  const duration = quick ? '5s' : '10s';
  const sweepArgs = ['bench', 'sweep', '--target', real.url, '--concurrency', levels, '--duration', duration, '--json', '--out', out];
  log(`  vllm-probe ${sweepArgs.join(' ')}\n`);
  let sweep;
  try {
    sweep = JSON.parse(await runCli(sweepArgs));
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
  const best = sweep.levels.reduce((a, b) => (b.outputTokPerS > a.outputTokPerS ? b : a));
  const sweepPrompt = await tokenize(real.url, real.model, fillerPrompt(128, 0));
  const capOutPerMin = best.outputTokPerS * 60;
  const capTotalPerMin = best.reqPerS * (sweepPrompt + 64) * 60;
  const shareOut = cOut / capOutPerMin;
  const shareTotal = (cIn + cOut) / capTotalPerMin;
  const ok = shareOut <= 0.001 && shareTotal <= 0.001;

  const md = [
    `Default probes: TTFT every ${ttft.interval} s (prompt "${ttft.prompt}" = ${pTtft} tokens on the real server, ${ttft.max_tokens} output tokens); prefix every ${prefix.interval} s, ${reqPerCycle} requests per cycle (1 forced miss + ${prefix.hits_per_cycle} hit) of ${prefix.prefix_tokens.join('/')} + ${prefix.suffix_tokens} tokens, ${prefix.max_tokens} output tokens each.`,
    '',
    table(
      ['tokens per minute', 'input', 'output', 'total'],
      [
        ['computed from the config defaults (real server\'s token counts)', fmt(cIn, 0), fmt(cOut, 0), fmt(cIn + cOut, 0)],
        [`measured: Δ vllm_probe_probe_tokens_total over ${fmt(measured.windowMin, 1)} min, ${measuredSource} (emulator's tokenizer)`, fmt(mIn, 0), fmt(mOut, 0), fmt(mIn + mOut, 0)],
        ['  of which TTFT probe (measured)', fmt(tpm['ttft/input'] ?? 0, 0), fmt(tpm['ttft/output'] ?? 0, 0), ''],
        ['  of which prefix probe (measured)', fmt(tpm['prefix/input'] ?? 0, 0), fmt(tpm['prefix/output'] ?? 0, 0), ''],
      ],
    ),
    '',
    `Capacity of the real vLLM CPU server (tiny-llama, 1 engine thread): \`vllm-probe ${sweepArgs.join(' ').replace(real.url, 'http://127.0.0.1:PORT').replace(out, 'DIR')}\` (128-word prompts = ${sweepPrompt} tokens, 64 output tokens):`,
    '',
    table(
      ['concurrency', 'req/s', 'output tok/s', 'p95 TTFT (s)', 'errors'],
      sweep.levels.map((l) => [l.concurrency, fmt(l.reqPerS, 2), fmt(l.outputTokPerS, 1), fmt(l.ttft.p95, 3), l.errors]),
    ),
    '',
    table(
      ['share of capacity (computed probe tokens ÷ best sweep level)', 'value'],
      [
        [`output tokens: ${fmt(cOut, 0)} /min ÷ ${fmt(capOutPerMin, 0)} /min`, `${fmt(shareOut * 100, 3)} %`],
        [`all tokens: ${fmt(cIn + cOut, 0)} /min ÷ ${fmt(capTotalPerMin, 0)} /min (input + output at c=${best.concurrency})`, `${fmt(shareTotal * 100, 3)} %`],
        ['against a GPU server', 'not measured: no measured GPU capacity is available to this project (no GPU vLLM run); not stated'],
      ],
    ),
    '',
    `Target: ≤ 0.1 % → ${pass(ok)} on this CPU server (output ${fmt(shareOut * 100, 3)} %, all tokens ${fmt(shareTotal * 100, 3)} %).`,
  ].join('\n');
  appendSection(title, md, { contention: contended, mode: quick ? '--quick' : 'full' });
  return {
    title,
    markdown: md,
    summary: [
      { metric: 'default probes, tokens/min (computed; measured)', value: `${fmt(cIn + cOut, 0)} (in ${fmt(cIn, 0)} / out ${fmt(cOut, 0)}); ${fmt(mIn + mOut, 0)} (in ${fmt(mIn, 0)} / out ${fmt(mOut, 0)})`, target: '(info)', ok: undefined },
      { metric: 'share of real CPU vLLM capacity (output; all tokens)', value: `${fmt(shareOut * 100, 3)} %; ${fmt(shareTotal * 100, 3)} %`, target: '≤ 0.1 %', ok },
    ],
  };
}
