/**
 * Starts and stops a real vLLM (CPU build, tiny local model) for the e2e suite through the
 * project's own scripts. The venv must exist (scripts/real-vllm/setup, run by .ci/run).
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { promisify } from 'node:util';
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
