/** Running an experiment from the CLI (`run` and `demo`): the plan with --dry-run, else the run, kept on interrupt. */
import { join } from 'node:path';
import { formatPlan, planExperiment } from '../experiment/plan.js';
import { runExperiment } from '../experiment/run.js';
import type { Experiment } from '../experiment/schema.js';
import type { Shard } from '../experiment/shard.js';
import { keepOnInterrupt, shown } from '../interrupt.js';
import { fromEnv, type Env } from './env.js';
import { print, progress } from './output.js';

/** --threads, when given, overrides the experiment file's `threads:`. */
export function withThreads(exp: Experiment, threads: number | undefined): Experiment {
  return threads === undefined ? exp : { ...exp, threads };
}

/** Run an experiment, or with `dryRun` print its plan without computing anything. */
export async function runOrPlan(
  exp: Experiment,
  argv: { hfToken?: string | undefined; forceUnlock?: boolean | undefined },
  env: Env,
  dryRun: boolean,
  shard?: Shard,
): Promise<void> {
  const callbacks = {
    ...(shard ? { shard } : {}),
    forceUnlock: argv.forceUnlock ?? false,
    ...fromEnv(argv, env),
    onProgress: (l: string, d: number, t: number, e?: string) => progress.update(l, d, t, e),
    onNote: (line: string) => progress.note(line),
  };
  if (dryRun) {
    const plan = await planExperiment(exp, callbacks);
    progress.done();
    progress.note(formatPlan(plan));
    print(plan);
    return;
  }
  keepOnInterrupt(
    join(exp.output, 'settings'),
    `settings finished before the interruption are kept in ${shown(exp.output)}: the same command continues where it stopped`,
    `nothing was finished in ${shown(exp.output)} yet`,
  );
  const r = await runExperiment(exp, callbacks);
  progress.done();
  if (!shard) progress.note(`results: ${join(r.output, 'results.md')}`);
  print({ output: r.output, files: r.files, computed: r.computed, reused: r.reused, seconds: r.seconds });
}
