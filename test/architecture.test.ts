/**
 * The layout the style guide promises, checked on the source: one home for HTTP to vLLM, the
 * daemon free of bench code, and an import graph without cycles (type imports included: a
 * cycle of types is still two modules that cannot be understood apart).
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

describe('source layout', () => {
  test('only src/vllm/ imports undici or calls fetch', () => {
    const offenders = files(SRC)
      .filter((f) => /from 'undici'|\bfetch\(/.test(readFileSync(f, 'utf8')))
      .map((f) => relative(SRC, f))
      .filter((f) => !f.startsWith('vllm/'));
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

  test('src/vllm/ depends on nothing above it (only errors, reason text and the version)', () => {
    const g = graph({ dynamic: true });
    const allowed = new Set(['errors.ts', 'reason.ts', 'version.ts']);
    const bad = [...g].filter(([f]) => f.startsWith('vllm/')).flatMap(([f, deps]) => deps.filter((d) => !d.startsWith('vllm/') && !allowed.has(d)).map((d) => `${f} → ${d}`));
    expect(bad).toEqual([]);
  });

  test('the graph checker finds a cycle when there is one', () => {
    expect(findCycle(new Map([['a.ts', ['b.ts']], ['b.ts', ['a.ts']]]))).toEqual(['a.ts', 'b.ts', 'a.ts']);
  });
});

test('the graph is read: app.ts imports the scheduler and the vLLM client', () => {
  const deps = graph({ dynamic: false }).get('app.ts') ?? [];
  expect(deps).toContain('synthetic/scheduler.ts');
  expect(deps).toContain('vllm/client.ts');
});
