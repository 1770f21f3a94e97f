/**
 * config/vllm-probe.example.yaml says it documents every field: each key of the defaults appears
 * in it, as a setting or in a comment (issue 27: the alerts.* keys were missing).
 */
import { readFileSync } from 'node:fs';
import { expect, test } from 'vitest';
import { defaultConfig } from '../src/config.js';

test('every key of the default config is in the example config', () => {
  const text = readFileSync('config/vllm-probe.example.yaml', 'utf8');
  const missing: string[] = [];
  const walk = (o: Record<string, unknown>, path: string) => {
    for (const [key, value] of Object.entries(o)) {
      const at = path ? `${path}.${key}` : key;
      if (!new RegExp(`^\\s*#?\\s*${key}:`, 'm').test(text)) missing.push(at);
      if (value && typeof value === 'object' && !Array.isArray(value)) walk(value as Record<string, unknown>, at);
    }
  };
  walk(defaultConfig() as unknown as Record<string, unknown>, '');
  expect(missing).toEqual([]);
});
