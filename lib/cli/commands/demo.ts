/**
 * `llm-prune demo`: configs/demo.yaml on the shared data with $LLM_PRUNE_MODEL or the shared c4-llama-7m; without a
 * shared folder, on a small real model and data downloaded from the Hugging Face hub (lib/hub/demo-files.ts).
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ConfigError, LlmPruneError } from '../../errors.js';
import { loadExperiment } from '../../experiment/schema.js';
import { DEMO_HUB_MODEL, fetchDemoFiles } from '../../hub/demo-files.js';
import { HubUnreachableError } from '../../hub/download.js';
import { tokenCacheDir } from '../../eval/token-cache.js';
import { findSharedDir, packageRoot, SHARED_HINT } from '../../paths.js';
import { defineCommand, experimentBackendOptions, hubOptions, type CliContext } from '../command.js';
import { sharedFolder, type Env } from '../env.js';
import { REUSE_ANY_VERSION, runOrPlan, withBackendFlags } from '../experiment.js';
import { hubAccessOf } from '../hub.js';
import { progress } from '../output.js';
import { parseOverrides } from '../values.js';

const DEMO_CONFIG = join(packageRoot(), 'configs', 'demo.yaml');

/** Where the demo keeps the data it downloads: the package's cache folder ($LLM_PRUNE_CACHE, else ~/.cache/llm-prune). */
export function demoDownloadDir(env: Env): string {
  return join(tokenCacheDir(env), 'demo');
}

/** The model and shared folder of a machine with the shared folder: $LLM_PRUNE_MODEL, else the shared c4-llama-7m. */
function sharedDemo(shared: string, env: Env): { model: string; why: string } {
  const given = env['LLM_PRUNE_MODEL'];
  if (given) return { model: resolve(given), why: 'from $LLM_PRUNE_MODEL' };
  return { model: join(shared, 'models', 'c4-llama-7m'), why: 'the shared c4-llama-7m' };
}

/** Without a shared folder: the demo's model (unless $LLM_PRUNE_MODEL) and data from the hub, said where they went. */
async function downloadedDemo(argv: { hfToken?: string | undefined }, env: Env, offlineHint: string): Promise<{ model: string; shared: string }> {
  const given = env['LLM_PRUNE_MODEL'];
  const access = hubAccessOf(argv, env);
  progress.note(`demo: no shared folder; downloading ${given ? '' : `the model ${DEMO_HUB_MODEL} and `}the data from ${access.endpoint}`);
  try {
    const got = await fetchDemoFiles(demoDownloadDir(env), access, !given);
    progress.done();
    const model = given ? resolve(given) : got.model!;
    progress.note(`demo model: ${model}${given ? ' (from $LLM_PRUNE_MODEL)' : ` (${DEMO_HUB_MODEL}, in the hub cache ${access.cacheDir})`}`);
    progress.note(`demo data: ${join(got.shared, 'data')}`);
    return { model, shared: got.shared };
  } catch (e) {
    progress.done();
    const unreachable = e instanceof HubUnreachableError || (e instanceof Error && e.cause instanceof HubUnreachableError);
    if (!unreachable) throw e;
    const why = (e instanceof HubUnreachableError ? e : (e as Error).cause as Error).message;
    throw new LlmPruneError(`demo: ${why}; ${offlineHint}`);
  }
}

export function demoCommand(ctx: CliContext) {
  return defineCommand({
    command: 'demo',
    describe: 'Run configs/demo.yaml (shared folder, else a small model and data downloaded from the hub)',
    builder: (y) =>
      hubOptions(experimentBackendOptions(y))
        .option('set', { type: 'string', array: true, default: [], describe: 'override a key of configs/demo.yaml' })
        .option('shared', { type: 'string', describe: 'the shared folder with models/ and data/ (default $LLM_PRUNE_SHARED, ./shared, ../shared)' })
        .option('dry-run', { type: 'boolean', default: false, describe: 'print the plan and compute nothing' })
        .option('reuse-any-version', REUSE_ANY_VERSION),
    examples: [
      ['llm-prune demo', 'prune and evaluate the demo model (results in ./runs/demo)'],
      ['llm-prune demo --dry-run', 'the plan only'],
    ],
    handler: async (argv) => {
      const overrides = parseOverrides(argv.set as string[]);
      const explicit = sharedFolder(argv.shared, ctx.env);
      const shared = findSharedDir(explicit);
      let run: { model: string; shared: string };
      if (shared !== null && existsSync(join(shared, 'data'))) {
        const m = sharedDemo(shared, ctx.env);
        progress.note(`demo model: ${m.model} (${m.why}); data: ${join(shared, 'data')}`);
        run = { model: m.model, shared };
      } else if (explicit) {
        throw new ConfigError(`demo: the shared folder ${resolve(explicit)} has no data/ folder (C4 calibration sample, WikiText-2, tasks): ${SHARED_HINT}`);
      } else {
        const hint = `connect to the network once (the files are then cached), point HF_ENDPOINT at a hub mirror, or ${SHARED_HINT}`;
        run = await downloadedDemo(argv, ctx.env, hint);
      }
      const exp = withBackendFlags(loadExperiment(DEMO_CONFIG, { model: run.model, ...overrides }, { shared: run.shared }), argv);
      await runOrPlan(exp, argv, ctx.env, argv.dryRun);
    },
  });
}
