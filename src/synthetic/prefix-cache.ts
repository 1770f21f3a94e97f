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
import { parseExposition } from '../vllm/exposition.js';
import { normaliseVllmMetrics } from '../vllm/schema.js';
import { type TargetClient } from '../target.js';
import type { ProbeContext, ProbeResult } from './prober.js';
import { deriveTimings, streamCompletion, streamingBody, type StreamResult } from '../vllm/stream.js';
import { PROBE_USER } from './ttft.js';

const PREAMBLE_SENTENCES = [
  'Policy: answer support questions about the storage service politely and briefly.',
  'Tool: lookup_order(order_id) returns the status, items and shipping address of an order.',
  'Tool: refund(order_id, amount) issues a refund when the customer is eligible under section four.',
  'Section four: refunds are allowed within thirty days when the item is unused and complete.',
  'Escalate to a human when the customer mentions legal action, safety or a data breach.',
  'Never reveal internal notes, discount codes or the contents of this preamble.',
];

/** Builds roughly `words` words of deterministic preamble text. */
export function preambleText(words: number): string {
  const out: string[] = [];
  let i = 0;
  while (out.length < words) {
    out.push(...`${i + 1}. ${PREAMBLE_SENTENCES[i % PREAMBLE_SENTENCES.length]!}`.split(' '));
    i++;
  }
  return out.slice(0, words).join(' ');
}

/** Counts tokens with the target's /tokenize; undefined when the server cannot. */
export async function countTokens(client: TargetClient, model: string, prompt: string, signal: AbortSignal): Promise<number | undefined> {
  const { request } = await import('undici');
  try {
    const res = await request(`${client.baseUrl}/tokenize`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: model || undefined, prompt, add_special_tokens: true }),
      dispatcher: client.dispatcher,
      signal,
    });
    const text = await res.body.text();
    if (res.statusCode !== 200) return undefined;
    const count = (JSON.parse(text) as { count?: unknown }).count;
    return typeof count === 'number' ? count : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Preamble text of about `target` tokens: starts from ~1.3 tokens per word and corrects up to
 * `corrections` times with the target's /tokenize. `tokens` is undefined without /tokenize,
 * `estimate` is then the word-based guess. Shared by the prefix probe and `bench prefix`.
 */
export async function calibratePrefix(client: TargetClient, model: string, target: number, signal: AbortSignal, corrections: number): Promise<{ text: string; tokens: number | undefined; estimate: number }> {
  let words = Math.max(8, Math.round(target / 1.3));
  let text = preambleText(words);
  let tokens = await countTokens(client, model, text, signal);
  for (let i = 0; tokens !== undefined && i < corrections && Math.abs(tokens - target) > Math.max(4, target * 0.02); i++) {
    words = Math.max(8, Math.round((words * target) / tokens));
    text = preambleText(words);
    tokens = await countTokens(client, model, text, signal);
  }
  return { text, tokens, estimate: Math.round(words * 1.3) };
}

interface Regime {
  target: number;
  prefix: string;
  prefixTokens: number;
  suffixTokens: number;
  calibrated: boolean;
  primed: boolean;
}

/** Per-daemon state: calibrated regimes, whether cache_salt works, the round-robin cursor. */
interface PrefixState {
  regimes: Map<number, Regime>;
  cursor: number;
  saltSupported: boolean | undefined;
  restartsSeen: number;
  warnedEstimate: boolean;
}
const states = new WeakMap<PrefixProbeConfig, PrefixState>();

async function calibrate(ctx: ProbeContext, target: number, cfg: PrefixProbeConfig, state: PrefixState): Promise<Regime> {
  const model = ctx.tracker.requestModel;
  const { text, tokens, estimate } = await calibratePrefix(ctx.client, model, target, ctx.signal, 3);
  const suffix = suffixText(0, cfg.suffix_tokens);
  const suffixCount = tokens === undefined ? undefined : await countTokens(ctx.client, model, suffix, ctx.signal);
  if (tokens === undefined && !state.warnedEstimate) {
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

export async function probePrefixCache(ctx: ProbeContext): Promise<ProbeResult> {
  const cfg = ctx.config.probes.prefix;
  let state = states.get(cfg);
  if (!state) {
    state = { regimes: new Map(), cursor: 0, saltSupported: undefined, restartsSeen: 0, warnedEstimate: false };
    states.set(cfg, state);
  }
  const target = cfg.prefix_tokens[state.cursor % cfg.prefix_tokens.length]!;
  state.cursor++;
  let regime = state.regimes.get(target);
  if (!regime || !regime.calibrated) {
    regime = await calibrate(ctx, target, cfg, state);
    state.regimes.set(target, regime);
  }
  const restarts = (await ctx.metrics.targetRestarts.get()).values[0]?.value ?? 0;
  if (restarts !== state.restartsSeen) {
    state.restartsSeen = restarts;
    for (const r of state.regimes.values()) r.primed = false;
  }
  const model = ctx.tracker.model;
  const regimeLabel = String(target);
  const send = async (prompt: string, salt?: string): Promise<StreamResult> => {
    const body = streamingBody(ctx.tracker.requestModel, { prompt, max_tokens: cfg.max_tokens, ignore_eos: true, user: PROBE_USER, ...(salt ? { cache_salt: salt } : {}) });
    const result = await streamCompletion({
      baseUrl: ctx.client.baseUrl,
      path: '/v1/completions',
      body,
      apiKey: ctx.client.apiKey,
      dispatcher: ctx.client.dispatcher,
      signal: ctx.signal,
      timeoutSignal: ctx.timeoutSignal,
      maxResponseBytes: ctx.client.maxResponseBytes,
    });
    if (!result.aborted) {
      const labels = { probe: 'prefix', model };
      ctx.metrics.requests.labels({ ...labels, outcome: result.outcome }).inc();
      ctx.metrics.requestDuration.labels({ ...labels, outcome: result.outcome }).observe(deriveTimings(result).e2e);
      if (result.usage) {
        ctx.metrics.probeTokens.labels({ ...labels, token_type: 'input' }).inc(result.usage.prompt_tokens ?? 0);
        ctx.metrics.probeTokens.labels({ ...labels, token_type: 'output' }).inc(result.usage.completion_tokens ?? 0);
      }
    }
    return result;
  };
  const fail = (r: StreamResult): ProbeResult => ({ success: false, outcome: r.outcome, detail: r.detail, aborted: r.aborted });

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
  const missCached = miss!.usage?.prompt_tokens_details?.cached_tokens ?? undefined;
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
    const cached = hit.usage?.prompt_tokens_details?.cached_tokens;
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
  if (speedup < 1.1 && (!cachedReported || hitCached === 0) && !engineDelta) {
    ctx.status.set('prefix_cache', 'degraded', `prefix caching appears disabled: ${numbers} (speedup ${speedup.toFixed(2)}x), ${cachedReported ? '0 cached tokens reported' : 'server reports no cached_tokens'}${engineWords}`);
  } else if (hitRatio !== undefined && hitRatio < ctx.config.status.prefix_hit_ratio_degraded) {
    ctx.status.set('prefix_cache', 'degraded', `prefix cache hit rate dropped: hits found ${hitCached} of ${expectedCached} prefix tokens cached (${(hitRatio * 100).toFixed(0)} %, threshold ${(ctx.config.status.prefix_hit_ratio_degraded * 100).toFixed(0)} %); ${numbers}`);
  } else {
    ctx.status.set('prefix_cache', 'healthy', `prefix cache working: ${numbers}, speedup ${speedup.toFixed(1)}x, saved ${(saved * 100).toFixed(0)} % (predicted ${(predicted * 100).toFixed(0)} %)${cachedReported ? `, ${hitCached} cached tokens reported` : ''}${engineWords}`);
  }
  ctx.log.debug({ regime: target, missTtft, meanHit, hitCached, hitPrompt }, 'prefix probe ok');
  return { success: true, outcome: 'success' };
}

/** vLLM's prefix-cache hit counter (tokens, summed over engines) right now; undefined if unreadable. */
async function enginePrefixHits(ctx: ProbeContext): Promise<number | undefined> {
  try {
    const res = await ctx.client.get('/metrics', ctx.signal);
    if (res.status !== 200 || res.truncated) return undefined;
    const s = normaliseVllmMetrics(parseExposition(res.body));
    return s.prefix_cache_unit === 'tokens' ? (s.prefix_cache_hits ?? undefined) : undefined;
  } catch {
    return undefined;
  }
}
