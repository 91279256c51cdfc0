/** `llm-prune eval`: perplexity (wikitext2, c4) and zero-shot tasks of a checkpoint, optionally with LoRA adapters. */
import { resolve } from 'node:path';
import type { Argv } from 'yargs';
import { EVAL_DEFAULTS } from '../../eval/defaults.js';
import { evaluate } from '../../eval/evaluate.js';
import { PERPLEXITY_SETS, type PerplexitySet } from '../../eval/perplexity.js';
import { PAPER_TASKS } from '../../eval/tasks.js';
import { resultsTable } from '../../eval/results.js';
import { cliFlag, ConfigError } from '../../errors.js';
import { loadAdapters } from '../../finetune/peft.js';
import { loadModel } from '../../model/load.js';
import { writeJsonAtomic } from '../../model/save.js';
import { acquireOutputLock } from '../../output-lock.js';
import { backendOptions, defineCommand, FORCE_UNLOCK, hubOptions, useBackend, type CliContext } from '../command.js';
import { fromEnv } from '../env.js';
import { print, progress, warnIgnored } from '../output.js';
import { list } from '../values.js';
import { hubAccessOf, localModel } from '../hub.js';

function evalFlags(y: Argv) {
  return hubOptions(backendOptions(y))
    .option('model', { type: 'string', demandOption: true, describe: 'checkpoint folder or hub id' })
    .option('ppl', { type: 'string', default: '', describe: `perplexity sets, comma-separated (${PERPLEXITY_SETS.join(', ')})` })
    .option('tasks', { type: 'string', default: '', describe: `tasks, comma-separated: ${PAPER_TASKS.join(', ')}; name=FILE; or custom task files` })
    .option('limit', { type: 'number', describe: 'first N items of each task' })
    .option('seqlen', { type: 'number', describe: 'perplexity window (default: model context)' })
    .option('max-windows', { type: 'number', describe: 'score only the first N perplexity windows' })
    .option('batch-size', { type: 'number', default: EVAL_DEFAULTS.batchSize, describe: 'perplexity windows per forward' })
    .option('data-dir', { type: 'string', describe: 'folder laid out like shared/data (default $LLM_PRUNE_DATA or ../shared/data)' })
    .option('add-bos', { type: 'boolean', default: EVAL_DEFAULTS.addBos, describe: 'prepend BOS to task contexts' })
    .option('adapter', { type: 'string', describe: 'LoRA adapter folder (PEFT layout) applied without merging' })
    .option('download', { type: 'boolean', default: EVAL_DEFAULTS.download, describe: 'fetch missing perplexity sets from the hub' })
    .option('out', { type: 'string', describe: 'also write the JSON results to this file' })
    .option('force-unlock', FORCE_UNLOCK);
}

export function evalCommand(ctx: CliContext) {
  return defineCommand({
    command: 'eval',
    describe: 'Evaluate perplexity (wikitext2, c4) and zero-shot tasks',
    builder: evalFlags,
    examples: [
      ['llm-prune eval --model runs/wanda-50 --ppl wikitext2 --data-dir ./data', 'WikiText-2 perplexity'],
      ['llm-prune eval --model runs/wanda-50 --tasks boolq,arc_easy --limit 100 --data-dir ./data', 'two zero-shot tasks on their first 100 items'],
    ],
    handler: async (argv) => {
      await useBackend(argv);
      const ppl = list(argv.ppl) as PerplexitySet[];
      const tasks = list(argv.tasks);
      if (ppl.length === 0 && tasks.length === 0) throw new ConfigError('eval: give --ppl and/or --tasks');
      if (ppl.length === 0) warnIgnored(ctx.args, ['--seqlen', '--max-windows', '--batch-size'], 'no --ppl set is evaluated');
      if (tasks.length === 0) warnIgnored(ctx.args, ['--limit', '--add-bos'], 'no --tasks are evaluated');
      const env = fromEnv(argv, ctx.env);
      const lock = argv.out !== undefined ? acquireOutputLock(`${resolve(argv.out)}.lock`, { command: 'llm-prune eval', forceUnlock: argv.forceUnlock }) : null;
      let m: Awaited<ReturnType<typeof loadModel>> | null = null;
      let adapters: ReturnType<typeof loadAdapters> | null = null;
      try {
        m = await loadModel(await localModel(argv.model, argv, ctx.env), { hubToken: env.hubToken });
        adapters = argv.adapter !== undefined ? loadAdapters(argv.adapter, m.model) : null;
        const forward = adapters?.forward;
        const r = await evaluate(m, {
          ppl,
          tasks,
          ...(argv.limit !== undefined ? { limit: argv.limit } : {}),
          ...(argv.seqlen !== undefined ? { seqlen: argv.seqlen } : {}),
          ...(argv.maxWindows !== undefined ? { maxWindows: argv.maxWindows } : {}),
          dataDir: argv.dataDir ?? env.dataDir,
          ...(forward ? { forward } : {}),
          batchSize: argv.batchSize,
          addBos: argv.addBos,
          download: argv.download,
          hubToken: env.hubToken,
          hub: hubAccessOf(argv, ctx.env),
          tokenCacheDir: env.tokenCacheDir,
          onProgress: (what, d, t, e) => progress.update(what, d, t, e),
          optionName: cliFlag,
        });
        progress.done();
        const result = { model: m.dir, ...(argv.adapter !== undefined ? { adapter: argv.adapter } : {}), ...r };
        if (argv.out) writeJsonAtomic(argv.out, result);
        print(result);
        const label = argv.adapter !== undefined ? `${argv.model} + LoRA ${argv.adapter}` : argv.model;
        progress.note('\n' + resultsTable([{ label, zeroShot: r.zeroShot, perplexity: r.perplexity }]));
      } finally {
        adapters?.dispose();
        m?.dispose();
        lock?.release();
      }
    },
  });
}
