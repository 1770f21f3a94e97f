/** What a probe result says about the engine, by whether its kind sends inference. */
import { expect, test } from 'vitest';
import { Evidence } from '../../src/diagnosis/evidence.js';

const T0 = Date.UTC(2026, 11, 6, 12, 0, 0);

test('a probe that sends no inference (tokenize) does not show the engine serving; an inference probe does', () => {
  const e = new Evidence(60_000, true);
  e.probe({ at: T0 - 5000, startedAt: T0 - 5050, kind: 'tokenize', inference: false, success: true, outcome: 'success' });
  expect(e.view().lastServingAt).toBeUndefined();
  e.probe({ at: T0 - 1000, startedAt: T0 - 1050, kind: 'ttft', inference: true, success: true, outcome: 'success', ttftSeconds: 0.05 });
  expect(e.view().lastServingAt).toBe(T0 - 1000);
});
