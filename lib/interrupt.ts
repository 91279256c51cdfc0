/**
 * Interruptions (Ctrl-C, SIGTERM). Pruning, evaluation and training run long synchronous tfjs loops, during which a
 * JavaScript signal handler would not run until the loop ends; so the `llm-prune` command (lib/bin.ts) runs the
 * work in a child process that signals kill at once, and itself stays idle to clean up and report. The child tells
 * it what it is doing through an append-only log (synchronous writes, so nothing is lost when the child dies):
 *   {"partial": PATH}   a staged output folder was created (StagedFolder); {"done": PATH} it was committed or removed
 *   {"keep": PATH, "note": TEXT, "missing": TEXT}   what an interruption keeps (resumable state) and how to go on:
 *                       `note` is said when PATH is then a file or a non-empty folder, `missing` otherwise
 *   {"lock": PATH, "pid": PID} / {"unlock": PATH}   an output lock taken / released (lib/output-lock.ts): the
 *                       supervisor removes a lock its dead child still held
 *   {"made": PATH}      a folder the work created: removed after an interruption when it is (still) empty
 * Without the supervisor (library use, `node dist/lib/cli.js`) the log is off; a later run into the same output
 * removes the `.partial-<pid>` folders of dead processes (removeStaleStaged).
 */
import { appendFileSync, existsSync, readdirSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { basename, dirname, join, relative, isAbsolute } from 'node:path';

/** Environment variable naming the log file (set by lib/bin.ts for its child). */
export const INTERRUPT_LOG_ENV = 'LLM_PRUNE_INTERRUPT_LOG';

function log(entry: Record<string, string>): void {
  const file = process.env[INTERRUPT_LOG_ENV];
  if (!file) return;
  try {
    appendFileSync(file, JSON.stringify(entry) + '\n');
  } catch {
    // the supervisor's bookkeeping only; never fail the work for it
  }
}

/** A staged folder exists at `path` until `stagedDone(path)`. */
export function stagedStarted(path: string): void {
  log({ partial: path });
}

export function stagedDone(path: string): void {
  log({ done: path });
}

/** What an interruption keeps: `note` when `path` exists then, `missing` otherwise. */
export function keepOnInterrupt(path: string, note: string, missing: string): void {
  log({ keep: path, note, missing });
}

/** An output lock was taken (`pid` in it) or released. */
export function lockTaken(path: string): void {
  log({ lock: path, pid: String(process.pid) });
}

export function lockReleased(path: string): void {
  log({ unlock: path });
}

/** The work created folder `path`: an interruption removes it when it is empty then. */
export function folderMade(path: string): void {
  log({ made: path });
}

/** Whether a process with this pid is alive on this machine. */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Remove `<out>.partial-<pid>` and `<out>.old-<pid>` folders beside `out` left by processes that are no longer
 * alive (a run killed with SIGKILL, a crash, a run without the supervisor). An `<out>.old-<pid>` is an older `out`
 * that a run killed inside StagedFolder.commit had moved aside: when `out` is absent it is put back instead.
 * Returns the names removed (and "NAME (put back as OUT)" for a restored one).
 */
export function removeStaleStaged(out: string): string[] {
  const dir = dirname(out);
  if (!existsSync(dir)) return [];
  const prefix = basename(out);
  const removed: string[] = [];
  for (const name of readdirSync(dir).sort()) {
    const m = /^(.*)\.(partial|old)-(\d+)$/.exec(name);
    if (!m || m[1] !== prefix) continue;
    const pid = Number(m[3]);
    if (pid === process.pid || processAlive(pid)) continue;
    if (m[2] === 'old' && !existsSync(out)) {
      renameSync(join(dir, name), out);
      removed.push(`${name} (put back as ${prefix})`);
      continue;
    }
    rmSync(join(dir, name), { recursive: true, force: true });
    removed.push(name);
  }
  return removed;
}

function nonEmpty(p: string): boolean {
  try {
    return statSync(p).isFile() || readdirSync(p).length > 0;
  } catch {
    return false;
  }
}

/** A path as the user would write it: relative to the working directory when inside it. */
export function shown(path: string): string {
  const r = relative(process.cwd(), path);
  return r === '' ? '.' : r.startsWith('..') || isAbsolute(r) ? path : r;
}

interface InterruptLog {
  open: Set<string>; // staged folders not committed or removed
  keep: Map<string, { note: string; missing: string }>;
  locks: Map<string, string>; // lock file -> pid of the holder that logged it
  made: string[]; // folders created, in order
}

function readLog(logFile: string): InterruptLog {
  let lines: string[] = [];
  try {
    lines = readFileSync(logFile, 'utf8').split('\n').filter(Boolean);
  } catch {
    // no log: the child wrote nothing
  }
  const l: InterruptLog = { open: new Set(), keep: new Map(), locks: new Map(), made: [] };
  for (const line of lines) {
    let e: Record<string, string>;
    try {
      e = JSON.parse(line) as Record<string, string>;
    } catch {
      continue; // a line cut by the kill
    }
    if (e['partial']) l.open.add(e['partial']);
    if (e['done']) l.open.delete(e['done']);
    if (e['keep']) l.keep.set(e['keep'], { note: e['note'] ?? '', missing: e['missing'] ?? '' });
    if (e['lock']) l.locks.set(e['lock'], e['pid'] ?? '');
    if (e['unlock']) l.locks.delete(e['unlock']);
    if (e['made']) l.made.push(e['made']);
  }
  return l;
}

/** Remove the locks the dead child still held (those whose file still names it) and the empty folders it made. */
function removeLeftovers(l: InterruptLog): void {
  for (const [file, pid] of l.locks) {
    try {
      if ((JSON.parse(readFileSync(file, 'utf8')) as { pid?: number }).pid === Number(pid)) rmSync(file, { force: true });
    } catch {
      // gone, or not a lock of this package: leave it
    }
  }
  for (const dir of [...l.made].reverse()) {
    try {
      if (readdirSync(dir).length === 0) rmSync(dir, { recursive: true, force: true });
    } catch {
      // gone already
    }
  }
}

/**
 * After the child died of `signal`: remove the staged folders, locks and empty folders it left, and say in one line
 * what was interrupted, what was removed and what was kept. `what` names the command (e.g. "prune").
 */
export function cleanUpAfter(logFile: string, what: string, signal: string): string {
  const l = readLog(logFile);
  const removed: string[] = [];
  for (const p of l.open) {
    if (!existsSync(p)) continue;
    rmSync(p, { recursive: true, force: true });
    removed.push(shown(p));
  }
  removeLeftovers(l);
  const kept = [...l.keep].filter(([p]) => nonEmpty(p));
  const parts = [`interrupted (${signal}): llm-prune ${what} stopped`];
  if (removed.length) parts.push(`removed the partial output ${removed.join(', ')}`);
  else if (kept.length === 0) parts.push('no partial output was left');
  for (const [p, k] of l.keep) parts.push(nonEmpty(p) ? k.note : k.missing);
  return parts.filter(Boolean).join('; ');
}
