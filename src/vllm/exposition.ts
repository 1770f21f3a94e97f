/**
 * A strict parser for the Prometheus text exposition format 0.0.4, as vLLM's Python
 * prometheus_client writes it. Pure: text in, families out; throws ExpositionError with the
 * line number on anything malformed.
 *
 * Handles label escapes (\\ \" \n), NaN and ±Inf, Go-style exponents (1.1701968896e+010),
 * histogram samples in any order, `*_created` families (kept as their own gauge families, the
 * caller ignores them), files that start mid-family and families without HELP or TYPE. From
 * OpenMetrics it also takes `# EOF`/`# UNIT` (ignored), exemplars and fractional timestamps;
 * the names OpenMetrics gives counters are mapped back by schema.ts (canonicaliseNames).
 * No npm parser handled all of that when this was written (see docs/dependencies.md).
 */

import { oneLine } from '../reason.js';

export type FamilyType = 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped' | 'info' | 'stateset' | 'gaugehistogram' | 'unknown';

export interface Sample {
  /** The sample's own name, e.g. `vllm:e2e_request_latency_seconds_bucket`. */
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Family {
  name: string;
  type: FamilyType;
  help?: string;
  samples: Sample[];
}

export type Exposition = Map<string, Family>;

export class ExpositionError extends Error {
  constructor(
    readonly line: number,
    message: string,
  ) {
    super(`line ${line}: ${message}`);
    this.name = 'ExpositionError';
  }
}

/** How much of a token from the input an error quotes. */
const QUOTE_MAX_CHARS = 200;

/**
 * Text from the input as an error quotes it: cut and with control characters escaped. A
 * /metrics whose value was a 10 MB token once put the whole token into every scrape's log line
 * and terminal escape sequences into explain-metrics' stderr (issue 23).
 */
function q(text: string): string {
  return `"${oneLine(text, QUOTE_MAX_CHARS)}"`;
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES = new Set<FamilyType>(['counter', 'gauge', 'histogram', 'summary', 'untyped', 'info', 'stateset', 'gaugehistogram', 'unknown']);
/** The sample-name suffixes of each family type, in the order they are tried. */
const SUFFIXES: ReadonlyArray<readonly [FamilyType, readonly string[]]> = [
  ['histogram', ['_bucket', '_sum', '_count']],
  ['gaugehistogram', ['_bucket', '_gsum', '_gcount']],
  ['summary', ['_sum', '_count']],
  ['counter', ['_total']],
];

/** Parses a sample value the way Prometheus does, including Go-style exponents. */
export function parseValue(text: string): number | undefined {
  switch (text) {
    case 'NaN':
      return NaN;
    case '+Inf':
    case 'Inf':
      return Infinity;
    case '-Inf':
      return -Infinity;
  }
  if (!/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(text)) return undefined;
  return Number(text);
}

function unescapeHelp(text: string): string {
  return text.replace(/\\(\\|n)/g, (_, c: string) => (c === 'n' ? '\n' : '\\'));
}

/**
 * Parses `{a="x",b="y"}` starting at `pos` (on the `{`); returns the labels, the index after
 * `}`, and whether the text is already the sample's canonical key (sampleKey): names in order,
 * no spaces, no trailing comma. Exporters write it that way.
 */
function parseLabels(line: string, pos: number, lineNo: number): [Record<string, string>, number, boolean] {
  const labels: Record<string, string> = {};
  let i = pos + 1;
  let canonical = true;
  let previous = '';
  for (;;) {
    if (line[i] === ' ') canonical = false;
    while (line[i] === ' ') i++;
    if (line[i] === '}') return [labels, i + 1, canonical && previous !== '' && line[i - 1] !== ','];
    const eq = line.indexOf('=', i);
    if (eq < 0) throw new ExpositionError(lineNo, 'label without "="');
    const raw = line.slice(i, eq);
    const name = raw.trim();
    if (name.length !== raw.length || name <= previous) canonical = false;
    previous = name;
    if (!LABEL_NAME.test(name)) throw new ExpositionError(lineNo, `invalid label name ${q(name)}`);
    if (name in labels) throw new ExpositionError(lineNo, `duplicate label ${q(name)}`);
    i = eq + 1;
    if (line[i] !== '"') throw new ExpositionError(lineNo, `label ${q(name)}: value must be quoted`);
    i++;
    let value = '';
    // Most values have no escape: one slice. Adding up characters allocated a string per
    // character, most of what a scrape allocates (and the GC then reclaims) every 15 s.
    const close = line.indexOf('"', i);
    const escape = line.indexOf('\\', i);
    if (close >= 0 && (escape < 0 || escape > close)) {
      value = line.slice(i, close);
      i = close;
    }
    for (;;) {
      const c = line[i];
      if (c === undefined) throw new ExpositionError(lineNo, `label ${q(name)}: unterminated value`);
      if (c === '\\') {
        const next = line[i + 1];
        if (next === 'n') value += '\n';
        else if (next === '\\' || next === '"') value += next;
        else throw new ExpositionError(lineNo, `label ${q(name)}: invalid escape ${q(`\\${next ?? ''}`)}`);
        i += 2;
        continue;
      }
      if (c === '"') break;
      value += c;
      i++;
    }
    labels[name] = value;
    i++; // closing quote
    if (line[i] === ' ') canonical = false;
    while (line[i] === ' ') i++;
    if (line[i] === ',') i++;
    else if (line[i] !== '}') throw new ExpositionError(lineNo, `expected "," or "}" after label ${q(name)}`);
  }
}

/**
 * A sample's label names in order. Exporters write them sorted or nearly so, and a line has a
 * handful: an insertion sort in place, where Array#sort allocated a work area on every sample.
 */
function sortedKeys(labels: Record<string, string>): string[] {
  const keys = Object.keys(labels);
  for (let i = 1; i < keys.length; i++) {
    const k = keys[i]!;
    let j = i - 1;
    for (; j >= 0 && keys[j]! > k; j--) keys[j + 1] = keys[j]!;
    keys[j + 1] = k;
  }
  return keys;
}

/**
 * A sample's identity, `name{a="x",b="y"}` with the names in order and the values escaped as
 * the format does: the text a tidy exporter writes, which is then used as it stands.
 */
function sampleKey(name: string, labels: Record<string, string>): string {
  const keys = sortedKeys(labels);
  if (keys.length === 0) return name;
  return `${name}{${keys.map((k) => `${k}="${labels[k]!.replace(/[\\"\n]/g, (c) => (c === '\n' ? '\\n' : `\\${c}`))}"`).join(',')}}`;
}

/** Parses one exposition. Throws ExpositionError on the first malformed line. */
export function parseExposition(text: string): Exposition {
  const parser = lineParser();
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) parser.line(lines[i]!, i);
  return parser.families;
}

/** Lines parsed between two yields to the event loop in parseExpositionAsync. */
const LINES_PER_SLICE = 5000;

/**
 * The same parse, giving the event loop a turn every few thousand lines: a big but valid
 * /metrics (a cap raised to many MB) must not stall /healthz or the probes' timers.
 */
export async function parseExpositionAsync(text: string): Promise<Exposition> {
  const parser = lineParser();
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    parser.line(lines[i]!, i);
    if (i % LINES_PER_SLICE === LINES_PER_SLICE - 1) await new Promise((r) => setImmediate(r));
  }
  return parser.families;
}

function lineParser(): { families: Exposition; line(raw: string, idx: number): void } {
  const families: Exposition = new Map();
  // name{labels} of every sample: a second one is a broken exposition (Prometheus rejects it too),
  // never something to add up.
  const seen = new Set<string>();
  const declared = new Map<string, FamilyType>();
  const familyOf = (sampleName: string): Family => {
    let name = sampleName;
    if (!declared.has(sampleName)) {
      for (const [type, suffixes] of SUFFIXES) {
        const suffix = suffixes.find((s) => sampleName.endsWith(s));
        if (suffix) {
          const base = sampleName.slice(0, -suffix.length);
          if (declared.get(base) === type) {
            name = base;
            break;
          }
        }
      }
    }
    let family = families.get(name);
    if (!family) {
      family = { name, type: declared.get(name) ?? 'untyped', samples: [] };
      families.set(name, family);
    }
    return family;
  };
  const line = (raw: string, idx: number): void => {
    const lineNo = idx + 1;
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (line.trim() === '') return;
    if (line.startsWith('#')) {
      const m = /^#\s+(HELP|TYPE)\s+(\S+)(?:\s(.*))?$/.exec(line);
      if (!m) return; // other comments are allowed and ignored
      const [, kind, name, rest = ''] = m;
      if (!NAME.test(name!)) throw new ExpositionError(lineNo, `invalid metric name ${q(name!)}`);
      const family = families.get(name!) ?? { name: name!, type: declared.get(name!) ?? 'untyped', samples: [] };
      families.set(name!, family);
      if (kind === 'HELP') {
        family.help = unescapeHelp(rest);
      } else {
        const type = rest.trim() as FamilyType;
        if (!TYPES.has(type)) throw new ExpositionError(lineNo, `unknown type ${q(rest.trim())} for ${q(name!)}`);
        if (family.samples.length) throw new ExpositionError(lineNo, `TYPE for ${q(name!)} after its samples`);
        declared.set(name!, type);
        family.type = type;
      }
      return;
    }
    let i = 0;
    while (i < line.length && line[i] !== '{' && line[i] !== ' ' && line[i] !== '\t') i++;
    const name = line.slice(0, i);
    if (!NAME.test(name)) throw new ExpositionError(lineNo, `invalid metric name ${q(name)}`);
    let labels: Record<string, string> = {};
    let canonical = true;
    if (line[i] === '{') [labels, i, canonical] = parseLabels(line, i, lineNo);
    // OpenMetrics: an exemplar (` # {trace_id="…"} 1.0`) may follow the value; it is not data.
    let tail = line.slice(i);
    const exemplar = tail.indexOf(' # ');
    if (exemplar >= 0) tail = tail.slice(0, exemplar);
    const rest = tail.trim().split(/[ \t]+/);
    if (rest.length < 1 || rest.length > 2 || rest[0] === '') throw new ExpositionError(lineNo, `expected "value [timestamp]" after ${q(name)}`);
    const value = parseValue(rest[0]!);
    if (value === undefined) throw new ExpositionError(lineNo, `invalid value ${q(rest[0]!)} for ${q(name)}`);
    // 0.0.4 timestamps are integer milliseconds; OpenMetrics ones are (fractional) seconds.
    if (rest[1] !== undefined && !/^-?\d+(\.\d+)?([eE][+-]?\d+)?$/.test(rest[1])) throw new ExpositionError(lineNo, `invalid timestamp ${q(rest[1])}`);
    // The sample's identity whatever its labels' order or spacing: a slice of the line as
    // written when that is already canonical (no string built per sample), else built.
    const key = canonical ? line.slice(0, i) : sampleKey(name, labels);
    if (seen.has(key)) throw new ExpositionError(lineNo, `duplicate sample ${oneLine(`${name}${Object.keys(labels).length ? `{${Object.entries(labels).map(([k, v]) => `${k}="${v.slice(0, QUOTE_MAX_CHARS)}"`).join(',')}}` : ''}`, QUOTE_MAX_CHARS)}`);
    seen.add(key);
    familyOf(name).samples.push({ name, labels, value });
  };
  return { families, line };
}
