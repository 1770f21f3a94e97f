/**
 * Facts about processes on this host from /proc (Linux): one stat parser, the process list, a
 * process's parent, and which process listens on a TCP port. vLLM's processes are found by
 * fact — the process that listens on the target's port and its descendants (EngineCore,
 * workers) — not by a regular expression over command lines.
 */
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { open as openFile } from 'node:fs/promises';
import os from 'node:os';

/** Linux reports utime/stime in clock ticks; USER_HZ is 100 on every mainstream kernel build. */
const CLOCK_TICKS_PER_SECOND = 100;

export interface ProcStat {
  comm: string;
  ppid: number;
  cpuSeconds: number;
}

/** Parses /proc/<pid>/stat. comm (field 2) may hold spaces and parentheses. Pure. */
export function parseProcStat(stat: string): ProcStat | undefined {
  const open = stat.indexOf('(');
  const close = stat.lastIndexOf(')');
  if (open < 0 || close < open) return undefined;
  const fields = stat.slice(close + 2).split(' ');
  const ppid = Number(fields[1]);
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  if (!Number.isFinite(utime) || !Number.isFinite(stime) || !Number.isInteger(ppid)) return undefined;
  return { comm: stat.slice(open + 1, close), ppid, cpuSeconds: (utime + stime) / CLOCK_TICKS_PER_SECOND };
}

/** The aggregate `cpu` line of /proc/stat as busy and total ticks since boot. Pure. */
export function parseCpuTicks(stat: string): { busy: number; total: number } | undefined {
  const line = stat.split('\n', 1)[0] ?? '';
  if (!line.startsWith('cpu ')) return undefined;
  // user nice system idle iowait irq softirq steal; guest and guest_nice are already in user/nice.
  const ticks = line.trim().split(/\s+/).slice(1, 9).map(Number);
  if (ticks.length < 4 || ticks.some((t) => !Number.isFinite(t) || t < 0)) return undefined;
  const total = ticks.reduce((a, b) => a + b, 0);
  return { busy: total - ticks[3]! - (ticks[4] ?? 0), total };
}

/** Memory available to new allocations (bytes) from /proc/meminfo; the kernel's estimate, else free + buffers + cache (kernels before 3.14). Pure. */
export function parseMemAvailable(meminfo: string): number | undefined {
  const kib = (key: string) => {
    const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(meminfo);
    return m ? Number(m[1]) : undefined;
  };
  const available = kib('MemAvailable');
  if (available !== undefined) return available * 1024;
  const parts = ['MemFree', 'Buffers', 'Cached'].map(kib);
  return parts.every((p) => p !== undefined) ? parts.reduce((a, b) => a! + b!, 0)! * 1024 : undefined;
}

/**
 * Reads a /proc file asynchronously, at most `maxBytes` (their stat size is 0, so the usual
 * size check cannot cap them). Throws the fs error (ENOENT where there is no /proc).
 */
export async function readProcFile(path: string, maxBytes = 256 * 1024): Promise<string> {
  const handle = await openFile(path, 'r');
  try {
    const buf = Buffer.alloc(maxBytes);
    let off = 0;
    for (;;) {
      const { bytesRead } = await handle.read(buf, off, maxBytes - off, null);
      if (bytesRead === 0 || off + bytesRead >= maxBytes) return buf.toString('utf8', 0, off + bytesRead);
      off += bytesRead;
    }
  } finally {
    await handle.close();
  }
}

export interface ProcSample {
  pid: number;
  ppid: number;
  comm: string;
  cmdline: string;
  cpuSeconds: number;
  rssBytes: number;
}

export function readProc(pid: number): ProcSample | undefined {
  try {
    const parsed = parseProcStat(readFileSync(`/proc/${pid}/stat`, 'utf8'));
    if (!parsed) return undefined;
    const rss = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean).join(' ');
    return { pid, ...parsed, rssBytes: rss ? Number(rss[1]) * 1024 : 0, cmdline };
  } catch {
    return undefined; // exited between listing and reading
  }
}

export function listProcesses(): ProcSample[] {
  let names: string[];
  try {
    names = readdirSync('/proc');
  } catch {
    return [];
  }
  const out: ProcSample[] = [];
  for (const name of names) {
    if (!/^\d+$/.test(name)) continue;
    const p = readProc(Number(name));
    if (p) out.push(p);
  }
  return out;
}

/** Reads a process's parent pid; undefined when it cannot (process gone, no /proc). */
export type ParentOf = (pid: number) => number | undefined;

export const procParentOf: ParentOf = (pid) => {
  try {
    const ppid = parseProcStat(readFileSync(`/proc/${pid}/stat`, 'utf8'))?.ppid;
    return ppid !== undefined && ppid > 0 ? ppid : undefined;
  } catch {
    return undefined;
  }
};

/** True when pid or one of its ancestors is in `ancestors`; walks at most 64 parents (a loop guard). */
export function isSelfOrDescendant(pid: number, ancestors: ReadonlySet<number>, parentOf: ParentOf): boolean {
  let current: number | undefined = pid;
  for (let depth = 0; current !== undefined && depth < 64; depth++) {
    if (ancestors.has(current)) return true;
    // pid 1 is checked above (vLLM as a container's pid 1 owns everything in it), never walked past.
    if (current <= 1) return false;
    current = parentOf(current);
  }
  return false;
}

/** Inodes of sockets in LISTEN state on `port`, from /proc/net/tcp and tcp6 text. Pure. */
export function listeningInodes(tables: string[], port: number): Set<string> {
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  const out = new Set<string>();
  for (const table of tables) {
    for (const line of table.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      // sl local rem st tx:rx tr:when retrnsmt uid timeout inode
      if (f.length < 10 || f[3] !== '0A') continue;
      if (f[1]!.split(':')[1]?.toUpperCase() === hexPort && f[9] !== '0') out.add(f[9]!);
    }
  }
  return out;
}

export type ListenerLookup =
  | { found: true; pid: number }
  | { found: false; why: string };

/**
 * The process that listens on TCP `port` in this network namespace. Needs /proc/<pid>/fd of
 * that process to be readable (same user, or CAP_SYS_PTRACE); says which fact was missing.
 */
export function processListeningOn(port: number, procRoot = '/proc'): ListenerLookup {
  const key = `${procRoot}:${port}`;
  const known = lastListener.get(key);
  // The descriptor that held the listening socket last time still does: same process, same
  // socket (an inode names one socket while it exists), so nothing else need be read. On a
  // busy host /proc/net/tcp lists every connection, megabytes read every scrape otherwise.
  if (known && readLink(`${procRoot}/${known.pid}/fd/${known.fd}`) === `socket:[${known.inode}]`) return { found: true, pid: known.pid };
  const found = findListener(port, procRoot, known?.pid);
  if (found.found) lastListener.set(key, { pid: found.pid, fd: found.fd, inode: found.inode });
  else lastListener.delete(key);
  return found.found ? { found: true, pid: found.pid } : found;
}

/**
 * Where each port's listening socket was found last (one entry per port looked up): checked
 * first the next time with one readlink, and its process's descriptors read first if it moved.
 */
const lastListener = new Map<string, { pid: number; fd: string; inode: string }>();

const readLink = (path: string): string | undefined => {
  try {
    return readlinkSync(path);
  } catch {
    return undefined;
  }
};

type FoundListener = { found: true; pid: number; fd: string; inode: string } | { found: false; why: string };

/** The listener of `port`; the descriptors of `likely` (the last owner) are read first. */
function findListener(port: number, procRoot: string, likely: number | undefined): FoundListener {
  const tables: string[] = [];
  for (const t of ['tcp', 'tcp6']) {
    try {
      tables.push(readFileSync(`${procRoot}/net/${t}`, 'utf8'));
    } catch {
      /* no IPv6, or no /proc */
    }
  }
  if (tables.length === 0) return { found: false, why: `${procRoot}/net/tcp is not readable (not Linux, or /proc is not mounted)` };
  const inodes = listeningInodes(tables, port);
  if (inodes.size === 0) return { found: false, why: `nothing listens on port ${port} in this network namespace` };
  let unreadable = 0;
  let names: string[] = [];
  try {
    names = readdirSync(procRoot).filter((n) => /^\d+$/.test(n));
  } catch {
    return { found: false, why: `${procRoot} cannot be listed` };
  }
  const last = String(likely);
  if (likely !== undefined && names.includes(last)) names = [last, ...names.filter((n) => n !== last)];
  for (const name of names) {
    let fds: string[];
    try {
      fds = readdirSync(`${procRoot}/${name}/fd`);
    } catch {
      unreadable++;
      continue;
    }
    for (const fd of fds) {
      const m = /^socket:\[(\d+)\]$/.exec(readLink(`${procRoot}/${name}/fd/${fd}`) ?? '');
      if (m && inodes.has(m[1]!)) return { found: true, pid: Number(name), fd, inode: m[1]! };
    }
  }
  return {
    found: false,
    why: unreadable
      ? `port ${port} is open here but its process is not visible: ${unreadable} processes' /proc/PID/fd are unreadable (run as vLLM's user, or add CAP_SYS_PTRACE; in Kubernetes also shareProcessNamespace: true)`
      : `port ${port} is open here but no visible process holds it (another PID namespace: in Kubernetes set shareProcessNamespace: true)`,
  };
}

/** Whether `hostname` (from a URL) names this host: loopback, the unspecified address, or one of its interfaces. */
export function isThisHost(hostname: string): boolean {
  const h = hostname.replace(/^\[|\]$/g, '').toLowerCase();
  if (h === 'localhost' || h === '::1' || h === '0.0.0.0' || h === '::' || /^127\./.test(h)) return true;
  if (h === os.hostname().toLowerCase()) return true;
  return Object.values(os.networkInterfaces()).some((list) => list?.some((a) => a.address.toLowerCase() === h));
}

/** The pid of vLLM's API server behind `targetUrl` when it runs on this host and is visible; else undefined. */
export function serverPidFor(targetUrl: string): number | undefined {
  const url = new URL(targetUrl);
  if (!isThisHost(url.hostname)) return undefined;
  const found = processListeningOn(Number(url.port || (url.protocol === 'https:' ? 443 : 80)));
  return found.found && found.pid !== process.pid ? found.pid : undefined;
}
