import { createRequire } from 'node:module';
import { expect, test } from 'vitest';
import * as fromModules from '../src/prom-client.js';

// src/prom-client.ts loads prom-client's classes from their own files to skip the package index
// (+11 MB RSS). If a new prom-client moved them, these would be different classes or none.
test("the classes src/prom-client.ts loads are the package index's own", () => {
  const index = createRequire(import.meta.url)('prom-client') as Record<string, unknown>;
  for (const name of ['Registry', 'Counter', 'Gauge', 'Histogram'] as const) {
    expect(typeof fromModules[name]).toBe('function');
    expect(fromModules[name]).toBe(index[name]);
  }
  const registry = new fromModules.Registry();
  new fromModules.Counter({ name: 'x_total', help: 'x', registers: [registry] }).inc();
  return registry.metrics().then((text) => expect(text).toContain('x_total 1'));
});
