/**
 * nvidia-smi output → base units (pure; the runner is ./run.ts).
 *
 * Two halves:
 * - Pure parsers (`parseCell`, `parseHelpQueryGpu`, `parseGpuQuery`, `parseComputeApps`,
 *   `invalidFieldsIn`) that turn `--format=csv,noheader,nounits` text into base units. Every
 *   "no value" marker (`[N/A]`, `N/A`, `[Not Supported]`, `[Unknown Error]`, any `[...]`, empty)
 *   becomes null, never 0 (conventions §6).
 * - `NvidiaSmi`, which runs the binary with execFile (never a shell), a hard timeout that
 *   SIGKILLs the child, an output cap, and single-flight (one child at a time; concurrent
 *   callers of the same command share its run). It discovers the fields this driver accepts
 *   once from `--help-query-gpu` and queries only those; when discovery is unavailable it drops
 *   each field the driver rejects (`Field "x" is not a valid field to query.`) and retries.
 *
 * Failures are SourceErrors with a closed reason: missing_binary (ENOENT/EACCES), timeout,
 * exit_status (with nvidia-smi's own words), unparsable, too_large. "No devices were found"
 * is a NoDataError: a machine without a GPU is not an error.
 */
import { SourceError } from '../../errors.js';
import type { GpuGaugeName } from '../../metrics.js';

// ---------------------------------------------------------------------------------------------
// Fields
// ---------------------------------------------------------------------------------------------

/** How a cell is converted to base units. */
type Unit = 'text' | 'integer' | 'mib' | 'percent' | 'mhz' | 'watts' | 'celsius' | 'pstate' | 'enabled' | 'count';

/** Where a parsed cell lands in a GpuReading. */
type FieldKey =
  | 'index'
  | 'uuid'
  | 'name'
  | 'pci_bus_id'
  | 'driver_version'
  | 'mig_enabled'
  | 'power_draw_instant_watts'
  | 'power_requested_limit_watts'
  | Exclude<GpuGaugeName, 'power_limit_watts'>
  | 'enforced_power_limit_watts';

interface FieldSpec {
  readonly key: FieldKey;
  /** Accepted spellings, preferred first (drivers list aliases like "clocks.current.sm" or "clocks.sm"). */
  readonly names: readonly string[];
  readonly unit: Unit;
  /** Without it a row cannot be labelled; always queried, never dropped. */
  readonly required?: boolean;
}

/**
 * The fields we ask for, in order (conventions §6 "recommended fields", the subset the
 * exported metrics use). Both power.draw.instant and power.draw are asked for where supported:
 * the instant reading wins, power.draw is the fallback on drivers before it existed (and on
 * cards that print [N/A] for it). Likewise enforced.power.limit wins over power.limit.
 */
export const GPU_FIELDS: readonly FieldSpec[] = [
  { key: 'index', names: ['index'], unit: 'integer', required: true },
  { key: 'uuid', names: ['uuid', 'gpu_uuid'], unit: 'text', required: true },
  { key: 'name', names: ['name', 'gpu_name'], unit: 'text' },
  { key: 'pci_bus_id', names: ['pci.bus_id', 'gpu_bus_id'], unit: 'text' },
  { key: 'driver_version', names: ['driver_version'], unit: 'text' },
  { key: 'memory_total_bytes', names: ['memory.total'], unit: 'mib' },
  { key: 'memory_used_bytes', names: ['memory.used'], unit: 'mib' },
  { key: 'memory_free_bytes', names: ['memory.free'], unit: 'mib' },
  { key: 'memory_reserved_bytes', names: ['memory.reserved'], unit: 'mib' },
  { key: 'utilization_ratio', names: ['utilization.gpu'], unit: 'percent' },
  { key: 'memory_utilization_ratio', names: ['utilization.memory'], unit: 'percent' },
  { key: 'temperature_celsius', names: ['temperature.gpu'], unit: 'celsius' },
  { key: 'memory_temperature_celsius', names: ['temperature.memory'], unit: 'celsius' },
  { key: 'power_draw_instant_watts', names: ['power.draw.instant', 'gpu.power.draw.instant'], unit: 'watts' },
  { key: 'power_draw_watts', names: ['power.draw'], unit: 'watts' },
  { key: 'power_requested_limit_watts', names: ['power.limit', 'gpu.power.requested_limit'], unit: 'watts' },
  { key: 'enforced_power_limit_watts', names: ['enforced.power.limit', 'gpu.power.current_limit'], unit: 'watts' },
  { key: 'sm_clock_hertz', names: ['clocks.current.sm', 'clocks.sm'], unit: 'mhz' },
  { key: 'memory_clock_hertz', names: ['clocks.current.memory', 'clocks.mem'], unit: 'mhz' },
  { key: 'pstate', names: ['pstate'], unit: 'pstate' },
  { key: 'ecc_uncorrected_volatile_errors', names: ['ecc.errors.uncorrected.volatile.total'], unit: 'count' },
  { key: 'mig_enabled', names: ['mig.mode.current'], unit: 'enabled' },
];

export const SPEC_BY_NAME = new Map<string, FieldSpec>(GPU_FIELDS.flatMap((spec) => spec.names.map((n) => [n, spec] as const)));

/** The compute-apps columns, in this order. `used_gpu_memory` is also accepted as `used_memory`. */
export const COMPUTE_APPS_FIELDS = ['gpu_uuid', 'pid', 'process_name', 'used_gpu_memory'] as const;

export const CSV_FORMAT = '--format=csv,noheader,nounits';

// ---------------------------------------------------------------------------------------------
// Pure parsers
// ---------------------------------------------------------------------------------------------

/**
 * True for every way nvidia-smi says "no value": empty, `N/A`, and any bracketed token such as
 * `[N/A]`, `[Not Supported]`, `[Unknown Error]`, `[Insufficient Permissions]`.
 */
export function isAbsentCell(cell: string): boolean {
  const t = cell.trim();
  return t === '' || /^n\/a$/i.test(t) || /^\[.*\]$/.test(t);
}

const NUMBER = /^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$/;
const NON_FINITE = /^[+-]?(?:inf(?:inity)?|nan)$/i;
/** Unit suffixes tolerated after a number, for output printed without `nounits`. */
const SUFFIX: Partial<Record<Unit, RegExp>> = {
  mib: /\s*MiB$/,
  percent: /\s*%$/,
  mhz: /\s*MHz$/,
  watts: /\s*W$/,
  celsius: /\s*C$/,
};

/** A cell's value in base units; `undefined` means the cell is present but not understood. */
export type CellValue = number | string | boolean | null | undefined;

/**
 * Converts one cell to base units: MiB → bytes, % → ratio 0-1, MHz → hertz, W and °C as is,
 * P0..P15 → 0..15, Enabled/Disabled → true/false. Absent markers and NaN/±Inf → null (no
 * sample). Anything else that does not fit the unit (two numbers, words in a number cell, P16)
 * → undefined, so the caller can log it once and leave the series out rather than guess.
 * Text cells: absent → '' (info labels never carry "[N/A]").
 */
export function parseCell(cell: string, unit: Unit): CellValue {
  const t = cell.trim();
  if (unit === 'text') return isAbsentCell(t) ? '' : t;
  if (isAbsentCell(t)) return null;
  if (unit === 'pstate') {
    const m = /^P(\d{1,2})$/.exec(t);
    return m && Number(m[1]) <= 15 ? Number(m[1]) : undefined;
  }
  if (unit === 'enabled') {
    if (/^(enabled|yes|active|on)$/i.test(t)) return true;
    if (/^(disabled|no|not active|off)$/i.test(t)) return false;
    return undefined;
  }
  const suffix = SUFFIX[unit];
  const bare = suffix ? t.replace(suffix, '') : t;
  if (NON_FINITE.test(bare)) return null;
  let n: number;
  if (/^0x[0-9a-f]+$/i.test(bare)) n = Number.parseInt(bare.slice(2), 16);
  else if (NUMBER.test(bare)) n = Number(bare);
  else return undefined;
  if (!Number.isFinite(n)) return null;
  switch (unit) {
    case 'mib':
      return n * 1048576;
    case 'percent':
      return n / 100;
    case 'mhz':
      return n * 1e6;
    case 'integer':
      return Number.isInteger(n) && n >= 0 ? n : undefined;
    default:
      return n;
  }
}

/**
 * Field names from `nvidia-smi --help-query-gpu`. Only lines made entirely of quoted names
 * joined by "or" count (`"clocks.current.sm" or "clocks.sm"`); explanation lines that start
 * with a quote, like `"0: Default" means …`, do not.
 */
export function parseHelpQueryGpu(text: string): Set<string> {
  const names = new Set<string>();
  const line = /^"[A-Za-z0-9_.]+"(?:\s+or\s+"[A-Za-z0-9_.]+")*$/;
  for (const raw of text.split(/\r?\n/)) {
    const t = raw.trim();
    if (!line.test(t)) continue;
    for (const m of t.matchAll(/"([^"]+)"/g)) names.add(m[1]!);
  }
  return names;
}

/** The field names in nvidia-smi's `Field "x" is not a valid field to query.` messages. */
export function invalidFieldsIn(text: string): string[] {
  return [...text.matchAll(/Field "([^"]+)" is not a valid field to query/g)].map((m) => m[1]!);
}

/** One GPU as read from one query. Values in base units; null = absent (no series). */
export interface GpuReading {
  index: number;
  /** As nvidia-smi prints it, with the `GPU-` prefix (the same form --query-compute-apps uses). */
  uuid: string;
  /** '' when absent. */
  name: string;
  pci_bus_id: string;
  driver_version: string;
  /** mig.mode.current; null when not reported (cards without MIG). */
  mig_enabled: boolean | null;
  values: Record<GpuGaugeName, number | null>;
}

/** A cell that was present but not understood (logged once by the collector, series left out). */
export interface CellProblem {
  gpu: number;
  field: string;
  value: string;
}

export interface ParsedGpuQuery {
  gpus: GpuReading[];
  /** Fields that were queried and came back absent, per GPU. */
  absent: Array<{ gpu: number; field: string }>;
  problems: CellProblem[];
}

const emptyValues = (): Record<GpuGaugeName, number | null> => ({
  memory_total_bytes: null,
  memory_used_bytes: null,
  memory_free_bytes: null,
  memory_reserved_bytes: null,
  utilization_ratio: null,
  memory_utilization_ratio: null,
  power_draw_watts: null,
  power_limit_watts: null,
  temperature_celsius: null,
  memory_temperature_celsius: null,
  sm_clock_hertz: null,
  memory_clock_hertz: null,
  pstate: null,
  ecc_uncorrected_volatile_errors: null,
});

/**
 * Parses `--query-gpu=<fields> --format=csv,noheader,nounits` output. Columns are mapped by
 * the order of `fields` (any spelling in GPU_FIELDS; other names are skipped, which lets the
 * golden tests feed captures made with extra fields). Every line must have exactly
 * `fields.length` columns, and index and uuid must be present: otherwise the whole output is
 * rejected with SourceError('unparsable'), because a shifted column would put the wrong
 * number on the wrong series.
 */
export function parseGpuQuery(text: string, fields: readonly string[]): ParsedGpuQuery {
  const lines = text.split(/\r?\n/).filter((l) => l.trim() !== '');
  const gpus: GpuReading[] = [];
  const absent: ParsedGpuQuery['absent'] = [];
  const problems: CellProblem[] = [];
  const specs = fields.map((f) => SPEC_BY_NAME.get(f));
  lines.forEach((line, lineNo) => {
    const cells = line.split(',');
    if (cells.length !== fields.length) {
      throw new SourceError(
        'unparsable',
        `nvidia-smi output line ${lineNo + 1} has ${cells.length} columns, expected ${fields.length} (${fields.join(',')}): ${JSON.stringify(clip(line, 200))}`,
      );
    }
    const parsed = new Map<FieldKey, CellValue>();
    const raw = new Map<FieldKey, string>();
    specs.forEach((spec, i) => {
      if (!spec) return;
      parsed.set(spec.key, parseCell(cells[i]!, spec.unit));
      raw.set(spec.key, cells[i]!.trim());
    });
    const index = parsed.get('index');
    const uuid = parsed.get('uuid');
    if (typeof index !== 'number' || typeof uuid !== 'string' || uuid === '') {
      throw new SourceError('unparsable', `nvidia-smi output line ${lineNo + 1} has no usable index and uuid: ${JSON.stringify(clip(line, 200))}`);
    }
    const reading: GpuReading = {
      index,
      uuid,
      name: textOf(parsed.get('name')),
      pci_bus_id: textOf(parsed.get('pci_bus_id')),
      driver_version: textOf(parsed.get('driver_version')),
      mig_enabled: null,
      values: emptyValues(),
    };
    specs.forEach((spec, i) => {
      if (!spec || spec.unit === 'text' || spec.required) return;
      const value = parsed.get(spec.key);
      if (value === undefined) problems.push({ gpu: index, field: fields[i]!, value: raw.get(spec.key) ?? '' });
      else if (value === null) absent.push({ gpu: index, field: fields[i]! });
    });
    const num = (key: FieldKey): number | null => {
      const v = parsed.get(key);
      return typeof v === 'number' ? v : null;
    };
    const mig = parsed.get('mig_enabled');
    reading.mig_enabled = typeof mig === 'boolean' ? mig : null;
    for (const name of Object.keys(reading.values) as GpuGaugeName[]) {
      if (name !== 'power_limit_watts') reading.values[name] = num(name);
    }
    // Prefer the instant reading and the enforced limit; fall back per GPU, not per driver.
    reading.values.power_draw_watts = num('power_draw_instant_watts') ?? num('power_draw_watts');
    reading.values.power_limit_watts = num('enforced_power_limit_watts') ?? num('power_requested_limit_watts');
    gpus.push(reading);
  });
  return { gpus, absent, problems };
}

/** One row of `--query-compute-apps`. */
export interface ComputeApp {
  /** The GPU's uuid as printed (`GPU-…`), to join with GpuReading.uuid. */
  gpu_uuid: string;
  pid: number;
  process_name: string;
  /** null when nvidia-smi cannot tell (e.g. `[N/A]` without permission to read it). */
  used_memory_bytes: number | null;
}

/**
 * Parses `--query-compute-apps=gpu_uuid,pid,process_name,used_gpu_memory` in csv,noheader,nounits.
 * A process name may itself contain commas, so uuid and pid are taken from the left and memory
 * from the right; what lies between is the name. No output (or the older "No running processes
 * found" line) is a valid empty list.
 */
export function parseComputeApps(text: string): ComputeApp[] {
  const apps: ComputeApp[] = [];
  for (const [lineNo, line] of text.split(/\r?\n/).entries()) {
    const t = line.trim();
    if (t === '' || /^no running (compute )?processes found$/i.test(t)) continue;
    const cells = t.split(',');
    const pid = cells.length >= 4 ? parseCell(cells[1]!, 'integer') : undefined;
    const memory = cells.length >= 4 ? parseCell(cells[cells.length - 1]!, 'mib') : undefined;
    const uuid = cells[0]!.trim();
    if (typeof pid !== 'number' || memory === undefined || isAbsentCell(uuid)) {
      throw new SourceError('unparsable', `nvidia-smi --query-compute-apps line ${lineNo + 1} is not "uuid, pid, name, MiB": ${JSON.stringify(clip(t, 200))}`);
    }
    apps.push({
      gpu_uuid: uuid,
      pid,
      process_name: cells.slice(2, -1).join(',').trim(),
      used_memory_bytes: typeof memory === 'number' ? memory : null,
    });
  }
  return apps;
}

function textOf(v: CellValue): string {
  return typeof v === 'string' ? v : '';
}

export function clip(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max)}…` : text;
}

/** nvidia-smi's own words for a failure, on one line and bounded (it can print a lot). */
export function firstWords(stderr: string, stdout: string): string {
  const text = (stderr.trim() || stdout.trim()).replace(/\s+/g, ' ');
  return clip(text, 300) || '(no output)';
}
