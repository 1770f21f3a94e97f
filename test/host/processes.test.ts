/** Which compute processes are vLLM's: pid file, pid (with descendants), name pattern. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, onTestFinished, test } from 'vitest';
import { buildProcessMatcher, procParentOf, startingVllm } from '../../src/host/processes.js';
import type { ComputeApp } from '../../src/gpu/nvidia-smi/parse.js';

const app = (pid: number, process_name = 'python3'): ComputeApp => ({ gpu_uuid: 'GPU-a', pid, process_name, used_memory_bytes: 1 });
// A process tree like vLLM V1's: api server 100 → engine core 110 → worker 111; 200 unrelated.
const tree: Record<number, number> = { 100: 1, 110: 100, 111: 110, 200: 1, 201: 200 };
const parentOf = (pid: number) => tree[pid];

function tempFile(content: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'pidfile-'));
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'vllm.pid');
  writeFileSync(file, content);
  return file;
}

describe('buildProcessMatcher', () => {
  test('a pid file names the launcher; its descendants match, others do not', async () => {
    const file = tempFile('100\n');
    const built = await buildProcessMatcher({ pid_file: file, name_pattern: 'python' }, { parentOf });
    expect(built.ok).toBe(true);
    if (!built.ok) return;
    expect(built.matcher.description).toBe(`pid 100 (from ${file}) and descendants`);
    expect([100, 110, 111, 200, 201, 999].map((pid) => built.matcher.matches(app(pid)))).toEqual([true, true, true, false, false, false]);
  });

  test('pid wins over name_pattern; pid 1 (vLLM as a container\'s init) matches everything under it', async () => {
    const built = await buildProcessMatcher({ pid: 110, name_pattern: 'python' }, { parentOf });
    expect(built.ok && [110, 111, 100].map((pid) => built.matcher.matches(app(pid)))).toEqual([true, true, false]);
    const init = await buildProcessMatcher({ pid: 1, name_pattern: 'x' }, { parentOf });
    expect(init.ok && init.matcher.matches(app(201))).toBe(true);
  });

  test('name pattern when no pid is configured', async () => {
    const built = await buildProcessMatcher({ name_pattern: 'vllm|VLLM' }, { parentOf });
    expect(built.ok && built.matcher.description).toBe('process name matches /vllm|VLLM/');
    expect(built.ok && ['VLLM::EngineCore', '/opt/venv/bin/vllm', 'python3', '/usr/bin/python3'].map((n) => built.matcher.matches(app(5, n)))).toEqual([true, true, false, false]);
  });

  test('by default, the process listening on the target port and its descendants; a remote target says so', async () => {
    const listener = (port: number) => (port === 8000 ? { found: true as const, pid: 100 } : { found: false as const, why: `nothing listens on port ${port} in this network namespace` });
    const built = await buildProcessMatcher({}, { parentOf, targetUrl: 'http://127.0.0.1:8000', listener });
    expect(built.ok && built.matcher.description).toBe('pid 100 (listening on port 8000) and descendants');
    expect(built.ok && [100, 110, 111, 200, 201].map((pid) => built.matcher.matches(app(pid)))).toEqual([true, true, true, false, false]);
    expect(await buildProcessMatcher({}, { targetUrl: 'http://127.0.0.1:9000', listener })).toEqual({ ok: false, error: 'nothing listens on port 9000 in this network namespace' });
    const remote = await buildProcessMatcher({}, { targetUrl: 'http://vllm-0.vllm.svc.cluster.local:8000', listener });
    expect(!remote.ok && remote.error).toMatch(/^vLLM at vllm-0\.vllm\.svc\.cluster\.local:8000 runs on another host/);
    const self = await buildProcessMatcher({}, { targetUrl: 'http://127.0.0.1:8000', listener: () => ({ found: true, pid: process.pid }) });
    expect(self).toMatchObject({ ok: false, self: true });
  });

  test('an unreadable or garbled pid file, or a bad pattern, is an error value, not a throw', async () => {
    expect(await buildProcessMatcher({ pid_file: '/nonexistent/vllm.pid', name_pattern: 'x' })).toEqual({
      ok: false,
      error: 'cannot read gpu.process_match.pid_file /nonexistent/vllm.pid: ENOENT',
    });
    const garbled = tempFile('not a pid');
    expect(await buildProcessMatcher({ pid_file: garbled, name_pattern: 'x' })).toEqual({
      ok: false,
      error: `gpu.process_match.pid_file ${garbled} does not hold a pid: "not a pid"`,
    });
    const bad = await buildProcessMatcher({ name_pattern: '(' });
    expect(bad.ok).toBe(false);
    expect(!bad.ok && bad.error).toMatch(/^gpu.process_match.name_pattern is not a valid regular expression/);
  });

  test('procParentOf reads /proc (Linux)', () => {
    if (process.platform !== 'linux') return;
    expect(procParentOf(process.pid)).toBe(process.ppid);
    expect(procParentOf(2 ** 30)).toBeUndefined();
  });
});

describe('startingVllm: vLLM started for the port, not listening yet', () => {
  const procs = [
    { pid: 10, ppid: 1, cmdline: '/venv/bin/python -m vllm.entrypoints.openai.api_server --model m --port 18000' },
    { pid: 11, ppid: 10, cmdline: 'VLLM::EngineCore' },
    { pid: 12, ppid: 11, cmdline: '' },
    { pid: 20, ppid: 1, cmdline: 'vllm serve other --port 18001' },
    { pid: 30, ppid: 1, cmdline: 'python3 train.py --port 18000' },
    { pid: 40, ppid: 1, cmdline: 'vllm serve m' },
  ];
  test('the API server named with --port N and its descendants, not another port or another program', () => {
    expect(startingVllm(procs, 18000)).toEqual([10, 11, 12]);
  });
  test('port 8000 is vLLM\'s default: a vllm serve without --port counts', () => {
    expect(startingVllm(procs, 8000)).toEqual([40]);
  });
  test('--port=N is the same as --port N', () => {
    expect(startingVllm([{ pid: 5, ppid: 1, cmdline: 'vllm serve m --port=9000 --max-num-seqs 4' }], 9000)).toEqual([5]);
  });
});
