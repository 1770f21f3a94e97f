/**
 * The emulator (dist/emulator/server.js) in its own process with exact timing options, so a
 * benchmark's client never shares an event loop with it.
 *
 *   node benchmarks/emulator-proc.mjs '{"baseTtftMs":50,"prefillMsPerToken":0,"coldStartMs":0}' [--precise-timers]
 *
 * Prints "LISTENING http://127.0.0.1:PORT" when ready; SIGTERM closes it.
 *
 * --precise-timers: libuv timers have 1 ms granularity (the loop clock is in whole ms), so the
 * emulator's `setTimeout(50)` fires anywhere in ~[49, 51] ms. For the overhead benchmark that
 * jitter would be most of the paired difference's tail, so this flag makes every timer of
 * ≥ 2 ms fire at its exact deadline: a normal timer to 1.5 ms before it, then setImmediate
 * turns until performance.now() reaches it (it burns CPU in the emulator's process only).
 */
import { performance } from 'node:perf_hooks';
import { Emulator } from '../dist/emulator/server.js';

const options = JSON.parse(process.argv[2] ?? '{}');
if (process.argv.includes('--precise-timers')) {
  const realSetTimeout = globalThis.setTimeout;
  const realClearTimeout = globalThis.clearTimeout;
  class PreciseTimer {
    constructor(fn, ms, args) {
      this.deadline = performance.now() + ms;
      this.cancelled = false;
      const spin = () => {
        if (this.cancelled) return;
        if (performance.now() >= this.deadline) fn(...args);
        else this.immediate = setImmediate(spin);
      };
      this.timer = realSetTimeout(spin, Math.max(0, ms - 1.5));
    }
    unref() {
      this.timer.unref();
      return this;
    }
    ref() {
      this.timer.ref();
      return this;
    }
    hasRef() {
      return this.timer.hasRef();
    }
  }
  globalThis.setTimeout = (fn, ms = 0, ...args) => (ms >= 2 ? new PreciseTimer(fn, ms, args) : realSetTimeout(fn, ms, ...args));
  globalThis.clearTimeout = (t) => {
    if (t instanceof PreciseTimer) {
      t.cancelled = true;
      realClearTimeout(t.timer);
      if (t.immediate) clearImmediate(t.immediate);
    } else realClearTimeout(t);
  };
}

const emulator = new Emulator(options);
const url = await emulator.listen(0, '127.0.0.1');
process.stdout.write(`LISTENING ${url.origin}\n`);

const shutdown = async () => {
  await emulator.close().catch(() => undefined);
  process.exit(0);
};
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
