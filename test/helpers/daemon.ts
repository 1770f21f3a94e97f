/** Runs the real daemon in-process on an ephemeral loopback port, with a silent logger. */
import type { AddressInfo } from 'node:net';
import { pino, type Logger } from 'pino';
import { runDaemon } from '../../src/app.js';
import { parseConfig } from '../../src/config.js';
import { Emulator, type EmulatorOptions } from '../../src/emulator/server.js';

export interface RunningDaemon {
  url: string;
  done: Promise<void>;
  stop(): Promise<void>;
  metrics(): Promise<string>;
  status(): Promise<{ code: number; body: { status: string; state: string; cause: string; since: string; evidence: string[]; recent: string[]; reasons: string[]; checks: Array<{ name: string; status: string; reason: string }> } }>;
}

/** Fast intervals for tests; every key can be overridden. */
export function testConfig(targetUrl: string, overrides: Record<string, unknown> = {}) {
  const base: Record<string, unknown> = {
    listen: '127.0.0.1:0',
    log_level: 'silent',
    target: { url: targetUrl },
    probes: { ttft: { interval: '1s', timeout: '900ms' }, prefix: { enabled: false } },
    scrape: { interval: '1s', timeout: '800ms', wedge_scrapes: 2 },
    gpu: { enabled: false },
    status: { failures_to_unhealthy: 2, successes_to_recover: 1, window: '1m' },
  };
  for (const [k, v] of Object.entries(overrides)) {
    base[k] = typeof v === 'object' && v && !Array.isArray(v) && typeof base[k] === 'object' ? { ...(base[k] as object), ...v } : v;
  }
  return parseConfig(base, 'test');
}

export async function startDaemon(config: ReturnType<typeof parseConfig>, opts: { configFile?: string; env?: NodeJS.ProcessEnv; log?: Logger } = {}): Promise<RunningDaemon> {
  const controller = new AbortController();
  let resolveAddr!: (a: AddressInfo) => void;
  const addr = new Promise<AddressInfo>((r) => (resolveAddr = r));
  const done = runDaemon({
    config,
    ...(opts.configFile ? { configFile: opts.configFile } : {}),
    signal: controller.signal,
    log: opts.log ?? pino({ level: 'silent' }),
    env: opts.env ?? {},
    onListen: resolveAddr,
  });
  const address = await Promise.race([addr, done.then(() => Promise.reject(new Error('daemon exited before listening')))]);
  const url = `http://127.0.0.1:${address.port}`;
  return {
    url,
    done,
    async stop() {
      controller.abort();
      await done;
    },
    metrics: async () => (await fetch(`${url}/metrics`)).text(),
    async status() {
      const res = await fetch(`${url}/status`);
      return { code: res.status, body: (await res.json()) as never };
    },
  };
}

export async function startEmulator(options: EmulatorOptions = {}, port = 0) {
  const emulator = new Emulator(options);
  const url = await emulator.listen(port);
  return { emulator, url: url.origin, close: () => emulator.close() };
}

/** Polls `check` until it returns a truthy value or `ms` passes; returns the last value. */
export async function waitFor<T>(check: () => Promise<T> | T, ms = 10_000, every = 100): Promise<T> {
  const deadline = Date.now() + ms;
  let last: T = await check();
  while (!last && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, every));
    last = await check();
  }
  return last;
}

/** Reads one sample's value from exposition text; undefined when absent. */
export function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^([^{\s]+)(?:\{(.*)\})?\s+(\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const got = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => got[k] === v)) return Number(m[3]);
  }
  return undefined;
}
