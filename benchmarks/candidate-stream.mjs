/**
 * A candidate replacement for src/synthetic/stream.ts's transport, used only by the overhead
 * benchmark to show the before/after of the change recommended in docs/benchmarks.md:
 * undici's low-level `dispatcher.dispatch(opts, handler)` instead of `request()` + the body's
 * async iterator. Same timing definition (startedAt before the request is handed to undici,
 * chunk time taken when undici hands the bytes over, before parsing), same parser, same body.
 *
 * `sentAt` is also recorded: the handler's onRequestStart, called by undici right before it
 * writes the request to the socket (after a new connection is established).
 *
 * Prototype: only the success path is complete (errors reject; no abort/timeout wiring), which is
 * all the benchmarks need.
 */
import { performance } from 'node:perf_hooks';
import { createParser } from 'eventsource-parser';

export function streamCompletionDispatch(req) {
  return new Promise((resolve, reject) => {
    const startedAt = performance.now();
    const url = new URL(`${req.baseUrl}${req.path}`);
    const result = { outcome: 'success', startedAt, sentAt: undefined, headersAt: undefined, contentAt: [], endedAt: startedAt, text: '', sawDone: false, usage: undefined };
    let chunkTime = 0;
    const parser = createParser({
      onEvent(event) {
        if (event.data === '[DONE]') {
          result.sawDone = true;
          return;
        }
        const chunk = JSON.parse(event.data);
        let text = '';
        for (const c of chunk.choices ?? []) {
          if (typeof c.text === 'string') text += c.text;
          if (c.delta && typeof c.delta.content === 'string') text += c.delta.content;
        }
        if (text.length > 0) {
          result.contentAt.push(chunkTime);
          result.text += text;
        }
        if (chunk.usage) result.usage = chunk.usage;
      },
    });
    const decoder = new TextDecoder();
    const headers = { 'content-type': 'application/json', accept: 'text/event-stream' };
    if (req.apiKey) headers.authorization = `Bearer ${req.apiKey}`;
    req.dispatcher.dispatch(
      { origin: url.origin, path: url.pathname, method: 'POST', headers, body: JSON.stringify(req.body) },
      {
        onRequestStart() {
          result.sentAt = performance.now();
        },
        onResponseStart(_controller, statusCode) {
          result.headersAt = performance.now();
          result.status = statusCode;
        },
        onResponseData(_controller, chunk) {
          chunkTime = performance.now();
          parser.feed(decoder.decode(chunk, { stream: true }));
        },
        onResponseEnd() {
          result.endedAt = performance.now();
          if (result.status >= 400 || !result.sawDone || result.contentAt.length === 0) result.outcome = 'bad_response';
          resolve(result);
        },
        onResponseError(_controller, err) {
          reject(err);
        },
      },
    );
  });
}
