/**
 * Which GPU compute processes are vLLM's (config.gpu.process_match).
 *
 * pid_file or pid win over name_pattern (config/vllm-probe.example.yaml says so). A configured
 * pid matches itself and its descendants: vLLM's API server forks the processes that actually
 * hold GPU memory (V1's EngineCore and its workers), so a pid file written by the launcher
 * names a parent of the processes nvidia-smi lists. Descendants are found by walking
 * /proc/<pid>/stat parents; where /proc is not readable only the exact pid matches.
 *
 * PID namespaces: nvidia-smi prints pids of the namespace it runs in. In a container without
 * the host pid namespace it often lists none, or host pids; then use name_pattern.
 */
import { readFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import type { Config } from '../config.js';
import type { ComputeApp } from './nvidia-smi/parse.js';

export type ProcessMatchConfig = Config['gpu']['process_match'];

/** Decides for one collection which compute apps belong to vLLM. */
export interface ProcessMatcher {
  /** In words, for the JSON output and logs: "pid 1234 (from /run/vllm.pid) and its descendants". */
  readonly description: string;
  matches(app: ComputeApp): boolean;
}

/** Reads a process's parent pid; undefined when it cannot (process gone, no /proc). */
export type ParentOf = (pid: number) => number | undefined;

/** Linux: field 4 of /proc/<pid>/stat. The command name (field 2) may hold spaces and parens. */
export const procParentOf: ParentOf = (pid) => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ppid = Number(fields[1]);
    return Number.isInteger(ppid) && ppid > 0 ? ppid : undefined;
  } catch {
    return undefined;
  }
};

/** A matcher, or why none can be built right now (the error goes to JSON and logs; no series). */
export type MatcherResult = { ok: true; matcher: ProcessMatcher } | { ok: false; error: string };

/**
 * Builds the matcher for one collection. The pid file is re-read every time, so a vLLM restart
 * (new pid) is picked up without a reload. Never throws.
 */
export async function buildProcessMatcher(match: ProcessMatchConfig, parentOf: ParentOf = procParentOf): Promise<MatcherResult> {
  if (match.pid_file !== undefined || match.pid !== undefined) {
    const pids = new Set<number>();
    const from: string[] = [];
    if (match.pid !== undefined) {
      pids.add(match.pid);
      from.push(`pid ${match.pid}`);
    }
    if (match.pid_file !== undefined) {
      let text: string;
      try {
        text = await readFile(match.pid_file, 'utf8');
      } catch (err) {
        return { ok: false, error: `cannot read gpu.process_match.pid_file ${match.pid_file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}` };
      }
      const pid = Number(text.trim());
      if (!Number.isInteger(pid) || pid <= 0) {
        return { ok: false, error: `gpu.process_match.pid_file ${match.pid_file} does not hold a pid: ${JSON.stringify(text.trim().slice(0, 40))}` };
      }
      pids.add(pid);
      from.push(`pid ${pid} (from ${match.pid_file})`);
    }
    return {
      ok: true,
      matcher: {
        description: `${from.join(' and ')} and descendants`,
        matches: (app) => isSelfOrDescendant(app.pid, pids, parentOf),
      },
    };
  }
  let pattern: RegExp;
  try {
    pattern = new RegExp(match.name_pattern);
  } catch (err) {
    return { ok: false, error: `gpu.process_match.name_pattern is not a valid regular expression: ${(err as Error).message}` };
  }
  return {
    ok: true,
    matcher: { description: `process name matches /${match.name_pattern}/`, matches: (app) => pattern.test(app.process_name) },
  };
}

/** True when pid or one of its ancestors is in `ancestors`; walks at most 64 parents (a loop guard). */
function isSelfOrDescendant(pid: number, ancestors: Set<number>, parentOf: ParentOf): boolean {
  let current: number | undefined = pid;
  for (let depth = 0; current !== undefined && depth < 64; depth++) {
    if (ancestors.has(current)) return true;
    // pid 1 is checked above (vLLM as a container's pid 1 owns everything in it), never walked past.
    if (current <= 1) return false;
    current = parentOf(current);
  }
  return false;
}
