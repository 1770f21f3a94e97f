/**
 * Secrets never leave a bench run: every file bench writes (md, csv, json, html, svg), every
 * progress line and every error message passes through one Redactor. It removes
 *
 * - the values of the environment variables that hold secrets (the one --api-key-env names,
 *   and every `*_KEY`, `*_TOKEN`, `*_SECRET`, `*_PASSWORD`), wherever they appear verbatim;
 * - the value after a secret-bearing flag on a command line (`--api-key X`, `--hf-token=X`);
 * - `Authorization: …` and `Bearer …` values, `NAME_KEY=value` assignments (`env HF_TOKEN=…`);
 * - the password (and user) of a URL (`https://user:pw@host` → `https://***@host`).
 *
 * What is removed reads `***`, so a reader sees that something was there.
 */
import { redactUrl } from '../reason.js';

const SECRET_VAR = /(?:^|_)(?:KEY|TOKEN|SECRET|PASSWORD)$/i;
// A flag whose value is a secret: --api-key, --hf-token, --client-secret, --password …
const SECRET_FLAG = /((?:^|[\s"'`(])--[A-Za-z0-9-]*(?:api-key|token|secret|password))([= ]+)(?:"[^"]*"|'[^']*'|[^\s"'`]+)/gi;
const ASSIGNMENT = /\b([A-Za-z0-9_]*(?:_KEY|_TOKEN|_SECRET|_PASSWORD))=(?:"[^"]*"|'[^']*'|[^\s"']+)/gi;
const AUTHORIZATION = /(authorization["']?\s*[:=]\s*["']?)(?:(?:bearer|basic)\s+)?[^\s"',}]+/gi;
const BEARER = /\b(bearer\s+)[A-Za-z0-9._~+/=-]+/gi;

export class Redactor {
  private readonly values: string[];

  /** `env`: the bench's environment; `apiKeyEnv`: the variable --api-key-env names. */
  constructor(env: NodeJS.ProcessEnv, apiKeyEnv = 'VLLM_API_KEY') {
    const values = Object.entries(env)
      .filter(([name, value]) => value !== undefined && (name === apiKeyEnv || SECRET_VAR.test(name)))
      .map(([, value]) => value!.trim())
      // Very short values ("1", "true") would blank ordinary words; a real key is longer.
      .filter((v) => v.length >= 6);
    this.values = [...new Set(values)].sort((a, b) => b.length - a.length);
  }

  /** The text with every secret replaced by `***`. */
  text(text: string): string {
    let out = text;
    for (const v of this.values) out = out.split(v).join('***');
    return redactUrl(
      out
        .replace(SECRET_FLAG, (_m, flag: string, sep: string) => `${flag}${sep}***`)
        .replace(ASSIGNMENT, (_m, name: string) => `${name}=***`)
        .replace(AUTHORIZATION, (_m, head: string) => `${head}***`)
        .replace(BEARER, (_m, head: string) => `${head}***`),
    );
  }
}
