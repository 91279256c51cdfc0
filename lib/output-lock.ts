/**
 * One writer per output. Every command that writes an output (prune, convert, finetune, eval --out, run) holds
 * `<output>.lock` (or a lock file inside an experiment folder) while it works, so a second process never writes the
 * same folder: it is refused with one line naming the holder.
 *
 * The lock file is created atomically (written under a temporary name, then hard-linked to its name, which fails
 * when the name exists; `open(O_EXCL)` where hard links are not available) and holds JSON:
 *   {"pid", "host", "started" (ISO time), "procStart" (the kernel's start time of the process, Linux), "supervisor"
 *    (pid of the `llm-prune` process that started this one, if any), "command"}.
 * A lock is taken over when its holder is gone:
 *   - same host: the pid is not running, or runs another process (procStart differs: the pid was reused);
 *   - same host, holder alive but its supervisor gone (an orphan of a killed `llm-prune`, which stops itself within
 *     a fraction of a second, lib/watchdog.ts): wait up to ORPHAN_WAIT_MS for it to die, then take over;
 *   - another host (a shared filesystem): the holder refreshes the lock file's modification time every
 *     HEARTBEAT_MS from a background thread, so a lock not refreshed for STALE_MS is stale. This assumes the hosts'
 *     clocks agree within minutes (NTP).
 * `forceUnlock` takes over any lock (for a holder known to be gone that the rules above cannot see).
 *
 * On NFS (v3 and later) hard-link creation is atomic on the server, so two hosts never both create the lock; the
 * take-over of a stale lock renames it first and checks that what it renamed is the lock it judged stale.
 */
import { closeSync, fsyncSync, linkSync, openSync, readFileSync, renameSync, rmSync, statSync, utimesSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import { Worker } from 'node:worker_threads';
import { OutputLockedError } from './errors.js';
import { lockReleased, lockTaken, processAlive, shown } from './interrupt.js';
import { supervisorPid } from './watchdog.js';

/** How often a holder refreshes its lock file's modification time. */
export const HEARTBEAT_MS = 30_000;
/** A lock of another host not refreshed for this long is stale. */
export const STALE_MS = 10 * 60_000;
/** How long to wait for an orphaned holder (its supervisor is gone) to stop. */
export const ORPHAN_WAIT_MS = 5_000;

/** What a lock file says about its holder. */
export interface LockHolder {
  pid: number;
  host: string;
  started: string;
  procStart: string | null;
  supervisor: number | null;
  command: string;
}

export interface LockOptions {
  /** What the holder is doing, said to a refused second process (e.g. "llm-prune prune"). */
  command?: string;
  /** Take over the lock even when its holder looks alive. */
  forceUnlock?: boolean;
  /** Hears a line when a stale or forced lock is taken over. */
  onNote?: (line: string) => void;
  /** How the caller names the force option in messages (default `--force-unlock`). */
  forceOption?: string;
  /** The output the lock guards, as messages name it (default: the lock file without `.lock`). */
  output?: string;
}

const held = new Map<string, { content: string; count: number }>();
let heartbeat: Worker | null = null;

/** The kernel's start time of a process (field 22 of /proc/PID/stat), or null where there is no /proc. */
export function processStartTime(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? null;
  } catch {
    return null;
  }
}

function myHolder(command: string): LockHolder {
  return {
    pid: process.pid,
    host: hostname(),
    started: new Date().toISOString(),
    procStart: processStartTime(process.pid),
    supervisor: supervisorPid(),
    command,
  };
}

/** Create `file` with `content` atomically; false when it exists. */
function create(file: string, content: string): boolean {
  const tmp = `${file}.tmp-${process.pid}`;
  try {
    const fd = openSync(tmp, 'w');
    try {
      writeSync(fd, content);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    try {
      linkSync(tmp, file);
      return true;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'EEXIST') return false;
      if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'ENOSYS') throw e;
    }
    return createExclusive(file, content); // no hard links on this filesystem
  } finally {
    rmSync(tmp, { force: true });
  }
}

function createExclusive(file: string, content: string): boolean {
  let fd: number;
  try {
    fd = openSync(file, 'wx');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw e;
  }
  try {
    writeSync(fd, content);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  return true;
}

function readRaw(file: string): string | null {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return null;
  }
}

/** The holder a lock file names, or null when the content is not a lock's. */
export function parseHolder(raw: string): LockHolder | null {
  const legacy = /^(\d+) (\S+)\n?$/.exec(raw); // "PID HOST", the experiment lock of earlier versions
  if (legacy) return { pid: Number(legacy[1]), host: legacy[2]!, started: '?', procStart: null, supervisor: null, command: 'llm-prune run' };
  try {
    const h = JSON.parse(raw) as Partial<LockHolder>;
    if (typeof h.pid !== 'number' || typeof h.host !== 'string') return null;
    return {
      pid: h.pid,
      host: h.host,
      started: String(h.started ?? '?'),
      procStart: h.procStart ?? null,
      supervisor: h.supervisor ?? null,
      command: String(h.command ?? 'llm-prune'),
    };
  } catch {
    return null;
  }
}

type Judgement = 'live' | 'orphan' | 'stale';

/** Whether a lock's holder still works (see the rules at the top of this file). */
export function judge(h: LockHolder | null, file: string): Judgement {
  const age = (): number => {
    try {
      return Date.now() - statSync(file).mtimeMs;
    } catch {
      return Infinity;
    }
  };
  if (h === null) return age() > STALE_MS ? 'stale' : 'live'; // unreadable: being written by a non-atomic creator
  if (h.host !== hostname()) return age() > STALE_MS ? 'stale' : 'live';
  if (!processAlive(h.pid)) return 'stale';
  if (h.procStart !== null) {
    const now = processStartTime(h.pid);
    if (now !== null && now !== h.procStart) return 'stale'; // the pid now belongs to another process
  }
  if (h.supervisor !== null && !processAlive(h.supervisor)) return 'orphan';
  return 'live';
}

/** One line naming the holder of a lock. */
export function describeHolder(h: LockHolder | null, file: string): string {
  if (h === null) return `${shown(file)} exists but is not a lock file of this package`;
  return `${h.command} (process ${h.pid} on ${h.host}, started ${h.started})`;
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** Wait for an orphaned holder to stop; true when it did. */
function waitForOrphan(h: LockHolder): boolean {
  const end = Date.now() + ORPHAN_WAIT_MS;
  while (Date.now() < end) {
    if (!processAlive(h.pid)) return true;
    sleepSync(50);
  }
  return !processAlive(h.pid);
}

/**
 * Remove the lock file that held `raw`. It is renamed first, so that of two processes taking over the same stale
 * lock only one removes it; a lock that is no longer `raw` (another process took over first) is put back.
 */
function takeOver(file: string, raw: string): void {
  const aside = `${file}.stale-${process.pid}`;
  try {
    renameSync(file, aside);
  } catch {
    return; // gone already
  }
  if (readRaw(aside) !== raw) {
    try {
      linkSync(aside, file); // someone else's fresh lock: put it back (fails if a third process made one since)
    } catch {
      // the name is taken again: that lock stands
    }
  }
  rmSync(aside, { force: true });
}

/** A held lock: `release()` removes the file (once every acquire of this process on it was released). */
export interface OutputLock {
  readonly file: string;
  release(): void;
}

/** Take the lock file `file` for this process (see the top of this file); throws OutputLockedError when held. */
export function acquireOutputLock(file: string, options: LockOptions = {}): OutputLock {
  const mine = held.get(file);
  if (mine) {
    mine.count++;
    return handle(file);
  }
  const content = JSON.stringify(myHolder(options.command ?? 'llm-prune')) + '\n';
  for (let attempt = 0; attempt < 5; attempt++) {
    if (create(file, content)) {
      held.set(file, { content, count: 1 });
      lockTaken(file);
      startHeartbeat(file);
      return handle(file);
    }
    const raw = readRaw(file);
    if (raw === null) continue; // removed meanwhile: try again
    const h = parseHolder(raw);
    let verdict = judge(h, file);
    if (verdict === 'orphan') verdict = waitForOrphan(h!) ? 'stale' : 'live';
    if (verdict === 'live' && !options.forceUnlock) {
      const force = options.forceOption ?? '--force-unlock';
      const output = options.output ?? file.replace(/\.lock$/, '');
      throw new OutputLockedError(
        `${shown(output)} is being written by ${describeHolder(h, file)}; wait for it to finish, or pass ${force} ` +
          `if that process is gone (lock file ${shown(file)})`,
      );
    }
    options.onNote?.(`took over ${shown(file)} from ${describeHolder(h, file)}: ${verdict === 'live' ? `forced (${options.forceOption ?? '--force-unlock'})` : 'its process is gone'}`);
    takeOver(file, raw);
  }
  throw new OutputLockedError(`${shown(file)}: could not take the lock (other processes keep taking it)`);
}

function handle(file: string): OutputLock {
  let released = false;
  return {
    file,
    release(): void {
      if (released) return;
      released = true;
      releaseLockFile(file);
    },
  };
}

function releaseLockFile(file: string): void {
  const mine = held.get(file);
  if (!mine) return;
  if (--mine.count > 0) return;
  held.delete(file);
  heartbeat?.postMessage({ remove: file });
  if (readRaw(file) === mine.content) rmSync(file, { force: true });
  lockReleased(file);
}

/** Remove every lock this process holds (at exit: a process that ends normally leaves no lock behind). */
export function releaseAllLocks(): void {
  for (const [file, mine] of held) if (readRaw(file) === mine.content) rmSync(file, { force: true });
  held.clear();
}

process.on('exit', releaseAllLocks);

/**
 * The heartbeat: a background thread touches every held lock file each HEARTBEAT_MS, also while the main thread is
 * busy in a long synchronous computation. It never keeps the process alive.
 */
function startHeartbeat(file: string): void {
  if (!heartbeat) {
    heartbeat = new Worker(
      `const { parentPort } = require('node:worker_threads'); const { utimesSync } = require('node:fs');
       const files = new Set();
       parentPort.on('message', (m) => { if (m.add) files.add(m.add); if (m.remove) files.delete(m.remove); });
       setInterval(() => { const t = new Date(); for (const f of files) { try { utimesSync(f, t, t); } catch {} } }, ${HEARTBEAT_MS});`,
      { eval: true },
    );
    heartbeat.unref();
    heartbeat.on('error', () => undefined);
  }
  heartbeat.postMessage({ add: file });
  try {
    const t = new Date();
    utimesSync(file, t, t);
  } catch {
    // the heartbeat's first beat; the next one retries
  }
}
