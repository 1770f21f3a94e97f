/**
 * The noise floor for an event-loop-delay figure: a Node process that does nothing but measure
 * its own event-loop delay (monitorEventLoopDelay, 1 ms resolution, like ceiling-client.mjs),
 * pinned by the parent to the same core as the client it controls for. What it records is the
 * machine's wake-up latency on that core (other processes, the client beside it), not any work
 * of its own. Prints one JSON line after `ms`.
 *
 *   node benchmarks/eld-control.mjs 15000
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';

const ms = Number(process.argv[2] ?? 15_000);
const eld = monitorEventLoopDelay({ resolution: 1 });
eld.enable();
const keep = setInterval(() => {}, 1000);
setTimeout(() => {
  eld.disable();
  clearInterval(keep);
  const q = (p) => Math.max(0, eld.percentile(p) / 1e6 - 1);
  process.stdout.write(`${JSON.stringify({ eldP50Ms: q(50), eldP99Ms: q(99), eldMaxMs: Math.max(0, eld.max / 1e6 - 1), eldSamples: eld.count })}\n`);
}, ms);
