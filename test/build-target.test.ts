/** One target, built the same way by the sidecar, the static targets and /probe (src/build-target.ts). */
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { afterEach, expect, test } from 'vitest';
import { buildJudgedTarget, buildTarget } from '../src/build-target.js';
import { defaultConfig } from '../src/config.js';
import { createMetrics } from '../src/metrics.js';
import { startFakeVllm } from './helpers/fake-vllm.js';

const cleanups: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  while (cleanups.length) await Promise.resolve(cleanups.pop()!()).catch(() => undefined);
});

const log = pino({ level: 'silent' });
const spec = (url: string) => ({ url, model: 'm', coldProbes: 2, maxResponseBytes: 64 * 1024 });

test('clients of a target go to its URL, with the API key only where given; close() closes them all', async () => {
  const vllm = await startFakeVllm();
  cleanups.push(vllm.close);
  const target = buildTarget(spec(vllm.url), createMetrics(new Registry(), defaultConfig()), log);
  const keyed = target.client({ apiKey: 'secret' });
  const plain = target.client();
  const signal = AbortSignal.timeout(5000);
  expect((await keyed.health(signal)).status).toBe(200);
  expect((await plain.health(signal)).status).toBe(200);
  expect(vllm.requests.map((r) => r.headers.authorization)).toEqual(['Bearer secret', undefined]);
  expect(target.tracker.configuredModel).toBe('m');
  await target.close();
  await expect(plain.health(signal)).rejects.toThrow();
  await expect(keyed.health(signal)).rejects.toThrow();
});

test('a judged target: a restart its tracker sees is in its board evidence, and the cold slots are the spec\'s', async () => {
  const config = defaultConfig();
  const target = buildJudgedTarget(spec('http://127.0.0.1:9'), config, createMetrics(new Registry(), config), log, { scraping: false });
  cleanups.push(() => target.close());
  target.tracker.observeProcessStart(1000);
  target.tracker.observeProcessStart(2000);
  expect(target.status.evidence.view().restart?.why).toBe('process_start_time_seconds changed');
  expect([target.tracker.takePhase(), target.tracker.takePhase(), target.tracker.takePhase()]).toEqual(['cold', 'cold', 'warm']);
});
