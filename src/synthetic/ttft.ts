/**
 * The TTFT probe: one short streaming request with a fixed prompt, temperature 0 and
 * ignore_eos so every run generates exactly max_tokens tokens. Records TTFT (first generated
 * token, labelled cold or warm), time to first content token, every inter-token gap, TPOT and
 * tokens spent; the scheduler records the outcome and duration.
 */
import { randomUUID } from 'node:crypto';
import type { TtftProbeConfig } from '../config.js';
import { readRequestMetrics, splitTtft } from '../vllm/request-metrics.js';
import { deriveTimings, streamingBody } from '../vllm/stream.js';
import { failureDetail, PROBE_USER } from './request.js';
import { requestRecord, watchedStream, type ProbeContext, type ProbeKindSpec, type ProbeResult } from './prober.js';

/** Per-instance memory: whether we already said that the server returns no per-request metrics. */
interface TtftState {
  saidNoServerMetrics: boolean;
}

async function runTtft(probe: TtftProbeConfig, state: TtftState, ctx: ProbeContext): Promise<ProbeResult> {
  const { client, tracker, metrics } = ctx;
  await tracker.discoverModel(client, ctx.signal);
  const model = tracker.model;
  const chat = probe.endpoint === 'chat';
  const body = streamingBody(tracker.requestModel, {
    max_tokens: probe.max_tokens,
    ignore_eos: true,
    user: PROBE_USER,
    ...(chat ? { messages: [{ role: 'user', content: probe.prompt }] } : { prompt: probe.prompt }),
  });
  let phase = tracker.takePhase();
  const restartsBefore = tracker.restarts;
  const requestId = `vllm-probe-ttft-${randomUUID()}`;
  const result = await watchedStream(ctx, { path: chat ? '/v1/chat/completions' : '/v1/completions', body, signal: ctx.shutdown, timeoutMs: ctx.timeoutMs, requestId });
  if (result.aborted) {
    if (phase === 'cold') tracker.returnColdSlot();
    return { success: false, outcome: result.outcome, aborted: true, requests: [] };
  }
  const timings = deriveTimings(result);
  tracker.observeReachable(result.outcome !== 'connect_error', result.detail);
  const requests = [requestRecord(result.outcome, timings.e2e, result.usage)];
  if (result.outcome !== 'success') {
    // A cold start is only measured by a probe that got a token; keep the slot for the next one.
    if (phase === 'cold') tracker.returnColdSlot();
    const out: ProbeResult = { success: false, outcome: result.outcome, detail: failureDetail(result, ctx.keySource), requests, requestId };
    if (result.status !== undefined) out.status = result.status;
    if (result.retryAfterSeconds !== undefined) out.retryAfterSeconds = result.retryAfterSeconds;
    return out;
  }
  // A restart seen while this probe ran, or by this probe finding vLLM reachable again, makes
  // it the first request the restarted server answered: cold, as /status names its TTFT. Its
  // phase was taken before anyone knew, and the cold label would otherwise go to the next one.
  if (phase === 'warm' && tracker.restarts > restartsBefore) phase = tracker.takePhase();
  const labels = { probe: 'ttft', model };
  metrics.timeToFirstToken.labels({ ...labels, phase }).observe(timings.ttft!);
  for (const gap of timings.itl) metrics.interTokenLatency.labels(labels).observe(gap);
  if (timings.tpot !== undefined) metrics.timePerOutputToken.labels(labels).observe(timings.tpot);
  // vLLM's own timing of this request (--enable-per-request-metrics): what of the client's TTFT
  // was the engine (queue + prefill) and what was outside it (network, HTTP server, client).
  const split = splitTtft(timings.ttft!, readRequestMetrics({ metrics: result.serverMetrics }));
  if (split) {
    metrics.probeServerTimeToFirstToken.labels(labels).observe(split.server);
    metrics.probeServerQueueTime.labels(labels).observe(split.queue);
    metrics.probeTtftGap.labels(labels).observe(split.gap);
    metrics.probeTtftQueueShare.labels(labels).observe(split.queueShare);
  } else if (!state.saidNoServerMetrics) {
    state.saidNoServerMetrics = true;
    ctx.log.info('vLLM returns no per-request metrics: start vLLM with --enable-per-request-metrics for the TTFT split (server TTFT, queue time, gap)');
  }
  ctx.log.debug({ ttft: timings.ttft, ttfc: timings.ttfc, e2e: timings.e2e, phase, requestId: result.requestId ?? requestId, server: split }, 'ttft probe ok');
  const out: ProbeResult = { success: true, outcome: 'success', ttftSeconds: timings.ttft!, e2eSeconds: timings.e2e, requests };
  if (timings.itl.length) out.itlSeconds = timings.itl.reduce((a, b) => a + b, 0) / timings.itl.length;
  return out;
}

export const ttftProbe: ProbeKindSpec<TtftProbeConfig> = {
  sendsInference: true,
  // ttft_latency is the status board's own check (a window over many runs).
  checks: [],
  describe: 'TTFT',
  create: (config) => {
    const state: TtftState = { saidNoServerMetrics: false };
    return { run: (ctx) => runTtft(config, state, ctx) };
  },
};
