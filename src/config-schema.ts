/**
 * The config schema, its defaults and its validation, in one place: `parseConfig(raw)` applies
 * defaults, rejects unknown keys and reports every problem as `FILE: <path>: expected …, got …`
 * inside one ConfigError. Durations are written like Prometheus durations (`15s`, `1m30s`,
 * `500ms`) and become seconds here. Reading the file (YAML, key files) is ./config.ts.
 */
import { z } from 'zod';
import { HostMatcher, parseHostRule } from './host-rules.js';
import { redactUrl } from './reason.js';
import { parseTargetUrl } from './target-url.js';
import { ConfigError, formatDuration, isEvenInterval, parseDuration, RUNBOOK_PLACEHOLDER } from './config-runtime.js';

export { ConfigError, formatDuration, isEvenInterval, parseDuration, parseListen, readApiKey, RUNBOOK_PLACEHOLDER } from './config-runtime.js';

function describe(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (typeof value === 'string') return JSON.stringify(redactUrl(value.length > 200 ? `${value.slice(0, 200)}…` : value));
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  return `${typeof value} ${String(value)}`;
}

const interval = () =>
  duration(1).transform((seconds, ctx) => {
    if (!isEvenInterval(seconds)) {
      ctx.addIssue({
        code: 'custom',
        message: `expected an interval that divides a minute, an hour or a day evenly (1s, 5s, 15s, 30s, 1m, 5m, 1h…), got "${formatDuration(seconds)}"`,
      });
      return z.NEVER;
    }
    return seconds;
  });

const duration = (min = 0.001) =>
  z.unknown().transform((value, ctx) => {
    const seconds = typeof value === 'string' ? parseDuration(value) : undefined;
    if (seconds === undefined || seconds < min) {
      ctx.addIssue({
        code: 'custom',
        message: `expected a duration like "15s" of at least ${formatDuration(min)}, got ${describe(value)}`,
      });
      return z.NEVER;
    }
    return seconds;
  });

/** `false`, or a duration of 10 ms to 1 s: an engine checked less often than the API server outlives it is not followed. */
const engineWatch = z.unknown().transform((value, ctx) => {
  if (value === false) return false as const;
  const seconds = typeof value === 'string' ? parseDuration(value) : undefined;
  if (seconds === undefined || seconds < 0.01 || seconds > 1) {
    ctx.addIssue({ code: 'custom', message: `expected false or a duration from "10ms" to "1s" (the API server outlives a dead engine by 0.3–1.4 s), got ${describe(value)}` });
    return z.NEVER;
  }
  return seconds;
});

/** A vLLM base URL, checked by the one parser every entry point uses (src/target-url.ts). */
const baseUrl = (keyHint: string) =>
  z.unknown().transform((value, ctx) => {
    const parsed = typeof value === 'string' ? parseTargetUrl(value, keyHint) : undefined;
    if (!parsed?.ok) {
      ctx.addIssue({ code: 'custom', message: parsed?.error ?? `expected an http(s) URL like "http://127.0.0.1:8000", got ${describe(value)}` });
      return z.NEVER;
    }
    return parsed.base;
  });

const listenAddress = z.unknown().transform((value, ctx) => {
  const ok = typeof value === 'string' && /^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]*):\d{1,5}$/.test(value) && Number(value.split(':').pop()) <= 65535;
  if (!ok) {
    ctx.addIssue({ code: 'custom', message: `expected HOST:PORT like "0.0.0.0:9470", got ${describe(value)}` });
    return z.NEVER;
  }
  return value as string;
});

const ratio = z.number().min(0).max(1);
const objective = z.number().gt(0).lt(1);

/**
 * When an inference probe runs (issue 25). `always`: every interval. `when_idle`: a scheduled
 * run is skipped while vLLM's own counters show real requests finishing and the diagnosis says
 * healthy, and runs at least every `max_interval` (docs/architecture.md, "Traffic-aware probing").
 */
const PROBE_MODES = ['always', 'when_idle'] as const;
const trafficAware = (maxInterval: number) => ({
  mode: z.enum(PROBE_MODES).default('always'),
  max_interval: duration(1).default(maxInterval),
});

const ttftProbeSchema = z.strictObject({
  enabled: z.boolean().default(true),
  interval: interval().default(15),
  timeout: duration().default(10),
  endpoint: z.enum(['completions', 'chat']).default('completions'),
  prompt: z.string().min(1).default('Write one sentence about the ocean.'),
  max_tokens: z.number().int().min(1).max(4096).default(16),
  /** Probes after a detected restart that are labelled phase="cold". */
  cold_probes: z.number().int().min(1).default(1),
  ...trafficAware(300),
});

const prefixProbeSchema = z.strictObject({
  enabled: z.boolean().default(true),
  interval: interval().default(60),
  timeout: duration().default(30),
  /** Shared-prefix sizes in tokens; one regime is probed per cycle, round robin. */
  prefix_tokens: z.array(z.number().int().min(16).max(131072)).min(1).default([1024]),
  suffix_tokens: z.number().int().min(1).max(1024).default(16),
  hits_per_cycle: z.number().int().min(1).max(16).default(1),
  max_tokens: z.number().int().min(1).max(64).default(4),
  // Longer than the TTFT probe's: under real traffic vLLM's own prefix-cache counters show
  // caching at work, and a cycle costs 2 × (prefix + suffix) prompt tokens.
  ...trafficAware(900),
});

/** GET /v1/models and /health: latency, model served, wrong-model detection. */
const modelsProbeSchema = z.strictObject({
  enabled: z.boolean().default(true),
  interval: interval().default(30),
  timeout: duration().default(5),
});

/**
 * POST /tokenize: the API server's own latency, without the engine (it separates "API server
 * slow" from "engine slow"). Off by default: it adds a verdict (`probe_tokenize`) to every
 * target, and a gateway that routes only /v1/* would answer it 404.
 */
const tokenizeProbeSchema = z.strictObject({
  enabled: z.boolean().default(false),
  interval: interval().default(30),
  timeout: duration().default(5),
  prompt: z.string().min(1).max(4096).default('Write one sentence about the ocean.'),
});

/**
 * Each probe kind's settings block: the one list of kinds in the config. The `probes:` block,
 * the kinds a module may name, what a module may override and the timeout rules are derived
 * from it; `probers` (src/synthetic/index.ts) must have an entry for each (the compiler says so).
 */
const probeKindSchemas = { ttft: ttftProbeSchema, prefix: prefixProbeSchema, models: modelsProbeSchema, tokenize: tokenizeProbeSchema };
type ProbeKindName = keyof typeof probeKindSchemas;
const PROBE_KIND_NAMES = Object.keys(probeKindSchemas) as ProbeKindName[];

/** Each kind's block defaulted as a whole, so `probes: {}` gives every kind its defaults. */
function defaulted<T extends Record<string, z.ZodObject>>(schemas: T): { [K in keyof T]: z.ZodPrefault<T[K]> } {
  return Object.fromEntries(Object.entries(schemas).map(([k, s]) => [k, s.prefault({})])) as { [K in keyof T]: z.ZodPrefault<T[K]> };
}

/**
 * Settings a module may not override: `enabled` and `interval`, and `mode` and `max_interval`:
 * /probe always runs, and a static target's /metrics is not scraped, so there are no counters to
 * skip on (docs/fleet.md).
 */
const SCHEDULE_KEYS = ['enabled', 'interval', 'mode', 'max_interval'];
const overrideSchemas = Object.fromEntries(
  PROBE_KIND_NAMES.map((kind): [ProbeKindName, z.ZodType] => {
    const schema: z.ZodObject = probeKindSchemas[kind];
    const fixed = Object.fromEntries(SCHEDULE_KEYS.filter((k) => k in schema.shape).map((k) => [k, true]));
    return [kind, schema.omit(fixed as never)];
  }),
) as Record<ProbeKindName, z.ZodType>;

const envName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/);

/** One host rule of probe_endpoint.allow or api_key_hosts (see src/host-rules.ts). */
const hostRule = z.unknown().transform((value, ctx) => {
  const rule = typeof value === 'string' ? parseHostRule(value) : `expected a host name, an IP address, a CIDR or a "*.domain" pattern, got ${describe(value)}`;
  if (typeof rule === 'string') {
    ctx.addIssue({ code: 'custom', message: rule });
    return z.NEVER;
  }
  return value as string;
});

/**
 * A fleet module: a probe kind and overrides of that kind's `probes.<kind>` settings (interval
 * and enabled excepted: Prometheus' scrape interval, or the target's, decides when it runs).
 * `overrides` holds only the keys written in the config, validated by the kind's own schema.
 */
const moduleSchema = z
  .looseObject({
    kind: z.enum(PROBE_KIND_NAMES),
    /** Model sent in requests; empty means "ask /v1/models and take the first". */
    model: z.string().min(1).optional(),
    api_key_env: envName.optional(),
    api_key_file: z.string().min(1).optional(),
    /** Hosts that may receive the module's API key; required with a key. */
    api_key_hosts: z.array(hostRule).default([]),
  })
  .transform((m, ctx) => {
    const { kind, model, api_key_env, api_key_file, api_key_hosts, ...rest } = m;
    const parsed = overrideSchemas[kind].safeParse(rest);
    if (!parsed.success) {
      for (const issue of parsed.error.issues) ctx.addIssue(issue as never);
      return z.NEVER;
    }
    if (api_key_env && api_key_file) ctx.addIssue({ code: 'custom', path: ['api_key_file'], message: 'expected only one of api_key_env and api_key_file, got both' });
    if ((api_key_env || api_key_file) && api_key_hosts.length === 0) {
      ctx.addIssue({ code: 'custom', path: ['api_key_hosts'], message: 'expected the hosts that may receive the API key (the key is never sent elsewhere), got nothing' });
    }
    const data = parsed.data as Record<string, unknown>;
    const overrides = Object.fromEntries(Object.keys(rest).map((k) => [k, data[k]]));
    return {
      kind,
      model: model ?? '',
      ...(api_key_env ? { api_key_env } : {}),
      ...(api_key_file ? { api_key_file } : {}),
      api_key_hosts,
      overrides,
    };
  });

const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
/** Labels the daemon's own series use, or Prometheus owns: a target label may not take them. */
const RESERVED_LABELS = new Set(['target', 'probe', 'model', 'outcome', 'phase', 'cache', 'prefix_tokens', 'token_type', 'le', 'quantile', 'instance', 'job', 'source', 'reason', 'status', 'gpu', 'uuid', 'unit']);

const targetSchema = z.strictObject({
  url: baseUrl("the API key goes in the module's api_key_env or api_key_file"),
  /** Modules (of distinct kinds) probed against this target. */
  modules: z.array(z.string().min(1)).min(1),
  /** How often each module runs; default: its kind's probes.<kind>.interval. */
  interval: interval().optional(),
  /** Extra labels on every series of this target (zone, replica…). */
  labels: z.record(z.string(), z.string()).default({}),
});

const sloTargetSchema = (threshold: number, critical: number, objectiveDefault: number) =>
  z
    .strictObject({
      threshold: duration().default(threshold),
      critical_threshold: duration().default(critical),
      objective: objective.default(objectiveDefault),
    })
    .superRefine((v, ctx) => {
      if (v.critical_threshold <= v.threshold) {
        ctx.addIssue({
          code: 'custom',
          path: ['critical_threshold'],
          message: `expected a duration above threshold (${formatDuration(v.threshold)}), got ${formatDuration(v.critical_threshold)}`,
        });
      }
    });

const configSchema = z.strictObject({
  listen: listenAddress.default('0.0.0.0:9470'),
  log_level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
  target: z
    .strictObject({
      url: baseUrl('the API key goes in target.api_key_env or api_key_file').default('http://127.0.0.1:8000'),
      /** Served model name; empty means "ask /v1/models and take the first". */
      model: z.string().default(''),
      api_key_env: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/).optional(),
      api_key_file: z.string().min(1).optional(),
      /** Largest response body read from the target (metrics, errors, streams). */
      max_response_bytes: z.number().int().min(1024).default(16 * 1024 * 1024),
    })
    .prefault({}),
  probes: z
    .strictObject(defaulted(probeKindSchemas))
    .prefault({}),
  /** GET /probe?target=&module= (fleet mode); off while `allow` is empty. */
  probe_endpoint: z
    .strictObject({
      allow: z.array(hostRule).default([]),
      /** Subtracted from X-Prometheus-Scrape-Timeout-Seconds so the answer beats the scrape timeout. */
      timeout_offset: duration(0).default(0.5),
      /** /probe requests in flight at once; more are answered 503 at once. */
      max_concurrent: z.number().int().min(1).max(1024).default(16),
      /**
       * /probe requests in flight for one target (its URL) at once; more are answered 503. Two
       * Prometheus replicas scrape the same target at the same moment; more is a loop or abuse
       * aimed at one vLLM through an allow-listed prober.
       */
      max_concurrent_per_target: z.number().int().min(1).max(1024).default(2),
    })
    .prefault({}),
  modules: z.record(z.string().regex(/^[A-Za-z0-9_-]+$/), moduleSchema).default({}),
  /** Central mode: probe these targets on their own schedules instead of target.url. */
  targets: z.array(targetSchema).default([]),
  scrape: z
    .strictObject({
      enabled: z.boolean().default(true),
      interval: interval().default(15),
      timeout: duration().default(5),
      /** Scrapes with requests in flight and no generated tokens before the engine counts as wedged. */
      wedge_scrapes: z.number().int().min(2).default(4),
      /**
       * Whether vLLM's processes on this host are followed for an engine that dies under a live
       * API server (src/host/engine-watch.ts): learnt the moment it happens through pidfds, or,
       * where those cannot be held, by reading liveness this often. `false`: not followed, and a
       * crash the scrape misses reads as `down`. The API server outlives a dead engine 0.3 s on
       * the CPU build and 1.4 s on an H100, so polling slower than 150 ms may miss the CPU
       * build's crashes.
       */
      engine_watch: engineWatch.default(0.1),
    })
    .prefault({}),
  gpu: z
    .strictObject({
      enabled: z.boolean().default(true),
      nvidia_smi_path: z.string().min(1).default('nvidia-smi'),
      interval: interval().default(15),
      timeout: duration().default(5),
      /** How to find vLLM's processes in the GPU process list. */
      process_match: z
        .strictObject({
          pid_file: z.string().min(1).optional(),
          pid: z.number().int().positive().optional(),
          name_pattern: z
            .string()
            .min(1)
            .refine((p) => {
              try {
                new RegExp(p);
                return true;
              } catch {
                return false;
              }
            }, 'expected a valid regular expression')
            .optional(),
        })
        .prefault({}),
    })
    .prefault({}),
  /** Host CPU busy fraction and available memory from /proc (src/gpu/host.ts), GPU or not. */
  host: z
    .strictObject({
      enabled: z.boolean().default(true),
      interval: interval().default(15),
      timeout: duration().default(5),
    })
    .prefault({}),
  slo: z
    .strictObject({
      period: duration(3600).default(30 * 86400),
      availability: z.strictObject({ objective: objective.default(0.995) }).prefault({}),
      ttft: sloTargetSchema(0.5, 2.5, 0.99).prefault({}),
      e2e: sloTargetSchema(2.5, 10, 0.99).prefault({}),
    })
    .prefault({}),
  alerts: z
    .strictObject({
      /**
       * The URL of docs/runbook.md where your team serves it; each alert's runbook_url is this plus
       * `#<alert name in lower case>`. The default is RUNBOOK_PLACEHOLDER, which `vllm-probe rules`
       * refuses: there is no public copy to point at.
       */
      runbook_base_url: z.string().url().default(RUNBOOK_PLACEHOLDER),
      /** Selector added to every rule's series (e.g. '{job="vllm-probe"}' → job="vllm-probe"). */
      selector: z.string().regex(/^([a-zA-Z_][a-zA-Z0-9_]*(=|!=|=~|!~)"[^"]*")?(,\s*[a-zA-Z_][a-zA-Z0-9_]*(=|!=|=~|!~)"[^"]*")*$/).default(''),
    })
    .prefault({}),
  status: z
    .strictObject({
      window: duration(10).default(300),
      failures_to_unhealthy: z.number().int().min(1).default(3),
      successes_to_recover: z.number().int().min(1).default(2),
      kv_cache_usage_degraded: ratio.default(0.95),
      gpu_memory_headroom_degraded: ratio.default(0.05),
      prefix_hit_ratio_degraded: ratio.default(0.5),
    })
    .prefault({}),
});

export type Config = z.output<typeof configSchema>;
export type TtftProbeConfig = Config['probes']['ttft'];
export type PrefixProbeConfig = Config['probes']['prefix'];
export type ModelsProbeConfig = Config['probes']['models'];
export type ModuleConfig = Config['modules'][string];
export type TargetConfig = Config['targets'][number];

function formatPath(path: PropertyKey[]): string {
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else out += out ? `.${String(part)}` : String(part);
  }
  return out || '(top level)';
}

function formatIssue(issue: z.core.$ZodIssue, root: unknown): string[] {
  const input = issue.path.reduce<unknown>(
    (node, key) => (node && typeof node === 'object' ? (node as Record<PropertyKey, unknown>)[key] : undefined),
    root,
  );
  const where = formatPath(issue.path);
  switch (issue.code) {
    case 'unrecognized_keys':
      return issue.keys.map((k) => `${formatPath([...issue.path, k])}: unknown key (check the spelling; see config/vllm-probe.example.yaml)`);
    case 'invalid_type':
      return [`${where}: expected ${issue.expected}, got ${describe(input)}`];
    case 'invalid_value':
      return [`${where}: expected one of ${issue.values.map((v) => JSON.stringify(v)).join(', ')}, got ${describe(input)}`];
    case 'too_small':
      if (issue.origin === 'array') return [`${where}: expected a list of at least ${String(issue.minimum)} item(s), got ${Array.isArray(input) ? input.length : 0}`];
      if (issue.origin === 'string') return [`${where}: expected text of at least ${String(issue.minimum)} character(s), got ${describe(input)}`];
      return [`${where}: expected a number ${issue.inclusive ? '≥' : '>'} ${String(issue.minimum)}, got ${describe(input)}`];
    case 'too_big':
      if (issue.origin === 'array') return [`${where}: expected a list of at most ${String(issue.maximum)} item(s), got ${Array.isArray(input) ? input.length : 0}`];
      return [`${where}: expected a number ${issue.inclusive ? '≤' : '<'} ${String(issue.maximum)}, got ${describe(input)}`];
    case 'custom':
      return [`${where}: ${issue.message}`];
    case 'invalid_key':
      return [`${where}: expected a name of letters, digits, "_" and "-", got ${JSON.stringify(String(issue.path.at(-1)))}`];
    default:
      return [`${where}: ${issue.message}, got ${describe(input)}`];
  }
}

/** Validates an already-parsed document. Throws ConfigError naming `file` and each bad field. */
export function parseConfig(raw: unknown, file = '<config>'): Config {
  const result = configSchema.safeParse(raw ?? {});
  if (result.success) {
    checkCrossFieldRules(result.data, file);
    return result.data;
  }
  throw new ConfigError(file, result.error.issues.flatMap((i) => formatIssue(i, raw)));
}

function checkCrossFieldRules(config: Config, file: string): void {
  const problems: string[] = [];
  const timedOut = (path: string, timeout: number, interval: number) => {
    if (timeout >= interval) problems.push(`${path}.timeout: expected a duration below ${path}.interval (${formatDuration(interval)}), got ${formatDuration(timeout)}`);
  };
  for (const [kind, probe] of Object.entries(config.probes)) timedOut(`probes.${kind}`, probe.timeout, probe.interval);
  for (const [kind, probe] of Object.entries(config.probes)) {
    if ('mode' in probe && probe.mode === 'when_idle' && probe.max_interval < probe.interval) {
      problems.push(`probes.${kind}.max_interval: expected a duration of at least probes.${kind}.interval (${formatDuration(probe.interval)}) with mode when_idle, got ${formatDuration(probe.max_interval)}`);
    }
  }
  timedOut('scrape', config.scrape.timeout, config.scrape.interval);
  timedOut('gpu', config.gpu.timeout, config.gpu.interval);
  timedOut('host', config.host.timeout, config.host.interval);
  if (config.target.api_key_env && config.target.api_key_file) {
    problems.push('target.api_key_file: expected only one of api_key_env and api_key_file, got both');
  }
  problems.push(...fleetProblems(config));
  if (problems.length) throw new ConfigError(file, problems);
}

/** Cross-field rules of `targets:` (module names, kinds, labels, timeouts, API key hosts). */
function fleetProblems(config: Config): string[] {
  const problems: string[] = [];
  const known = Object.keys(config.modules);
  const seen = new Map<string, number>();
  config.targets.forEach((t, i) => {
    const at = `targets[${i}]`;
    const first = seen.get(t.url);
    if (first !== undefined) problems.push(`${at}.url: expected each target once (its series would collide with targets[${first}]); list several modules instead, got ${JSON.stringify(t.url)} again`);
    else seen.set(t.url, i);
    const kinds = new Map<string, string>();
    t.modules.forEach((name, j) => {
      const m = config.modules[name];
      if (!m) return void problems.push(`${at}.modules[${j}]: unknown module ${JSON.stringify(name)} (known: ${known.join(', ') || 'none; define them under modules'})`);
      const other = kinds.get(m.kind);
      if (other !== undefined) problems.push(`${at}.modules[${j}]: expected modules of distinct kinds (their series are told apart by probe kind), got ${JSON.stringify(name)} and ${JSON.stringify(other)}, both ${m.kind}`);
      kinds.set(m.kind, name);
      const timeout = (m.overrides.timeout as number | undefined) ?? config.probes[m.kind].timeout;
      const every = t.interval ?? config.probes[m.kind].interval;
      if (timeout >= every) problems.push(`${at}.interval: expected a duration above the timeout of module ${JSON.stringify(name)} (${formatDuration(timeout)}), got ${formatDuration(every)}`);
      if ((m.api_key_env || m.api_key_file) && !hostAllowed(m.api_key_hosts, t.url)) {
        problems.push(`${at}.url: the host is not in modules.${name}.api_key_hosts, so its API key would not be sent; add the host there or use another module, got ${JSON.stringify(t.url)}`);
      }
    });
    for (const label of Object.keys(t.labels)) {
      if (!LABEL_NAME.test(label) || label.startsWith('__')) problems.push(`${at}.labels.${label}: expected a Prometheus label name like "zone", got ${JSON.stringify(label)}`);
      else if (RESERVED_LABELS.has(label)) problems.push(`${at}.labels.${label}: expected a label name vllm-probe or Prometheus does not set itself, got ${JSON.stringify(label)}`);
    }
  });
  return problems;
}

function hostAllowed(rules: string[], url: string): boolean {
  return HostMatcher.of(rules).allows(new URL(url));
}

/** Defaults for an empty file: what `serve` uses next to vLLM on 127.0.0.1:8000. */
export function defaultConfig(): Config {
  return parseConfig({});
}
