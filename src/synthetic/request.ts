/**
 * What every probe request shares: how probe traffic is named in vLLM's logs, and the words
 * for a failed request that point at the setting to change.
 */
import type { Config } from '../config.js';
import { SourceError } from '../errors.js';
import type { Outcome, StreamResult } from '../vllm/stream.js';

/** Sent as the OpenAI `user` field so probe traffic can be told apart in vLLM's logs. */
export const PROBE_USER = 'vllm-probe';

/** Where the API key of a probe's requests comes from (target.* or a module's), for the words of a 401. */
export type KeySource = Pick<Config['target'], 'api_key_env' | 'api_key_file'>;

/** The failure in words, with the fix where we know it (an API key, a model name). */
export function failureDetail(r: Pick<StreamResult, 'status' | 'detail' | 'outcome'>, keys: KeySource): string {
  const detail = r.detail ?? r.outcome;
  if (r.status === 401 || r.status === 403) {
    const setting = keys.api_key_env ? `the variable ${keys.api_key_env} (target.api_key_env)` : keys.api_key_file ? `the file ${keys.api_key_file} (target.api_key_file)` : 'target.api_key_env or target.api_key_file (none is set)';
    return `vLLM refused the API key (HTTP ${r.status}): it is missing or wrong; it comes from ${setting}`;
  }
  if (r.status === 404 && /model/i.test(detail)) return `${detail} (check target.model)`;
  return detail;
}

/** The outcome of a non-streaming probe request (GET or POST JSON) that threw instead of answering. */
export function outcomeOfError(err: unknown): Outcome {
  if (!(err instanceof SourceError)) return 'bad_response';
  if (err.reason === 'timeout') return 'timeout_before_first_token';
  if (err.reason === 'connect_error') return 'connect_error';
  if (err.reason === 'http_status') return (err.status ?? 0) >= 500 ? 'http_5xx' : 'http_4xx';
  return 'bad_response';
}
