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
import { describeTierShares, labelDelta, normaliseVllmMetrics, type EngineSnapshot } from '../vllm/schema.js';
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
  /** Granularity of cache hits (cache_hit_alignment_tokens, else block_size); undefined when unknown. */
  alignment: number | undefined;
  /** How prefixTokens was measured. */
  via: 'render' | 'tokenize' | 'estimate';
}

/**
 * The length to calibrate to: `target` rounded to whole cache-hit units (vLLM caches and hits
 * whole blocks, issue 19), plus half the calibration tolerance so a prefix that comes out a few
 * tokens short does not lose its last block.
 */
export function alignedTarget(target: number, alignment: number | undefined): number {
  if (!alignment || alignment <= 1) return target;
  const units = Math.max(1, Math.round(target / alignment));
  return units * alignment + Math.min(Math.floor(alignment / 2), Math.max(4, Math.round(units * alignment * 0.02)));
}

/** Prefix tokens a hit can be served from the cache: whole alignment units only. */
export function cacheableTokens(prefixTokens: number, alignment: number | undefined): number {
  return alignment && alignment > 1 ? Math.floor(prefixTokens / alignment) * alignment : prefixTokens;
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
  const exp = await ctx.client.exposition(ctx.signal);
  const engine = exp ? normaliseVllmMetrics(exp) : undefined;
  const alignment = engine?.cache_hit_alignment_tokens ?? engine?.block_size ?? undefined;
  const calibrated = await calibratePrefix(ctx.client, model, alignedTarget(target, alignment), ctx.signal, 3);
  const { text, estimate } = calibrated;
  // The exact length as vLLM will see it: /render where served, else /tokenize's count.
  const measured = calibrated.tokens === undefined ? undefined : await ctx.client.promptTokens(model, text, ctx.signal);
  const tokens = measured?.count ?? calibrated.tokens;
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
    alignment: alignment ?? undefined,
    via: measured?.via ?? (tokens === undefined ? 'estimate' : 'tokenize'),
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
  const ids = new WeakMap<StreamResult, string>();
  const send = async (prompt: string, salt?: string): Promise<StreamResult> => {
    const body = streamingBody(ctx.tracker.requestModel, { prompt, max_tokens: cfg.max_tokens, ignore_eos: true, user: PROBE_USER, ...(salt ? { cache_salt: salt } : {}) });
    const requestId = `vllm-probe-prefix-${randomUUID()}`;
    const result = await watchedStream(ctx, { path: '/v1/completions', body, signal: ctx.shutdown, timeoutMs: Math.max(1, deadline - Date.now()), requestId });
    ids.set(result, requestId);
    if (!result.aborted) requests.push(requestRecord(result.outcome, deriveTimings(result).e2e, result.usage));
    return result;
  };
  const fail = (r: StreamResult): ProbeResult => {
    const out: ProbeResult = { success: false, outcome: r.outcome, detail: failureDetail(r, ctx.keySource), requests };
    if (r.status !== undefined) out.status = r.status;
    const requestId = ids.get(r);
    if (requestId) out.requestId = requestId;
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
  const before = await engineSnapshot(ctx);
  const engineBefore = prefixHitTokens(before);
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
  const after = await engineSnapshot(ctx);
  const engineAfter = prefixHitTokens(after);
  // vLLM 0.32: which cache tier (device, host, disk, p2p…) served the cached tokens meanwhile.
  const tiers = before && after ? describeTierShares(labelDelta(after.prompt_tokens_cached_by_source, before.prompt_tokens_cached_by_source)) : undefined;
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
  const aligned = regime.alignment && regime.alignment > 1 ? `, ${regime.alignment}-token cache blocks` : '';
  const numbers = `hit TTFT ${ms(meanHit)} vs miss ${ms(missTtft)} at P=${regime.prefixTokens} tokens (by ${regime.via}${aligned})`;
  // Only whole blocks can hit: expecting the partial last one would report a false drop.
  const expectedCached = cacheableTokens(regime.prefixTokens, regime.alignment) * hitTtfts.length;
  const engineWords = `${engineDelta === undefined ? '' : `; engine counted ${engineDelta} hit tokens meanwhile`}${tiers ? ` (by tier: ${tiers})` : ''}`;
  const verdict = prefixVerdict({ cachedReported, hitCached, expectedCached, speedup, saved, predicted, engineDelta, numbers, engineWords, degradedBelow: ctx.thresholds.prefix_hit_ratio_degraded });
  ctx.log.debug({ regime: target, missTtft, meanHit, hitCached, hitPrompt }, 'prefix probe ok');
  return { success: true, outcome: 'success', requests, checks: [{ name: 'prefix_cache', status: verdict[0], reason: verdict[1] }] };
}

/** What one prefix-probe cycle's numbers say about the cache (pure: tested on its own). */
export function prefixVerdict(m: {
  cachedReported: boolean;
  hitCached: number;
  expectedCached: number;
  speedup: number;
  saved: number;
  predicted: number;
  engineDelta: number | undefined;
  numbers: string;
  engineWords: string;
  degradedBelow: number;
}): [Verdict, string] {
  const { cachedReported, hitCached, expectedCached, speedup, saved, predicted, engineDelta, numbers, engineWords } = m;
  const hitRatio = cachedReported ? hitCached / Math.max(1, expectedCached) : undefined;
  // The server's own cached_tokens decide when it reports them; timing only when it does not
  // (a busy host can make a miss look slower than a hit by chance).
  if (cachedReported && hitCached === 0 && speedup >= 2 && !engineDelta) {
    // 0 cached tokens yet the hits ran far faster: the miss waited (a queue, preemptions), so
    // neither number measures the cache. Seen after a KV-pressure run: "disabled (speedup 31.90x)".
    return ['unknown', `cannot judge prefix caching: the server reports 0 cached tokens but the hits were ${speedup.toFixed(1)}x faster than the miss (the miss waited behind other work); ${numbers}${engineWords}`];
  }
  if ((cachedReported ? hitCached === 0 : speedup < 1.1) && !engineDelta) {
    return ['degraded', `prefix caching appears disabled: ${numbers} (speedup ${speedup.toFixed(2)}x), ${cachedReported ? '0 cached tokens reported' : 'server reports no cached_tokens'}${engineWords}`];
  }
  if (hitRatio !== undefined && hitRatio < m.degradedBelow) {
    return ['degraded', `prefix cache hit rate dropped: hits found ${hitCached} of ${expectedCached} prefix tokens cached (${(hitRatio * 100).toFixed(0)} %, threshold ${(m.degradedBelow * 100).toFixed(0)} %); ${numbers}`];
  }
  return ['healthy', `prefix cache working: ${numbers}, speedup ${speedup.toFixed(1)}x, saved ${(saved * 100).toFixed(0)} % (predicted ${(predicted * 100).toFixed(0)} %)${cachedReported ? `, ${hitCached} cached tokens reported` : ''}${engineWords}`];
}

/** vLLM's normalised /metrics right now; undefined if unreadable. */
async function engineSnapshot(ctx: ProbeContext): Promise<EngineSnapshot | undefined> {
  const exp = await ctx.client.exposition(ctx.signal);
  return exp ? normaliseVllmMetrics(exp) : undefined;
}

/** Its prefix-cache hit counter (tokens, summed over engines). */
const prefixHitTokens = (s: EngineSnapshot | undefined) => (s?.prefix_cache_unit === 'tokens' ? (s.prefix_cache_hits ?? undefined) : undefined);

export const prefixProbe: ProbeKindSpec<PrefixProbeConfig> = {
  sendsInference: true,
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
