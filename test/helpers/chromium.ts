/**
 * Debian's headless chromium (scripts/install-chromium) for the report.html rendering test.
 * Without it the test is skipped with a note, unless REQUIRE_CHROMIUM=1 (CI) makes it fail.
 */
import { execFile, execFileSync } from 'node:child_process';

function which(bin: string): string | undefined {
  try {
    return execFileSync('sh', ['-c', `command -v ${bin}`], { encoding: 'utf8' }).trim() || undefined;
  } catch {
    return undefined;
  }
}

export const CHROMIUM = which('chromium');
export const requireChromium = process.env.REQUIRE_CHROMIUM === '1';
export const skipWithoutChromium = !requireChromium && !CHROMIUM;
if (skipWithoutChromium) {
  process.stderr.write('note: chromium not installed; the report.html rendering test is skipped (run scripts/install-chromium)\n');
}

/** Runs headless chromium on a file URL with extra flags (--dump-dom, --screenshot=…); resolves stdout. */
export function chromium(url: string, flags: string[], timeoutMs = 60_000): Promise<string> {
  if (!CHROMIUM) throw new Error('chromium is not installed: run scripts/install-chromium (REQUIRE_CHROMIUM=1 is set)');
  const args = [
    '--headless',
    '--no-sandbox', // CI runs as root in a container
    '--disable-gpu',
    '--disable-dev-shm-usage',
    '--no-first-run',
    '--hide-scrollbars',
    '--virtual-time-budget=3000',
    ...flags,
    url,
  ];
  return new Promise((resolve, reject) => {
    execFile(CHROMIUM, args, { timeout: timeoutMs, maxBuffer: 32 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`chromium failed: ${err.message}\n${stderr}`));
      else resolve(stdout);
    });
  });
}
