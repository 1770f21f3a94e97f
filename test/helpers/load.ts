/**
 * Background traffic for tests that need a busy server: `workers` clients, each streaming one
 * completion after another (streamed, as real clients do: the emulator and vLLM count generated
 * tokens on streams) until stopped. A refused or failed request waits `retryMs` before the next.
 */

export interface StreamingLoadOptions {
  url: string;
  apiKey?: string;
  workers: number;
  /** The request body of worker `worker`'s `i`-th request (`stream: true` is added). */
  body: (worker: number, i: number) => Record<string, unknown>;
  retryMs?: number;
  /** A request that takes longer is abandoned (a wedged server must not hold the test). */
  requestTimeoutMs?: number;
}

export interface StreamingLoad {
  /** Requests that ended with a 2xx and a read body. */
  finished(): number;
  stop(): Promise<void>;
}

export function streamingLoad(options: StreamingLoadOptions): StreamingLoad {
  const stop = new AbortController();
  const retryMs = options.retryMs ?? 200;
  let finished = 0;
  const worker = async (w: number) => {
    for (let i = 0; !stop.signal.aborted; i++) {
      try {
        const res = await fetch(`${options.url}/v1/completions`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', ...(options.apiKey ? { authorization: `Bearer ${options.apiKey}` } : {}) },
          body: JSON.stringify({ ...options.body(w, i), stream: true }),
          signal: AbortSignal.any([stop.signal, AbortSignal.timeout(options.requestTimeoutMs ?? 60_000)]),
        });
        await res.text();
        if (res.ok) finished++;
        else await new Promise((r) => setTimeout(r, retryMs));
      } catch {
        if (!stop.signal.aborted) await new Promise((r) => setTimeout(r, retryMs));
      }
    }
  };
  const all = Promise.allSettled(Array.from({ length: options.workers }, (_, w) => worker(w)));
  return {
    finished: () => finished,
    async stop() {
      stop.abort();
      await all;
    },
  };
}
