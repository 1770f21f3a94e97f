/**
 * The vLLM server being watched: one HTTP connection pool, its API key, the served model name,
 * and what we know about its lifecycle (reachable or not, restarts, cold/warm phase).
 */
import { Agent, request, type Dispatcher } from 'undici';
import type { Logger } from 'pino';
import type { Config } from './config.js';
import type { Metrics } from './metrics.js';


export interface TargetClient {
  readonly baseUrl: string;
  readonly apiKey: string | undefined;
  readonly dispatcher: Dispatcher;
  readonly maxResponseBytes: number;
  /** GET a path and return status and body text (capped at `maxBytes`). Throws on network errors. */
  get(path: string, signal: AbortSignal, maxBytes?: number): Promise<{ status: number; body: string; truncated: boolean; contentType: string }>;
  close(): Promise<void>;
}

export function createTargetClient(config: Config, apiKey: string | undefined): TargetClient {
  // keep-alive like a real client; connect timeout bounded so a black-holed port fails fast
  const dispatcher = new Agent({ connect: { timeout: 5000 }, keepAliveTimeout: 10_000, connections: 64 });
  const baseUrl = config.target.url;
  const maxResponseBytes = config.target.max_response_bytes;
  return {
    baseUrl,
    apiKey,
    dispatcher,
    maxResponseBytes,
    async get(path, signal, maxBytes = maxResponseBytes) {
      const headers: Record<string, string> = {};
      // vLLM only checks the key on /v1 routes; sending it elsewhere is harmless.
      if (apiKey && path.startsWith('/v1')) headers.authorization = `Bearer ${apiKey}`;
      const res = await request(`${baseUrl}${path}`, { method: 'GET', headers, dispatcher, signal });
      let size = 0;
      const parts: Buffer[] = [];
      let truncated = false;
      for await (const chunk of res.body) {
        const buf = chunk as Buffer;
        size += buf.length;
        if (size > maxBytes) {
          truncated = true;
          res.body.destroy();
          break;
        }
        parts.push(buf);
      }
      return { status: res.statusCode, body: Buffer.concat(parts).toString('utf8'), truncated, contentType: String(res.headers['content-type'] ?? '') };
    },
    async close() {
      await dispatcher.close().catch(() => dispatcher.destroy());
    },
  };
}

export type Phase = 'cold' | 'warm';

/** Restart signals closer together than this are one restart (vLLM takes longer to restart twice). */
const RESTART_DEDUP_MS = 60_000;

/**
 * Lifecycle knowledge shared by probes and collectors. A restart is either a changed
 * `process_start_time_seconds` on vLLM's /metrics or "reachable again after being unreachable";
 * the next `coldProbes` TTFT probes after it are labelled phase="cold".
 */
export class TargetTracker {
  reachable: boolean | undefined;
  unreachableSince: Date | undefined;
  lastError: string | undefined;
  processStartTime: number | undefined;
  lastRestartAt: Date | undefined;
  discoveredModel: string | undefined;
  version: string | undefined;
  private coldRemaining = 0;

  constructor(
    private readonly metrics: Metrics,
    private readonly coldProbes: number,
    private readonly log: Logger,
    readonly configuredModel: string,
  ) {}

  /** The `model` sent in requests: configured, else discovered, else '' (vLLM's default model). */
  get requestModel(): string {
    return this.configuredModel || this.discoveredModel || '';
  }

  /** The `model` label value: configured name, else discovered name, else "unknown". */
  get model(): string {
    return this.configuredModel || this.discoveredModel || 'unknown';
  }

  observeReachable(ok: boolean, detail: string | undefined, at = new Date()): void {
    if (!ok) {
      if (this.reachable !== false) this.unreachableSince = at;
      this.reachable = false;
      this.lastError = detail;
      return;
    }
    const wasDown = this.reachable === false;
    this.reachable = true;
    this.unreachableSince = undefined;
    this.lastError = undefined;
    if (wasDown) this.markRestart('reachable again after being unreachable');
  }

  observeProcessStart(startTime: number | undefined): void {
    if (startTime === undefined) return;
    const previous = this.processStartTime;
    this.processStartTime = startTime;
    if (previous !== undefined && Math.abs(previous - startTime) > 0.5) {
      this.markRestart('process_start_time_seconds changed');
    }
  }

  private markRestart(why: string): void {
    // Both signals report the same restart, in either order and possibly after the cold probe
    // already ran (probe sees "reachable again", the next scrape a new start time): one restart.
    const now = new Date();
    if (this.lastRestartAt && now.getTime() - this.lastRestartAt.getTime() < RESTART_DEDUP_MS) return;
    this.lastRestartAt = now;
    this.coldRemaining = this.coldProbes;
    this.metrics.targetRestarts.inc();
    this.log.info({ why }, 'vLLM restart detected');
  }

  /** Phase for the next TTFT probe; consumes one cold slot when a restart is pending. */
  takePhase(): Phase {
    if (this.coldRemaining > 0) {
      this.coldRemaining--;
      return 'cold';
    }
    return 'warm';
  }

  /** Gives a cold slot back when the probe that took it did not produce a token. */
  returnColdSlot(): void {
    this.coldRemaining++;
  }
}

/** Asks /v1/models for the first served model id. Returns undefined when it cannot. */
export async function discoverModel(client: TargetClient, signal: AbortSignal): Promise<string | undefined> {
  const res = await client.get('/v1/models', signal, 1024 * 1024);
  if (res.status !== 200) return undefined;
  try {
    const parsed = JSON.parse(res.body) as { data?: Array<{ id?: unknown; parent?: unknown }> };
    // LoRA adapters list their base model as parent; prefer the base model.
    const base = parsed.data?.find((m) => typeof m.id === 'string' && !m.parent) ?? parsed.data?.[0];
    return typeof base?.id === 'string' ? base.id : undefined;
  } catch {
    return undefined;
  }
}

