/** Starts a real Prometheus (Debian package) on loopback with a given scrape config and rules. */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { PROMETHEUS } from './tools.js';
import { waitFor } from './daemon.js';

export async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

export interface RunningPrometheus {
  url: string;
  query(expr: string): Promise<Array<{ metric: Record<string, string>; value: [number, string] }>>;
  stop(): Promise<void>;
  log(): string;
}

export async function startPrometheus(opts: { targets: string[]; ruleFiles?: string[]; scrapeInterval?: string; configYaml?: string }): Promise<RunningPrometheus> {
  const dir = mkdtempSync(join(tmpdir(), 'prom-'));
  const port = await freePort();
  const config =
    opts.configYaml ??
    [
      'global:',
      `  scrape_interval: ${opts.scrapeInterval ?? '1s'}`,
      `  evaluation_interval: ${opts.scrapeInterval ?? '1s'}`,
      'rule_files:',
      ...(opts.ruleFiles ?? []).map((f) => `  - ${resolve(f)}`),
      'scrape_configs:',
      '  - job_name: vllm-probe',
      '    static_configs:',
      `      - targets: [${opts.targets.map((t) => `"${t}"`).join(', ')}]`,
      '',
    ].join('\n');
  writeFileSync(join(dir, 'prometheus.yml'), config);
  let output = '';
  const child: ChildProcess = spawn(PROMETHEUS!, [`--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn'], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  const url = `http://127.0.0.1:${port}`;
  const ready = await waitFor(async () => (await fetch(`${url}/-/ready`).catch(() => undefined))?.status === 200, 20_000, 200);
  if (!ready) {
    child.kill('SIGKILL');
    throw new Error(`prometheus did not become ready:\n${output}`);
  }
  return {
    url,
    log: () => output,
    async query(expr) {
      const res = await fetch(`${url}/api/v1/query?query=${encodeURIComponent(expr)}`);
      const body = (await res.json()) as { status: string; error?: string; data?: { result: Array<{ metric: Record<string, string>; value: [number, string] }> } };
      if (body.status !== 'success') throw new Error(`query failed: ${expr}: ${body.error}`);
      return body.data!.result;
    },
    async stop() {
      child.kill('SIGTERM');
      await new Promise<void>((r) => (child.exitCode !== null ? r() : child.once('exit', () => r())));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
