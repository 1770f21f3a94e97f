/**
 * What the dashboard tests query: the emulator (per-request metrics on, as vLLM with
 * --enable-per-request-metrics), a daemon with the fake nvidia-smi, and a real Prometheus
 * scraping it with the generated rules, after one vLLM restart so the cold series and the
 * restart annotation exist.
 */
import { createFakeNvidiaSmi, h100Scenario } from './fake-nvidia-smi.js';
import { startDaemon, startEmulator, testConfig, waitFor } from './daemon.js';
import { startPrometheus } from './prometheus.js';

/** What Grafana substitutes: "All" for multi-value variables is their allValue, ".*". */
export function substitute(expr: string): string {
  return expr.replaceAll('$instance', '.*').replaceAll('$model', '.*').replaceAll('$__rate_interval', '20s').replaceAll('$__range', '10m').replaceAll('$__interval', '5s');
}

export async function startDashboardRig(opts: { version?: string } = {}) {
  const emu = await startEmulator({ model: 'dash-model', coldStartMs: 50, perRequestMetrics: true, ...(opts.version ? { version: opts.version } : {}) });
  const smi = createFakeNvidiaSmi(h100Scenario('load'));
  const daemon = await startDaemon(
    testConfig(emu.url, {
      probes: { ttft: { interval: '1s', timeout: '900ms' }, prefix: { enabled: true, interval: '2s', timeout: '1900ms', prefix_tokens: [256, 512] } },
      gpu: { enabled: true, nvidia_smi_path: smi.path, interval: '5s', timeout: '4s', process_match: { name_pattern: '.' } },
    }),
  );
  const prom = await startPrometheus({ targets: [new URL(daemon.url).host], ruleFiles: ['deploy/prometheus/rules/vllm-probe.rules.yml'] });
  // Let a few scrapes land, then restart vLLM once so the cold series and the annotation exist.
  await new Promise((r) => setTimeout(r, 8000));
  emu.emulator.restart();
  await waitFor(async () => (await prom.query('vllm_probe_time_to_first_token_seconds_count{phase="cold"}')).length > 0, 20_000, 500);
  await new Promise((r) => setTimeout(r, 12_000));
  return {
    emu,
    daemon,
    prom,
    async stop() {
      await prom.stop();
      await daemon.stop();
      await emu.close();
      smi.cleanup();
    },
  };
}
