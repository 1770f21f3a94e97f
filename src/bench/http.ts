/**
 * The bench's client for one vLLM server (src/vllm/client.ts: the one HTTP client) and the few
 * plain questions the bench asks besides the streamed requests of load.ts: which model is
 * served, is vLLM up, when did its process start. Each returns a value for every expected
 * failure and throws only on bugs.
 */
import { SourceError } from '../errors.js';
import { describeErrorBody } from '../vllm/answers.js';
import { VllmClient } from '../vllm/client.js';

/**
 * The client for bench load: a connection per concurrent stream, for the highest concurrency
 * asked (a pool smaller than that would queue requests inside the client and measure the queue),
 * on undici's pool, whose dispatch path reads each chunk with no stream object in between
 * (the daemon's few requests a minute go through node:http: src/vllm/transport.ts).
 */
export function benchClient(baseUrl: string, apiKey: string | undefined, maxConcurrency = 1): VllmClient {
  return new VllmClient({ baseUrl, maxResponseBytes: 16 * 1024 * 1024, connections: Math.max(1024, maxConcurrency), connectTimeoutMs: 10_000, transport: 'undici', ...(apiKey ? { apiKey } : {}) });
}

/**
 * The served model names from /v1/models, base models first (before LoRA adapters), or why
 * not in one line: the HTTP status and vLLM's message (a 401 names the variable that holds the
 * key), the network failure, or an empty list.
 */
export async function servedModels(client: VllmClient, apiKeyEnv: string, signal: AbortSignal): Promise<{ models: string[] } | { reason: string }> {
  const where = `${client.baseUrl}/v1/models`;
  try {
    const res = await client.get('/v1/models', signal, 64 * 1024);
    if (res.status === 401) return { reason: `HTTP 401 from ${where}: the API key is ${client.apiKey ? 'wrong' : 'missing'} (the bench reads it from $${apiKeyEnv}; --api-key-env NAME picks another variable)` };
    if (res.status !== 200) return { reason: `HTTP ${res.status} from ${where}: ${describeErrorBody(res.body, res.contentType)}` };
    const ordered = (await client.models(signal)).map((m) => m.id); // client.models() lists base models first
    return ordered.length ? { models: ordered } : { reason: `${where} lists no model` };
  } catch (err) {
    if (err instanceof SourceError) return { reason: `${client.baseUrl}${err.message}` };
    throw err;
  }
}

/**
 * The model a run measures: `wanted` when the target serves it, else the first served; or why
 * not in one line (the target's failure, or `--model X: not served … (served: a, b)`).
 * Checked before anything runs, so a typo never produces a run recorded under the wrong model.
 */
export async function checkModel(client: VllmClient, wanted: string | undefined, apiKeyEnv: string, signal: AbortSignal, flag = '--model'): Promise<{ model: string } | { reason: string }> {
  const found = await servedModels(client, apiKeyEnv, signal);
  if ('reason' in found) return found;
  if (wanted === undefined) return { model: found.models[0]! };
  if (found.models.includes(wanted)) return { model: wanted };
  return { reason: `${flag} ${wanted}: ${client.baseUrl} does not serve it (served: ${found.models.join(', ')})` };
}

/** True when GET /health answers 200 within 2 s. */
export function healthy(client: VllmClient, signal: AbortSignal): Promise<boolean> {
  return client.health(AbortSignal.any([signal, AbortSignal.timeout(2000)])).then(
    (h) => h.status === 200,
    () => false,
  );
}

/** process_start_time_seconds from /metrics, or undefined. */
export async function processStart(client: VllmClient, signal: AbortSignal): Promise<number | undefined> {
  const exp = await client.exposition(AbortSignal.any([signal, AbortSignal.timeout(3000)]));
  return exp?.get('process_start_time_seconds')?.samples[0]?.value;
}

/**
 * The vllm:* metric family names the target exports, sorted; null when /metrics is not
 * readable. Recorded in every run so `bench compare` can list what an upgrade renamed.
 */
export async function metricFamilies(client: VllmClient, signal: AbortSignal): Promise<string[] | null> {
  const exp = await client.exposition(signal).catch(() => undefined);
  return exp ? [...exp.keys()].filter((n) => n.startsWith('vllm:')).sort() : null;
}
