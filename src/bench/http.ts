/**
 * The few plain HTTP calls the bench commands make besides the streamed requests of load.ts:
 * which model is served, is vLLM up, when did its process start, how many tokens is a text.
 * Each returns a value for every expected failure and throws only on bugs.
 */
import { request } from 'undici';
import { errorMessage } from '../vllm/stream.js';
import { parseExposition } from '../vllm/exposition.js';

/** Why a call did not get an answer, in words: "connection refused", "HTTP 401: …". */
function networkReason(err: unknown): string {
  let e: unknown = err;
  for (let i = 0; e && i < 4; i++) {
    const code = (e as { code?: unknown }).code;
    if (code === 'ECONNREFUSED') return 'connection refused';
    if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return 'host name not found';
    if (code === 'UND_ERR_CONNECT_TIMEOUT') return 'connect timeout';
    if (typeof code === 'string' && code !== 'ABORT_ERR') return code;
    e = (e as { cause?: unknown }).cause;
  }
  return (err as Error).name === 'TimeoutError' || (err as Error).name === 'AbortError' ? 'no answer in time' : String((err as Error).message ?? err);
}

/**
 * The first served model from /v1/models (a base model before LoRA adapters), or why not:
 * the reason names the HTTP status and vLLM's message, or the network failure.
 */
export async function discoverModel(baseUrl: string, apiKey: string | undefined, apiKeyEnv: string, signal: AbortSignal): Promise<{ model: string } | { reason: string }> {
  try {
    const res = await request(`${baseUrl}/v1/models`, { headers: apiKey ? { authorization: `Bearer ${apiKey}` } : {}, signal });
    const body = await res.body.text();
    if (res.statusCode === 401) return { reason: `HTTP 401 from ${baseUrl}/v1/models: the API key is ${apiKey ? 'wrong' : 'missing'} (the bench reads it from $${apiKeyEnv}; --api-key-env NAME picks another variable)` };
    if (res.statusCode !== 200) return { reason: `HTTP ${res.statusCode} from ${baseUrl}/v1/models: ${errorMessage(body)}` };
    const data = (JSON.parse(body) as { data?: Array<{ id?: unknown; parent?: unknown }> }).data;
    const base = data?.find((m) => typeof m.id === 'string' && !m.parent) ?? data?.[0];
    return typeof base?.id === 'string' ? { model: base.id } : { reason: `${baseUrl}/v1/models lists no model` };
  } catch (err) {
    if (err instanceof SyntaxError) return { reason: `${baseUrl}/v1/models did not answer JSON: is this a vLLM server?` };
    return { reason: `cannot reach vLLM at ${baseUrl}: ${networkReason(err)}` };
  }
}

/** True when GET /health answers 200 within 2 s. */
export async function healthy(baseUrl: string, signal: AbortSignal): Promise<boolean> {
  try {
    const res = await request(`${baseUrl}/health`, { signal: AbortSignal.any([signal, AbortSignal.timeout(2000)]) });
    await res.body.dump();
    return res.statusCode === 200;
  } catch {
    return false;
  }
}

/** process_start_time_seconds from /metrics, or undefined. */
export async function processStart(baseUrl: string, signal: AbortSignal): Promise<number | undefined> {
  try {
    const res = await request(`${baseUrl}/metrics`, { signal: AbortSignal.any([signal, AbortSignal.timeout(3000)]) });
    const text = await res.body.text();
    if (res.statusCode !== 200) return undefined;
    return parseExposition(text).get('process_start_time_seconds')?.samples[0]?.value;
  } catch {
    return undefined;
  }
}

/** Tokens in `prompt` by the target's POST /tokenize; undefined when it cannot say. */
export async function countTokens(baseUrl: string, apiKey: string | undefined, model: string, prompt: string, signal: AbortSignal): Promise<number | undefined> {
  try {
    const res = await request(`${baseUrl}/tokenize`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(apiKey ? { authorization: `Bearer ${apiKey}` } : {}) },
      body: JSON.stringify({ model, prompt }),
      signal: AbortSignal.any([signal, AbortSignal.timeout(10_000)]),
    });
    const text = await res.body.text();
    if (res.statusCode !== 200) return undefined;
    const count = (JSON.parse(text) as { count?: unknown }).count;
    return typeof count === 'number' ? count : undefined;
  } catch {
    return undefined;
  }
}
