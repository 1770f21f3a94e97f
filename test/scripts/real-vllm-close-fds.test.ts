/**
 * scripts/real-vllm/start backgrounds vLLM through scripts/real-vllm/close-fds, so the server
 * does not inherit its caller's descriptors: a flock the caller held stayed held for as long as
 * vLLM ran (issue 27). A real vLLM start is minutes; the wrapper is tested with a dummy server.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { waitFor } from '../helpers/daemon.js';

const pids: number[] = [];
afterEach(() => {
  for (const pid of pids.splice(0)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
});

/** Starts `sleep 60` in the background as start does, from a shell that holds a flock on fd 9; returns its pid. */
function backgroundWhileLocked(lockFile: string, launcher: string): number {
  const out = execFileSync('bash', ['-c', `exec 9>"$1"; flock 9; ${launcher} sleep 60 >/dev/null 2>&1 </dev/null & echo $!`, '_', lockFile], { encoding: 'utf8' });
  const pid = Number(out.trim());
  pids.push(pid);
  return pid;
}

const comm = (pid: number) => {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return '';
  }
};
/** flock -n succeeds only when nobody holds the lock any more. */
const lockIsFree = (lockFile: string) => spawnSync('flock', ['-n', lockFile, 'true']).status === 0;

describe('scripts/real-vllm/close-fds', () => {
  test('the backgrounded command keeps only stdin, stdout and stderr: the caller\'s lock is released when the caller exits', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'close-fds-'));
    try {
      const lock = join(dir, 'lock');
      const pid = backgroundWhileLocked(lock, 'scripts/real-vllm/close-fds');
      // Wait until the wrapper has exec'd the command (it has closed the descriptors by then).
      expect(await waitFor(() => comm(pid) === 'sleep', 10_000, 20)).toBe(true);
      expect(readdirSync(`/proc/${pid}/fd`).sort()).toEqual(['0', '1', '2']);
      expect(lockIsFree(lock)).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('without it the lock stays held by the background process (what the test guards against)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'close-fds-'));
    try {
      const lock = join(dir, 'lock');
      const pid = backgroundWhileLocked(lock, '');
      expect(await waitFor(() => comm(pid) === 'sleep', 10_000, 20)).toBe(true);
      expect(readdirSync(`/proc/${pid}/fd`)).toContain('9');
      expect(lockIsFree(lock)).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('start launches vLLM through it', () => {
    const launch = readFileSync('scripts/real-vllm/start', 'utf8')
      .split('\n')
      .filter((l) => l.includes('vllm.entrypoints.openai.api_server') && !l.trim().startsWith('#') && !l.includes('log "'));
    expect(launch).toHaveLength(1);
    expect(launch[0]).toMatch(/^nohup "\$SCRIPT_DIR\/close-fds" "\$VENV\/bin\/python" -m vllm\.entrypoints\.openai\.api_server /);
  });
});
