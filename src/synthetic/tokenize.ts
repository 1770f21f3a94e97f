/**
 * The tokenize probe: POST /tokenize with a fixed prompt, timed. vLLM answers it in the API
 * server process (its tokenizer), without the engine, so its latency is the API server's own
 * health: slow here and in the TTFT probe means the API server is slow (event loop, CPU,
 * tokenizer); fast here and slow TTFT means the engine is. The scheduler records its latency as
 * `vllm_probe_request_duration_seconds{probe="tokenize"}` like every request.
 */
import { performance } from 'node:perf_hooks';
import type { Config } from '../config.js';
import { oneLine } from '../reason.js';
import { describeErrorBody } from '../vllm/answers.js';
import type { Outcome } from '../vllm/stream.js';
import { failureDetail, outcomeOfError } from './request.js';
import type { ProbeContext, ProbeKindSpec, ProbeResult } from './prober.js';

type TokenizeSettings = Config['probes']['tokenize'];

/** The `count` of a /tokenize answer, or undefined when the body is not one. */
function tokenCount(body: string): number | undefined {
  try {
    const count = (JSON.parse(body) as { count?: unknown } | null)?.count;
    return typeof count === 'number' && Number.isInteger(count) && count > 0 ? count : undefined;
  } catch {
    return undefined;
  }
}

async function runTokenize(settings: TokenizeSettings, ctx: ProbeContext): Promise<ProbeResult> {
  const model = ctx.tracker.requestModel;
  const started = performance.now();
  let answer: Awaited<ReturnType<typeof ctx.client.postJson>>;
  try {
    answer = await ctx.client.postJson('/tokenize', { ...(model ? { model } : {}), prompt: settings.prompt }, ctx.signal, 1024 * 1024);
  } catch (err) {
    const outcome = outcomeOfError(err);
    const seconds = (performance.now() - started) / 1000;
    if (ctx.shutdown.aborted) return { success: false, outcome, aborted: true, requests: [] };
    ctx.tracker.observeReachable(outcome !== 'connect_error', (err as Error).message);
    return { success: false, outcome, detail: (err as Error).message, requests: [{ outcome, seconds }] };
  }
  const seconds = (performance.now() - started) / 1000;
  ctx.tracker.observeReachable(true, undefined);
  if (answer.status !== 200) {
    const outcome: Outcome = answer.status >= 500 ? 'http_5xx' : 'http_4xx';
    const detail = failureDetail({ status: answer.status, outcome, detail: `/tokenize answered HTTP ${answer.status}: ${describeErrorBody(answer.body, answer.contentType)}` }, ctx.keySource);
    return { success: false, outcome, status: answer.status, detail, requests: [{ outcome, seconds }] };
  }
  const count = answer.truncated ? undefined : tokenCount(answer.body);
  if (count === undefined) {
    return { success: false, outcome: 'bad_response', status: 200, detail: `/tokenize answered 200 without a token count: ${oneLine(answer.body, 120)}`, requests: [{ outcome: 'bad_response', seconds }] };
  }
  ctx.log.debug({ seconds, count }, 'tokenize probe ok');
  return { success: true, outcome: 'success', requests: [{ outcome: 'success', seconds }] };
}

export const tokenizeProbe: ProbeKindSpec<TokenizeSettings> = {
  // The tokenizer runs in the API server: vLLM answers while its engine sleeps or is busy.
  sendsInference: false,
  checks: [],
  describe: 'API server latency',
  create: (settings) => ({ run: (ctx) => runTokenize(settings, ctx) }),
};
