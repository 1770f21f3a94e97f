/**
 * Command-line front end: parses argv and runs one command. Returns the exit code
 * (0 ok, 1 runtime failure, 2 bad usage or bad config). Every command's help lives here.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { pino, type DestinationStream, type Logger } from 'pino';
import { runDaemon } from './app.js';
import { ConfigError, defaultConfig, formatDuration, loadConfig, parseConfig, parseDuration, parseListen, RUNBOOK_PLACEHOLDER } from './config.js';
import { SourceError } from './errors.js';
import { redactUrl } from './reason.js';
import { FAULT_MODES, FAULTS, type FaultMode } from './emulator/faults.js';
import { parseExposition } from './vllm/exposition.js';
import { runGpuCommand } from './gpu/command.js';
import { loadWebConfig } from './exporter/web-config.js';
import { explainSnapshot, normaliseVllmMetrics } from './vllm/schema.js';
import { VERSION } from './version.js';

export interface CliIo {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  signal: AbortSignal;
  env: NodeJS.ProcessEnv;
}

const USAGE = `vllm-probe ${VERSION} — synthetic probes, metrics and an on-call verdict for vLLM

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

const COMMAND_HELP: Record<string, string> = {
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

const COMMON = { help: { type: 'boolean', short: 'h' } } as const;

function parse<T extends NonNullable<ParseArgsConfig['options']>>(args: string[], options: T) {
  return parseArgs({ args, options: { ...COMMON, ...options }, allowPositionals: true, strict: true });
}

/**
 * The daemon's root logger: JSON lines on stdout (or `destination`, for tests) whose `level`
 * is the name ("warn"), not pino's number (40), so an operator can grep or filter by it.
 */
export function makeLogger(level: string, destination?: DestinationStream): Logger {
  const options = {
    level,
    base: { service: 'vllm-probe' },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label: string) => ({ level: label }) },
  };
  return destination ? pino(options, destination) : pino(options);
}

/** `--log-level` checked with the same rule as the file's `log_level`: a bad one is a one-line ConfigError. */
function logLevelOverride(value: string | undefined): string | undefined {
  return value === undefined ? undefined : parseConfig({ log_level: value }, '--log-level').log_level;
}

export async function runCli(argv: string[], io: CliIo): Promise<number> {
  const [command, ...rest] = argv;
  // No command is a usage error: the usage goes to stderr, so a script that forgot one sees it fail.
  if (!command) return io.stderr(USAGE), 2;
  if (command === 'help' || command === '--help' || command === '-h') {
    const topic = rest[0];
    if (!topic || topic === 'help') return io.stdout(USAGE), 0;
    if (topic === 'bench') return COMMANDS.bench!(['--help'], io);
    const text = COMMAND_HELP[topic];
    if (!text) {
      io.stderr(`vllm-probe help: unknown command "${topic}" (known: ${Object.keys(COMMANDS).join(', ')})\n`);
      return 2;
    }
    io.stdout(text);
    return 0;
  }
  if (command === '--version' || command === 'version') {
    io.stdout(`${VERSION}\n`);
    return 0;
  }
  const handler = COMMANDS[command];
  if (!handler) {
    io.stderr(`vllm-probe: unknown command "${command}"\n\n${USAGE}`);
    return 2;
  }
  try {
    return await handler(rest, io);
  } catch (err) {
    if (err instanceof ConfigError) {
      io.stderr(`${err.message}\n`);
      return 2;
    }
    if ((err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      io.stderr(`vllm-probe ${command}: ${(err as Error).message}\n\n${COMMAND_HELP[command] ?? USAGE}`);
      return 2;
    }
    if ((err as { code?: string }).code === 'EADDRINUSE') {
      io.stderr(`vllm-probe ${command}: cannot listen: address already in use (${(err as { address?: string }).address ?? ''}:${(err as { port?: number }).port ?? ''})\n`);
      return 1;
    }
    // Anything else (a bad --out path, an unreadable file…): one line, no stack trace (issue 18).
    io.stderr(`vllm-probe ${command}: ${oneLineError(err)}\n`);
    return 2;
  }
}

/** "ENOTDIR: not a directory, mkdir '/dev/null/x'" → "/dev/null/x: not a directory". */
function oneLineError(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  if (e && typeof e.code === 'string' && typeof e.path === 'string') {
    const what = e.message.replace(/^[A-Z]+: /, '').replace(/, \w+ '.*'$/, '');
    return `${e.path}: ${what}`;
  }
  return (err instanceof Error ? err.message : String(err)).split('\n')[0]!;
}

type Command = (args: string[], io: CliIo) => Promise<number>;

const COMMANDS: Record<string, Command> = {
  async serve(args, io) {
    const { values } = parse(args, { config: { type: 'string' }, target: { type: 'string' }, listen: { type: 'string' }, 'log-level': { type: 'string' }, 'web.config.file': { type: 'string' } });
    if (values.help) return io.stdout(COMMAND_HELP.serve!), 0;
    if (!values.config) {
      io.stderr(`vllm-probe serve: --config FILE is required\n\n${COMMAND_HELP.serve}`);
      return 2;
    }
    const levelOverride = logLevelOverride(values['log-level']);
    const config = loadConfig(values.config);
    // Validate the overrides with the same rules as the file.
    const overrides = {
      ...(values.target ? { target: parseConfig({ target: { url: values.target } }, '--target').target.url } : {}),
      ...(values.listen ? { listen: parseConfig({ listen: values.listen }, '--listen').listen } : {}),
    };
    const level = levelOverride ?? config.log_level;
    const log = makeLogger(level);
    const webConfigFile = values['web.config.file'];
    if (webConfigFile) loadWebConfig(webConfigFile); // validate up front: exit 2 with the field
    await runDaemon({ configFile: values.config, config, overrides, signal: io.signal, log, env: io.env, ...(webConfigFile ? { webConfigFile } : {}) });
    return 0;
  },

  async demo(args, io) {
    const { values } = parse(args, { listen: { type: 'string' } });
    if (values.help) return io.stdout(COMMAND_HELP.demo!), 0;
    const { Emulator } = await import('./emulator/server.js');
    const emulator = new Emulator({ model: 'demo-model', enableSleepMode: true });
    const emulatorUrl = await emulator.listen(0, '127.0.0.1');
    const config = parseConfig(
      {
        listen: values.listen ?? '127.0.0.1:9470',
        log_level: 'warn',
        target: { url: emulatorUrl.toString() },
        probes: { ttft: { interval: '2s', timeout: '1500ms' }, prefix: { interval: '5s', timeout: '4s', prefix_tokens: [512, 1024] } },
        scrape: { interval: '2s', timeout: '1s' },
        // The emulator lives in this process: the vllm_process check finds the port's owner is
        // this process and says so (not applicable), without alarming.
        gpu: { enabled: false },
        status: { window: '1m' },
      },
      'demo',
    );
    const log = makeLogger(config.log_level);
    try {
      await runDaemon({
        config,
        signal: io.signal,
        log,
        env: io.env,
        onListen: (addr) => {
          const base = `http://${addr.address === '0.0.0.0' ? '127.0.0.1' : addr.address}:${addr.port}`;
          io.stdout(
            [
              'vllm-probe demo: the built-in vLLM emulator and the daemon, wired together.',
              '',
              `  emulated vLLM     ${emulatorUrl.origin}   (curl ${emulatorUrl.origin}/metrics)`,
              `  metrics           ${base}/metrics`,
              `  on-call status    curl -s '${base}/status?format=text'   (quoted: zsh reads ? as a glob)`,
              `  readiness         ${base}/readyz`,
              '',
              `Try a fault: curl -XPOST ${emulatorUrl.origin}/_emulator/fault -d '{"mode":"http_500"}'`,
              `and back:    curl -XPOST ${emulatorUrl.origin}/_emulator/fault -d '{"mode":"none"}'`,
              `  (each state has one: kv_pressure, saturated, shedding, engine_dead, wedge …; vllm-probe emulate --help)`,
              `Sleep mode:  curl -XPOST '${emulatorUrl.origin}/sleep?level=1'   and   curl -XPOST ${emulatorUrl.origin}/wake_up`,
              'Ctrl-C to stop.',
              '',
            ].join('\n'),
          );
        },
      });
    } finally {
      await emulator.close();
    }
    return 0;
  },

  async emulate(args, io) {
    const { values } = parse(args, {
      listen: { type: 'string' },
      model: { type: 'string' },
      'api-key': { type: 'string' },
      'max-model-len': { type: 'string' },
      'vllm-version': { type: 'string' },
      'max-num-seqs': { type: 'string' },
      'no-prefix-caching': { type: 'boolean' },
      fault: { type: 'string' },
      'fault-delay-ms': { type: 'string' },
      'enable-per-request-metrics': { type: 'boolean' },
      'enable-request-id-headers': { type: 'boolean' },
      'enable-scale-out': { type: 'boolean' },
      'max-num-queued-reqs': { type: 'string' },
      'custom-histogram-buckets': { type: 'string' },
      'enable-sleep-mode': { type: 'boolean' },
      'fault-after-ms': { type: 'string' },
    });
    if (values.help) return io.stdout(COMMAND_HELP.emulate!), 0;
    const listen = parseConfig({ listen: values.listen ?? '127.0.0.1:8000' }, '--listen').listen;
    if (values.fault && !(FAULT_MODES as readonly string[]).includes(values.fault)) {
      io.stderr(`vllm-probe emulate: --fault: expected one of ${FAULT_MODES.join(', ')}, got "${values.fault}"\n`);
      return 2;
    }
    const int = (name: string, v: string | undefined) => {
      if (v === undefined) return undefined;
      const n = Number(v);
      if (!Number.isInteger(n) || n < 1) throw new ConfigError(`--${name}`, [`expected a positive integer, got "${v}"`]);
      return n;
    };
    const vllmVersion = (v: string) => {
      if (!/^\d+\.\d+\.\d+\S*$/.test(v)) throw new ConfigError('--vllm-version', [`expected a vLLM version such as 0.26.0, got "${v}"`]);
      return v;
    };
    const apiKey = values['api-key'] ?? io.env.VLLM_API_KEY;
    const { Emulator } = await import('./emulator/server.js');
    const { parseCustomBuckets } = await import('./emulator/engine-metrics.js');
    let customHistogramBuckets;
    try {
      customHistogramBuckets = values['custom-histogram-buckets'] ? parseCustomBuckets(JSON.parse(values['custom-histogram-buckets'])) : undefined;
    } catch (err) {
      throw new ConfigError('--custom-histogram-buckets', [(err as Error).message]);
    }
    const emulator = new Emulator({
      ...(values.model ? { model: values.model } : {}),
      ...(apiKey ? { apiKey } : {}),
      ...(values['max-model-len'] ? { maxModelLen: int('max-model-len', values['max-model-len'])! } : {}),
      ...(values['vllm-version'] ? { version: vllmVersion(values['vllm-version']) } : {}),
      ...(values['max-num-seqs'] ? { maxNumSeqs: int('max-num-seqs', values['max-num-seqs'])! } : {}),
      prefixCaching: !values['no-prefix-caching'],
      perRequestMetrics: values['enable-per-request-metrics'] === true,
      requestIdHeaders: values['enable-request-id-headers'] === true,
      enableScaleOut: values['enable-scale-out'] === true,
      enableSleepMode: values['enable-sleep-mode'] === true,
      ...(values['fault-after-ms'] ? { faultAfterMs: int('fault-after-ms', values['fault-after-ms'])! } : {}),
      ...(values['max-num-queued-reqs'] ? { maxNumQueuedReqs: int('max-num-queued-reqs', values['max-num-queued-reqs'])! } : {}),
      ...(customHistogramBuckets ? { customHistogramBuckets } : {}),
      ...(values.fault ? { fault: { mode: values.fault as FaultMode, ...(values['fault-delay-ms'] ? { delayMs: int('fault-delay-ms', values['fault-delay-ms'])! } : {}) } } : {}),
    });
    const { host, port } = parseListen(listen);
    const url = await emulator.listen(port, host);
    io.stdout(`vllm-probe emulate: emulated vLLM serving "${emulator.options.model}" on ${url.origin} (Ctrl-C to stop)\n`);
    await new Promise<void>((resolve) => (io.signal.aborted ? resolve() : io.signal.addEventListener('abort', () => resolve(), { once: true })));
    await emulator.close();
    return 0;
  },

  async rules(args, io) {
    const { values } = parse(args, { config: { type: 'string' }, kubernetes: { type: 'boolean' }, name: { type: 'string' }, 'runbook-base-url': { type: 'string' } });
    if (values.help) return io.stdout(COMMAND_HELP.rules!), 0;
    let config = values.config ? loadConfig(values.config) : defaultConfig();
    const runbookBase = values['runbook-base-url'];
    if (runbookBase !== undefined) {
      config = { ...config, alerts: { ...config.alerts, runbook_base_url: parseConfig({ alerts: { runbook_base_url: runbookBase } }, '--runbook-base-url').alerts.runbook_base_url } };
    } else if (config.alerts.runbook_base_url === RUNBOOK_PLACEHOLDER) {
      const shipped = fileURLToPath(new URL('../docs/runbook.md', import.meta.url));
      io.stderr(`vllm-probe rules: alerts.runbook_base_url is not set: set it in the config, or pass --runbook-base-url URL, to where your team serves docs/runbook.md (shipped at ${shipped}); each alert links to its section there\n`);
      return 2;
    }
    const { renderPrometheusRule, renderRules } = await import('./slo/rules.js');
    io.stdout(values.kubernetes ? renderPrometheusRule(config, values.name ?? 'vllm-probe') : renderRules(config));
    return 0;
  },

  async gpu(args, io) {
    const { values } = parse(args, { config: { type: 'string' }, 'nvidia-smi': { type: 'string' } });
    if (values.help) return io.stdout(COMMAND_HELP.gpu!), 0;
    let config = values.config ? loadConfig(values.config) : defaultConfig();
    if (values['nvidia-smi']) config = { ...config, gpu: { ...config.gpu, nvidia_smi_path: values['nvidia-smi'] } };
    const result = await runGpuCommand(config, io.signal);
    io.stdout(`${JSON.stringify(result, null, 2)}\n`);
    return result.ok || result.error?.reason === 'no_gpu' ? 0 : 1;
  },

  async dashboards(args, io) {
    const { values } = parse(args, { config: { type: 'string' }, out: { type: 'string' } });
    if (values.help) return io.stdout(COMMAND_HELP.dashboards!), 0;
    if (!values.out) {
      io.stderr(`vllm-probe dashboards: --out DIR is required\n\n${COMMAND_HELP.dashboards}`);
      return 2;
    }
    const config = values.config ? loadConfig(values.config) : defaultConfig();
    mkdirSync(values.out, { recursive: true });
    const { dashboardSpecs, renderDashboard } = await import('./slo/dashboards.js');
    const { FLEET_DASHBOARD_UID, renderFleetDashboard } = await import('./slo/fleet-dashboard.js');
    const dashboards = [...dashboardSpecs(config).map((spec) => ({ uid: spec.uid, json: renderDashboard(spec) })), { uid: FLEET_DASHBOARD_UID, json: renderFleetDashboard(config) }];
    for (const { uid, json } of dashboards) {
      const file = join(values.out, `${uid}.json`);
      writeFileSync(file, `${JSON.stringify(json, null, 2)}\n`);
      io.stdout(`wrote ${file}\n`);
    }
    return 0;
  },

  async bench(args, io) {
    // Loaded on demand: the daemon never needs the bench code in memory.
    const { runBench } = await import('./bench/commands.js');
    const { BenchUsageError } = await import('./bench/options.js');
    try {
      return await runBench(args, { ...io, isTTY: process.stderr.isTTY });
    } catch (err) {
      if (err instanceof BenchUsageError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
        io.stderr(`vllm-probe bench: ${(err as Error).message}\n`);
        return 2;
      }
      io.stderr(`vllm-probe bench: ${(err as Error).message}\n`);
      return 1;
    }
  },

  async 'check-config'(args, io) {
    const { values, positionals } = parse(args, {});
    if (values.help) return io.stdout(COMMAND_HELP['check-config']!), 0;
    if (positionals.length !== 1) {
      io.stderr(`vllm-probe check-config: expected one FILE\n\n${COMMAND_HELP['check-config']}`);
      return 2;
    }
    loadConfig(positionals[0]!);
    io.stdout(`${positionals[0]}: valid\n`);
    return 0;
  },

  async 'explain-metrics'(args, io) {
    const { values, positionals } = parse(args, { config: { type: 'string' }, timeout: { type: 'string' } });
    if (values.help) return io.stdout(COMMAND_HELP['explain-metrics']!), 0;
    const source = positionals[0];
    if (positionals.length !== 1 || !source) {
      io.stderr(`vllm-probe explain-metrics: expected one FILE or URL\n\n${COMMAND_HELP['explain-metrics']}`);
      return 2;
    }
    const timeoutS = values.timeout === undefined ? 10 : parseDuration(values.timeout);
    if (timeoutS === undefined || timeoutS <= 0) {
      io.stderr(`vllm-probe explain-metrics: --timeout: expected a duration like "10s", got ${JSON.stringify(terminalSafe(values.timeout ?? ''))}\n`);
      return 2;
    }
    // The source as shown: a URL's user and password never reach the terminal or a CI log.
    const shown = terminalSafe(redactUrl(source));
    let text: string;
    try {
      if (/^https?:\/\//.test(source)) text = await readMetricsUrl(new URL(source), timeoutS, io.signal);
      else text = readFileSync(source, 'utf8');
    } catch (err) {
      io.stderr(`vllm-probe explain-metrics: cannot read ${shown}: ${terminalSafe(redactUrl((err as NodeJS.ErrnoException).code ?? (err as Error).message))}\n`);
      return 2;
    }
    try {
      const snapshot = normaliseVllmMetrics(parseExposition(text));
      const slo = (values.config ? loadConfig(values.config) : defaultConfig()).slo;
      io.stdout(`${terminalSafe(JSON.stringify(explainSnapshot(snapshot, { ttft: slo.ttft.threshold, e2e: slo.e2e.threshold }), null, 2))}\n`);
      return 0;
    } catch (err) {
      io.stderr(`vllm-probe explain-metrics: ${shown}: ${terminalSafe((err as Error).message)}\n`);
      return 2;
    }
  },
};

/**
 * GET a /metrics URL for explain-metrics under one deadline for the whole read: connect,
 * headers and body (a server that accepts and never answers, stalls after its headers or
 * drips a byte a second once kept it waiting well past its 10 s). Throws with "timeout" in
 * the message when the deadline passes.
 */
async function readMetricsUrl(url: URL, timeoutS: number, signal: AbortSignal): Promise<string> {
  const { VllmClient } = await import('./vllm/client.js');
  // The URL is a /metrics URL: the client's base is what lies before the path.
  const timeoutMs = Math.round(timeoutS * 1000);
  const client = new VllmClient({ baseUrl: url.origin, maxResponseBytes: 64 * 1024 * 1024, connectTimeoutMs: timeoutMs });
  try {
    const res = await client.get(`${url.pathname}${url.search}`, AbortSignal.any([signal, AbortSignal.timeout(timeoutMs)]));
    if (res.status !== 200) throw new Error(`HTTP ${res.status}`);
    if (res.truncated) throw new Error('answer larger than 64 MiB');
    return res.body;
  } catch (err) {
    if (err instanceof SourceError && err.reason === 'timeout') throw new Error(`timeout: no complete answer within ${formatDuration(timeoutS)}`, { cause: err });
    throw err;
  } finally {
    // Not close(): it waits for a request a stalled server never finishes.
    await client.destroy();
  }
}

/**
 * Text for a terminal: control characters (C0 but newline, DEL, C1) escaped as \\uXXXX, so
 * what a server sent cannot set the window title, clear the screen or move the cursor. On
 * JSON text the result is still valid JSON (JSON.stringify escapes C0 itself; C1 is left).
 */
function terminalSafe(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** For tests and tools: the defaults every command starts from. */
export { defaultConfig };
