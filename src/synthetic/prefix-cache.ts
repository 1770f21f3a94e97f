/**
 * The prefix-cache probe. Each cycle takes one prefix regime (P tokens, round robin) and sends:
 *  1. a forced miss: the same prefix made unmatchable with vLLM's per-request `cache_salt`, or,
 *     where the server rejects that field, a unique nonce at the very start of the prompt;
 *  2. `hits_per_cycle` hits: the identical shared prefix with a short distinct suffix.
 * Token counts are calibrated with the target's /tokenize (an estimate, with a warning, when it
 * is missing). Hits are verified with usage.prompt_tokens_details.cached_tokens.
 *
 * Cost per cycle ≈ (1 + hits) × (P + S) prompt tokens + (1 + hits) × max_tokens output tokens;
 * docs/metrics.md has the tokens-per-minute table for the defaults.
 */
import { randomUUID } from 'node:crypto';
import type { PrefixProbeConfig } from '../config.js';
import type { Metrics } from '../metrics.js';
import type { Verdict } from '../status.js';
import { calibratePrefix } from '../vllm/calibration.js';
import { normaliseVllmMetrics } from '../vllm/schema.js';
import { deriveTimings, streamingBody, type StreamResult } from '../vllm/stream.js';
import { requestRecord, watchedStream, type ProbeContext, type ProbeKindSpec, type ProbeResult, type RequestRecord } from './prober.js';
import { failureDetail, PROBE_USER } from './request.js';

interface Regime {
  target: number;
  prefix: string;
  prefixTokens: number;
  suffixTokens: number;
  calibrated: boolean;
  primed: boolean;
}

/** Per-instance state: calibrated regimes, whether cache_salt works, the round-robin cursor. */
interface PrefixState {
  regimes: Map<number, Regime>;
  cursor: number;
  saltSupported: boolean | undefined;
  restartsSeen: number;
  warnedEstimate: boolean;
}

async function calibrate(ctx: ProbeContext, target: number, cfg: PrefixProbeConfig, state: PrefixState): Promise<Regime> {
  const model = ctx.tracker.requestModel;
  const { text, tokens, estimate } = await calibratePrefix(ctx.client, model, target, ctx.signal, 3);
  const suffix = suffixText(0, cfg.suffix_tokens);
  const suffixCount = tokens === undefined ? undefined : await ctx.client.tokenize(model, suffix, ctx.signal);
  // Only a target that answered the probe can be blamed for a missing /tokenize.
  if (tokens === undefined && !state.warnedEstimate && !ctx.signal.aborted && ctx.tracker.reachable !== false) {
    ctx.log.warn('target has no usable /tokenize; prefix token counts are estimates (1.3 tokens per word)');
    state.warnedEstimate = true;
  }
  return {
    target,
    prefix: text,
    prefixTokens: tokens ?? estimate,
    suffixTokens: suffixCount ?? cfg.suffix_tokens,
    calibrated: tokens !== undefined,
    primed: false,
  };
}

function suffixText(n: number, tokens: number): string {
  const words = ['Question', String(n), 'asks', 'about', 'order', String(1000 + n), 'status', 'today', 'please', 'briefly'];
  return ` ${words.slice(0, Math.max(3, Math.min(words.length, Math.round(tokens / 1.3)))).join(' ')}?`;
}

async function runPrefix(cfg: PrefixProbeConfig, state: PrefixState, ctx: ProbeContext): Promise<ProbeResult> {
  const requests: RequestRecord[] = [];
  const target = cfg.prefix_tokens[state.cursor % cfg.prefix_tokens.length]!;
  state.cursor++;
  await ctx.tracker.discoverModel(ctx.client, ctx.signal);
  let regime = state.regimes.get(target);
  if (!regime || !regime.calibrated) {
    regime = await calibrate(ctx, target, cfg, state);
    state.regimes.set(target, regime);
  }
  if (ctx.tracker.restarts !== state.restartsSeen) {
    state.restartsSeen = ctx.tracker.restarts;
    for (const r of state.regimes.values()) r.primed = false;
  }
  const model = ctx.tracker.model;
  const regimeLabel = String(target);
  const deadline = Date.now() + ctx.timeoutMs;
  const send = async (prompt: string, salt?: string): Promise<StreamResult> => {
    const body = streamingBody(ctx.tracker.requestModel, { prompt, max_tokens: cfg.max_tokens, ignore_eos: true, user: PROBE_USER, ...(salt ? { cache_salt: salt } : {}) });
    const result = await watchedStream(ctx, { path: '/v1/completions', body, signal: ctx.shutdown, timeoutMs: Math.max(1, deadline - Date.now()), requestId: `vllm-probe-prefix-${randomUUID()}` });
    if (!result.aborted) requests.push(requestRecord(result.outcome, deriveTimings(result).e2e, result.usage));
    return result;
  };
  const fail = (r: StreamResult): ProbeResult => {
    const out: ProbeResult = { success: false, outcome: r.outcome, detail: failureDetail(r, ctx.config), requests };
    if (r.aborted) out.aborted = true;
    if (r.retryAfterSeconds !== undefined) out.retryAfterSeconds = r.retryAfterSeconds;
    return out;
  };

  // Prime the shared prefix once (and after every restart) so the first "hit" is a hit.
  if (!regime.primed) {
    const r = await send(regime.prefix + suffixText(9999, cfg.suffix_tokens));
    if (r.outcome !== 'success') return fail(r);
    regime.primed = true;
  }

  // Forced miss: cache_salt where the server takes it, else a nonce at the very start.
  let miss: StreamResult | undefined;
  if (state.saltSupported !== false) {
    miss = await send(regime.prefix + suffixText(state.cursor, cfg.suffix_tokens), randomUUID());
    if (miss.outcome === 'success') state.saltSupported = true;
    else if (miss.outcome === 'http_4xx' && state.saltSupported === undefined) {
      // A server that never took a salted request rejects it: try the nonce once. Decided by
      // status code and the nonce's result, not by the wording of the error.
      const nonce = await send(`[${randomUUID()}] ${regime.prefix}${suffixText(state.cursor, cfg.suffix_tokens)}`);
      if (nonce.outcome === 'success') {
        state.saltSupported = false;
        ctx.log.info('target rejects cache_salt; forcing misses with a leading nonce instead');
      }
      miss = nonce;
    }
  }
  if (state.saltSupported === false && miss === undefined) {
    miss = await send(`[${randomUUID()}] ${regime.prefix}${suffixText(state.cursor, cfg.suffix_tokens)}`);
  }
  if (!miss || miss.outcome !== 'success') return fail(miss!);
  const missTtft = deriveTimings(miss!).ttft!;
  const missCached = miss!.usage?.cached_tokens;
  ctx.metrics.prefixTimeToFirstToken.labels({ model, cache: 'miss', prefix_tokens: regimeLabel }).observe(missTtft);
  ctx.metrics.prefixPromptTokens.labels({ model, cache: 'miss' }).inc(miss!.usage?.prompt_tokens ?? 0);
  ctx.metrics.prefixCachedTokens.labels({ model, cache: 'miss' }).inc(missCached ?? 0);

  // Second opinion from the engine: its prefix-cache hit counter around the hit requests. Other
  // traffic adds to it, so it only ever confirms ("at least this many"), never refutes.
  const engineBefore = await enginePrefixHits(ctx);
  const hitTtfts: number[] = [];
  let hitCached = 0;
  let hitPrompt = 0;
  let cachedReported = false;
  for (let i = 0; i < cfg.hits_per_cycle; i++) {
    const hit = await send(regime.prefix + suffixText(state.cursor * 100 + i, cfg.suffix_tokens));
    if (hit.outcome !== 'success') return fail(hit);
    const ttft = deriveTimings(hit).ttft!;
    hitTtfts.push(ttft);
    ctx.metrics.prefixTimeToFirstToken.labels({ model, cache: 'hit', prefix_tokens: regimeLabel }).observe(ttft);
    const cached = hit.usage?.cached_tokens;
    hitPrompt += hit.usage?.prompt_tokens ?? 0;
    ctx.metrics.prefixPromptTokens.labels({ model, cache: 'hit' }).inc(hit.usage?.prompt_tokens ?? 0);
    if (typeof cached === 'number') {
      cachedReported = true;
      hitCached += cached;
      ctx.metrics.prefixCachedTokens.labels({ model, cache: 'hit' }).inc(cached);
      if (cached === 0) ctx.metrics.prefixUncachedHits.labels({ model }).inc();
    }
  }
  const engineAfter = await enginePrefixHits(ctx);
  const engineDelta = engineBefore !== undefined && engineAfter !== undefined && engineAfter >= engineBefore ? engineAfter - engineBefore : undefined;
  const meanHit = hitTtfts.reduce((a, b) => a + b, 0) / hitTtfts.length;
  const speedup = missTtft / meanHit;
  const saved = 1 - meanHit / missTtft;
  const predicted = regime.prefixTokens / (regime.prefixTokens + regime.suffixTokens);
  const gaugeLabels = { model, prefix_tokens: regimeLabel };
  ctx.metrics.prefixSpeedup.labels(gaugeLabels).set(speedup);
  ctx.metrics.prefixSavedFraction.labels(gaugeLabels).set(saved);
  ctx.metrics.prefixPredictedSavedFraction.labels(gaugeLabels).set(predicted);

  const ms = (s: number) => `${(s * 1000).toFixed(0)} ms`;
  const numbers = `hit TTFT ${ms(meanHit)} vs miss ${ms(missTtft)} at P=${regime.prefixTokens} tokens`;
  const expectedCached = regime.prefixTokens * hitTtfts.length;
  const hitRatio = cachedReported ? hitCached / Math.max(1, expectedCached) : undefined;
  const engineWords = engineDelta === undefined ? '' : `; engine counted ${engineDelta} hit tokens meanwhile`;
  let verdict: [Verdict, string];
  // The server's own cached_tokens decide when it reports them; timing only when it does not
  // (a busy host can make a miss look slower than a hit by chance).
  if ((cachedReported ? hitCached === 0 : speedup < 1.1) && !engineDelta) {
    verdict = ['degraded', `prefix caching appears disabled: ${numbers} (speedup ${speedup.toFixed(2)}x), ${cachedReported ? '0 cached tokens reported' : 'server reports no cached_tokens'}${engineWords}`];
  } else if (hitRatio !== undefined && hitRatio < ctx.config.status.prefix_hit_ratio_degraded) {
    verdict = ['degraded', `prefix cache hit rate dropped: hits found ${hitCached} of ${expectedCached} prefix tokens cached (${(hitRatio * 100).toFixed(0)} %, threshold ${(ctx.config.status.prefix_hit_ratio_degraded * 100).toFixed(0)} %); ${numbers}`];
  } else {
    verdict = ['healthy', `prefix cache working: ${numbers}, speedup ${speedup.toFixed(1)}x, saved ${(saved * 100).toFixed(0)} % (predicted ${(predicted * 100).toFixed(0)} %)${cachedReported ? `, ${hitCached} cached tokens reported` : ''}${engineWords}`];
  }
  ctx.log.debug({ regime: target, missTtft, meanHit, hitCached, hitPrompt }, 'prefix probe ok');
  return { success: true, outcome: 'success', requests, checks: [{ name: 'prefix_cache', status: verdict[0], reason: verdict[1] }] };
}

/** vLLM's prefix-cache hit counter (tokens, summed over engines) right now; undefined if unreadable. */
async function enginePrefixHits(ctx: ProbeContext): Promise<number | undefined> {
  const exp = await ctx.client.exposition(ctx.signal);
  if (!exp) return undefined;
  const s = normaliseVllmMetrics(exp);
  return s.prefix_cache_unit === 'tokens' ? (s.prefix_cache_hits ?? undefined) : undefined;
}

export const prefixProbe: ProbeKindSpec<PrefixProbeConfig> = {
  checks: ['prefix_cache'],
  describe: 'prefix caching',
  create(config) {
    const state: PrefixState = { regimes: new Map(), cursor: 0, saltSupported: undefined, restartsSeen: 0, warnedEstimate: false };
    return { run: (ctx) => runPrefix(config, state, ctx) };
  },
  preinitialise(metrics: Metrics, model: string) {
    metrics.prefixUncachedHits.labels({ model }).inc(0);
    for (const cache of ['hit', 'miss']) {
      metrics.prefixCachedTokens.labels({ model, cache }).inc(0);
      metrics.prefixPromptTokens.labels({ model, cache }).inc(0);
    }
  },
};
