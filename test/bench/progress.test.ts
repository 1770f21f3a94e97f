/** Progress lines: the ETA is the pace of the cells, not of what came before them (a restart). */
import { describe, expect, test } from 'vitest';
import { Progress } from '../../src/bench/common.js';
import { Redactor } from '../../src/bench/redact.js';

describe('progress ETA', () => {
  test('a 4-minute restart before the cells does not inflate the time left', () => {
    let now = 0;
    let err = '';
    const p = new Progress({ stdout: () => {}, stderr: (t) => (err += t), signal: new AbortController().signal, env: {} }, false, new Redactor({}), () => now);
    now = 240_000; // the restart and the cold request
    p.begin();
    now += 1_000;
    p.cell(1, 3, 'warm_2');
    now += 1_000;
    p.cell(2, 3, 'warm_3');
    now += 1_000;
    p.cell(3, 3, 'warm_4');
    expect(err.split('\n').filter(Boolean)).toEqual(['[1/3] warm_2, about 2 s left', '[2/3] warm_3, about 1 s left', '[3/3] warm_4']);
  });
});
