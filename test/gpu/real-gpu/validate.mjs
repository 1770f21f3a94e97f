// One collection with the built code (dist/), both ways the product reads a GPU:
//  - runGpuCommand, what `vllm-probe gpu` prints;
//  - the daemon's collectors (nvidia_smi, host) on a fresh Registry, and the /metrics text and
//    /status checks they produce.
// Env: PID_FILE (gpu.process_match.pid_file), NVIDIA_SMI (gpu.nvidia_smi_path). Not a test;
// run by run.sh on a GPU machine after `npm run build`.
import { performance } from 'node:perf_hooks';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { parseConfig } from '../../../dist/config.js';
import { createGpuCollectors } from '../../../dist/gpu/collector.js';
import { runGpuCommand } from '../../../dist/gpu/command.js';
import { createMetrics } from '../../../dist/metrics.js';
import { StatusBoard } from '../../../dist/status.js';

const gpu = { timeout: '10s', interval: '15s' };
if (process.env.PID_FILE) gpu.process_match = { pid_file: process.env.PID_FILE };
if (process.env.NVIDIA_SMI) gpu.nvidia_smi_path = process.env.NVIDIA_SMI;
const config = parseConfig({ gpu });

let started = performance.now();
const command = await runGpuCommand(config, AbortSignal.timeout(30_000));
const commandSeconds = (performance.now() - started) / 1000;

const registry = new Registry();
const metrics = createMetrics(registry, config);
const status = new StatusBoard(config, metrics, () => ({ url: 'n/a', model: 'n/a' }));
const log = pino({ level: 'info' }, pino.destination(2));
const collectors = createGpuCollectors(config, metrics, status, log).scheduled;
started = performance.now();
for (const { collector } of collectors) await collector.collect(AbortSignal.timeout(10_000));
const collectSeconds = (performance.now() - started) / 1000;
// The host collector's CPU ratio needs a second reading.
await new Promise((r) => setTimeout(r, 1000));
await collectors.find((c) => c.collector.name === 'host').collector.collect(AbortSignal.timeout(10_000));
const text = await registry.metrics();
console.log(
  JSON.stringify(
    {
      command,
      command_seconds: commandSeconds,
      collect_seconds: collectSeconds,
      metrics: text.split('\n').filter((l) => /^vllm_probe_(gpu|host)_/.test(l)),
      status: status.report().checks.filter((c) => c.name.startsWith('gpu')),
    },
    null,
    1,
  ),
);
