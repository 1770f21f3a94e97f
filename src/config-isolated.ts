/**
 * Reads and validates the daemon's config file on a short-lived worker thread. The YAML and
 * schema libraries (yaml, zod) and the schema itself cost the daemon ~9 MB of resident memory
 * for its whole life when loaded on the main thread, for work done once at start and on a
 * reload; a worker's heap goes when it exits (docs/benchmarks.md, footprint). The worker sends
 * back plain data: the config and the validated command-line overrides, or a ConfigError's file
 * and problems, which are thrown here as the same ConfigError (exit 2 with the field's path).
 */
import { Worker } from 'node:worker_threads';
import type { Config } from './config-schema.js';
import { ConfigError, type Overrides } from './config-runtime.js';

type Answer = { config: Config; overrides: Overrides } | { configError: { file: string; problems: string[] } } | { error: string };

// An eval'd CommonJS worker: no extra entry file to build or find. It imports the compiled
// config module next to this one.
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
import(workerData.module).then((m) => m.loadAndValidate(workerData.file, workerData.overrides)).then(
  (answer) => parentPort.postMessage(answer),
  (err) => parentPort.postMessage(err && err.name === 'ConfigError' ? { configError: { file: err.file, problems: err.problems } } : { error: String((err && err.message) || err) }),
);
`;

/**
 * The config in `file` (and `overrides`, validated) as the daemon runs with it. Throws
 * ConfigError for a bad file or override.
 */
export async function loadConfigIsolated(file: string, overrides: Overrides = {}): Promise<{ config: Config; overrides: Overrides }> {
  const module = new URL('./config.js', import.meta.url);
  // Run from the TypeScript sources (the unit tests), there is no compiled module for a worker
  // to import: validate here. The package runs dist/, where the worker path is taken.
  if (!import.meta.url.endsWith('.js')) return (await import('./config.js')).loadAndValidate(file, overrides);
  const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { module: module.href, file, overrides } });
  try {
    const answer = await new Promise<Answer>((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
      worker.once('exit', (code) => reject(new Error(`the config worker exited (code ${code}) before it answered`)));
    });
    if ('configError' in answer) throw new ConfigError(answer.configError.file, answer.configError.problems);
    if ('error' in answer) throw new Error(answer.error);
    return answer;
  } finally {
    await worker.terminate();
  }
}
