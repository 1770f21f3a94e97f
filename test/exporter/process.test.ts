import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { describe, expect, test } from 'vitest';
import { parseConfig } from '../../src/config.js';
import { VllmProcessCollector, type ProcSample } from '../../src/exporter/process.js';
import { listeningInodes, parseProcStat, processListeningOn } from '../../src/host/proc.js';
import { createMetrics } from '../../src/metrics.js';
import { StatusBoard } from '../../src/status.js';
import { sample } from '../helpers/daemon.js';

/** Runs `fn` with a port this very process listens on. */
async function withOwnListener(fn: (port: number) => Promise<void> | void): Promise<void> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  try {
    await fn((server.address() as AddressInfo).port);
  } finally {
    server.close();
  }
}

const STAT = '4242 (python3 (vllm) x) S 1 4242 4242 0 -1 4194560 123 0 0 0 1234 566 0 0 20 0 12 0 9999 4859281408 275366 18446744073709551615';

describe('parseProcStat', () => {
  test('comm with spaces and parentheses; parent pid; utime+stime in ticks', () => {
    expect(parseProcStat(STAT)).toEqual({ comm: 'python3 (vllm) x', ppid: 1, cpuSeconds: 18 });
  });
  test('garbage is undefined, not zero', () => {
    expect(parseProcStat('nonsense')).toBeUndefined();
    expect(parseProcStat('1 (x) S')).toBeUndefined();
  });
});

function setup(match: Record<string, unknown>, list: () => ProcSample[]) {
  const config = parseConfig({ gpu: { process_match: match } });
  const registry = new Registry();
  const metrics = createMetrics(registry, config);
  const status = new StatusBoard(config, metrics, () => ({ url: 'x', model: 'm' }));
  const calls = { list: 0, read: 0 };
  const clock = { now: 1_000_000 };
  const source = {
    list: () => (calls.list++, list()),
    read: (pid: number) => (calls.read++, list().find((p) => p.pid === pid)),
    now: () => clock.now,
  };
  const c = new VllmProcessCollector(config, metrics, status, () => 'm', pino({ level: 'silent' }), source);
  return { c, registry, status, calls, clock };
}
const proc = (pid: number, comm: string, cpuSeconds: number, rssBytes: number): ProcSample => ({ pid, ppid: 1, comm, cmdline: comm, cpuSeconds, rssBytes });

describe('VllmProcessCollector', () => {
  test('sums matched processes; CPU is a counter that survives a restart with new pids', async () => {
    let procs = [proc(10, 'vllm', 5, 100), proc(11, 'VLLM::EngineCore', 20, 300), proc(12, 'nginx', 99, 999)];
    const { c, registry, status } = setup({ name_pattern: 'vllm|VLLM' }, () => procs);
    await c.collect();
    let m = await registry.metrics();
    expect(sample(m, 'vllm_probe_vllm_process_cpu_seconds_total', { model: 'm' })).toBe(0); // first reading is the baseline
    expect(sample(m, 'vllm_probe_vllm_process_resident_memory_bytes', { model: 'm' })).toBe(400);
    expect(sample(m, 'vllm_probe_vllm_processes', { model: 'm' })).toBe(2);
    procs = [proc(10, 'vllm', 7, 100), proc(11, 'VLLM::EngineCore', 30, 300)];
    await c.collect();
    expect(sample(await registry.metrics(), 'vllm_probe_vllm_process_cpu_seconds_total', { model: 'm' })).toBe(12);
    procs = [proc(50, 'vllm', 1, 100), proc(51, 'VLLM::EngineCore', 2, 300)]; // restarted
    await c.collect();
    await c.collect();
    m = await registry.metrics();
    expect(sample(m, 'vllm_probe_vllm_process_cpu_seconds_total', { model: 'm' })).toBe(12);
    expect(status.report().checks.find((x) => x.name === 'vllm_process')?.reason).toBe('2 vLLM processes (pids 50, 51), resident 0.00 GiB');
  });

  test('the processes found are followed by pid; a full search again when one is gone, is another process, or 5 minutes passed', async () => {
    let procs = [proc(10, 'vllm', 5, 100), proc(11, 'VLLM::EngineCore', 20, 300), proc(12, 'nginx', 99, 999)];
    const { c, registry, calls, clock } = setup({ name_pattern: 'vllm|VLLM' }, () => procs);
    await c.collect();
    expect(calls.list).toBe(1);
    procs = [proc(10, 'vllm', 6, 150), proc(11, 'VLLM::EngineCore', 25, 300), proc(12, 'nginx', 99, 999)];
    await c.collect();
    await c.collect();
    expect(calls.list).toBe(1); // followed: two reads per scrape, no search
    expect(sample(await registry.metrics(), 'vllm_probe_vllm_process_resident_memory_bytes', { model: 'm' })).toBe(450); // the new readings
    procs = [proc(10, 'vllm', 6, 150), proc(11, 'python3', 1, 1)]; // pid 11 reused by another process
    await c.collect();
    expect(calls.list).toBe(2);
    expect(sample(await registry.metrics(), 'vllm_probe_vllm_processes', { model: 'm' })).toBe(1);
    procs = [proc(60, 'vllm', 1, 100)]; // restarted: pid 10 is gone
    await c.collect();
    expect(calls.list).toBe(3);
    procs = [proc(60, 'vllm', 1, 100), proc(61, 'VLLM::EngineCore', 1, 100)]; // a process started later
    await c.collect();
    expect(sample(await registry.metrics(), 'vllm_probe_vllm_processes', { model: 'm' })).toBe(1); // not seen yet…
    clock.now += 5 * 60_000;
    await c.collect();
    expect(calls.list).toBe(4);
    expect(sample(await registry.metrics(), 'vllm_probe_vllm_processes', { model: 'm' })).toBe(2); // …found by the periodic search
  });

  test('nothing visible (sidecar without a shared PID namespace): says so in /status, no memory series', async () => {
    const { c, registry, status } = setup({ name_pattern: 'vllm' }, () => [proc(1, 'node', 1, 1)]);
    // Nothing to read: NoDataError, so the runner sets source_up 0 (test/exporter/process-series.test.ts).
    await expect(c.collect()).rejects.toMatchObject({ name: 'NoDataError', reason: 'not_visible' });
    expect(sample(await registry.metrics(), 'vllm_probe_vllm_process_resident_memory_bytes', { model: 'm' })).toBeUndefined();
    const check = status.report().checks.find((x) => x.name === 'vllm_process')!;
    expect(check.status).toBe('skipped');
    // Not seeing vLLM is not a verdict on it: the skipped check neither leads nor is listed as a problem.
    expect(status.report().state).not.toBe('degraded');
    expect(status.report().reasons).toEqual([]);
    expect(check.reason).toContain('shareProcessNamespace: true');
  });

  test('a pid file matches that process and its descendants only', async () => {
    const { writeFileSync, mkdtempSync } = await import('node:fs');
    const { join } = await import('node:path');
    const { tmpdir } = await import('node:os');
    const file = join(mkdtempSync(join(tmpdir(), 'pid-')), 'vllm.pid');
    writeFileSync(file, `${process.pid}\n`);
    const child = (await import('node:child_process')).spawn(process.execPath, ['-e', 'setTimeout(() => {}, 30000)']);
    try {
      const { c, registry } = setup({ pid_file: file }, () => [proc(child.pid!, 'node', 3, 10), proc(999999, 'unrelated', 1, 1)]);
      await c.collect();
      expect(sample(await registry.metrics(), 'vllm_probe_vllm_processes', { model: 'm' })).toBe(1);
    } finally {
      child.kill();
    }
  });
});

describe('the process listening on a port', () => {
  test('/proc/net/tcp LISTEN rows on the port give their inodes; other states and ports do not', () => {
    const table = [
      '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode',
      '   0: 0100007F:1F40 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 41234 1 0000000000000000 100 0 0 10 0',
      '   1: 0100007F:1F40 0100007F:C350 01 00000000:00000000 00:00000000 00000000  1000        0 41299 1 0000000000000000 20 4 0 10 -1',
      '   2: 00000000:1F41 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 51234 1 0000000000000000 100 0 0 10 0',
    ].join('\n');
    expect([...listeningInodes([table], 8000)]).toEqual(['41234']);
  });

  /** A /proc tree on disk: net/tcp with one listener on 8000 (inode 41234), and process fds. */
  function fakeProc(fds: Record<number, Record<string, string>>): string {
    const root = mkdtempSync(join(tmpdir(), 'vllm-probe-proc-'));
    mkdirSync(join(root, 'net'));
    writeFileSync(
      join(root, 'net', 'tcp'),
      ['  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode', '   0: 0100007F:1F40 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 41234 1 0000000000000000 100 0 0 10 0', ''].join('\n'),
    );
    for (const [pid, links] of Object.entries(fds)) {
      mkdirSync(join(root, pid, 'fd'), { recursive: true });
      for (const [fd, target] of Object.entries(links)) symlinkSync(target, join(root, pid, 'fd', fd));
    }
    return root;
  }

  test('a listener found once is confirmed by its descriptor alone; when the descriptor changes, the tables are read again', () => {
    const root = fakeProc({ 300: { 0: '/dev/null', 7: 'socket:[41234]' }, 400: { 3: 'socket:[99]' } });
    try {
      expect(processListeningOn(8000, root)).toEqual({ found: true, pid: 300 });
      // The same descriptor still holds the same socket: no table is needed (on a busy host
      // /proc/net/tcp lists every connection).
      rmSync(join(root, 'net'), { recursive: true });
      expect(processListeningOn(8000, root)).toEqual({ found: true, pid: 300 });
      // vLLM restarted: pid 300 is gone and pid 400 listens on a new socket.
      rmSync(join(root, '300'), { recursive: true });
      expect(processListeningOn(8000, root)).toMatchObject({ found: false, why: expect.stringMatching(/net\/tcp is not readable/) });
      mkdirSync(join(root, 'net'));
      writeFileSync(join(root, 'net', 'tcp'), ['header', '   0: 0100007F:1F40 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 99 1 0000000000000000 100 0 0 10 0', ''].join('\n'));
      expect(processListeningOn(8000, root)).toEqual({ found: true, pid: 400 });
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  test('a port handed from this process to another is found in the other (Linux)', async () => {
    if (process.platform !== 'linux') return;
    let port = 0;
    await withOwnListener((p) => {
      port = p;
      expect(processListeningOn(port)).toEqual({ found: true, pid: process.pid });
    });
    const child = spawn(process.execPath, ['-e', `require('node:net').createServer().listen(${port}, '127.0.0.1', () => console.log('up'))`], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      await new Promise((r) => child.stdout.once('data', r));
      expect(processListeningOn(port)).toEqual({ found: true, pid: child.pid });
    } finally {
      child.kill();
    }
  });

  test('finds this very process when it listens (Linux)', async () => {
    if (process.platform !== 'linux') return;
    await withOwnListener((port) => {
      expect(processListeningOn(port)).toEqual({ found: true, pid: process.pid });
    });
  });
});

test('the demo: a target served by this very process (the built-in emulator) is "not applicable", not an alarm', async () => {
  if (process.platform !== 'linux') return;
  await withOwnListener(async (port) => {
    const config = parseConfig({ target: { url: `http://127.0.0.1:${port}` } });
    const metrics = createMetrics(new Registry(), config);
    const status = new StatusBoard(config, metrics, () => ({ url: 'x', model: 'm' }));
    await expect(new VllmProcessCollector(config, metrics, status, () => 'm', pino({ level: 'silent' })).collect()).rejects.toMatchObject({ reason: 'not_visible' });
    const check = status.report().checks.find((c) => c.name === 'vllm_process')!;
    expect(check.status).toBe('skipped');
    expect(check.reason).toMatch(/^not applicable: port \d+ is served by this vllm-probe process \(the built-in emulator\)/);
    expect(status.report().reasons).toEqual([]);
  });
});
