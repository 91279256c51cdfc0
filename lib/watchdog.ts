/**
 * The worker dies with its supervisor. `llm-prune` (lib/bin.ts) runs the commands that write in a child process and
 * tells it its own pid in SUPERVISOR_ENV. The child watches, from a background thread (so also while its main
 * thread is inside a long synchronous tfjs computation), whether its parent is still that process; when the parent
 * is gone for any reason (SIGKILL included: the child is then re-parented), it kills itself at once with SIGKILL.
 * What it leaves is what any kill leaves: a resume state written atomically at block boundaries, or a
 * `.partial-<pid>` folder that the next run into the same output removes, and a lock whose holder is gone.
 */
import { Worker } from 'node:worker_threads';

/** Environment variable with the supervisor's pid (set by lib/bin.ts for its child). */
export const SUPERVISOR_ENV = 'LLM_PRUNE_SUPERVISOR_PID';

/** How often the watchdog looks at the parent. */
export const WATCH_MS = 100;

let watched: number | null = null;

/** The supervisor this process watches (recorded in its output locks), or null. */
export function supervisorPid(): number | null {
  return watched;
}

/**
 * Start the watchdog for `supervisor`, the pid given in SUPERVISOR_ENV (the CLI reads it; a no-op without one).
 * A process whose supervisor is already gone ends at once.
 */
export function watchSupervisor(value: string | undefined): void {
  const supervisor = Number(value);
  if (value === undefined || !Number.isSafeInteger(supervisor) || supervisor <= 0 || watched !== null) return;
  if (process.ppid !== supervisor) process.kill(process.pid, 'SIGKILL');
  watched = supervisor;
  const w = new Worker(
    `const supervisor = ${supervisor};
     setInterval(() => { if (process.ppid !== supervisor) process.kill(process.pid, 'SIGKILL'); }, ${WATCH_MS});`,
    { eval: true },
  );
  w.unref();
  w.on('error', () => undefined);
}
