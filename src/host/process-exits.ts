/**
 * Where the engine watch learns that a followed process exited. Two sources behind one small
 * interface:
 *
 * - `PidfdExits`: one pidfd per process (Linux ≥ 5.3), held by a small helper process that
 *   sleeps in select(2) until one becomes readable, which the kernel does the moment the process
 *   exits (a zombie its parent has not reaped yet included). Nothing wakes while vLLM runs.
 *   Node has no pidfd_open, and a 10 Hz timer in Node costs ~0.2 ms of CPU per wake-up on a
 *   small VM (docs/benchmarks.md, "the engine watch without wake-ups"): half the daemon's CPU at
 *   rest. The helper is perl, which every Debian and Ubuntu system has (perl-base is Essential),
 *   the container image's included.
 * - `PolledExits`: a held /proc/<pid>/stat read every `intervalMs`: where the helper cannot run
 *   (no perl, a kernel without pidfd_open, a seccomp profile that refuses it).
 */
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { closeSync, openSync, readSync } from 'node:fs';
import type { Readable, Writable } from 'node:stream';

export interface ExitSource {
  /** The whole set of pids to follow from now on; an exit is reported once per pid. */
  follow(pids: readonly number[]): void;
  stop(): void;
}

/**
 * Liveness of the followed processes: alive and not a zombie (a killed child its parent has not
 * reaped yet is already dead). Each /proc/<pid>/stat is opened once and read again in place:
 * one pread per process and tick, no open, close or path string. A /proc file held open for a
 * process that exits fails to read (ESRCH), also if its pid is reused meanwhile.
 */
export class ProcessLiveness {
  private readonly fds = new Map<number, number>();
  private readonly buf = Buffer.alloc(1024);

  constructor(private readonly procRoot = '/proc') {}

  alive(pid: number): boolean {
    let fd = this.fds.get(pid);
    if (fd === undefined) {
      try {
        fd = openSync(`${this.procRoot}/${pid}/stat`, 'r');
      } catch {
        return false;
      }
      this.fds.set(pid, fd);
    }
    try {
      const n = readSync(fd, this.buf, 0, this.buf.length, 0);
      const close = this.buf.lastIndexOf(0x29 /* ) */, n - 1);
      const state = close >= 0 ? this.buf[close + 2] : undefined;
      return state !== undefined && state !== 0x5a /* Z */ && state !== 0x58 /* X */;
    } catch {
      return false;
    }
  }

  /** Closes the files of every pid not in `pids`. */
  keepOnly(pids: ReadonlySet<number>): void {
    for (const [pid, fd] of this.fds) {
      if (pids.has(pid)) continue;
      closeSync(fd);
      this.fds.delete(pid);
    }
  }
}

/** Liveness read every `intervalMs` while anything is followed. */
export class PolledExits implements ExitSource {
  private pids: number[] = [];
  private timer: NodeJS.Timeout | undefined;
  private readonly liveness = new ProcessLiveness();
  private readonly alive: (pid: number) => boolean;

  constructor(
    private readonly intervalMs: number,
    private readonly onExit: (pids: readonly number[]) => void,
    alive?: (pid: number) => boolean,
  ) {
    this.alive = alive ?? ((pid) => this.liveness.alive(pid));
  }

  follow(pids: readonly number[]): void {
    this.pids = [...pids];
    this.liveness.keepOnly(new Set(this.pids));
    if (this.pids.length === 0) return this.stop();
    this.timer ??= setInterval(() => this.tick(), this.intervalMs).unref();
  }

  /** One liveness pass (the timer's; tests call it directly). */
  tick(): void {
    const gone = this.pids.filter((pid) => !this.alive(pid));
    if (gone.length === 0) return;
    this.pids = this.pids.filter((pid) => !gone.includes(pid));
    if (this.pids.length === 0) this.stop();
    else this.liveness.keepOnly(new Set(this.pids));
    this.onExit(gone);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.liveness.keepOnly(new Set()); // reopened on demand if followed again
  }
}

/**
 * The helper. Input: lines, each the whole set of pids to follow. Output: `exit PID` when a
 * followed process has exited (or was gone already), `unsupported ERRNO` before it gives up
 * (pidfd_open refused: ENOSYS on kernels before 5.3, EPERM under some seccomp profiles), or
 * `unsupported fdopen` / `unsupported select` where perl itself fails at the pidfd. End of
 * input (the daemon closed the pipe, or died) ends it. 434 is pidfd_open on every Linux
 * architecture (the syscall table is shared from 424 on); 3 is ESRCH, 4 EINTR.
 */
export const PIDFD_HELPER = String.raw`
$| = 1;
my (%fh, %fd);
my $in = '';
sub drop { my $p = shift; close($fh{$p}); delete $fh{$p}; delete $fd{$p} }
sub follow {
  my %want = map { $_ => 1 } grep { /^[1-9][0-9]{0,9}$/ } @_;
  drop($_) for grep { !$want{$_} } keys %fh;
  for my $p (keys %want) {
    next if $fh{$p};
    my $n = syscall(434, $p + 0, 0);
    if ($n < 0) {
      my $e = $! + 0;
      if ($e == 3) { print "exit $p\n"; next }
      print "unsupported $e\n"; exit 3;
    }
    open(my $h, '<&=', $n) or do { print "unsupported fdopen\n"; exit 3 };
    $fh{$p} = $h; $fd{$p} = $n;
  }
}
while (1) {
  my $r = ''; vec($r, 0, 1) = 1; vec($r, $fd{$_}, 1) = 1 for keys %fd;
  if (select($r, undef, undef, undef) < 0) { next if $! == 4; print "unsupported select\n"; exit 3 }
  for my $p (keys %fd) { if (vec($r, $fd{$p}, 1)) { print "exit $p\n"; drop($p) } }
  if (vec($r, 0, 1)) {
    my $got = sysread(STDIN, my $buf, 4096);
    exit 0 unless $got;
    $in .= $buf;
    exit 4 if length($in) > 65536;
    follow(split ' ', $1) while $in =~ s/^([^\n]*)\n//;
  }
}
`;

/** The longest line the helper writes is `unsupported ` and an errno; anything longer is not it. */
const MAX_HELPER_LINE = 64;
/** Kept of the helper's stderr for the reason it gave up: perl's own message is one line. */
const MAX_HELPER_STDERR = 512;

/**
 * Pidfds held by the helper. `onUnavailable` is called once, with the reason, when the helper
 * cannot run or gives up; the caller then follows with `PolledExits`. The helper is started on
 * the first non-empty `follow` (a central daemon that sees no vLLM process starts none) and ends
 * with `stop()`, or by itself when this process exits and its pipe closes.
 */
export class PidfdExits implements ExitSource {
  private helper: ChildProcessByStdio<Writable, Readable, Readable> | undefined;
  private gaveUp = false;
  private following = new Set<number>();
  /** The set last written, so that a scrape that finds the same processes wakes no one. */
  private written = '';

  constructor(
    private readonly onExit: (pids: readonly number[]) => void,
    private readonly onUnavailable: (reason: string) => void,
    private readonly perl = 'perl',
  ) {}

  follow(pids: readonly number[]): void {
    if (this.gaveUp) return;
    this.following = new Set(pids);
    if (!this.helper && pids.length === 0) return;
    const line = `${[...this.following].sort((a, b) => a - b).join(' ')}\n`;
    if (!this.helper) {
      this.helper = this.start();
      this.written = '';
    }
    if (line === this.written) return;
    this.written = line;
    this.helper.stdin.write(line);
  }

  stop(): void {
    const helper = this.helper;
    this.helper = undefined;
    helper?.stdin.end(); // the helper sees the end of its input and exits
  }

  private start(): ChildProcessByStdio<Writable, Readable, Readable> {
    // Only PATH: the daemon's environment may hold vLLM's API key, and the helper needs nothing.
    const helper = spawn(this.perl, ['-e', PIDFD_HELPER], { stdio: ['pipe', 'pipe', 'pipe'], env: { PATH: process.env.PATH ?? '/usr/bin:/bin' } });
    let line = '';
    let stderr = '';
    helper.stdout.setEncoding('latin1');
    helper.stdout.on('data', (chunk: string) => {
      if (this.helper !== helper) return; // stopped: its last words are of no interest
      line += chunk;
      let end: number;
      while ((end = line.indexOf('\n')) >= 0) {
        this.heard(line.slice(0, end));
        line = line.slice(end + 1);
      }
      if (line.length > MAX_HELPER_LINE) this.giveUp('the helper wrote something else than its lines');
    });
    helper.stderr.setEncoding('latin1');
    helper.stderr.on('data', (chunk: string) => {
      if (stderr.length < MAX_HELPER_STDERR) stderr = (stderr + chunk).slice(0, MAX_HELPER_STDERR);
    });
    helper.stdin.on('error', () => {}); // a helper gone early: its exit says why
    helper.on('error', (err) => {
      if (this.helper === helper) this.giveUp(`cannot start ${this.perl}: ${err.message}`);
    });
    // 'close', not 'exit': by then its stderr has been read, so the reason can quote it.
    helper.on('close', (code, signal) => {
      if (this.helper !== helper) return; // stopped, or already given up
      this.giveUp(`the helper exited (${signal ?? `status ${code}`})${stderr ? `: ${stderr.trim().split('\n')[0]}` : ''}`);
    });
    // The watch must not keep a finishing daemon (or a test) alive on its own.
    helper.unref();
    for (const stream of [helper.stdin, helper.stdout, helper.stderr]) (stream as unknown as { unref?: () => void }).unref?.();
    return helper;
  }

  private heard(line: string): void {
    if (this.gaveUp) return;
    const exited = /^exit (\d+)$/.exec(line);
    if (exited) {
      const pid = Number(exited[1]);
      if (!this.following.delete(pid)) return; // no longer followed
      // The helper has dropped it: the same set again must be written again.
      this.written = '';
      this.onExit([pid]);
      return;
    }
    const refused = /^unsupported (?:(\d+)|(fdopen|select))$/.exec(line);
    if (refused?.[1]) this.giveUp(`pidfd_open failed (errno ${refused[1]})`);
    else if (refused?.[2]) this.giveUp(`the helper's ${refused[2]} failed`);
    else this.giveUp('the helper wrote something else than its lines');
  }

  private giveUp(reason: string): void {
    if (this.gaveUp) return;
    const helper = this.helper;
    this.gaveUp = true;
    this.helper = undefined;
    helper?.kill();
    this.onUnavailable(reason);
  }
}
