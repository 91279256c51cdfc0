/** `llm-prune run`: an experiment file (dense + every setting, pruned and evaluated), or its plan with --dry-run. */
import { ConfigError } from '../../errors.js';
import { experimentFile } from '../../experiment/configs.js';
import { loadExperiment } from '../../experiment/schema.js';
import { parseShard } from '../../experiment/shard.js';
import { defineCommand, experimentBackendOptions, FORCE_UNLOCK, hubOptions, type CliContext } from '../command.js';
import { sharedFolder } from '../env.js';
import { REUSE_ANY_VERSION, runOrPlan, withBackendFlags } from '../experiment.js';
import { parseOverrides } from '../values.js';

const CONFIG_HELP = 'experiment file (.yaml or .json) or a shipped config by name (demo, paper-grid, ...); also as --config';

export function runCommand(ctx: CliContext) {
  return defineCommand({
    command: 'run [config]',
    describe: 'Run an experiment file: dense + every setting, pruned and evaluated; results table and charts',
    builder: (y) =>
      hubOptions(experimentBackendOptions(y))
        .positional('config', { type: 'string', describe: CONFIG_HELP })
        .option('config', { type: 'string', describe: CONFIG_HELP })
        .option('set', { type: 'string', array: true, default: [], describe: 'override a key: --set calibration.nsamples=16 (repeatable)' })
        .option('shared', { type: 'string', describe: 'the folder that ${shared} names in experiment files (default $LLM_PRUNE_SHARED, ./shared, ../shared)' })
        .option('dry-run', { type: 'boolean', default: false, describe: 'print the plan (settings, what is reused, estimated time) and compute nothing' })
        .option('reuse-any-version', REUSE_ANY_VERSION)
        .option('shard', { type: 'string', describe: 'K/N: run only the settings whose id hashes to K of N (0-based); merge with `report`' })
        .option('force-unlock', FORCE_UNLOCK),
    examples: [
      ['llm-prune run paper-grid --dry-run', 'the plan of a shipped config (by name), computing nothing'],
      ['llm-prune run my-grid.yaml --set calibration.nsamples=16', 'an experiment file of your own, one key overridden'],
    ],
    handler: async (argv) => {
      if (!argv.config) throw new ConfigError('run: give the experiment file: llm-prune run CONFIG (.yaml or .json, or a shipped config by name such as demo)');
      const shard = argv.shard !== undefined ? parseShard(argv.shard) : undefined;
      const overrides = parseOverrides(argv.set as string[]);
      const exp = withBackendFlags(loadExperiment(experimentFile(argv.config, '--config'), overrides, { shared: sharedFolder(argv.shared, ctx.env) }), argv);
      await runOrPlan(exp, argv, ctx.env, argv.dryRun, shard);
    },
  });
}
