/** What the CLI writes: progress and notes on stderr (one reporter for the process), results as JSON on stdout. */
import { createProgress, type ProgressReporter } from '../progress.js';

export const progress: ProgressReporter = createProgress();

/** A result on stdout, as indented JSON. */
export function print(value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, 2) + '\n');
}

/** Warn (stderr) about each of `flags` that the user typed although it has no effect: `why` says why. */
export function warnIgnored(args: string[], flags: string[], why: string): void {
  const given = flags.filter((f) => args.some((a) => a === f || a.startsWith(`${f}=`)));
  if (given.length) progress.note(`warning: ${given.join(', ')} ${given.length > 1 ? 'are' : 'is'} ignored: ${why}`);
}
