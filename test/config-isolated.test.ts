/**
 * The daemon reads its config on a worker thread (src/config-isolated.ts), so that the YAML and
 * schema libraries leave its memory with the worker. Unit tests run the TypeScript sources, where
 * no compiled module exists for a worker to import; this test compiles the package as npm ships
 * it and drives the compiled loader: the worker's answer must be the same config, and a bad file
 * the same ConfigError with the field's path, as on the main thread.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { loadConfig } from '../src/config.js';

const REPO = join(import.meta.dirname, '..');
// Inside the repository, so that the compiled modules resolve node_modules as dist/ does.
const BUILD = join(REPO, '.cache', `config-isolated-build-${process.pid}`);
let dir: string;
let compiled: { loadConfigIsolated: typeof import('../src/config-isolated.js').loadConfigIsolated; ConfigError: typeof import('../src/config-runtime.js').ConfigError };

beforeAll(() => {
  mkdirSync(BUILD, { recursive: true });
  execFileSync(process.execPath, [join(REPO, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(REPO, 'tsconfig.build.json'), '--outDir', BUILD, '--sourceMap', 'false'], { stdio: 'pipe' });
  dir = mkdtempSync(join(tmpdir(), 'vllm-probe-config-isolated-'));
}, 120_000);

afterAll(() => {
  rmSync(BUILD, { recursive: true, force: true });
  rmSync(dir, { recursive: true, force: true });
});

async function load() {
  compiled ??= {
    ...(await import(join(BUILD, 'config-isolated.js'))),
    ...(await import(join(BUILD, 'config-runtime.js'))),
  };
  return compiled;
}

describe('config read on a worker thread (the compiled package)', () => {
  test('a valid file gives the config the main thread reads, and validated overrides', async () => {
    const file = join(dir, 'ok.yaml');
    writeFileSync(file, 'listen: 127.0.0.1:9471\ntarget:\n  url: http://127.0.0.1:8001/\nprobes:\n  ttft:\n    interval: 30s\n');
    const { loadConfigIsolated } = await load();
    const got = await loadConfigIsolated(file, { listen: '127.0.0.1:9999', log_level: 'warn' });
    expect(got.config).toEqual(loadConfig(file));
    expect(got.config.probes.ttft.interval).toBe(30);
    expect(got.overrides).toEqual({ listen: '127.0.0.1:9999', log_level: 'warn' });
  });

  test('a bad field is a ConfigError naming the file and the field path; a bad override names the flag', async () => {
    const file = join(dir, 'bad.yaml');
    writeFileSync(file, 'probes:\n  ttft:\n    interval: 7s\n');
    const { loadConfigIsolated, ConfigError } = await load();
    const err = await loadConfigIsolated(file).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toMatch(new RegExp(`^${file.replaceAll('/', '\\/')}: probes\\.ttft\\.interval: expected an interval that divides`));
    const flag = await loadConfigIsolated(join(dir, 'ok.yaml'), { log_level: 'loud' }).catch((e: unknown) => e);
    expect((flag as Error).message).toMatch(/^--log-level: log_level: expected one of/);
  });

  test('an unreadable file is a ConfigError too, not a crash of the worker', async () => {
    const { loadConfigIsolated, ConfigError } = await load();
    const err = await loadConfigIsolated(join(dir, 'missing.yaml')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toMatch(/missing\.yaml: \(file\): cannot read/);
  });
});
