/** `llm-prune run`: an experiment file (dense + every setting, pruned and evaluated), or its plan with --dry-run. */
import { ConfigError } from '../../errors.js';
import { loadExperiment } from '../../experiment/schema.js';
import { parseShard } from '../../experiment/shard.js';
import { defineCommand, FORCE_UNLOCK, type CliContext } from '../command.js';
import { sharedFolder } from '../env.js';
import { runOrPlan, withThreads } from '../experiment.js';
import { parseOverrides } from '../values.js';

export function runCommand(ctx: CliContext) {
  return defineCommand({
    command: 'run [config]',
    describe: 'Run an experiment file: dense + every setting, pruned and evaluated; results table and charts',
    builder: (y) =>
      y
        .positional('config', { type: 'string', describe: 'experiment file (.yaml or .json)' })
        .option('config', { type: 'string', describe: 'the experiment file, as a flag (same as the positional)' })
        .option('set', { type: 'string', array: true, default: [], describe: 'override a key: --set calibration.nsamples=16 (repeatable)' })
        .option('shared', { type: 'string', describe: 'the folder that ${shared} names in experiment files (default $LLM_PRUNE_SHARED, ./shared, ../shared)' })
        .option('dry-run', { type: 'boolean', default: false, describe: 'print the plan (settings, what is reused, estimated time) and compute nothing' })
        .option('shard', { type: 'string', describe: 'K/N: run only the settings whose id hashes to K of N (0-based); merge with `report`' })
        .option('force-unlock', FORCE_UNLOCK),
    handler: async (argv) => {
      if (!argv.config) throw new ConfigError('run: give the experiment file: llm-prune run CONFIG (.yaml or .json)');
      const shard = argv.shard !== undefined ? parseShard(argv.shard) : undefined;
      const overrides = parseOverrides(argv.set as string[]);
      const exp = withThreads(loadExperiment(argv.config, overrides, { shared: sharedFolder(argv.shared, ctx.env) }), argv.threads);
      await runOrPlan(exp, argv, ctx.env, argv.dryRun, shard);
    },
  });
}
