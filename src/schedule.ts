/**
 * Interval schedules for probes and collectors: each run fires at the next multiple of the
 * interval on the wall clock (as a cron "every N seconds" would, so a 15 s probe runs at :00,
 * :15, :30, :45), plus an optional random delay that spreads many sidecars, on one timer at a
 * time. This replaced node-cron, which built a timezone-aware date formatter on every tick:
 * CPU, and ~8 MB of ICU pages in the daemon's RSS (docs/benchmarks.md, R8). Every schedule the
 * config allows is an interval, so nothing here parses cron expressions.
 *
 * Runs never pile up: the next slot is armed when a slot fires, and the callers (probe
 * scheduler, collector runner) are single-flight, so a run still going when its next slot
 * comes is skipped by them, not doubled.
 */

export interface Schedule {
  stop(): void;
}

export function every(seconds: number, run: () => unknown, opts: { maxRandomDelayMs?: number } = {}): Schedule {
  const intervalMs = seconds * 1000;
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  let lastSlot = -Infinity;
  const arm = () => {
    if (stopped) return;
    const now = Date.now();
    // Timers run on a monotonic clock and the slots on the wall clock: a timer that lands a hair
    // before its slot by Date.now must not arm the same slot twice. (A big step back of the wall
    // clock just re-syncs to its slots.)
    let nextSlot = (Math.floor(now / intervalMs) + 1) * intervalMs;
    if (nextSlot === lastSlot) nextSlot += intervalMs;
    lastSlot = nextSlot;
    const jitter = opts.maxRandomDelayMs ? Math.random() * opts.maxRandomDelayMs : 0;
    timer = setTimeout(() => {
      arm();
      // A throwing run must not stop the schedule; callers handle their own failures.
      try {
        const result = run();
        if (result instanceof Promise) result.catch(() => undefined);
      } catch {
        /* the next slot is armed already */
      }
    }, nextSlot - now + jitter);
  };
  arm();
  return {
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
  };
}
