/**
 * The layout the style guide promises, checked on the source: one home for HTTP to vLLM, the
 * daemon free of bench code, an import graph without cycles (type imports included: a cycle of
 * types is still two modules that cannot be understood apart), and folders that import one way
 * only, down the LAYERS below (issue 26: three upward imports had tied 9 folders into one loop).
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, test } from 'vitest';

const SRC = resolve(import.meta.dirname, '../src');

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? files(p) : p.endsWith('.ts') ? [p] : [];
  });
}

const IMPORT = /(?:^|\n)\s*(?:import|export)\s[^'"]*?from\s+'(\.[^']+)'|import\('(\.[^']+)'\)/g;

/** src-relative module → the src-relative modules it imports (static, type and dynamic). */
function graph(opts: { dynamic: boolean }): Map<string, string[]> {
  const g = new Map<string, string[]>();
  for (const file of files(SRC)) {
    const text = readFileSync(file, 'utf8');
    const deps: string[] = [];
    for (const m of text.matchAll(IMPORT)) {
      const spec = m[1] ?? (opts.dynamic ? m[2] : undefined);
      if (!spec) continue;
      deps.push(relative(SRC, resolve(dirname(file), spec.replace(/\.js$/, '.ts'))));
    }
    g.set(relative(SRC, file), deps);
  }
  return g;
}

function findCycle(g: Map<string, string[]>): string[] | undefined {
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const visit = (n: string): string[] | undefined => {
    if (state.get(n) === 'done') return undefined;
    if (state.get(n) === 'open') return [...stack.slice(stack.indexOf(n)), n];
    state.set(n, 'open');
    stack.push(n);
    for (const d of g.get(n) ?? []) {
      const c = visit(d);
      if (c) return c;
    }
    stack.pop();
    state.set(n, 'done');
    return undefined;
  };
  for (const n of g.keys()) {
    const c = visit(n);
    if (c) return c;
  }
  return undefined;
}

/** A module's place at folder level: its folder under src/ (`fleet/`), or the file itself at the top. */
const unit = (module: string) => (module.includes('/') ? `${module.split('/')[0]}/` : module);

/** The folder-level graph: unit → the units it imports (itself left out), each with one example edge. */
function folderGraph(g: Map<string, string[]>): Map<string, Map<string, string>> {
  const out = new Map<string, Map<string, string>>();
  for (const [from, deps] of g) {
    const edges = out.get(unit(from)) ?? new Map<string, string>();
    out.set(unit(from), edges);
    for (const to of deps) if (unit(to) !== unit(from) && !edges.has(unit(to))) edges.set(unit(to), `${from} → ${to}`);
  }
  return out;
}

/**
 * The allowed direction, lowest first: a unit imports only units of lower layers. A new folder or
 * top-level file goes into the lowest layer above everything it imports; an import that would go
 * up or sideways means the shared piece belongs lower down (as host-rules.ts, target-url.ts and
 * reexported-histogram.ts were moved down out of fleet/ and exporter/).
 */
const LAYERS: string[][] = [
  // Pure helpers: no imports from src/ but each other.
  ['errors.ts', 'reason.ts', 'version.ts', 'stats.ts', 'schedule.ts', 'host-rules.ts', 'prom-client.ts'],
  // The only code that speaks to vLLM; file reading; the one target URL parser.
  ['vllm/', 'files.ts', 'target-url.ts'],
  // What the running daemon needs of its config (errors, durations, the key), without libraries.
  ['config-runtime.ts'],
  // The config schema; what vLLM's series mean to a diagnosis; a metric type.
  ['config-schema.ts', 'diagnosis/', 'reexported-histogram.ts'],
  // Reading the config file (YAML, key files); re-exports the schema.
  ['config.ts'],
  // Reading it on a worker thread, so that the libraries leave with the worker.
  ['config-isolated.ts'],
  // Every metric definition; /proc and vLLM's processes.
  ['metrics.ts', 'host/'],
  ['target.ts', 'status.ts'],
  ['synthetic/'],
  ['wedge.ts'],
  // One target (tracker, clients, board, wedge detector), built the same way everywhere.
  ['build-target.ts'],
  ['fleet/'],
  ['exporter/'],
  ['gpu/'],
  // The daemon's collectors in one list.
  ['collectors.ts'],
  // Composition root of the daemon, and the commands beside it.
  ['app.ts', 'bench/', 'slo/', 'emulator/'],
  // The commands' bodies and their help text.
  ['cli/'],
  ['cli.ts'],
  ['main.ts'],
];

/** Every folder-level import that does not go down the layers, in words; units missing from LAYERS too. */
function upwardImports(g: Map<string, string[]>, layers: string[][]): string[] {
  const layer = new Map(layers.flatMap((units, i) => units.map((u) => [u, i] as const)));
  const bad: string[] = [];
  for (const [from, edges] of folderGraph(g)) {
    const mine = layer.get(from);
    if (mine === undefined) {
      bad.push(`${from} is in no layer: add it to LAYERS above everything it imports`);
      continue;
    }
    for (const [to, example] of edges) {
      const theirs = layer.get(to);
      if (theirs !== undefined && theirs >= mine) bad.push(`${from} (layer ${mine}) imports ${to} (layer ${theirs}): ${example}`);
    }
  }
  return bad;
}

describe('source layout', () => {
  test('only src/vllm/ imports undici or calls fetch', () => {
    const offenders = files(SRC)
      .filter((f) => /from 'undici'|\bfetch\(/.test(readFileSync(f, 'utf8')))
      .map((f) => relative(SRC, f))
      .filter((f) => !f.startsWith('vllm/'));
    expect(offenders).toEqual([]);
  });

  test("prom-client's classes come from src/prom-client.ts only (its package index costs +11 MB RSS)", () => {
    const offenders = files(SRC)
      .filter((f) => /^import (?!type)[^;]*from 'prom-client'/m.test(readFileSync(f, 'utf8')))
      .map((f) => relative(SRC, f));
    expect(offenders).toEqual([]);
  });

  test('the import graph of src/ has no cycle', () => {
    expect(findCycle(graph({ dynamic: false }))).toBeUndefined();
  });

  test('the daemon (app.ts and everything it imports) loads nothing from bench/', () => {
    const g = graph({ dynamic: true });
    const seen = new Set<string>();
    const walk = (n: string) => {
      if (seen.has(n)) return;
      seen.add(n);
      for (const d of g.get(n) ?? []) walk(d);
    };
    walk('app.ts');
    expect([...seen].filter((f) => f.startsWith('bench/'))).toEqual([]);
  });

  test('serve loads neither yaml, zod nor bcryptjs on the main thread (the config is read on a worker), nor the package index of undici or prom-client (memory, issue 28)', () => {
    // Value imports only, as Node runs them: `import type` loads nothing, a lazy import() waits.
    // …and a top-level `await import()` (column 0), which runs as the module loads (main.ts's cli.js).
    const VALUE_IMPORT = /(?:^|\n)\s*(?:import|export)\s+(?!type\s)[^'"]*?from\s+'([^']+)'|(?:^|\n)\s*import\s+'([^']+)'|\n(?:const|let)\s[^=\n]*=\s*await import\('([^']+)'\)/g;
    const packages = new Set<string>();
    const seen = new Set<string>();
    const walk = (file: string) => {
      if (seen.has(file)) return;
      seen.add(file);
      for (const m of readFileSync(join(SRC, file), 'utf8').matchAll(VALUE_IMPORT)) {
        const spec = (m[1] ?? m[2] ?? m[3])!;
        if (spec.startsWith('.')) walk(relative(SRC, resolve(dirname(join(SRC, file)), spec.replace(/\.js$/, '.ts'))));
        else packages.add(spec.split('/')[0]!);
      }
    };
    walk('main.ts');
    expect(seen.has('app.ts')).toBe(true);
    expect(packages).toContain('pino');
    expect([...packages].filter((p) => ['yaml', 'zod', 'bcryptjs', 'undici', 'prom-client'].includes(p))).toEqual([]);
  });

  test('src/vllm/ depends on nothing above it (only errors, reason text and the version)', () => {
    const g = graph({ dynamic: true });
    const allowed = new Set(['errors.ts', 'reason.ts', 'version.ts']);
    const bad = [...g].filter(([f]) => f.startsWith('vllm/')).flatMap(([f, deps]) => deps.filter((d) => !d.startsWith('vllm/') && !allowed.has(d)).map((d) => `${f} → ${d}`));
    expect(bad).toEqual([]);
  });

  test('the graph checker finds a cycle when there is one', () => {
    expect(findCycle(new Map([['a.ts', ['b.ts']], ['b.ts', ['a.ts']]]))).toEqual(['a.ts', 'b.ts', 'a.ts']);
  });

  test('folders of src/ import each other without a cycle (lazy imports included)', () => {
    const folders = new Map([...folderGraph(graph({ dynamic: true }))].map(([u, edges]) => [u, [...edges.keys()]]));
    expect(findCycle(folders)).toBeUndefined();
  });

  test('every folder-level import goes down the layers', () => {
    expect(upwardImports(graph({ dynamic: true }), LAYERS)).toEqual([]);
  });

  test('a folder cycle without a file cycle is found, and an upward import is named with its file', () => {
    // config.ts → fleet/allow.ts → (nothing) and fleet/probe.ts → config.ts: no file-level cycle,
    // one folder-level loop. This is the shape issue 26 found three times.
    const g = new Map([
      ['config.ts', ['fleet/allow.ts']],
      ['fleet/allow.ts', []],
      ['fleet/probe.ts', ['config.ts']],
    ]);
    expect(findCycle(g)).toBeUndefined();
    const folders = new Map([...folderGraph(g)].map(([u, edges]) => [u, [...edges.keys()]]));
    expect(findCycle(folders)).toEqual(['config.ts', 'fleet/', 'config.ts']);
    expect(upwardImports(g, [['config.ts'], ['fleet/']])).toEqual(['config.ts (layer 0) imports fleet/ (layer 1): config.ts → fleet/allow.ts']);
    expect(upwardImports(g, [['config.ts']])).toEqual(['fleet/ is in no layer: add it to LAYERS above everything it imports']);
  });
});

test('the graph is read: app.ts imports the scheduler and the vLLM client', () => {
  const deps = graph({ dynamic: false }).get('app.ts') ?? [];
  expect(deps).toContain('synthetic/scheduler.ts');
  expect(deps).toContain('vllm/client.ts');
});
