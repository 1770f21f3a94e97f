/**
 * Starts and stops a real vLLM (CPU build, tiny local model) for the e2e suite through the
 * project's own scripts. The venv must exist (scripts/real-vllm/setup, run by .ci/run).
 */
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { parseProcStat } from '../../src/host/proc.js';
import { freePort } from '../helpers/prometheus.js';

const run = promisify(execFile);
export const E2E_API_KEY = 'sk-e2e-test-key';

export interface RealVllm {
  port: number;
  url: string;
  apiKey: string;
  start(extra?: string[]): Promise<void>;
  stop(): Promise<void>;
  restartCommand(): string;
}

export function realVllmAvailable(): boolean {
  return existsSync('.cache/vllm-venv/.real-vllm-stamp');
}

export async function realVllm(port?: number): Promise<RealVllm> {
  const p = port ?? (await freePort());
  const args = ['--port', String(p), '--api-key', E2E_API_KEY];
  const self: RealVllm = {
    port: p,
    url: `http://127.0.0.1:${p}`,
    apiKey: E2E_API_KEY,
    async start(extra = []) {
      await run('scripts/real-vllm/start', [...args, ...extra], { timeout: 400_000, maxBuffer: 16 * 1024 * 1024 });
    },
    async stop() {
      await run('scripts/real-vllm/stop', ['--port', String(p)], { timeout: 60_000 }).catch(() => undefined);
    },
    restartCommand: () => `scripts/real-vllm/restart ${args.join(' ')}`,
  };
  return self;
}

/** pid → [ppid, comm] for every visible process. */
export function processTable(): Map<number, [number, string]> {
  const out = new Map<number, [number, string]>();
  for (const name of readdirSync('/proc').filter((n) => /^\d+$/.test(n))) {
    try {
      const s = parseProcStat(readFileSync(`/proc/${name}/stat`, 'utf8'));
      if (s) out.set(Number(name), [s.ppid, s.comm]);
    } catch {
      /* exited */
    }
  }
  return out;
}

/** `root` and every process below it, sorted. */
export function treeOf(root: number): number[] {
  const table = processTable();
  const out = [root];
  for (let i = 0; i < out.length; i++) for (const [pid, [ppid]] of table) if (ppid === out[i]) out.push(pid);
  return out.sort((a, b) => a - b);
}

/** The API server's pid (scripts/real-vllm/start writes it). */
export function serverPid(vllm: RealVllm): number {
  return Number(readFileSync(`.cache/vllm-${vllm.port}.pid`, 'utf8').trim());
}

/** vLLM's engine process (`VLLM::EngineCore`, comm cut to 15 characters) under the API server. */
export function engineCorePid(vllm: RealVllm): number | undefined {
  const table = processTable();
  return treeOf(serverPid(vllm)).find((pid) => table.get(pid)?.[1].startsWith('VLLM::EngineCor'));
}
