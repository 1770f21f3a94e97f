/**
 * The models probe: GET /health and GET /v1/models, the two cheap questions a load balancer or
 * router asks. Records their latency (as requests of this probe) and whether the model we
 * expect is served; a server that serves another model is a failure ("wrong_model"), since
 * every request for our model would 404 there.
 */
import { performance } from 'node:perf_hooks';
import type { ModelsProbeConfig } from '../config.js';
import { SourceError } from '../errors.js';
import { displayModelId } from '../vllm/client.js';
import type { Outcome } from '../vllm/stream.js';
import type { ProbeContext, ProbeKindSpec, ProbeResult, RequestRecord } from './prober.js';
import { outcomeOfError } from './request.js';

async function runModels(ctx: ProbeContext): Promise<ProbeResult> {
  const requests: RequestRecord[] = [];
  const timed = async <T>(fn: () => Promise<T>): Promise<{ value?: T; error?: unknown; seconds: number }> => {
    const t0 = performance.now();
    try {
      return { value: await fn(), seconds: (performance.now() - t0) / 1000 };
    } catch (error) {
      return { error, seconds: (performance.now() - t0) / 1000 };
    }
  };
  const health = await timed(() => ctx.client.health(ctx.signal));
  if (health.error) {
    const outcome = outcomeOfError(health.error);
    requests.push({ outcome, seconds: health.seconds });
    ctx.tracker.observeReachable(outcome !== 'connect_error', (health.error as Error).message);
    const message = (health.error as Error).message;
    return { success: false, outcome, detail: message.startsWith('/health') ? message : `/health: ${message}`, requests };
  }
  const healthOutcome: Outcome = health.value!.status === 200 ? 'success' : health.value!.status >= 500 ? 'http_5xx' : 'http_4xx';
  requests.push({ outcome: healthOutcome, seconds: health.seconds });
  ctx.tracker.observeReachable(true, undefined);

  const models = await timed(() => ctx.client.models(ctx.signal));
  if (models.error) {
    const outcome = outcomeOfError(models.error);
    requests.push({ outcome, seconds: models.seconds });
    const status = models.error instanceof SourceError ? models.error.status : undefined;
    return { success: false, outcome, detail: (models.error as Error).message, requests, ...(status !== undefined ? { status } : {}) };
  }
  const served = models.value!.map((m) => m.id);
  const want = ctx.tracker.configuredModel;
  const present = want ? served.includes(want) : served.length > 0;
  // The answer came, but one without our model is as useless to a client as an error.
  requests.push({ outcome: present ? 'success' : 'wrong_model', seconds: models.seconds });
  ctx.metrics.modelPresent.labels({ model: want || served[0] || 'unknown' }).set(present ? 1 : 0);
  if (healthOutcome !== 'success') return { success: false, outcome: healthOutcome, status: health.value!.status, detail: `/health answered HTTP ${health.value!.status} (engine dead or starting)`, requests };
  if (!present) {
    const list = served.length ? served.slice(0, 5).map(displayModelId).join(', ') + (served.length > 5 ? ` and ${served.length - 5} more` : '') : 'nothing';
    return { success: false, outcome: 'wrong_model', status: 200, detail: want ? `the server serves ${list}, not ${displayModelId(want)} (target.model)` : '/v1/models lists no model', requests };
  }
  return { success: true, outcome: 'success', requests };
}

export const modelsProbe: ProbeKindSpec<ModelsProbeConfig> = {
  sendsInference: false,
  checks: [],
  describe: 'served models',
  create: () => ({ run: runModels }),
};
