/**
 * The bodies of the commands (serve, demo, emulate, check-config, explain-metrics, gpu, rules,
 * dashboards, bench): each parses its own options and returns its exit code (0 ok, 1 runtime
 * failure, 2 bad usage or bad config). src/cli.ts dispatches to them; ./help.ts holds their words.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { pino, type DestinationStream, type Logger } from 'pino';
import { runDaemon } from '../app.js';
import { loadConfigIsolated } from '../config-isolated.js';
import { ConfigError, formatDuration, parseDuration, parseListen, RUNBOOK_PLACEHOLDER } from '../config-runtime.js';
import { SourceError } from '../errors.js';
import { redactUrl } from '../reason.js';
import { FAULT_MODES, type FaultMode } from '../emulator/faults.js';
import { parseExposition } from '../vllm/exposition.js';
import { explainSnapshot, normaliseVllmMetrics } from '../vllm/schema.js';
import { COMMAND_HELP } from './help.js';

export interface CliIo {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  signal: AbortSignal;
  env: NodeJS.ProcessEnv;
}

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

/**
 * The YAML and schema libraries, for the commands that read a config on the main thread (the
 * daemon reads its own on a worker and keeps them out of its memory: src/config-isolated.ts).
 */
const configModule = () => import('../config.js');

export type Command = (args: string[], io: CliIo) => Promise<number>;

export const COMMANDS: Record<string, Command> = {
  async serve(args, io) {
    const { values } = parse(args, { config: { type: 'string' }, target: { type: 'string' }, listen: { type: 'string' }, 'log-level': { type: 'string' }, 'web.config.file': { type: 'string' } });
    if (values.help) return io.stdout(COMMAND_HELP.serve!), 0;
    if (!values.config) {
      io.stderr(`vllm-probe serve: --config FILE is required\n\n${COMMAND_HELP.serve}`);
      return 2;
    }
    // The file and each override, validated with the same rules (a bad one is a ConfigError: exit 2).
    const { config, overrides } = await loadConfigIsolated(values.config, {
      ...(values.target !== undefined ? { target: values.target } : {}),
      ...(values.listen !== undefined ? { listen: values.listen } : {}),
      ...(values['log-level'] !== undefined ? { log_level: values['log-level'] } : {}),
    });
    const { log_level: levelOverride, ...targetAndListen } = overrides;
    const log = makeLogger(levelOverride ?? config.log_level);
    const webConfigFile = values['web.config.file'];
    if (webConfigFile) (await import('../exporter/web-config.js')).loadWebConfig(webConfigFile); // validate up front: exit 2 with the field
    await runDaemon({ configFile: values.config, config, overrides: targetAndListen, signal: io.signal, log, env: io.env, ...(webConfigFile ? { webConfigFile } : {}) });
    return 0;
  },

  async demo(args, io) {
    const { values } = parse(args, { listen: { type: 'string' } });
    if (values.help) return io.stdout(COMMAND_HELP.demo!), 0;
    const { parseConfig } = await configModule();
    const { Emulator } = await import('../emulator/server.js');
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
    const { parseConfig } = await configModule();
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
    const { Emulator } = await import('../emulator/server.js');
    const { parseCustomBuckets } = await import('../emulator/engine-metrics.js');
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
    const { defaultConfig, loadConfig, parseConfig } = await configModule();
    let config = values.config ? loadConfig(values.config) : defaultConfig();
    const runbookBase = values['runbook-base-url'];
    if (runbookBase !== undefined) {
      config = { ...config, alerts: { ...config.alerts, runbook_base_url: parseConfig({ alerts: { runbook_base_url: runbookBase } }, '--runbook-base-url').alerts.runbook_base_url } };
    } else if (config.alerts.runbook_base_url === RUNBOOK_PLACEHOLDER) {
      const shipped = fileURLToPath(new URL('../../docs/runbook.md', import.meta.url));
      io.stderr(`vllm-probe rules: alerts.runbook_base_url is not set: set it in the config, or pass --runbook-base-url URL, to where your team serves docs/runbook.md (shipped at ${shipped}); each alert links to its section there\n`);
      return 2;
    }
    const { renderPrometheusRule, renderRules } = await import('../slo/rules.js');
    io.stdout(values.kubernetes ? renderPrometheusRule(config, values.name ?? 'vllm-probe') : renderRules(config));
    return 0;
  },

  async gpu(args, io) {
    const { values } = parse(args, { config: { type: 'string' }, 'nvidia-smi': { type: 'string' } });
    if (values.help) return io.stdout(COMMAND_HELP.gpu!), 0;
    const { defaultConfig, loadConfig } = await configModule();
    const { runGpuCommand } = await import('../gpu/command.js');
    let config = values.config ? loadConfig(values.config) : defaultConfig();
    if (values['nvidia-smi']) config = { ...config, gpu: { ...config.gpu, nvidia_smi_path: values['nvidia-smi'] } };
    const result = await runGpuCommand(config, io.signal);
    io.stdout(`${JSON.stringify(result, null, 2)}\n`);
    return result.ok || result.error?.reason === 'no_gpu' ? 0 : 1;
  },

  async dashboards(args, io) {
    const { values } = parse(args, { config: { type: 'string' }, out: { type: 'string' } });
    if (values.help) return io.stdout(COMMAND_HELP.dashboards!), 0;
    const { defaultConfig, loadConfig } = await configModule();
    if (!values.out) {
      io.stderr(`vllm-probe dashboards: --out DIR is required\n\n${COMMAND_HELP.dashboards}`);
      return 2;
    }
    const config = values.config ? loadConfig(values.config) : defaultConfig();
    mkdirSync(values.out, { recursive: true });
    const { dashboardSpecs, renderDashboard } = await import('../slo/dashboards.js');
    const { FLEET_DASHBOARD_UID, renderFleetDashboard } = await import('../slo/fleet-dashboard.js');
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
    const { runBench } = await import('../bench/commands.js');
    const { BenchUsageError } = await import('../bench/options.js');
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
    const { loadConfig } = await configModule();
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
    const { defaultConfig, loadConfig } = await configModule();
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
  const { VllmClient } = await import('../vllm/client.js');
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
