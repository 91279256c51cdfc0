/** `llm-prune demo`: configs/demo.yaml on the shared data, with $LLM_PRUNE_MODEL, the shared c4-llama-7m or a hub model. */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ConfigError } from '../../errors.js';
import { loadExperiment } from '../../experiment/schema.js';
import { findSharedDir, packageRoot, SHARED_HINT } from '../../paths.js';
import { defineCommand, type CliContext } from '../command.js';
import { sharedFolder, type Env } from '../env.js';
import { REUSE_ANY_VERSION, runOrPlan, withThreads } from '../experiment.js';
import { progress } from '../output.js';
import { parseOverrides } from '../values.js';

const DEMO_CONFIG = join(packageRoot(), 'configs', 'demo.yaml');
const DEMO_HUB_MODEL = 'HuggingFaceTB/SmolLM2-135M';

/** The demo's model: $LLM_PRUNE_MODEL, else the shared c4-llama-7m, else a small hub model (needs the network). */
function demoModel(shared: string, env: Env): { path: string; why: string } {
  const given = env['LLM_PRUNE_MODEL'];
  if (given) return { path: resolve(given), why: 'from $LLM_PRUNE_MODEL' };
  const local = join(shared, 'models', 'c4-llama-7m');
  if (existsSync(local)) return { path: local, why: 'the shared c4-llama-7m' };
  return { path: DEMO_HUB_MODEL, why: `no ${local} and no LLM_PRUNE_MODEL: fetched from the Hugging Face hub (needs the network)` };
}

export function demoCommand(ctx: CliContext) {
  return defineCommand({
    command: 'demo',
    describe: 'Run configs/demo.yaml (model: $LLM_PRUNE_MODEL, else shared c4-llama-7m, else a hub model)',
    builder: (y) =>
      y
        .option('set', { type: 'string', array: true, default: [], describe: 'override a key of configs/demo.yaml' })
        .option('shared', { type: 'string', describe: 'the shared folder with models/ and data/ (default $LLM_PRUNE_SHARED, ./shared, ../shared)' })
        .option('dry-run', { type: 'boolean', default: false, describe: 'print the plan and compute nothing' })
        .option('reuse-any-version', REUSE_ANY_VERSION),
    handler: async (argv) => {
      const overrides = parseOverrides(argv.set as string[]);
      const shared = findSharedDir(sharedFolder(argv.shared, ctx.env));
      if (shared === null || !existsSync(join(shared, 'data'))) {
        throw new ConfigError(
          `demo: the shared data folder (C4 calibration sample, WikiText-2, tasks) was not found${shared ? ` in ${shared}` : ''}: ${SHARED_HINT}` +
            '; the model can also be given alone with LLM_PRUNE_MODEL=/path/to/checkpoint',
        );
      }
      const model = demoModel(shared, ctx.env);
      progress.note(`demo model: ${model.path} (${model.why}); data: ${join(shared, 'data')}`);
      const exp = withThreads(loadExperiment(DEMO_CONFIG, { model: model.path, ...overrides }, { shared }), argv.threads);
      await runOrPlan(exp, argv, ctx.env, argv.dryRun);
    },
  });
}
