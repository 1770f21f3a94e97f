/**
 * The install path the README gives: `npm pack`, then `npm install -g` of the tarball. The
 * installed binary (not the checkout) must answer --version and help, run the demo until
 * Ctrl-C, log levels by name, and find the runbook the package ships.
 *
 * Packing builds dist/ (prepack) and installing fetches the dependencies, so this runs in CI
 * (CI=true) or with TEST_INSTALL=1, not on every local `npm test`.
 */
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';

const run = process.env.CI === 'true' || process.env.TEST_INSTALL === '1';
if (!run) process.stderr.write('note: the npm pack + install -g test runs in CI or with TEST_INSTALL=1\n');

const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as { name: string; version: string };
// A Node with process.execve (>= 22.15): .ci/run installs the image's (scripts/install-node-lts)
// and sets REQUIRE_NODE_LTS=1, so a missing one fails in CI instead of skipping.
const NODE_LTS = process.env.NODE_LTS;
const skipLts = !NODE_LTS && process.env.REQUIRE_NODE_LTS !== '1';
if (run && skipLts) process.stderr.write('note: NODE_LTS is not set; run scripts/install-node-lts to test serve starting itself again\n');

describe.skipIf(!run)('npm pack + npm install -g of the tarball', { timeout: 120_000 }, () => {
  let dir: string;
  let bin: string;
  const children: ChildProcess[] = [];

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'vllm-probe-install-'));
    const tarball = execFileSync('npm', ['pack', '--silent', '--pack-destination', dir], { encoding: 'utf8' }).trim().split('\n').pop()!;
    expect(tarball).toBe(`${pkg.name}-${pkg.version}.tgz`);
    // A prefix of its own: nothing outside `dir` is touched.
    execFileSync('npm', ['install', '-g', '--prefix', join(dir, 'prefix'), '--no-audit', '--no-fund', '--prefer-offline', join(dir, tarball)], { stdio: 'ignore' });
    bin = join(dir, 'prefix', 'bin', 'vllm-probe');
  }, 600_000);

  afterAll(() => {
    for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** The installed package's entry point, for running it with another node. */
  const installedMain = () => join(dir, 'prefix', 'lib', 'node_modules', pkg.name, 'dist', 'main.js');

  // The installed bin, run from a folder that is not the checkout (nothing resolves from it).
  const cli = (...args: string[]) => spawnSync(bin, args, { cwd: dir, encoding: 'utf8', timeout: 30_000 });

  test('--version and the usage that names it', () => {
    expect(cli('--version')).toMatchObject({ status: 0, stdout: `${pkg.version}\n` });
    const help = cli('--help');
    expect(help.status).toBe(0);
    expect(help.stdout).toMatch(/^\s+vllm-probe --version\s/m);
  });

  test('serve --help, and help for an unknown command is a usage error', () => {
    const serve = cli('serve', '--help');
    expect(serve.status).toBe(0);
    expect(serve.stdout).toMatch(/^Usage: vllm-probe serve --config FILE/);
    const bad = cli('help', 'nosuch');
    expect(bad.status).toBe(2);
    expect(bad.stdout).toBe('');
    expect(bad.stderr).toContain('unknown command "nosuch"');
  });

  test('rules without a runbook URL names the runbook the package ships, and that file is there', () => {
    const r = cli('rules');
    expect(r.status).toBe(2);
    const shipped = /shipped at (\S+?\.md)\)/.exec(r.stderr)?.[1];
    expect(shipped?.startsWith(join(dir, 'prefix'))).toBe(true);
    expect(existsSync(shipped!)).toBe(true);
  });

  /** Spawns the installed binary (or `node` running its dist/main.js) and resolves with the first stdout line that `match` accepts. */
  function startAndWaitFor(args: string[], match: (line: string) => boolean, node?: string): { child: ChildProcess; line: Promise<string>; exit: Promise<number | null> } {
    const child = node ? spawn(node, [installedMain(), ...args], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] }) : spawn(bin, args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(child);
    const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    const line = new Promise<string>((resolve, reject) => {
      const lines = createInterface({ input: child.stdout! });
      lines.on('line', (l) => {
        if (match(l)) resolve(l);
      });
      void exit.then((code) => reject(new Error(`vllm-probe ${args[0]} exited ${code} before printing the line`)));
    });
    return { child, line, exit };
  }

  test('demo runs the emulator and the daemon until Ctrl-C, then exits 0', async () => {
    const demo = startAndWaitFor(['demo', '--listen', '127.0.0.1:0'], (l) => /^\s+metrics\s+http:\/\//.test(l));
    const metricsUrl = /(http:\/\/\S+\/metrics)/.exec(await demo.line)![1]!;
    const base = metricsUrl.replace(/\/metrics$/, '');
    // Ready once the first probe cycle finished.
    let ready = false;
    for (const deadline = Date.now() + 30_000; !ready && Date.now() < deadline; ) {
      ready = (await fetch(`${base}/readyz`)).status === 200;
      if (!ready) await new Promise((r) => setTimeout(r, 200));
    }
    expect(ready).toBe(true);
    expect(await (await fetch(metricsUrl)).text()).toContain(`vllm_probe_build_info{version="${pkg.version}"`);
    demo.child.kill('SIGINT');
    expect(await demo.exit).toBe(0);
  });

  test('serve logs JSON lines whose level is a name', async () => {
    const config = join(dir, 'config.yaml');
    // Nothing listens on port 1: the probes fail and say so at warn, startup at info.
    writeFileSync(config, 'listen: 127.0.0.1:0\nlog_level: info\ntarget:\n  url: http://127.0.0.1:1\ngpu:\n  enabled: false\n');
    const serve = startAndWaitFor(['serve', '--config', config], (l) => l.startsWith('{'));
    const record = JSON.parse(await serve.line) as { level: unknown; service: unknown };
    expect(record.service).toBe('vllm-probe');
    expect(['info', 'warn']).toContain(record.level);
    serve.child.kill('SIGTERM');
    expect(await serve.exit).toBe(0);
  });

  test.skipIf(skipLts)("serve on the image's Node starts itself again with one V8 helper thread: same pid, serving, stops on SIGTERM", async () => {
    expect(NODE_LTS, 'NODE_LTS: the path of a node >= 22.15 (scripts/install-node-lts)').toBeTruthy();
    const config = join(dir, 'config-lts.yaml');
    writeFileSync(config, 'listen: 127.0.0.1:0\nlog_level: info\ntarget:\n  url: http://127.0.0.1:1\ngpu:\n  enabled: false\n');
    const serve = startAndWaitFor(['serve', '--config', config], (l) => l.includes('"vllm-probe listening"'), NODE_LTS);
    const address = (JSON.parse(await serve.line) as { address: string }).address;
    // The pid it was started as now runs with the flag: replaced in place, not a child.
    const argv = readFileSync(`/proc/${serve.child.pid}/cmdline`, 'utf8').split('\0');
    expect(argv.slice(0, 3)).toEqual([NODE_LTS, '--v8-pool-size=1', installedMain()]);
    expect(argv).toContain('serve');
    expect((await fetch(`http://${address}/healthz`)).status).toBe(200);
    serve.child.kill('SIGTERM');
    expect(await serve.exit).toBe(0);
  });
});
