/**
 * Dockerfile and .dockerignore, without a Docker engine: lint (dockerfile-utils, the linter of
 * the VS Code Docker extension; hadolint too where it is installed), the structure the issue
 * asks for, and that every COPY source exists and survives .dockerignore. The image's start
 * command is compared with the compose file in compose.test.ts, which runs it.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { validate as lintDockerfile } from 'dockerfile-utils';
import { describe, expect, test } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { dockerStages, execForm, flagValue, inDockerContext, parseDockerfile, readRepo, repoPath, ROOT, toPosix } from './files.js';

const text = readRepo('Dockerfile');
const dockerignore = readRepo('.dockerignore');
const instructions = parseDockerfile(text);
const stages = dockerStages(instructions);
const [build, final] = [stages[0]!, stages.at(-1)!];
const finalOf = (keyword: string) => final.instructions.filter((i) => i.keyword === keyword);

function which(bin: string): string | undefined {
  try {
    return execFileSync('sh', ['-c', `command -v ${bin}`], { encoding: 'utf8' }).trim() || undefined;
  } catch {
    return undefined;
  }
}
const HADOLINT = which('hadolint');

describe('lint', () => {
  test('dockerfile-utils finds nothing', () => {
    expect(lintDockerfile(text).map((d) => `line ${d.range.start.line + 1}: ${d.message}`)).toEqual([]);
  });

  test('dockerfile-utils is not vacuous: a broken copy has findings', () => {
    const broken = text.replace('EXPOSE 9470', 'EXPOSE 9470/tcpx').replace('--interval=30s', '--interval=30x').replace('WORKDIR /app', 'WORKDIR /app\nCOPPY x y');
    const messages = lintDockerfile(broken).map((d) => d.message);
    expect(messages.sort()).toEqual(['Invalid proto: tcpx', 'Unknown instruction: COPPY', 'time: unknown unit x in duration 30x']);
  });

  test.skipIf(!HADOLINT)('hadolint finds nothing (where installed)', () => {
    expect(execFileSync(HADOLINT!, ['--no-color', '-'], { input: text, encoding: 'utf8' })).toBe('');
  });
});

describe('structure', () => {
  test('multi-stage on the Node LTS slim image; the build stage compiles before pruning dev dependencies', () => {
    expect(stages).toHaveLength(2);
    for (const s of stages) expect(s.from).toBe('node:26-slim');
    expect(text).toMatch(/Node\.js 26, the Active LTS line since October 2026/);
    const run = build.instructions.filter((i) => i.keyword === 'RUN').map((i) => i.args).join(' && ');
    expect(run).toMatch(/npm ci\b.*npm run build\b.*npm prune --omit=dev/);
    // `npm run build` runs tsc: the sources and tsconfig must be copied before it.
    const firstRun = build.instructions.findIndex((i) => i.keyword === 'RUN');
    const copied = build.instructions.slice(0, firstRun).filter((i) => i.keyword === 'COPY').flatMap((i) => i.args.split(/\s+/).slice(0, -1));
    for (const needed of ['package.json', 'package-lock.json', 'tsconfig.json', 'tsconfig.build.json', 'src']) expect(copied).toContain(needed);
    const pkg = JSON.parse(readRepo('package.json')) as { scripts: Record<string, string> };
    expect(pkg.scripts.build).toMatch(/tsc -p tsconfig\.build\.json/);
  });

  test('the runtime stage holds production dependencies, dist, bin and package.json only', () => {
    const fromBuild = finalOf('COPY').filter((i) => i.args.startsWith(`--from=${build.name}`)).map((i) => i.args.split(/\s+/)[1]);
    expect(fromBuild.sort()).toEqual(['/app/dist', '/app/node_modules', '/app/package.json']);
    const fromContext = finalOf('COPY').filter((i) => !i.args.startsWith('--from')).map((i) => i.args.split(/\s+/)[0]);
    expect(fromContext.sort()).toEqual(['bin', 'config/vllm-probe.example.yaml']);
    expect(finalOf('RUN')).toEqual([]); // nothing installed or written at build time either
    expect(finalOf('ENV').map((i) => i.args)).toContain('NODE_ENV=production');
    expect(finalOf('ENV').map((i) => i.args)).toContain('MALLOC_ARENA_MAX=2'); // the RSS figure of benchmark 3 depends on it
  });

  test('runs as the non-root node user (uid 1000), numerically', () => {
    const user = finalOf('USER').at(-1)!.args;
    expect(user).toBe('1000:1000');
  });

  test('the baked-in default config is the example, at the documented path, and valid', () => {
    const cmd = execForm(finalOf('CMD')[0]!.args);
    const configPath = flagValue(cmd, '--config');
    expect(configPath).toBe('/etc/vllm-probe/config.yaml');
    expect(finalOf('COPY').map((i) => i.args)).toContain(`config/vllm-probe.example.yaml ${configPath}`);
    loadConfig(repoPath('config/vllm-probe.example.yaml'));
  });

  test('EXPOSE and HEALTHCHECK use the configured listen port; the health check needs no curl', () => {
    const listen = loadConfig(repoPath('config/vllm-probe.example.yaml')).listen;
    const port = Number(listen.split(':').pop());
    expect(finalOf('EXPOSE').map((i) => i.args)).toEqual([String(port)]);
    const hc = finalOf('HEALTHCHECK')[0]!.args;
    const cmd = execForm(hc.slice(hc.indexOf('CMD') + 3).trim());
    expect(cmd.slice(0, 2)).toEqual(['node', '-e']);
    expect(cmd[2]).toContain(`fetch('http://127.0.0.1:${port}/healthz')`);
    // The script itself must be valid JavaScript.
    expect(() => new Function(cmd[2]!)).not.toThrow();
  });

  test('ENTRYPOINT + CMD is `node /app/bin/vllm-probe.js serve --config /etc/vllm-probe/config.yaml`', () => {
    const entrypoint = execForm(finalOf('ENTRYPOINT')[0]!.args);
    const cmd = execForm(finalOf('CMD')[0]!.args);
    expect([...entrypoint, ...cmd]).toEqual(['node', '/app/bin/vllm-probe.js', 'serve', '--config', '/etc/vllm-probe/config.yaml']);
    // bin/vllm-probe.js hands its arguments to runCli (the function compose.test.ts runs).
    expect(readRepo('bin/vllm-probe.js')).toMatch(/import '\.\.\/dist\/main\.js'/);
    expect(readRepo('src/main.ts')).toMatch(/runCli\(process\.argv\.slice\(2\)/);
    expect(final.instructions.some((i) => i.keyword === 'WORKDIR' && i.args === '/app')).toBe(true);
  });
});

describe('.dockerignore', () => {
  const contextFiles = (dir: string): string[] =>
    readdirSync(join(ROOT, dir)).flatMap((name) => {
      const rel = dir ? `${dir}/${name}` : name;
      if (['.git', 'node_modules', '.cache', 'dist', 'bench-out'].includes(rel)) return [];
      return statSync(join(ROOT, rel)).isDirectory() ? contextFiles(rel) : [rel];
    });

  test('every COPY source from the context exists and is sent to the builder', () => {
    const sources = stages.flatMap((s) => s.instructions.filter((i) => i.keyword === 'COPY' && !i.args.startsWith('--from')).flatMap((i) => i.args.split(/\s+/).slice(0, -1)));
    expect(sources.length).toBeGreaterThan(5);
    for (const src of sources) {
      expect(existsSync(repoPath(src)), src).toBe(true);
      const files = statSync(repoPath(src)).isDirectory() ? contextFiles(src) : [src];
      expect(files.length, src).toBeGreaterThan(0);
      for (const f of files) expect(inDockerContext(toPosix(f), dockerignore), f).toBe(true);
    }
  });

  test('build output, dependencies, VCS data and caches stay out of the context', () => {
    for (const p of ['node_modules/yaml/package.json', 'dist/main.js', '.git/HEAD', '.cache/x', 'bench-out/a.json', 'test/app.test.ts', 'docs/deploy.md', 'config/other.yaml', 'deploy/compose/docker-compose.yml']) {
      expect(inDockerContext(p, dockerignore), p).toBe(false);
    }
  });

  test('the matcher follows Docker\'s rules (last match wins, directories cover their contents)', () => {
    expect(inDockerContext('a/b.txt', 'a')).toBe(false);
    expect(inDockerContext('a/b.txt', 'a\n!a/b.txt')).toBe(true);
    expect(inDockerContext('a/b.txt', '*\n!a/')).toBe(true);
    expect(inDockerContext('x/a/b.txt', '**/b.txt')).toBe(false);
    expect(inDockerContext('ab.txt', '*.md')).toBe(true);
  });
});
