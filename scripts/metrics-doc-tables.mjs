// Prints the metric tables of docs/metrics.md from the registry (run after npm run build):
//   node scripts/metrics-doc-tables.mjs > /tmp/t.md   and paste over the tables section.
import { Registry } from 'prom-client';
import { defaultConfig } from '../dist/config.js';
import { createMetrics } from '../dist/metrics.js';

const r = new Registry();
createMetrics(r, defaultConfig());
const SELF = ['vllm_probe_build_info', 'vllm_probe_config_last_reload_successful', 'vllm_probe_config_last_reload_success_timestamp_seconds', 'vllm_probe_status', 'vllm_probe_state', 'vllm_probe_probes_skipped_total', 'vllm_probe_target_restarts_total', 'vllm_probe_target_up', 'vllm_probe_environment_info'];
const group = (n) =>
  n.startsWith('vllm_probe_engine_') ? 'engine'
  : n.startsWith('vllm_probe_vllm_process') || n === 'vllm_probe_vllm_processes' ? 'process'
  : n.startsWith('vllm_probe_gpu_') || n.startsWith('vllm_probe_host_') ? 'gpu'
  : n.startsWith('vllm_probe_prefix_') ? 'prefix'
  : n.startsWith('vllm_probe_source_') ? 'source'
  : SELF.includes(n) ? 'self' : 'probe';
const groups = {};
for (const m of r.getMetricsAsArray()) {
  const labels = (m.labelNames ?? []).join(', ');
  (groups[group(m.name)] ??= []).push(`| \`${m.name}\` | ${m.type} | ${labels || '–'} | ${m.help.replace(/\|/g, '\\|')} |`);
}
const titles = { probe: 'Synthetic probes (client side)', prefix: 'Prefix-cache probe', engine: 'vLLM engine (from its /metrics)', process: 'vLLM processes (from /proc)', gpu: 'GPU and host', source: 'Data-source health', self: 'Daemon, target and environment' };
for (const k of Object.keys(titles)) console.log(`## ${titles[k]}\n\n| name | type | labels | help |\n| --- | --- | --- | --- |\n${groups[k].join('\n')}\n`);
