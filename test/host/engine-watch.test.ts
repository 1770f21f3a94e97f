/**
 * The engine watch tells a crash (the engine exits while the API server still listens) from a
 * stop (the listening socket closes first), on real processes for liveness.
 */
import { spawn } from 'node:child_process';
import { readdirSync, readlinkSync } from 'node:fs';
import { describe, expect, test } from 'vitest';
import { EngineWatch, ProcessLiveness } from '../../src/host/engine-watch.js';
import { waitFor } from '../helpers/daemon.js';

describe('engine watch', () => {
  test('an engine process that exits while the API server listens is reported once, with both pids', async () => {
    const engine = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], { stdio: 'ignore' });
    const exits: string[] = [];
    const watch = new EngineWatch({ targetUrl: 'http://127.0.0.1:8000', onEngineExit: (w) => exits.push(w), intervalMs: 20, listener: () => process.pid });
    watch.follow([
      { pid: process.pid, comm: 'node' },
      { pid: engine.pid!, comm: 'VLLM::EngineCor' },
    ]);
    const liveness = new ProcessLiveness();
    await waitFor(async () => liveness.alive(engine.pid!), 5000);
    liveness.keepOnly(new Set());
    engine.kill('SIGKILL');
    expect(await waitFor(async () => exits.length > 0, 5000)).toBe(true);
    watch.tick();
    watch.stop();
    expect(exits).toEqual([`vLLM process ${engine.pid} (VLLM::EngineCor) exited while the API server (pid ${process.pid}) still listened`]);
  });

  test('a stop that ends the engine a moment before the API server closes its socket is not a crash', async () => {
    let listening: number | undefined = 100;
    const exits: string[] = [];
    const watch = new EngineWatch({ targetUrl: 'http://127.0.0.1:8000', onEngineExit: (w) => exits.push(w), alive: (pid) => pid !== 101, listener: () => listening, confirmMs: 50 });
    watch.follow([
      { pid: 100, comm: 'python3' },
      { pid: 101, comm: 'VLLM::EngineCor' },
    ]);
    watch.tick(); // the engine is gone, the socket still open …
    listening = undefined; // … and closed right after, as a stopping uvicorn does
    await new Promise((r) => setTimeout(r, 120));
    watch.stop();
    expect(exits).toEqual([]);
  });

  test('a stop (nothing listens any more when the engine goes) is not a crash', () => {
    const alive = new Set([100, 101]);
    const exits: string[] = [];
    const watch = new EngineWatch({ targetUrl: 'http://127.0.0.1:8000', onEngineExit: (w) => exits.push(w), alive: (pid) => alive.has(pid), listener: () => undefined });
    watch.follow([
      { pid: 100, comm: 'python3' },
      { pid: 101, comm: 'VLLM::EngineCor' },
    ]);
    alive.delete(101);
    watch.tick();
    alive.delete(100);
    watch.tick();
    watch.stop();
    expect(exits).toEqual([]);
  });

  test('the API server exiting with its engine in one pass is not a crash either', () => {
    const exits: string[] = [];
    const watch = new EngineWatch({ targetUrl: 'http://127.0.0.1:8000', onEngineExit: (w) => exits.push(w), alive: () => false, listener: () => 100 });
    watch.follow([
      { pid: 100, comm: 'python3' },
      { pid: 101, comm: 'VLLM::EngineCor' },
    ]);
    watch.tick();
    watch.stop();
    expect(exits).toEqual([]);
  });

  test('the watch holds one /proc file per followed process and lets go of it when the process exits or the watch stops', async () => {
    const statFilesOpen = (pid: number) =>
      readdirSync('/proc/self/fd').filter((fd) => {
        try {
          return readlinkSync(`/proc/self/fd/${fd}`) === `/proc/${pid}/stat`;
        } catch {
          return false;
        }
      }).length;
    const engine = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], { stdio: 'ignore' });
    const exits: string[] = [];
    const watch = new EngineWatch({ targetUrl: 'http://127.0.0.1:8000', onEngineExit: (w) => exits.push(w), intervalMs: 20, listener: () => process.pid, confirmMs: 0 });
    watch.follow([
      { pid: process.pid, comm: 'node' },
      { pid: engine.pid!, comm: 'VLLM::EngineCor' },
    ]);
    watch.tick();
    watch.tick();
    expect(statFilesOpen(engine.pid!)).toBe(1);
    expect(statFilesOpen(process.pid)).toBe(1);
    engine.kill('SIGKILL');
    expect(await waitFor(async () => exits.length > 0, 5000)).toBe(true);
    expect(statFilesOpen(engine.pid!)).toBe(0);
    watch.stop();
    expect(statFilesOpen(process.pid)).toBe(0);
  });

  test('liveness: this process yes, a reaped child no', async () => {
    const liveness = new ProcessLiveness();
    expect(liveness.alive(process.pid)).toBe(true);
    const child = spawn(process.execPath, ['-e', '0'], { stdio: 'ignore' });
    await new Promise((r) => child.once('exit', r));
    expect(liveness.alive(child.pid!)).toBe(false);
    liveness.keepOnly(new Set());
  });
});
