/**
 * The dashboards against vLLM 0.26.0's metric set (the emulator serving the families the H200
 * capture has, scraped by a real Prometheus): a panel may be empty only where 0.26.0 lacks the
 * vLLM family behind it, and then it says so instead of "No data".
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { defaultConfig } from '../../src/config.js';
import { allPanelQueries, NEWER_VLLM_SIGNAL } from '../../src/slo/dashboards.js';
import { startDashboardRig, substitute } from '../helpers/dashboard-rig.js';
import { skipWithoutPrometheus } from '../helpers/tools.js';

describe.skipIf(skipWithoutPrometheus)('dashboards against vLLM 0.26.0', { timeout: 120_000 }, () => {
  let rig: Awaited<ReturnType<typeof startDashboardRig>>;

  beforeAll(async () => {
    rig = await startDashboardRig({ version: '0.26.0' });
  }, 90_000);

  afterAll(() => rig?.stop());

  test('every panel returns data, except those on a family 0.26.0 lacks, which say so', async () => {
    const dead: string[] = [];
    const marked = new Set<string>();
    for (const { dashboard, panel, expr, noValue } of allPanelQueries(defaultConfig())) {
      if (noValue === NEWER_VLLM_SIGNAL) marked.add(`${dashboard} / ${panel}`);
      if ((await rig.prom.query(substitute(expr))).length === 0) dead.push(`${dashboard} / ${panel}`);
    }
    expect(marked.size).toBeGreaterThan(0);
    expect(dead.sort()).toEqual([...marked].sort());
  });
});
