/** Finds the real Prometheus tools (Debian's prometheus package, via scripts/install-prometheus). */
import { execFileSync } from 'node:child_process';

function which(bin: string): string | undefined {
  try {
    return execFileSync('sh', ['-c', `command -v ${bin}`], { encoding: 'utf8' }).trim() || undefined;
  } catch {
    return undefined;
  }
}

export const PROMTOOL = which('promtool');
export const PROMETHEUS = which('prometheus');
/** CI sets REQUIRE_PROMETHEUS=1 so a missing install fails instead of skipping. */
export const requirePrometheus = process.env.REQUIRE_PROMETHEUS === '1';
export const skipWithoutPrometheus = !requirePrometheus && (!PROMTOOL || !PROMETHEUS);
if (skipWithoutPrometheus) {
  process.stderr.write('note: promtool/prometheus not installed; run scripts/install-prometheus to run these tests\n');
}
