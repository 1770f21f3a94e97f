/**
 * GET /probe?target=URL&module=NAME[&debug=true]: one probe cycle of a module against a
 * target, answered in the exposition format from a registry made for the request, the
 * blackbox_exporter way (prober/handler.go): Prometheus holds the fleet, vllm-probe holds no
 * per-target state.
 *
 * Answers: 200 with vllm_probe_success 0/1 for every probe that ran (a failed probe is a
 * value, not an HTTP error); 400 for a missing or unknown module, a missing or malformed
 * target or a malformed timeout header; 403 for a target outside probe_endpoint.allow; 404
 * while that list is empty (the endpoint is off, as if it did not exist); 503 when max_concurrent
 * probes are in flight or the daemon is stopping. The timeout is the module's, capped by
 * X-Prometheus-Scrape-Timeout-Seconds minus probe_endpoint.timeout_offset. The API key of a
 * module goes only to hosts in its api_key_hosts; redirects are never followed (the client
 * dispatches one request per call and a 3xx is a failed probe).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { isIP } from 'node:net';
import { performance } from 'node:perf_hooks';
import { pino, type Logger } from 'pino';
import { Registry } from '../prom-client.js';
import { readApiKey } from '../config-runtime.js';
import type { Config, ModuleConfig } from '../config.js';
import { createMetrics, createProbeEndpointMetrics, OUTCOMES } from '../metrics.js';
import { oneLine } from '../reason.js';
import { probers } from '../synthetic/index.js';
import { UNWATCHED, type ProbeInstance, type ProbeResult } from '../synthetic/prober.js';
import { buildTarget } from '../build-target.js';
import { HostMatcher, ruleHost } from '../host-rules.js';
import { parseTargetUrl, withoutTrailingSlashes } from '../target-url.js';
import { keyAllowed, moduleConfig, moduleSettings } from './modules.js';

/** Used when Prometheus sends no scrape-timeout header (blackbox's default). */
const DEFAULT_SCRAPE_TIMEOUT = 120;

export interface ProbeEndpointDeps {
  config: Config;
  log: Logger;
  env: NodeJS.ProcessEnv;
  /**
   * Aborts when the runtime stops, at a config reload as at shutdown: new requests are then
   * answered 503. Probes already in flight are not cut by it: after a reload they finish under
   * the config they started with (a reload once turned every one into 503 "vllm-probe is
   * stopping", issue 23); at shutdown they end when the server drains and closes their
   * connections (the caller going away aborts a probe).
   */
  shutdown: AbortSignal;
}

/** An HTTP answer that is not a probe result. */
interface Refusal {
  code: 400 | 403 | 404 | 503;
  text: string;
}

/**
 * The probe timeout in seconds: the module's timeout, capped by the scrape timeout minus the
 * offset (when that leaves anything). A string is why the header is unusable.
 */
export function probeTimeout(header: string | undefined, moduleTimeout: number, offset: number): number | string {
  let scrape = DEFAULT_SCRAPE_TIMEOUT;
  if (header !== undefined && header !== '') {
    const v = Number(header);
    if (!Number.isFinite(v) || v < 0) return `X-Prometheus-Scrape-Timeout-Seconds: expected a number of seconds, got ${JSON.stringify(oneLine(header, 40))}`;
    if (v > 0) scrape = v;
  }
  const cap = scrape - offset;
  return cap > 0 ? Math.min(moduleTimeout, cap) : moduleTimeout;
}

/**
 * The base URL a `target` parameter names (src/target-url.ts: the parser config and bench use;
 * a bare `host:port` means http). A string is why not, said as the 400 answer.
 */
export function parseTarget(raw: string): URL | string {
  const parsed = parseTargetUrl(raw, 'use a module with api_key_env or api_key_file');
  return parsed.ok ? parsed.url : `target: ${parsed.error}`;
}

/**
 * One identity per target, however it is spelt: scheme, host as an address (lower case,
 * IPv4-mapped IPv6 as IPv4, no trailing dot), port (the default one written out) and path
 * without trailing slashes. Keyed on the URL text, `…:P`, `…:P//` and `[::ffff:127.0.0.1]:P`
 * were three targets, and 8 probes ran at once against one vLLM with a cap of 2 (issue 23).
 */
export function targetKey(url: URL): { key: string; hostPort: string } {
  const host = ruleHost(url);
  const port = url.port || (url.protocol === 'https:' ? '443' : '80');
  const hostPort = `${isIP(host) === 6 ? `[${host}]` : host}:${port}`;
  return { key: `${url.protocol}//${hostPort}${withoutTrailingSlashes(url.pathname)}`, hostPort };
}

/** One line per log record of a probe, as blackbox's debug output prints its scrape log. */
class TraceLog {
  readonly lines: string[] = [];
  readonly logger: Logger;
  constructor() {
    const lines = this.lines;
    // A plain object destination: pino writes to it synchronously, so the trace is complete
    // when the probe resolves.
    const sink = {
      write(chunk: string) {
        for (const line of chunk.split('\n')) if (line) lines.push(formatRecord(line));
      },
    };
    this.logger = pino({ level: 'debug', base: undefined, timestamp: pino.stdTimeFunctions.isoTime }, sink);
  }
}

function formatRecord(json: string): string {
  try {
    const { time, level, msg, ...rest } = JSON.parse(json) as Record<string, unknown>;
    const name = pino.levels.labels[Number(level)] ?? String(level);
    const fields = Object.entries(rest).map(([k, v]) => `${k}=${JSON.stringify(v)}`);
    return [String(time), name.padEnd(5), String(msg), ...fields].join(' ');
  } catch {
    return json;
  }
}

export class ProbeEndpoint {
  private readonly allow: HostMatcher;
  private inFlight = 0;
  /** In-flight probes by targetKey (entries removed at 0, so the map is bounded by max_concurrent). */
  private readonly inFlightByTarget = new Map<string, number>();

  constructor(private readonly deps: ProbeEndpointDeps) {
    this.allow = HostMatcher.of(deps.config.probe_endpoint.allow);
  }

  /** Answers one /probe request. Never throws for anything the target or the caller did. */
  async handle(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    if (this.deps.shutdown.aborted) return send(res, 503, 'vllm-probe is stopping\n');
    const refused = this.check(url);
    if ('code' in refused) return send(res, refused.code, `${refused.text}\n`);
    const { target, name, module } = refused;
    const timeout = probeTimeout(headerText(req.headers['x-prometheus-scrape-timeout-seconds']), moduleSettings(this.deps.config, module).timeout, this.deps.config.probe_endpoint.timeout_offset);
    if (typeof timeout === 'string') return send(res, 400, `${timeout}\n`);
    if (this.inFlight >= this.deps.config.probe_endpoint.max_concurrent) {
      return send(res, 503, `too many probes in flight (probe_endpoint.max_concurrent is ${this.deps.config.probe_endpoint.max_concurrent}); retry later\n`);
    }
    const { key, hostPort } = targetKey(target);
    const perTarget = this.inFlightByTarget.get(key) ?? 0;
    const cap = this.deps.config.probe_endpoint.max_concurrent_per_target;
    if (perTarget >= cap) {
      return send(res, 503, `${perTarget} probes of ${oneLine(hostPort, 200)} already in flight (probe_endpoint.max_concurrent_per_target is ${cap}); retry later\n`);
    }
    // The caller hanging up (Prometheus gave up) ends the probe too.
    const gone = new AbortController();
    res.once('close', () => gone.abort(new Error('client closed the connection')));
    this.inFlight++;
    this.inFlightByTarget.set(key, perTarget + 1);
    try {
      const answer = await this.probe(target, name, module, timeout, gone.signal);
      if (res.destroyed) return;
      if (url.searchParams.get('debug') === 'true') return send(res, 200, answer.debug);
      res.writeHead(200, { 'content-type': answer.contentType });
      res.end(answer.body);
    } finally {
      this.inFlight--;
      const left = (this.inFlightByTarget.get(key) ?? 1) - 1;
      if (left > 0) this.inFlightByTarget.set(key, left);
      else this.inFlightByTarget.delete(key);
    }
  }

  /** The module and target of a request, or why it is refused. */
  private check(url: URL): Refusal | { target: URL; name: string; module: ModuleConfig } {
    const { config } = this.deps;
    if (this.allow.empty) return { code: 404, text: '/probe is off: probe_endpoint.allow lists no hosts, so no target may be probed (docs/fleet.md)' };
    const name = url.searchParams.get('module') ?? '';
    const known = Object.keys(config.modules);
    if (!name) return { code: 400, text: `module parameter is missing (known modules: ${known.join(', ') || 'none'})` };
    const module = Object.hasOwn(config.modules, name) ? config.modules[name] : undefined;
    if (!module) return { code: 400, text: `unknown module ${JSON.stringify(oneLine(name, 64))} (known modules: ${known.join(', ') || 'none'})` };
    const raw = url.searchParams.get('target') ?? '';
    if (!raw) return { code: 400, text: 'target parameter is missing' };
    const target = parseTarget(raw);
    if (typeof target === 'string') return { code: 400, text: target };
    if (!this.allow.allows(target)) {
      return { code: 403, text: `target ${JSON.stringify(target.host)} is not allowed: its host matches none of probe_endpoint.allow (${this.allow.describe()})` };
    }
    return { target, name, module };
  }

  private async probe(target: URL, name: string, module: ModuleConfig, timeoutSeconds: number, gone: AbortSignal) {
    const { config } = this.deps;
    const trace = new TraceLog();
    const baseUrl = withoutTrailingSlashes(target.href);
    const sendKey = (module.api_key_env !== undefined || module.api_key_file !== undefined) && keyAllowed(module, target);
    const probeConfig = moduleConfig(config, module, baseUrl, { sendKey });
    const settings = probeConfig.probes[module.kind];
    const log = trace.logger.child({ module: name, target: baseUrl });
    log.info({ kind: module.kind, timeout_seconds: timeoutSeconds }, 'beginning probe');
    if ((module.api_key_env || module.api_key_file) && !sendKey) log.warn({ api_key_hosts: module.api_key_hosts }, 'API key withheld: the target host is not in the module api_key_hosts');

    const out = new Registry();
    const gauges = createProbeEndpointMetrics(out);
    const started = performance.now();
    let result: ProbeResult;
    let apiKey: string | undefined;
    try {
      apiKey = sendKey ? readApiKey(probeConfig, this.deps.env) : undefined;
    } catch (err) {
      log.error({ err: (err as Error).message }, 'cannot read the module API key');
      apiKey = undefined;
    }
    // The probe's own series (TTFT histograms…) land in a throwaway registry: the answer
    // carries gauges of this one probe only.
    const scratch = createMetrics(new Registry(), probeConfig);
    const coldProbes = 'cold_probes' in settings ? settings.cold_probes : 1;
    const built = buildTarget({ url: baseUrl, model: module.model, coldProbes, maxResponseBytes: config.target.max_response_bytes }, scratch, log);
    const { tracker } = built;
    const client = built.client({ connections: 2, ...(apiKey ? { apiKey } : {}) });
    const timeoutMs = Math.round(timeoutSeconds * 1000);
    // Only the caller going away ends the probe early, not the runtime stopping (see shutdown).
    const shutdown = gone;
    const signal = AbortSignal.any([shutdown, AbortSignal.timeout(timeoutMs)]);
    try {
      const instance = (probers[module.kind].create as (c: unknown) => ProbeInstance)(settings);
      result = await instance.run({ keySource: probeConfig.target, thresholds: config.status, client, tracker, metrics: scratch, log, signal, shutdown, timeoutMs, watcher: UNWATCHED });
    } catch (err) {
      log.error({ err: (err as Error).message }, 'probe threw: this is a bug in vllm-probe');
      result = { success: false, outcome: 'bad_response', detail: `internal error: ${oneLine((err as Error).message)}`, requests: [] };
    } finally {
      await built.close();
    }
    const seconds = (performance.now() - started) / 1000;

    result.requests.forEach((r, i) => log.info({ outcome: r.outcome, seconds: Number(r.seconds.toFixed(6)), ...(r.usage ? { usage: r.usage } : {}) }, `request ${i + 1} finished`));
    gauges.success.set(result.success ? 1 : 0);
    gauges.duration.set(seconds);
    for (const o of OUTCOMES) gauges.outcome.labels({ outcome: o }).set(o === result.outcome ? 1 : 0);
    const optional = [
      [gauges.ttft, result.ttftSeconds],
      [gauges.itl, result.itlSeconds],
      [gauges.e2e, result.e2eSeconds],
    ] as const;
    for (const [gauge, value] of optional) {
      // An unset unlabelled gauge would read 0: absent is the truth for a failed probe.
      if (result.success && value !== undefined) gauge.set(value);
      else out.removeSingleMetric((gauge as unknown as { name: string }).name);
    }
    if (result.success) log.info({ model: tracker.model, duration_seconds: seconds }, 'probe succeeded');
    else {
      log.error({ model: tracker.model, outcome: result.outcome, detail: result.detail, duration_seconds: seconds }, 'probe failed');
      this.deps.log.warn({ module: name, target: baseUrl, outcome: result.outcome, detail: result.detail }, 'probe failed');
    }
    const body = await out.metrics();
    // Loaded here, not at start: only /probe's debug output needs it (memory: src/config-isolated.ts).
    const { stringify } = await import('yaml');
    const debug = [
      'Logs for the probe:',
      ...trace.lines,
      '',
      'Metrics that would have been returned:',
      body.trimEnd(),
      '',
      'Module configuration:',
      stringify({ [name]: describeModule(module, settings, sendKey, timeoutSeconds) }, { lineWidth: 0 }).trimEnd(),
      '',
    ].join('\n');
    return { body, contentType: out.contentType, debug };
  }
}

/** The effective module for debug output: settings with the overrides applied, never the key. */
function describeModule(module: ModuleConfig, settings: object, sendKey: boolean, timeoutSeconds: number) {
  const { enabled: _e, interval: _i, ...rest } = settings as Record<string, unknown>;
  return {
    kind: module.kind,
    model: module.model || '(first model /v1/models lists)',
    ...rest,
    effective_timeout_seconds: timeoutSeconds,
    api_key: module.api_key_env ? `env ${module.api_key_env}` : module.api_key_file ? `file ${module.api_key_file}` : 'none',
    ...(module.api_key_hosts.length ? { api_key_hosts: module.api_key_hosts } : {}),
    api_key_sent: sendKey,
  };
}

function headerText(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

function send(res: ServerResponse, code: number, text: string): void {
  res.writeHead(code, { 'content-type': 'text/plain; charset=utf-8' });
  res.end(text);
}
