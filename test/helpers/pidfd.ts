import { readdirSync, readFileSync, readlinkSync } from 'node:fs';

/** The processes holding a pidfd for `pid` (its fdinfo names the pid), from this host's /proc. */
export function pidfdHolders(pid: number): number[] {
  const holders: number[] = [];
  for (const proc of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      for (const fd of readdirSync(`/proc/${proc}/fd`)) {
        if (readlinkSync(`/proc/${proc}/fd/${fd}`) !== 'anon_inode:[pidfd]') continue;
        if (new RegExp(`^Pid:\\s+${pid}$`, 'm').test(readFileSync(`/proc/${proc}/fdinfo/${fd}`, 'utf8'))) holders.push(Number(proc));
      }
    } catch {
      // a process that exited meanwhile, or one we may not look into
    }
  }
  return holders;
}
