/**
 * bcrypt on a worker thread. bcrypt is slow on purpose, and bcryptjs' async API still runs on
 * the event loop, only in slices of up to 100 ms: 40 concurrent bad logins stalled /healthz and
 * every probe's timers (issue 23). One worker runs the checks one at a time, so a flood costs at
 * most one core and the daemon's loop stays free.
 *
 * The worker is started on first use and unref'd (it never keeps the process alive); if it dies,
 * the checks waiting on it fail and the next one starts a fresh worker.
 */
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';

// An eval'd CommonJS worker: no separate file to build or locate (tests run the TypeScript
// sources, the package runs dist/), and bcryptjs is loaded from the path this module resolves.
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const bcrypt = require(workerData.bcryptjs);
parentPort.on('message', ({ id, op, password, hash, cost }) => {
  try {
    const result = op === 'hash' ? bcrypt.hashSync(password, cost) : bcrypt.compareSync(password, hash);
    parentPort.postMessage({ id, result });
  } catch (err) {
    parentPort.postMessage({ id, error: String(err && err.message || err) });
  }
});
`;

type Pending = { resolve: (v: string | boolean) => void; reject: (e: Error) => void };

export class BcryptWorker {
  private worker: { thread: Worker; pending: Map<number, Pending> } | undefined;
  private nextId = 0;

  /** Whether `password` matches the bcrypt `hash`. Rejects only when the worker fails. */
  compare(password: string, hash: string): Promise<boolean> {
    return this.call({ op: 'compare', password, hash }) as Promise<boolean>;
  }

  /** A bcrypt hash of `password` at `cost`. */
  hash(password: string, cost: number): Promise<string> {
    return this.call({ op: 'hash', password, cost }) as Promise<string>;
  }

  async close(): Promise<void> {
    const w = this.worker;
    this.worker = undefined;
    await w?.thread.terminate();
  }

  private call(msg: Record<string, unknown>): Promise<string | boolean> {
    const { thread, pending } = this.start();
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      pending.set(id, { resolve, reject });
      thread.postMessage({ id, ...msg });
    });
  }

  private start(): { thread: Worker; pending: Map<number, Pending> } {
    if (this.worker) return this.worker;
    const bcryptjs = createRequire(import.meta.url).resolve('bcryptjs');
    const thread = new Worker(WORKER_SOURCE, { eval: true, workerData: { bcryptjs } });
    thread.unref();
    // Each worker has its own pending map: a dead worker fails only the checks it held.
    const pending = new Map<number, Pending>();
    thread.on('message', ({ id, result, error }: { id: number; result?: string | boolean; error?: string }) => {
      const p = pending.get(id);
      pending.delete(id);
      if (!p) return;
      if (error !== undefined) p.reject(new Error(`bcrypt: ${error}`));
      else p.resolve(result!);
    });
    const fail = (err: Error) => {
      if (this.worker?.thread === thread) this.worker = undefined;
      for (const p of pending.values()) p.reject(err);
      pending.clear();
    };
    thread.on('error', fail);
    thread.on('exit', (code) => fail(new Error(`bcrypt worker exited with code ${code}`)));
    this.worker = { thread, pending };
    return this.worker;
  }
}
