/**
 * What collectors and probes saw of one target, with the time they saw it: facts only, no
 * verdicts. The diagnosis (./diagnose.ts) reads a frozen view of it. Every list is bounded: a
 * few recent observations per source, scrapes within a short horizon.
 */
import type { Outcome } from '../vllm/stream.js';
import type { EngineSnapshot } from '../vllm/schema.js';

/** How a request to the target failed before any HTTP answer. */
export type ConnectFailure = 'refused' | 'timeout' | 'tls' | 'other';

export interface HealthObservation {
  at: number;
  /** The HTTP status /health answered; absent when it did not answer. */
  status?: number;
  failure?: ConnectFailure;
  detail?: string;
}

export interface ProbeObservation {
  at: number;
  /** When the probe's request was sent (a probe queued through a sleep started before it). */
  startedAt: number;
  kind: string;
  /** Whether the kind sends inference (its success shows the engine serving); by default every kind but models. */
  inference?: boolean;
  success: boolean;
  outcome: Outcome | 'internal';
  /** HTTP status of the failed request, when it got one. */
  status?: number;
  detail?: string;
  ttftSeconds?: number;
  /** The server asked to come back at this time (Retry-After). */
  retryAt?: number;
  failure?: ConnectFailure;
}

export interface ScrapeObservation {
  at: number;
  snapshot: EngineSnapshot;
}

export interface ProcessObservation {
  at: number;
  /** vLLM processes found; null when they cannot be seen from here (no /proc, no shared PID namespace). */
  count: number | null;
  pids: number[];
}

export interface WedgeSignatureSeen {
  signature: string;
  words: string;
}

/** A frozen copy of everything known about a target, the diagnosis's only input. */
export interface EvidenceView {
  health: readonly HealthObservation[];
  probes: Readonly<Record<string, readonly ProbeObservation[]>>;
  scrapes: readonly ScrapeObservation[];
  scrapeError?: { at: number; detail: string };
  /** Whether this daemon scrapes the target's /metrics at all (a central daemon does not). */
  scraping: boolean;
  processes: readonly ProcessObservation[];
  wedge: readonly WedgeSignatureSeen[];
  restart?: { at: number; why: string };
  /** The last time vLLM said it serves: /health 200 or a successful inference probe. */
  lastServingAt?: number;
  /** The last successful inference probe: the engine itself answered (a /health 200 may not). */
  lastInferenceAt?: number;
  /** When the last wedge signature cleared: probes sent before it waited on the stopped engine. */
  wedgeEndedAt?: number;
  /** The last answer that says the engine died (HTTP 500 EngineDeadError, /health 503 after 200). */
  engineDeath?: { at: number; words: string };
  /** The first TTFT probe's TTFT after the last restart (cold), as it was measured. */
  coldTtftSeconds?: number;
  /** Since when no request to the target got an answer (connection refused, TLS, timeout). */
  unansweredSince?: number;
  /** The last time the engine was seen asleep and when it was seen awake after that. */
  asleepAt?: number;
  wokeAt?: number;
}

const HEALTH_KEPT = 8;
/** A TTFT probe that ended this close before a restart was marked ran on the new process. */
const COLD_SLACK_MS = 2000;
const PROBES_KEPT = 6;
/** Signs of one engine death arrive within the API server's last seconds (1.4 s on an H100). */
const SAME_DEATH_MS = 10_000;
const PROCESSES_KEPT = 4;
const SCRAPES_MAX = 64;

/** vLLM's words when its engine process is gone (HTTP 500 to requests in flight and after). */
const ENGINE_DEAD = /EngineDeadError|EngineCore encountered an issue|engine core exited|engine is dead/i;

/** A failed request's text, sorted into the failure that matters for the diagnosis. */
export function connectFailure(outcome: string, detail: string | undefined): ConnectFailure | undefined {
  if (outcome !== 'connect_error') return undefined;
  if (/ECONNREFUSED|refused/i.test(detail ?? '')) return 'refused';
  if (/certificate|CERT_|TLS|SSL|self[- ]signed|EPROTO/i.test(detail ?? '')) return 'tls';
  if (/timed? ?out|ETIMEDOUT/i.test(detail ?? '')) return 'timeout';
  return 'other';
}

export class Evidence {
  private readonly healthLog: HealthObservation[] = [];
  private readonly probeLog = new Map<string, ProbeObservation[]>();
  private readonly scrapeLog: ScrapeObservation[] = [];
  private readonly processLog: ProcessObservation[] = [];
  private scrapeError: { at: number; detail: string } | undefined;
  private wedgeSeen: WedgeSignatureSeen[] = [];
  private restartSeen: { at: number; why: string } | undefined;
  private lastServingAt: number | undefined;
  private lastInferenceAt: number | undefined;
  private wedgeEndedAt: number | undefined;
  private engineDeath: { at: number; words: string } | undefined;
  private asleepAt: number | undefined;
  private wokeAt: number | undefined;
  private unansweredSince: number | undefined;
  private coldTtftSeconds: number | undefined;

  /** Keeps the start of the current run of unanswered requests (the logs are bounded; this is not). */
  private answered(at: number, yes: boolean): void {
    if (yes) this.unansweredSince = undefined;
    else this.unansweredSince ??= at;
  }

  /**
   * @param horizonMs how far back scrapes are kept (rates and "still waiting" need a few)
   * @param scraping whether /metrics is scraped for this target at all
   */
  /** Called after every observation (the board re-diagnoses, so each state's start is exact). */
  onRecord: () => void = () => undefined;

  constructor(
    private readonly horizonMs: number,
    private readonly scraping: boolean,
  ) {}

  health(o: HealthObservation): void {
    const previous = this.healthLog.at(-1);
    push(this.healthLog, o, HEALTH_KEPT);
    this.answered(o.at, o.status !== undefined);
    if (o.status === 200) this.lastServingAt = o.at;
    // vLLM answers /health 503 only once its engine is dead (it is not listening while it loads).
    else if (o.status !== undefined && o.status >= 500 && previous?.status === 200) this.died(o.at, `/health answered HTTP ${o.status} after 200`);
    this.onRecord();
  }

  probe(o: ProbeObservation): void {
    const list = this.probeLog.get(o.kind) ?? [];
    this.probeLog.set(o.kind, list);
    push(list, o, PROBES_KEPT);
    if (o.failure) this.answered(o.at, false);
    else if (o.success || o.status !== undefined) this.answered(o.at, true);
    if (o.success && (o.inference ?? o.kind !== 'models')) {
      this.lastServingAt = Math.max(this.lastServingAt ?? 0, o.at);
      this.lastInferenceAt = Math.max(this.lastInferenceAt ?? 0, o.at);
    }
    // The cold TTFT is the first one after the restart, kept: later probes are warm.
    // (The probe that reveals a restart ends after it began: "reachable again" is marked at its end.)
    if (o.kind === 'ttft' && o.success && o.ttftSeconds !== undefined && this.restartSeen && o.at >= this.restartSeen.at - COLD_SLACK_MS && this.coldTtftSeconds === undefined) this.coldTtftSeconds = o.ttftSeconds;
    if (!o.success && o.status !== undefined && o.status >= 500 && ENGINE_DEAD.test(o.detail ?? '')) {
      const detail = (o.detail ?? '').replace(new RegExp(`^HTTP ${o.status}:\\s*`), '');
      this.died(o.at, `a ${o.kind} request got HTTP ${o.status}: ${detail}`);
    }
    this.onRecord();
  }

  scrape(at: number, snapshot: EngineSnapshot): void {
    this.scrapeError = undefined;
    push(this.scrapeLog, { at, snapshot }, SCRAPES_MAX);
    // Keep one scrape at or before the horizon so rates cover all of it.
    while (this.scrapeLog.length > 2 && this.scrapeLog[1]!.at <= at - this.horizonMs) this.scrapeLog.shift();
    const asleep = snapshot.sleep_state !== null && snapshot.sleep_state !== 'awake';
    if (asleep) this.asleepAt = at;
    else if (snapshot.sleep_state === 'awake' && this.asleepAt !== undefined && (this.wokeAt ?? 0) < this.asleepAt) this.wokeAt = at;
    this.onRecord();
  }

  scrapeFailed(at: number, detail: string): void {
    this.scrapeError = { at, detail };
    // Counters cannot be compared across the gap (and a restart resets them).
    this.scrapeLog.length = 0;
    this.onRecord();
  }

  processes(o: ProcessObservation): void {
    push(this.processLog, o, PROCESSES_KEPT);
    this.onRecord();
  }

  /** An engine process exited while the API server still listened (src/host/engine-watch.ts). */
  engineExited(at: number, words: string): void {
    this.died(at, words);
    this.onRecord();
  }

  /**
   * One death is told by its first sign: the engine watch hears the exit within milliseconds,
   * a request in flight gets its HTTP 500 and /health its 503 a moment later. Those later signs
   * (within SAME_DEATH_MS, with nothing served in between) keep the first one's time and words.
   */
  private died(at: number, words: string): void {
    const first = this.engineDeath;
    if (first && first.at <= at && at - first.at <= SAME_DEATH_MS && first.at >= (this.lastInferenceAt ?? 0)) return;
    this.engineDeath = { at, words };
  }

  wedge(signatures: WedgeSignatureSeen[], at = Date.now()): void {
    if (this.wedgeSeen.length && !signatures.length) this.wedgeEndedAt = at;
    this.wedgeSeen = signatures;
    this.onRecord();
  }

  restart(at: number, why: string): void {
    this.restartSeen = { at, why };
    // The probe whose answer revealed the restart may be recorded just before it: it is the cold one.
    this.coldTtftSeconds = this.probeLog.get('ttft')?.find((p) => p.success && p.ttftSeconds !== undefined && p.at >= at - COLD_SLACK_MS)?.ttftSeconds;
    this.onRecord();
  }

  /** When the engine was last seen awake after sleeping (a probe sent before it measured the sleep). */
  get lastWakeAt(): number | undefined {
    return this.wokeAt;
  }

  /** Whether the last scrape that said anything of sleep said the engine sleeps. */
  get seenAsleep(): boolean {
    return this.asleepAt !== undefined && (this.wokeAt ?? -Infinity) < this.asleepAt;
  }

  view(): EvidenceView {
    const probes: Record<string, ProbeObservation[]> = {};
    for (const [k, v] of this.probeLog) probes[k] = [...v];
    const view: EvidenceView = {
      health: [...this.healthLog],
      probes,
      scrapes: [...this.scrapeLog],
      scraping: this.scraping,
      processes: [...this.processLog],
      wedge: [...this.wedgeSeen],
    };
    if (this.scrapeError) view.scrapeError = this.scrapeError;
    if (this.restartSeen) view.restart = this.restartSeen;
    if (this.lastServingAt !== undefined) view.lastServingAt = this.lastServingAt;
    if (this.lastInferenceAt !== undefined) view.lastInferenceAt = this.lastInferenceAt;
    if (this.wedgeEndedAt !== undefined) view.wedgeEndedAt = this.wedgeEndedAt;
    if (this.engineDeath) view.engineDeath = this.engineDeath;
    if (this.asleepAt !== undefined) view.asleepAt = this.asleepAt;
    if (this.wokeAt !== undefined) view.wokeAt = this.wokeAt;
    if (this.unansweredSince !== undefined) view.unansweredSince = this.unansweredSince;
    if (this.coldTtftSeconds !== undefined) view.coldTtftSeconds = this.coldTtftSeconds;
    return view;
  }
}

function push<T>(list: T[], item: T, max: number): void {
  list.push(item);
  if (list.length > max) list.splice(0, list.length - max);
}
