#!/usr/bin/env node
/**
 * `npm run bench` (= `npm run build && node benchmarks/run.mjs`): runs the benchmarks of
 * issues 10 and 14, prints a table per benchmark and appends a dated section for each to
 * docs/benchmarks.md.
 *
 *   node benchmarks/run.mjs [--only NAME[,NAME…]] [--quick] [--list]
 *
 * Names: overhead, ceiling, held, footprint, render, accuracy, cost.
 * --quick shortens every benchmark for a smoke run (footprint 1 min instead of 10, fewer
 * samples); the default is the full run (about 30 minutes on 2 cores; longer when other
 * processes load the machine: the Python peers' start-up then takes minutes).
 * ceiling needs Go (benchmarks/sse-server), scripts/real-vllm/setup and scripts/install-bench-peers.
 * accuracy and cost share one real vLLM (scripts/real-vllm/start on a free port), stopped at
 * the end even on failure; cost reuses the footprint run's probe-token counts when both run.
 */
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import { commandLine, contention, fmt, machineFacts, monitorContention, realVllmAvailable, setCurrentMonitor, setInvocation, startRealVllm, table, versions } from './lib.mjs';

const NAMES = ['overhead', 'ceiling', 'held', 'footprint', 'render', 'accuracy', 'cost'];

const { values } = parseArgs({
  options: {
    only: { type: 'string' },
    quick: { type: 'boolean', default: false },
    list: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
  strict: true,
});
if (values.help || values.list) {
  process.stdout.write(`Usage: node benchmarks/run.mjs [--only ${NAMES.join(',')}] [--quick]\n`);
  process.exit(0);
}
const selected = values.only ? values.only.split(',').map((s) => s.trim()).filter(Boolean) : NAMES;
const unknown = selected.filter((n) => !NAMES.includes(n));
if (unknown.length) {
  process.stderr.write(`run.mjs: unknown benchmark(s): ${unknown.join(', ')} (known: ${NAMES.join(', ')})\n`);
  process.exit(2);
}
setInvocation(process.argv.slice(2));

const log = (t) => process.stderr.write(t);
const m = machineFacts();
const v = versions();
log(`vllm-probe benchmarks — ${selected.join(', ')}${values.quick ? ' (--quick)' : ''}\n`);
log(`machine: ${m.cpu}, ${m.cores} cores, ${m.ramGiB.toFixed(1)} GiB; Node ${v.node}; vLLM ${v.vllm}\n`);
log(`other load now: ${contention().text}\n`);

// One real vLLM shared by accuracy and cost, started on first use, stopped in `finally`.
let realVllm;
const ctx = {
  quick: values.quick,
  log,
  shared: {},
  async realVllm() {
    if (!realVllmAvailable()) throw new Error('needs the real vLLM: run scripts/real-vllm/setup first (.cache/vllm-venv, .cache/tiny-model)');
    realVllm ??= startRealVllm(log);
    return realVllm;
  },
};

const summaries = [];
const failures = [];
const T0 = performance.now();
try {
  for (const name of NAMES.filter((n) => selected.includes(n))) {
    const mod = await import(`./${name}.mjs`);
    log(`\n== ${mod.title} ==\n`);
    const t0 = performance.now();
    const monitor = monitorContention(10_000);
    setCurrentMonitor(monitor);
    try {
      const res = await mod.run(ctx);
      res.contention = monitor.stop();
      const s = (performance.now() - t0) / 1000;
      process.stdout.write(`\n## ${res.title}  (${s.toFixed(0)} s)\n\n${res.markdown}\n`);
      summaries.push({ name, seconds: s, ...res });
      log(`  other load during ${name}: ${res.contention.text}\n`);
    } catch (err) {
      monitor.stop();
      setCurrentMonitor(undefined);
      failures.push(name);
      log(`!! ${name} failed: ${err?.stack ?? err}\n`);
    }
  }
} finally {
  if (realVllm) {
    log('\nstopping the real vLLM…\n');
    await realVllm.then((r) => r.stop()).catch(() => undefined);
  }
}

const rows = summaries.flatMap((s) => s.summary.map((x) => [s.name, x.metric, x.value, x.target, x.ok === undefined ? '' : x.ok ? '✅' : '❌']));
process.stdout.write(`\n## Summary (${commandLine()}, ${((performance.now() - T0) / 60000).toFixed(1)} min)\n\n`);
process.stdout.write(`${table(['bench', 'metric', 'value', 'target', ''], rows)}\n`);
process.stdout.write(`\n${summaries.map((s) => `${s.name}: ${fmt(s.seconds, 0)} s`).join(', ')}\n`);
if (failures.length) {
  process.stdout.write(`\nFAILED: ${failures.join(', ')}\n`);
  process.exitCode = 1;
}
