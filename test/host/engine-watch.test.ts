/**
 * The engine watch tells a crash (the engine exits while the API server still listens) from a
 * stop (the listening socket closes first), on real processes: exits learnt through pidfds held
 * by the perl helper, or by polling where the helper cannot run.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { EngineWatch } from '../../src/host/engine-watch.js';
import { ProcessLiveness } from '../../src/host/process-exits.js';
import { waitFor } from '../helpers/daemon.js';
import { pidfdHolders } from '../helpers/pidfd.js';

/** A child that leaves a zombie: its own child exits when told, and it never reaps it. */
async function zombieMaker(): Promise<{ parent: ReturnType<typeof spawn>; child: number; end: () => void }> {
  // The background shell reads the parent's input through another descriptor (sh gives a
  // background job /dev/null for its standard input, even `<&0`) and exits on the first line;
  // the parent becomes a sleep that never waits for it.
  const parent = spawn('sh', ['-c', 'exec 3<&0; read line <&3 & echo $!; exec sleep 60'], { stdio: ['pipe', 'pipe', 'ignore'] });
  const child = await new Promise<number>((resolve) => parent.stdout!.once('data', (d: Buffer) => resolve(Number(d.toString().trim()))));
  return { parent, child, end: () => parent.kill('SIGKILL') };
}

const stateOf = (pid: number) => /\) (\S) /.exec(readFileSync(`/proc/${pid}/stat`, 'latin1'))?.[1];

describe('engine watch', () => {
  test('an exit is learnt through the pidfd the helper holds, with no polling', async () => {
    const engine = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], { stdio: 'ignore' });
    const exits: string[] = [];
    const polling: string[] = [];
    // A poll would come only after a minute: a report within seconds is the pidfd's.
    const watch = new EngineWatch({ targetUrl: 'http://127.0.0.1:8000', onEngineExit: (w) => exits.push(w), onPolling: (r) => polling.push(r), intervalMs: 60_000, listener: () => process.pid, confirmMs: 0 });
    watch.follow([
      { pid: process.pid, comm: 'node' },
      { pid: engine.pid!, comm: 'VLLM::EngineCor' },
    ]);
    expect(await waitFor(async () => pidfdHolders(engine.pid!).length === 1, 5000)).toBe(true);
    const [helper] = pidfdHolders(engine.pid!);
    expect(pidfdHolders(process.pid)).toEqual([helper]);
    // The daemon's environment (which may hold vLLM's API key) is not the helper's.
    expect(readFileSync(`/proc/${helper}/environ`, 'latin1').split('\0').filter(Boolean)).toEqual([`PATH=${process.env.PATH}`]);
    engine.kill('SIGKILL');
    expect(await waitFor(async () => exits.length > 0, 5000)).toBe(true);
    expect(exits).toEqual([`vLLM process ${engine.pid} (VLLM::EngineCor) exited, API server ${process.pid} still up`]);
    expect(polling).toEqual([]);
    // Stopping ends the helper's input, as the daemon's death would: it exits and holds nothing.
    watch.stop();
    expect(await waitFor(async () => pidfdHolders(process.pid).length === 0, 5000)).toBe(true);
    expect(await waitFor(async () => { try { return stateOf(helper!) === 'Z'; } catch { return true; } }, 5000)).toBe(true);
  });

  test('an engine that exited but is not reaped yet (a zombie) has exited', async () => {
    const zombie = await zombieMaker();
    try {
      const exits: string[] = [];
      const watch = new EngineWatch({ targetUrl: 'http://127.0.0.1:8000', onEngineExit: (w) => exits.push(w), intervalMs: 60_000, listener: () => process.pid, confirmMs: 0 });
      watch.follow([
        { pid: process.pid, comm: 'node' },
        { pid: zombie.child, comm: 'VLLM::EngineCor' },
      ]);
      expect(await waitFor(async () => pidfdHolders(zombie.child).length === 1, 5000)).toBe(true);
      zombie.parent.stdin!.write('now\n');
      expect(await waitFor(async () => exits.length > 0, 5000)).toBe(true);
      expect(stateOf(zombie.child)).toBe('Z');
      expect(exits[0]).toContain(`vLLM process ${zombie.child} `);
      watch.stop();
    } finally {
      zombie.end();
    }
  });

  test.each([
    ['perl cannot be started', '/nonexistent/perl', /^cannot start \/nonexistent\/perl: .*ENOENT/],
    ['the kernel refuses pidfd_open', 'refuses', /^pidfd_open failed \(errno 38\)$/],
    ['the helper dies', 'dies', /^the helper exited \(status 1\): gone$/],
    ['perl cannot wait on the pidfd', 'noselect', /^the helper's select failed$/],
    ['the helper says something else', 'garbles', /^the helper wrote something else than its lines$/],
  ])('where %s, the watch says why and polls instead', async (_, perl, reason) => {
    const dir = mkdtempSync(join(tmpdir(), 'vllm-probe-perl-'));
    const scripts: Record<string, string> = {
      refuses: 'read line; echo unsupported 38; exit 3',
      dies: 'echo gone >&2; exit 1',
      noselect: 'read line; echo unsupported select; exit 3',
      garbles: 'read line; echo hello; exec sleep 60',
    };
    const command = scripts[perl] ? join(dir, perl) : perl;
    if (scripts[perl]) writeFileSync(command, `#!/bin/sh\n${scripts[perl]}\n`, { mode: 0o755 });
    const engine = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], { stdio: 'ignore' });
    const exits: string[] = [];
    const polling: string[] = [];
    const watch = new EngineWatch({ targetUrl: 'http://127.0.0.1:8000', onEngineExit: (w) => exits.push(w), onPolling: (r) => polling.push(r), intervalMs: 20, listener: () => process.pid, confirmMs: 0, exits: { perl: command } });
    watch.follow([
      { pid: process.pid, comm: 'node' },
      { pid: engine.pid!, comm: 'VLLM::EngineCor' },
    ]);
    expect(await waitFor(async () => polling.length > 0, 5000)).toBe(true);
    expect(polling).toHaveLength(1);
    expect(polling[0]).toMatch(reason);
    engine.kill('SIGKILL');
    expect(await waitFor(async () => exits.length > 0, 5000)).toBe(true);
    expect(exits[0]).toContain(`vLLM process ${engine.pid} `);
    watch.stop();
    rmSync(dir, { recursive: true, force: true });
  });

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
    expect(exits).toEqual([`vLLM process ${engine.pid} (VLLM::EngineCor) exited, API server ${process.pid} still up`]);
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

  test('polling holds one /proc file per followed process and lets go of it when the process exits or the watch stops', async () => {
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
    const watch = new EngineWatch({ targetUrl: 'http://127.0.0.1:8000', onEngineExit: (w) => exits.push(w), intervalMs: 20, listener: () => process.pid, confirmMs: 0, exits: 'poll' });
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
