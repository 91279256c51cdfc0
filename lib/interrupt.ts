/**
 * Interruptions (Ctrl-C, SIGTERM). Pruning, evaluation and training run long synchronous tfjs loops, during which a
 * JavaScript signal handler would not run until the loop ends; so the `llm-prune` command (lib/bin.ts) runs the
 * work in a child process that signals kill at once, and itself stays idle to clean up and report. The child tells
 * it what it is doing through an append-only log (synchronous writes, so nothing is lost when the child dies):
 *   {"partial": PATH}   a staged output folder was created (StagedFolder); {"done": PATH} it was committed or removed
 *   {"keep": PATH, "note": TEXT, "missing": TEXT}   what an interruption keeps (resumable state) and how to go on:
 *                       `note` is said when PATH is then a file or a non-empty folder, `missing` otherwise
 * Without the supervisor (library use, `node dist/lib/cli.js`) the log is off; a later run into the same output
 * removes the `.partial-<pid>` folders of dead processes (removeStaleStaged).
 */
import { appendFileSync, existsSync, readdirSync, readFileSync, rmSync, statSync } from './platform/fs.js';
import { basename, dirname, join, relative, isAbsolute, resolve } from './platform/path.js';
import { platform } from './platform/index.js';

/** Environment variable naming the log file (set by lib/bin.ts for its child). */
export const INTERRUPT_LOG_ENV = 'LLM_PRUNE_INTERRUPT_LOG';

function log(entry: Record<string, string>): void {
  const file = platform().env(INTERRUPT_LOG_ENV);
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

/** Whether a process with this pid is alive on this machine. */
export function processAlive(pid: number): boolean {
  return platform().processAlive(pid);
}

/**
 * Remove `<out>.partial-<pid>` and `<out>.old-<pid>` folders beside `out` left by processes that are no longer
 * alive (a run killed with SIGKILL, a crash, a run without the supervisor). Returns the names removed.
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
    if (pid === platform().processId || processAlive(pid)) continue;
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
  const r = relative(resolve('.'), path);
  return r === '' ? '.' : r.startsWith('..') || isAbsolute(r) ? path : r;
}

/**
 * After the child died of `signal`: remove the staged folders it left, and say in one line what was interrupted,
 * what was removed and what was kept. `what` names the command (e.g. "prune").
 */
export function cleanUpAfter(logFile: string, what: string, signal: string): string {
  let lines: string[] = [];
  try {
    lines = readFileSync(logFile, 'utf8').split('\n').filter(Boolean);
  } catch {
    // no log: the child wrote nothing
  }
  const open = new Set<string>();
  const keep = new Map<string, { note: string; missing: string }>();
  for (const l of lines) {
    let e: Record<string, string>;
    try {
      e = JSON.parse(l) as Record<string, string>;
    } catch {
      continue; // a line cut by the kill
    }
    if (e['partial']) open.add(e['partial']);
    if (e['done']) open.delete(e['done']);
    if (e['keep']) keep.set(e['keep'], { note: e['note'] ?? '', missing: e['missing'] ?? '' });
  }
  const removed: string[] = [];
  for (const p of open) {
    if (!existsSync(p)) continue;
    rmSync(p, { recursive: true, force: true });
    removed.push(shown(p));
  }
  const parts = [`interrupted (${signal}): llm-prune ${what} stopped`];
  parts.push(removed.length ? `removed the partial output ${removed.join(', ')}` : 'no partial output was left');
  for (const [p, k] of keep) parts.push(nonEmpty(p) ? k.note : k.missing);
  return parts.filter(Boolean).join('; ');
}
