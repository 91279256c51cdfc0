/** Running an experiment from the CLI (`run` and `demo`): the plan with --dry-run, else the run, kept on interrupt. */
import { join } from 'node:path';
import { formatPlan, planExperiment } from '../experiment/plan.js';
import { runExperiment } from '../experiment/run.js';
import type { Experiment } from '../experiment/schema.js';
import type { BackendName } from '../model/backend.js';
import type { Shard } from '../experiment/shard.js';
import { keepOnInterrupt, shown } from '../interrupt.js';
import { fromEnv, type Env } from './env.js';
import { localModel } from './hub.js';
import { print, progress } from './output.js';

/** --backend and --threads, when given, override the experiment file's `backend:` and `threads:`. */
export function withBackendFlags(exp: Experiment, flags: { backend?: string | undefined; threads?: number | undefined }): Experiment {
  return {
    ...exp,
    ...(flags.backend !== undefined ? { backend: flags.backend as BackendName } : {}),
    ...(flags.threads !== undefined ? { threads: flags.threads } : {}),
  };
}

/** The option `run` and `demo` share: keep results computed by another version (the key reuseAnyVersion). */
export const REUSE_ANY_VERSION = {
  type: 'boolean',
  describe: 'reuse stored results computed by another package or method version, with a warning (default: redo them)',
} as const;

/** Run an experiment, or with `dryRun` print its plan without computing anything. */
export async function runOrPlan(
  given: Experiment,
  argv: { hfToken?: string | undefined; reuseAnyVersion?: boolean | undefined; forceUnlock?: boolean | undefined },
  env: Env,
  dryRun: boolean,
  shard?: Shard,
): Promise<void> {
  const versioned = argv.reuseAnyVersion ? { ...given, reuseAnyVersion: true } : given;
  const exp = { ...versioned, model: await localModel(versioned.model, argv, env) };
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
