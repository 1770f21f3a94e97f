/**
 * The Prometheus exporter-toolkit web config file (`--web.config.file`): TLS and basic auth
 * with bcrypt hashes, in the same schema as node_exporter & co. so SREs can reuse theirs:
 *
 *   tls_server_config: { cert_file, key_file, client_ca_file, client_auth_type, min_version }
 *   http_server_config: { headers: { Name: value } }
 *   basic_auth_users: { user: <bcrypt hash> }
 *
 * Basic auth covers every endpoint but /healthz (so kubelet and Docker health checks need no
 * credentials). The file is re-read when its modification time changes, so passwords and
 * certificates rotate without a restart; a broken new file keeps the last good one (logged).
 */
import { createHash } from 'node:crypto';
import { statSync } from 'node:fs';
import { createSecureContext } from 'node:tls';
import { validateHeaderName, validateHeaderValue, type IncomingMessage, type ServerResponse } from 'node:http';
import type { SecureContextOptions } from 'node:tls';
import { z } from 'zod';
import { ConfigError, readYamlFile } from '../config.js';
import { FileReadError } from '../errors.js';
import { readSmallFile } from '../files.js';
import { oneLine } from '../reason.js';
import { BcryptWorker } from './bcrypt.js';
import type { Authorizer } from './server.js';

const TLS_VERSIONS = { TLS10: 'TLSv1', TLS11: 'TLSv1.1', TLS12: 'TLSv1.2', TLS13: 'TLSv1.3' } as const;
const CLIENT_AUTH = ['NoClientCert', 'RequestClientCert', 'RequireAnyClientCert', 'VerifyClientCertIfGiven', 'RequireAndVerifyClientCert'] as const;

const webConfigSchema = z.strictObject({
  tls_server_config: z
    .strictObject({
      cert_file: z.string().min(1),
      key_file: z.string().min(1),
      client_ca_file: z.string().min(1).optional(),
      client_auth_type: z.enum(CLIENT_AUTH).default('NoClientCert'),
      min_version: z.enum(Object.keys(TLS_VERSIONS) as [keyof typeof TLS_VERSIONS]).default('TLS12'),
      max_version: z.enum(Object.keys(TLS_VERSIONS) as [keyof typeof TLS_VERSIONS]).optional(),
    })
    .optional(),
  http_server_config: z.strictObject({ headers: z.record(z.string(), z.string()).default({}) }).prefault({}),
  basic_auth_users: z.record(z.string().min(1), z.string().regex(/^\$2[aby]\$\d\d\$.{53}$/, 'expected a bcrypt hash like "$2y$10$…"')).default({}),
});

export type WebConfig = z.output<typeof webConfigSchema>;

/** Reads and validates a web config file; ConfigError with field paths on problems. */
export function loadWebConfig(file: string): WebConfig {
  const raw = readYamlFile(file);
  const result = webConfigSchema.safeParse(raw ?? {});
  if (!result.success) {
    throw new ConfigError(
      file,
      result.error.issues.map((i) => `${i.path.map(String).join('.') || '(top level)'}: ${i.code === 'unrecognized_keys' ? `unknown key(s) ${i.keys.join(', ')}` : i.message}`),
    );
  }
  const headerProblems = Object.entries(result.data.http_server_config.headers).flatMap(([name, value]) => headerProblem(name, value) ?? []);
  if (headerProblems.length) throw new ConfigError(file, headerProblems);
  const tls = result.data.tls_server_config;
  if (tls) {
    for (const [key, path] of [['cert_file', tls.cert_file], ['key_file', tls.key_file], ['client_ca_file', tls.client_ca_file]] as const) {
      if (path === undefined) continue;
      try {
        readSmallFile(path);
      } catch (err) {
        throw new ConfigError(file, [`tls_server_config.${key}: expected a readable file, got "${path}" (${err instanceof FileReadError ? (err.code.startsWith('E') && err.code !== 'ENOTREG' && err.code !== 'EFBIG' ? err.code : err.message) : 'unreadable'})`]);
      }
    }
    // Node would only find a bad certificate when the server starts, with a stack trace.
    try {
      createSecureContext(tlsOptions(result.data));
    } catch (err) {
      throw new ConfigError(file, [`tls_server_config: cert_file and key_file are not a usable PEM certificate and key: ${(err as Error).message.split('\n')[0]}`]);
    }
    if (tls.client_auth_type !== 'NoClientCert' && !tls.client_ca_file && tls.client_auth_type.includes('Verify')) {
      throw new ConfigError(file, [`tls_server_config.client_ca_file: expected a CA file with client_auth_type ${tls.client_auth_type}, got nothing`]);
    }
  }
  return result.data;
}

/**
 * What is wrong with one http_server_config.headers entry as HTTP allows it, or undefined.
 * Node refuses such a header only when a response sets it: every protected endpoint then
 * answered 500, also after such a file was rotated in (issue 23). A YAML `|` block, the usual
 * way to write a long value, ends it in a newline.
 */
function headerProblem(name: string, value: string): string | undefined {
  const where = `http_server_config.headers.${oneLine(name, 80)}`;
  try {
    validateHeaderName(name);
  } catch {
    return `${where}: expected a header name (letters, digits and !#$%&'*+-.^_\`|~), got ${JSON.stringify(oneLine(name, 80))}`;
  }
  try {
    validateHeaderValue(name, value);
  } catch {
    if (/^[^\r\n]*\r?\n$/.test(value)) return `${where}: expected one line, got a value that ends in a line break (a YAML "|" block adds one: use "|-" or a quoted string)`;
    return `${where}: expected a header value without line breaks or control characters, got ${JSON.stringify(oneLine(value, 80))}`;
  }
  return undefined;
}

/** Node TLS options for a web config's tls_server_config. */
export function tlsOptions(config: WebConfig): (SecureContextOptions & { requestCert?: boolean; rejectUnauthorized?: boolean }) | undefined {
  const tls = config.tls_server_config;
  if (!tls) return undefined;
  const verify = tls.client_auth_type === 'RequireAndVerifyClientCert' || tls.client_auth_type === 'RequireAnyClientCert';
  return {
    cert: readSmallFile(tls.cert_file),
    key: readSmallFile(tls.key_file),
    ...(tls.client_ca_file ? { ca: readSmallFile(tls.client_ca_file) } : {}),
    minVersion: TLS_VERSIONS[tls.min_version],
    ...(tls.max_version ? { maxVersion: TLS_VERSIONS[tls.max_version] } : {}),
    requestCert: tls.client_auth_type !== 'NoClientCert',
    rejectUnauthorized: verify,
  };
}

/** Password checks waiting for or running on the bcrypt worker; one more is answered 429. */
const MAX_PENDING_CHECKS = 8;
/** Verified credentials kept (a hash each); past it the cache starts over. */
const MAX_VERIFIED = 1000;

/**
 * Basic auth from a web config file, re-read when the file changes. bcrypt is deliberately slow,
 * so, as exporter-toolkit does, a successful check is cached by a SHA-256 of user, password and
 * hash until the file changes; failed ones are not (a flood of wrong passwords cannot evict the
 * good ones). bcrypt runs on a worker thread (bcrypt.ts), one check at a time, and a queue past
 * MAX_PENDING_CHECKS is refused with 429, so bad logins cannot stall the event loop, /healthz
 * or the probes' timing. An unknown user is checked against a dummy hash of the same cost, so
 * the answer takes as long as for a known user (no user enumeration by timing).
 */
export class WebConfigAuthorizer implements Authorizer {
  private config: WebConfig;
  private mtimeMs: number;
  private readonly verified = new Set<string>();
  private dummyHash: Promise<string> | undefined;
  private readonly bcrypt = new BcryptWorker();
  private pendingChecks = 0;

  constructor(
    private readonly file: string,
    private readonly onReloadError: (err: Error) => void = () => undefined,
    /** Called after the file changed and re-validated (e.g. to swap the TLS certificate). */
    public onChange: (config: WebConfig) => void = () => undefined,
  ) {
    this.config = loadWebConfig(file);
    this.mtimeMs = statSync(file).mtimeMs;
  }

  private refresh(): void {
    try {
      const mtime = statSync(this.file).mtimeMs;
      if (mtime === this.mtimeMs) return;
      this.config = loadWebConfig(this.file);
      this.mtimeMs = mtime;
      this.verified.clear();
      this.dummyHash = undefined;
      this.onChange(this.config);
    } catch (err) {
      this.onReloadError(err as Error); // keep the last good config
    }
  }

  /** A hash of the configured cost that matches no password, for unknown users. */
  private dummy(users: Record<string, string>): Promise<string> {
    if (!this.dummyHash) {
      const cost = Number(/^\$2[aby]\$(\d\d)\$/.exec(Object.values(users)[0] ?? '')?.[1] ?? 10);
      const made = this.bcrypt.hash(`no user ${Math.random()}`, cost);
      made.catch(() => (this.dummyHash = this.dummyHash === made ? undefined : this.dummyHash));
      this.dummyHash = made;
    }
    return this.dummyHash;
  }

  /** Stops the bcrypt worker (it is unref'd, so this is for tidy tests and shutdown). */
  close(): Promise<void> {
    return this.bcrypt.close();
  }

  get current(): WebConfig {
    return this.config;
  }

  async check(req: IncomingMessage, res: ServerResponse): Promise<boolean> {
    this.refresh();
    for (const [name, value] of Object.entries(this.config.http_server_config.headers)) res.setHeader(name, value);
    const users = this.config.basic_auth_users;
    if (Object.keys(users).length === 0) return true;
    const header = req.headers.authorization ?? '';
    const m = /^Basic\s+([A-Za-z0-9+/=]+)$/i.exec(header);
    if (m) {
      const decoded = Buffer.from(m[1]!, 'base64').toString('utf8');
      const idx = decoded.indexOf(':');
      const user = decoded.slice(0, idx);
      const password = decoded.slice(idx + 1);
      const known = idx > 0 && Object.hasOwn(users, user);
      const key = known ? createHash('sha256').update(`${user}\0${password}\0${users[user]}`).digest('hex') : undefined;
      if (key !== undefined && this.verified.has(key)) return true;
      if (this.pendingChecks >= MAX_PENDING_CHECKS) {
        res.writeHead(429, { 'retry-after': '1', 'content-type': 'text/plain; charset=utf-8' });
        res.end('too many authentication attempts at once\n');
        return false;
      }
      this.pendingChecks++;
      let ok: boolean;
      try {
        const hash = known ? users[user]! : await this.dummy(users);
        ok = (await this.bcrypt.compare(password, hash)) && known;
      } catch {
        res.writeHead(503, { 'retry-after': '1', 'content-type': 'text/plain; charset=utf-8' });
        res.end('password check unavailable\n');
        return false;
      } finally {
        this.pendingChecks--;
      }
      if (ok && key !== undefined) {
        if (this.verified.size >= MAX_VERIFIED) this.verified.clear();
        this.verified.add(key);
        return true;
      }
    }
    res.writeHead(401, { 'www-authenticate': 'Basic realm="vllm-probe"', 'content-type': 'text/plain; charset=utf-8' });
    res.end('unauthorized\n');
    return false;
  }
}
