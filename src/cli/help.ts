/**
 * The command line's words: the usage and each command's help text (src/cli.ts prints them;
 * ./commands.ts runs the commands).
 */
import { RUNBOOK_PLACEHOLDER } from '../config-runtime.js';
import { FAULT_MODES, FAULTS } from '../emulator/faults.js';
import { VERSION } from '../version.js';

export const USAGE = `vllm-probe ${VERSION} — synthetic probes, metrics and an on-call verdict for vLLM

Usage:
  vllm-probe serve --config FILE [--target URL] [--listen HOST:PORT] [--web.config.file FILE]
                                     run the daemon (sidecar next to vLLM)
  vllm-probe demo [--listen HOST:PORT]
                                     built-in emulator + daemon with fast intervals
  vllm-probe emulate [--listen HOST:PORT] [--model NAME] [--api-key KEY] [--fault MODE]
                                     the vLLM emulator alone (dashboards without a GPU)
  vllm-probe check-config FILE       validate a config file (exit 0 valid, 2 invalid)
  vllm-probe explain-metrics [--config FILE] FILE|URL
                                     what vllm-probe makes of one vLLM /metrics, as JSON
  vllm-probe gpu [--config FILE] [--nvidia-smi PATH]
                                     one nvidia-smi collection as JSON
  vllm-probe rules [--config FILE] [--kubernetes]
                                     Prometheus recording + alert rules from the config
  vllm-probe dashboards [--config FILE] --out DIR
                                     write the Grafana dashboards as JSON
  vllm-probe bench EXPERIMENT [options]
                                     one-off experiments: cold-warm, prefix, sweep, kv,
                                     kv-scaling, report, compare ("vllm-probe bench --help")
  vllm-probe help [COMMAND]          this text, or one command's options
  vllm-probe --version               print the version and exit

Run "vllm-probe COMMAND --help" for a command's options. Docs: README.md and docs/.
`;

export const COMMAND_HELP: Record<string, string> = {
  serve: `Usage: vllm-probe serve --config FILE [--target URL] [--listen HOST:PORT]

Runs the daemon: TTFT and prefix probes, vLLM /metrics scrape, nvidia-smi, and the HTTP
endpoints /metrics, /status, /healthz, /readyz, POST /-/reload. SIGHUP reloads the config.

  --config FILE       YAML config (see config/vllm-probe.example.yaml); required
  --target URL        override target.url (e.g. http://127.0.0.1:8000)
  --listen HOST:PORT  override listen (default 0.0.0.0:9470)
  --log-level LEVEL   override log_level (trace, debug, info, warn, error, fatal, silent)
  --web.config.file FILE
                      TLS and basic auth, in the Prometheus exporter-toolkit format
                      (tls_server_config, basic_auth_users with bcrypt hashes); /healthz stays open
`,
  demo: `Usage: vllm-probe demo [--listen HOST:PORT]

Starts the built-in vLLM emulator on a free loopback port and the daemon against it with
fast intervals (2 s probes), prints the URLs and runs until Ctrl-C.

  --listen HOST:PORT  where the daemon listens (default 127.0.0.1:9470)
`,
  emulate: `Usage: vllm-probe emulate [--listen HOST:PORT] [options]

Runs the vLLM emulator alone: /v1/completions, /v1/chat/completions, /v1/models, /tokenize,
/health, /version and /metrics with vLLM's V1 metric names. Not a real model.

  --listen HOST:PORT      default 127.0.0.1:8000
  --model NAME            served model name (default emulated-model)
  --api-key KEY           require "Authorization: Bearer KEY" on /v1 routes
  --max-model-len N       default 8192
  --vllm-version V        what /version says and which captured metric set /metrics serves:
                          0.26.x and older get vLLM 0.26.0's, later ones 0.32.0's (default 0.32.0)
  --max-num-seqs N        concurrent sequences before requests queue (default 64)
  --no-prefix-caching     run with prefix caching off
  --enable-per-request-metrics   responses carry metrics{time_to_first_token_ms, queue_time_ms, …}
  --enable-request-id-headers    every response carries X-Request-Id
  --enable-scale-out      serve /v1/completions/render and /v1/chat/completions/render
  --max-num-queued-reqs N answer 503 when N requests are already running or waiting
  --custom-histogram-buckets JSON  e.g. '{"time_to_first_token":[0.1,0.3,1,3]}'
  --enable-sleep-mode     vLLM's --enable-sleep-mode with VLLM_SERVER_DEV_MODE=1: POST /sleep?level=1|2,
                          POST /wake_up[?tags=weights|kv_cache], GET /is_sleeping, POST /collective_rpc
  --fault MODE            start in a fault mode (below)
  --fault-delay-ms N      the mode's delay, where it has one (below)
  --fault-after-ms N      serve normally for N ms first, then the fault (a crash seen coming)

Fault modes:
${FAULT_MODES.map((m) => `  ${m.padEnd(20)}  ${FAULTS[m]}`).join('\n')}

Faults can be changed at run time: curl -XPOST URL/_emulator/fault -d '{"mode":"http_500"}';
POST /_emulator/restart simulates a vLLM restart.
`,
  'check-config': `Usage: vllm-probe check-config FILE

Validates FILE. Exit 0 when valid; exit 2 with one "FILE: <path>: expected …, got …" line per
problem otherwise.
`,
  'explain-metrics': `Usage: vllm-probe explain-metrics [--config FILE] [--timeout DURATION] FILE|URL

Parses one vLLM /metrics exposition (a saved file, or a URL such as
http://127.0.0.1:8000/metrics) and prints, as JSON, which metric generation it is (v0,
v1-early, v1), how it spells names (vllm: or vllm_, counters with or without _total) and the
normalised values vllm-probe exports, including the vLLM 0.30+ signals (admission rejections,
prompt tokens by source and cache tier, kv_cache_size_tokens, kv_cache_max_concurrency). A key
whose source is absent is null.

server_buckets lists vLLM's own histogram bounds (custom: true after
--custom-histogram-buckets); slo_vs_server_buckets says whether the SLO thresholds (from
--config, else the defaults) are among them and, when not, the share of requests at the
nearest bound with the range the true share lies in (since vLLM started).

  --config FILE        take slo.ttft.threshold and slo.e2e.threshold from this config
  --timeout DURATION   the whole read of a URL (connect, headers, body); default 10s

Text from the server is printed with control characters escaped, so it cannot drive the
terminal; a password in the URL is never printed. Exit 2 when the input cannot be read
(timeout included) or parsed.
`,
};

COMMAND_HELP.rules = `Usage: vllm-probe rules [--config FILE] [--runbook-base-url URL] [--kubernetes] [--name NAME]

Prints the Prometheus rules (SLI recording rules, multi-window burn-rate alerts, health
alerts) generated from the config's slo, status and alerts settings — the same thresholds
the daemon uses as bucket bounds. Without --config the defaults are used.
--kubernetes wraps them in a monitoring.coreos.com/v1 PrometheusRule named NAME (default
vllm-probe).

Every alert's runbook_url is alerts.runbook_base_url#<alert>: the URL where your team serves
docs/runbook.md (shipped with vllm-probe). It has no usable default, so set it in the config
or with --runbook-base-url; the checked-in deploy/prometheus/rules/vllm-probe.rules.yml
carries the placeholder ${RUNBOOK_PLACEHOLDER}.
`;

COMMAND_HELP.gpu = `Usage: vllm-probe gpu [--config FILE] [--nvidia-smi PATH]

Runs nvidia-smi once exactly as the daemon does (same fields, parsing, process matching and
timeout) and prints per GPU the values in base units (null where nvidia-smi reports nothing),
the compute processes and which of them are vLLM's. Exit 0 when read or when there is no GPU,
1 when nvidia-smi failed (the reason is in "error").
`;

COMMAND_HELP.dashboards = `Usage: vllm-probe dashboards [--config FILE] --out DIR

Writes the Grafana dashboards (on-call overview and detail, and the fleet dashboard for
targets probed through /probe) as JSON files into DIR, with the
SLO lines from the config. The defaults are checked in under grafana/dashboards/.
`;
