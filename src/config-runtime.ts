/**
 * What the running daemon needs of its config: ConfigError, durations, the listen address and
 * the API key (the Config type comes from ./config.ts with `import type`, which loads nothing).
 * Nothing here loads the YAML or schema libraries: they are ~9 MB of a daemon whose budget is
 * 70 MB (docs/benchmarks.md, footprint), so the daemon reads and validates its file in a
 * short-lived worker (./config-isolated.ts) and imports only this module at run time. The
 * schema is ./config-schema.ts; reading the file is ./config.ts.
 */
import { FileReadError } from './errors.js';
import { readSmallFile } from './files.js';

/** Command-line values that replace fields of the file (`--target`, `--listen`, `--log-level`). */
export interface Overrides {
  target?: string;
  listen?: string;
  log_level?: string;
}

/** Where the config says the API key is: an environment variable or a file. */
export interface ApiKeySource {
  api_key_env?: string | undefined;
  api_key_file?: string | undefined;
}

export class ConfigError extends Error {
  constructor(
    readonly file: string,
    readonly problems: string[],
  ) {
    super(problems.map((p) => `${file}: ${p}`).join('\n'));
    this.name = 'ConfigError';
  }
}

const DURATION_UNITS: Record<string, number> = { ms: 0.001, s: 1, m: 60, h: 3600, d: 86400 };

/** Parses `1h30m`, `15s`, `250ms` into seconds; undefined when the text is not a duration. */
export function parseDuration(text: string): number | undefined {
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/gy;
  let total = 0;
  let matched = 0;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    total += Number(m[1]) * DURATION_UNITS[m[2]!]!;
    matched = re.lastIndex;
  }
  return matched > 0 && matched === text.length ? total : undefined;
}

/** Formats seconds back as the shortest duration text, for messages and generated files. */
export function formatDuration(seconds: number): string {
  for (const [unit, size] of [['d', 86400], ['h', 3600], ['m', 60], ['s', 1]] as const) {
    if (seconds >= size && Number.isInteger(seconds / size)) return `${seconds / size}${unit}`;
  }
  return `${Math.round(seconds * 1000)}ms`;
}

/**
 * Whether an interval falls on the same clock slots every minute, hour or day (seconds divide a
 * minute, minutes an hour, hours a day): schedules run at multiples of the interval on the
 * wall clock (src/schedule.ts), so a 15 s probe runs at :00, :15, :30, :45 after any restart.
 */
export function isEvenInterval(seconds: number): boolean {
  const divides = (n: number, whole: number) => Number.isInteger(n) && n <= whole && whole % n === 0;
  return (seconds < 60 && divides(seconds, 60)) || (seconds < 3600 && divides(seconds / 60, 60)) || divides(seconds / 3600, 24);
}

/**
 * Default of `alerts.runbook_base_url`: a reserved name that resolves nowhere (RFC 2606) and says
 * what to set. The checked-in rules carry it; `vllm-probe rules` refuses it, so generated rules
 * link to where your team serves docs/runbook.md (shipped in the package under docs/).
 */
export const RUNBOOK_PLACEHOLDER = 'https://set-alerts-runbook-base-url.invalid/runbook.md';

/** HOST:PORT (IPv6 in brackets) as listen() takes it; an empty host is every interface. */
export function parseListen(listen: string): { host: string; port: number } {
  const idx = listen.lastIndexOf(':');
  const host = listen.slice(0, idx).replace(/^\[|\]$/g, '') || '0.0.0.0';
  return { host, port: Number(listen.slice(idx + 1)) };
}

/** Resolves the API key from the env var or file named in config; never logs it. */
export function readApiKey(config: { target: ApiKeySource }, env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (config.target.api_key_env) {
    const key = env[config.target.api_key_env];
    return key ? key.trim() : undefined;
  }
  if (config.target.api_key_file) {
    try {
      return readSmallFile(config.target.api_key_file, 64 * 1024).toString('utf8').trim() || undefined;
    } catch (err) {
      throw new ConfigError(config.target.api_key_file, [
        `target.api_key_file: cannot read the API key file: ${err instanceof FileReadError ? err.message.replace(/^cannot read: /, '') : 'error'}`,
      ]);
    }
  }
  return undefined;
}
