/**
 * Which processes are vLLM's (config.gpu.process_match), for the GPU collector's per-process
 * memory and the /proc process collector.
 *
 * In order: pid_file or pid (and their descendants: vLLM's API server forks the processes that
 * hold GPU memory, V1's EngineCore and its workers); else name_pattern when one is configured,
 * matched against the process *name* only (never the whole command line: `python` would match
 * every Python program on the host); else by fact: the process that listens on the target's
 * port, and its descendants. When none applies the answer says why, in words.
 *
 * PID namespaces: nvidia-smi prints pids of the namespace it runs in. In a container without
 * the host pid namespace it often lists none, or host pids; then use name_pattern.
 */
import { readFile } from 'node:fs/promises';
import type { Config } from '../config.js';
import { isSelfOrDescendant, isThisHost, procParentOf, processListeningOn, type ListenerLookup, type ParentOf } from './proc.js';

export type ProcessMatchConfig = Config['gpu']['process_match'];
export type { ParentOf };
export { procParentOf };

/** What a matcher looks at: nvidia-smi's compute app, or a /proc process with its comm as name. */
export interface NamedProcess {
  pid: number;
  process_name: string;
}

/** Decides for one collection which processes belong to vLLM. */
export interface ProcessMatcher {
  /** In words, for the JSON output and logs: "pid 1234 (from /run/vllm.pid) and its descendants". */
  readonly description: string;
  matches(process: NamedProcess): boolean;
}

export interface MatcherOptions {
  parentOf?: ParentOf;
  /** The vLLM base URL: its port finds the server process when it runs on this host. */
  targetUrl?: string;
  listener?: (port: number) => ListenerLookup;
}

const baseName = (name: string) => name.split('/').pop() ?? name;

/**
 * A matcher, or why none can be built right now (the error goes to JSON and logs; no series).
 * `self` marks the case where the target port is served by this very process (the demo's
 * built-in emulator): nothing to match, and nothing wrong.
 */
export type MatcherResult = { ok: true; matcher: ProcessMatcher } | { ok: false; error: string; self?: boolean };

/**
 * Builds the matcher for one collection. The pid file is re-read every time, so a vLLM restart
 * (new pid) is picked up without a reload. Never throws.
 */
export async function buildProcessMatcher(match: ProcessMatchConfig, options: MatcherOptions = {}): Promise<MatcherResult> {
  const parentOf = options.parentOf ?? procParentOf;
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
  if (match.name_pattern !== undefined) {
    let pattern: RegExp;
    try {
      pattern = new RegExp(match.name_pattern);
    } catch (err) {
      return { ok: false, error: `gpu.process_match.name_pattern is not a valid regular expression: ${(err as Error).message}` };
    }
    return {
      ok: true,
      matcher: { description: `process name matches /${match.name_pattern}/`, matches: (app) => pattern.test(baseName(app.process_name)) },
    };
  }
  return matchByListener(options, parentOf);
}

/** The process listening on the target's port, and its descendants. */
function matchByListener(options: MatcherOptions, parentOf: ParentOf): MatcherResult {
  if (!options.targetUrl) return { ok: false, error: 'no target URL to find vLLM by (set gpu.process_match.pid_file, pid or name_pattern)' };
  const url = new URL(options.targetUrl);
  const port = Number(url.port || (url.protocol === 'https:' ? 443 : 80));
  if (!isThisHost(url.hostname)) {
    return { ok: false, error: `vLLM at ${url.host} runs on another host: its processes are not visible from here (set gpu.process_match when it shares this host's PID namespace)` };
  }
  const found = (options.listener ?? processListeningOn)(port);
  if (!found.found) return { ok: false, error: found.why };
  if (found.pid === process.pid) return { ok: false, self: true, error: `port ${port} is served by this vllm-probe process (the built-in emulator), not by a vLLM process` };
  const root = new Set([found.pid]);
  return {
    ok: true,
    matcher: { description: `pid ${found.pid} (listening on port ${port}) and descendants`, matches: (app) => isSelfOrDescendant(app.pid, root, parentOf) },
  };
}

/**
 * vLLM processes started for `port` that do not listen yet (loading weights, profiling memory):
 * a command line that runs vLLM and names the port (vLLM's default, 8000, needs no flag), and
 * their descendants. vLLM opens its port only when ready, so the listener cannot find them.
 */
export function startingVllm(procs: ReadonlyArray<{ pid: number; ppid: number; cmdline: string }>, port: number): number[] {
  const portFlag = new RegExp(`--port(=|\\s+)${port}(\\s|$)`);
  const roots = new Set(
    procs
      .filter((p) => p.pid !== process.pid && /\bvllm\b/.test(p.cmdline) && /\b(serve|api_server)\b/.test(p.cmdline) && (portFlag.test(p.cmdline) || (port === 8000 && !/--port\b/.test(p.cmdline))))
      .map((p) => p.pid),
  );
  const parent = new Map(procs.map((p) => [p.pid, p.ppid]));
  return procs.filter((p) => isSelfOrDescendant(p.pid, roots, (pid) => parent.get(pid))).map((p) => p.pid);
}
