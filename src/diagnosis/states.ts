/**
 * The states an SRE acts on, one entry each: the traffic-light verdict it maps to, whether a
 * load balancer should take the replica out (`/status` 503), and its runbook section. A new
 * state is one entry here and one rule in ./diagnose.ts.
 */
export type Verdict = 'healthy' | 'degraded' | 'unhealthy' | 'unknown' | 'skipped';

export interface StateSpec {
  verdict: Verdict;
  /** /status answers 503 only when vLLM itself cannot serve: nothing else should drain a replica. */
  serving: boolean;
  /** One line for docs and --help: what the state means. */
  meaning: string;
}

export const STATES = {
  unknown: { verdict: 'unknown', serving: true, meaning: 'not judged yet: nothing has been observed of vLLM' },
  healthy: { verdict: 'healthy', serving: true, meaning: 'vLLM serves and every check passes' },
  restarted: { verdict: 'healthy', serving: true, meaning: 'vLLM serves again after a restart (shown for a while, with the cold TTFT)' },
  starting: { verdict: 'unhealthy', serving: false, meaning: 'vLLM processes run but the model is not served yet' },
  down: { verdict: 'unhealthy', serving: false, meaning: 'nothing answers on vLLM\'s port and its processes are gone' },
  crashed: { verdict: 'unhealthy', serving: false, meaning: 'the engine died (EngineDeadError, /health 503, engine process gone while the API server ran)' },
  wedged: { verdict: 'unhealthy', serving: false, meaning: 'the engine makes no progress while /health says 200 and no token flows' },
  failing: { verdict: 'unhealthy', serving: false, meaning: 'requests fail again and again (HTTP 5xx, broken streams, no token) while /health says 200 and no other state explains it' },
  saturated: { verdict: 'degraded', serving: true, meaning: 'requests queue while the engine runs at its limit; tokens still flow' },
  kv_pressure: { verdict: 'degraded', serving: true, meaning: 'the KV cache is full: requests wait for capacity and/or are preempted' },
  shedding: { verdict: 'degraded', serving: true, meaning: 'vLLM refuses requests on purpose (admission limits, 429/503 with Retry-After)' },
  asleep: { verdict: 'healthy', serving: true, meaning: 'vLLM sleeps on purpose (sleep mode): not a fault, no synthetic inference is sent' },
  slo_breach: { verdict: 'degraded', serving: true, meaning: 'latency misses the SLO now while everything else is fine' },
  misconfigured: { verdict: 'degraded', serving: true, meaning: "the prober's own config is wrong (API key, model, TLS): vLLM may be fine" },
  degraded: { verdict: 'degraded', serving: true, meaning: 'vLLM serves but a check fails (probe errors, scrape errors, GPU)' },
} as const satisfies Record<string, StateSpec>;

export type State = keyof typeof STATES;
export const STATE_NAMES = Object.keys(STATES) as State[];
