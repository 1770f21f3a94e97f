/**
 * Builds per-test fake nvidia-smi executables (fake-nvidia-smi.cjs) and loads the real
 * captures under test/fixtures/nvidia-smi/ that feed them.
 *
 * Each fake lives in its own temp directory (binary + scenario.json + calls.jsonl), so tests
 * running in parallel never share a mode, and the path goes into config.gpu.nvidia_smi_path.
 */
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
export const FIXTURES = join(here, '..', 'fixtures', 'nvidia-smi');

/** A GPU as nvidia-smi prints it with csv,noheader,nounits: cell text by field name. */
export type FakeGpu = Record<string, string>;
export interface FakeApp {
  gpu_uuid: string;
  pid: string;
  process_name: string;
  used_gpu_memory: string;
}
export interface FakeBehaviour {
  hang?: boolean;
  delayMs?: number;
  exitCode?: number;
  stdout?: string;
  stderr?: string;
}
export interface FakeScenario {
  helpText: string;
  gpus: FakeGpu[];
  apps: FakeApp[];
  commands?: Partial<Record<'help' | 'query-gpu' | 'compute-apps', FakeBehaviour>>;
}

export interface FakeCall {
  args: string[];
  pid: number;
  start: number;
  end?: number;
  code?: number;
  hang?: boolean;
}

export interface FakeNvidiaSmi {
  path: string;
  dir: string;
  /** Every invocation so far (finished ones carry `end`). */
  calls(): FakeCall[];
  /** Invocations of one kind: 'help', 'query-gpu', 'compute-apps'. */
  callsOf(kind: 'help' | 'query-gpu' | 'compute-apps'): FakeCall[];
  /** The pid a hanging invocation wrote, once it has. */
  hangPid(): number | undefined;
  /** Changes the scenario for later invocations. */
  update(change: Partial<FakeScenario>): void;
  cleanup(): void;
}

/** Writes a fresh fake for `scenario`; call cleanup() (onTestFinished) when done. */
export function createFakeNvidiaSmi(scenario: FakeScenario): FakeNvidiaSmi {
  const dir = mkdtempSync(join(tmpdir(), 'fake-nvidia-smi-'));
  const path = join(dir, 'nvidia-smi');
  const source = readFileSync(join(here, 'fake-nvidia-smi.cjs'), 'utf8');
  writeFileSync(path, `#!${process.execPath}\n${source}`);
  chmodSync(path, 0o755);
  let current = scenario;
  const save = () => writeFileSync(join(dir, 'scenario.json'), JSON.stringify(current));
  save();
  const calls = (): FakeCall[] => {
    const file = join(dir, 'calls.jsonl');
    if (!existsSync(file)) return [];
    const byStart = new Map<string, FakeCall>();
    for (const line of readFileSync(file, 'utf8').split('\n').filter(Boolean)) {
      const c = JSON.parse(line) as FakeCall;
      const key = `${c.pid}:${c.start}`;
      byStart.set(key, { ...byStart.get(key), ...c });
    }
    return [...byStart.values()];
  };
  const kindOf = (c: FakeCall) => {
    const a = c.args[0] ?? '';
    return a === '--help-query-gpu' ? 'help' : a.startsWith('--query-gpu=') ? 'query-gpu' : a.startsWith('--query-compute-apps=') ? 'compute-apps' : 'other';
  };
  return {
    path,
    dir,
    calls,
    callsOf: (kind) => calls().filter((c) => kindOf(c) === kind),
    hangPid: () => {
      const file = join(dir, 'hang.pid');
      return existsSync(file) ? Number(readFileSync(file, 'utf8')) : undefined;
    },
    update: (change) => {
      current = { ...current, ...change };
      save();
    },
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/**
 * A capture file in the fixtures' format: "## csv" then the header line (names with " [unit]")
 * and lines with units; "## csv,noheader,nounits" then the bare lines; "## compute-apps
 * noheader nounits" after a "## compute-apps" header. Returns the nounits GPU records by field
 * name and the compute apps.
 */
export function loadCapture(file: string): { fields: string[]; gpus: FakeGpu[]; nounits: string; apps: FakeApp[] } {
  const sections = new Map<string, string[]>();
  let current = '';
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (line.startsWith('## ')) {
      current = line.slice(3).trim();
      sections.set(current, []);
    } else if (line.trim() !== '') sections.get(current)?.push(line);
  }
  const header = sections.get('csv')?.[0];
  if (!header) throw new Error(`${file}: no "## csv" section`);
  const fields = header.split(',').map((h) => h.trim().replace(/\s*\[.*\]$/, ''));
  const rows = sections.get('csv,noheader,nounits') ?? [];
  const gpus = rows.map((row) => Object.fromEntries(row.split(',').map((cell, i) => [fields[i]!, cell.trim()])));
  const appHeader = (sections.get('compute-apps')?.[0] ?? '').split(',').map((h) => h.trim().replace(/\s*\[.*\]$/, ''));
  const apps = (sections.get('compute-apps noheader nounits') ?? []).map((row) => {
    const cells = row.split(',').map((c) => c.trim());
    const get = (name: string) => cells[appHeader.indexOf(name)] ?? '';
    return { gpu_uuid: get('gpu_uuid'), pid: get('pid'), process_name: get('process_name'), used_gpu_memory: get('used_gpu_memory') };
  });
  return { fields, gpus, nounits: rows.join('\n'), apps };
}

export const helpText = (capture = 'h100-580') => readFileSync(join(FIXTURES, capture, 'help-query-gpu.txt'), 'utf8');

/** The H100 under load as the fake's default: real cells, plus the real process (pid 407). */
export function h100Scenario(state: 'idle' | 'load' = 'load', capture = 'h100-580'): FakeScenario {
  const { gpus, apps } = loadCapture(join(FIXTURES, capture, `query-${state}.txt`));
  return { helpText: helpText(capture), gpus, apps };
}

/** Help text without the given fields' lines: an older driver that does not know them. */
export function helpWithout(text: string, fields: string[]): string {
  return text
    .split('\n')
    .filter((line) => !fields.some((f) => line.trim().startsWith(`"${f}"`)))
    .join('\n');
}
