/**
 * The TTFT probe: one short streaming request with a fixed prompt, temperature 0 and
 * ignore_eos so every run generates exactly max_tokens tokens. Records TTFT (labelled cold or
 * warm), every inter-token gap, TPOT, E2E, tokens spent and the outcome.
 */
import { discoverModel } from '../target.js';
import type { ProbeContext, ProbeResult } from './prober.js';
import { deriveTimings, streamCompletion, streamingBody } from '../vllm/stream.js';

/** Sent as the OpenAI `user` field so probe traffic can be told apart in vLLM's logs. */
export const PROBE_USER = 'vllm-probe';

export async function probeTtft(ctx: ProbeContext): Promise<ProbeResult> {
  const { config, client, tracker, metrics } = ctx;
  const probe = config.probes.ttft;
  if (!tracker.configuredModel && !tracker.discoveredModel) {
    tracker.discoveredModel = await discoverModel(client, ctx.signal).catch(() => undefined);
  }
  const model = tracker.model;
  const chat = probe.endpoint === 'chat';
  const body = streamingBody(tracker.requestModel, {
    max_tokens: probe.max_tokens,
    ignore_eos: true,
    user: PROBE_USER,
    ...(chat ? { messages: [{ role: 'user', content: probe.prompt }] } : { prompt: probe.prompt }),
  });
  const phase = tracker.takePhase();
  const result = await streamCompletion({
    baseUrl: client.baseUrl,
    path: chat ? '/v1/chat/completions' : '/v1/completions',
    body,
    apiKey: client.apiKey,
    dispatcher: client.dispatcher,
    signal: ctx.signal,
    timeoutSignal: ctx.timeoutSignal,
    maxResponseBytes: client.maxResponseBytes,
  });
  if (result.aborted) {
    if (phase === 'cold') tracker.returnColdSlot();
    return { success: false, outcome: result.outcome, aborted: true };
  }
  const labels = { probe: 'ttft', model };
  const timings = deriveTimings(result);
  tracker.observeReachable(result.outcome !== 'connect_error', result.detail);
  metrics.requests.labels({ ...labels, outcome: result.outcome }).inc();
  metrics.requestDuration.labels({ ...labels, outcome: result.outcome }).observe(timings.e2e);
  if (result.usage) {
    metrics.probeTokens.labels({ ...labels, token_type: 'input' }).inc(result.usage.prompt_tokens ?? 0);
    metrics.probeTokens.labels({ ...labels, token_type: 'output' }).inc(result.usage.completion_tokens ?? 0);
  }
  if (result.outcome !== 'success') {
    // A cold start is only measured by a probe that got a token; keep the slot for the next one.
    if (phase === 'cold') tracker.returnColdSlot();
    return { success: false, outcome: result.outcome, detail: result.detail };
  }
  metrics.timeToFirstToken.labels({ ...labels, phase }).observe(timings.ttft!);
  for (const gap of timings.itl) metrics.interTokenLatency.labels(labels).observe(gap);
  if (timings.tpot !== undefined) metrics.timePerOutputToken.labels(labels).observe(timings.tpot);
  ctx.log.debug({ ttft: timings.ttft, e2e: timings.e2e, phase, tokens: result.usage?.completion_tokens }, 'ttft probe ok');
  return { success: true, outcome: 'success', ttftSeconds: timings.ttft };
}
