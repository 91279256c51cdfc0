/** `llm-prune finetune`: LoRA adapters trained on a (pruned) checkpoint; PEFT adapters and optionally a merged model. */
import { join, resolve } from 'node:path';
import type { Argv } from 'yargs';
import { cliFlag } from '../../errors.js';
import { tokenCacheDir } from '../../eval/token-cache.js';
import { FINETUNE_DEFAULTS } from '../../finetune/defaults.js';
import { finetune, type FinetuneProgress } from '../../finetune/train.js';
import { keepOnInterrupt } from '../../interrupt.js';
import { CHECKPOINT_FORMATS, type CheckpointFormat } from '../../model/compressed-tensors.js';
import { LINEAR_NAMES, type LinearName } from '../../model/architecture.js';
import { backendOptions, defineCommand, FORCE_UNLOCK, hubOptions, useBackend, type CliContext } from '../command.js';
import { hubTokenOf } from '../env.js';
import { print, progress } from '../output.js';
import { list } from '../values.js';
import { localModel } from '../hub.js';

function finetuneFlags(y: Argv) {
  return hubOptions(backendOptions(y))
    .option('model', { type: 'string', demandOption: true, describe: 'checkpoint folder (pruned) or hub id' })
    .option('data', { type: 'string', demandOption: true, describe: 'training text: .jsonl, .json, .parquet, .txt (.gz)' })
    .option('out', { type: 'string', demandOption: true, describe: 'output folder (adapters, checkpoints, report.json)' })
    .option('rank', { type: 'number', default: FINETUNE_DEFAULTS.rank, describe: 'LoRA rank' })
    .option('alpha', { type: 'number', default: FINETUNE_DEFAULTS.alpha, describe: 'LoRA alpha (scale = alpha / rank)' })
    .option('dropout', { type: 'number', default: FINETUNE_DEFAULTS.dropout, describe: 'LoRA dropout' })
    .option('targets', { type: 'string', default: FINETUNE_DEFAULTS.targets.join(','), describe: `linears to adapt (${LINEAR_NAMES.join(', ')})` })
    .option('lr', { type: 'number', default: FINETUNE_DEFAULTS.lr, describe: 'peak learning rate (AdamW)' })
    .option('schedule', { choices: ['constant', 'linear', 'cosine'], default: FINETUNE_DEFAULTS.schedule, describe: 'learning-rate schedule' })
    .option('warmup-steps', { type: 'number', default: FINETUNE_DEFAULTS.warmupSteps, describe: 'linear warmup steps' })
    .option('weight-decay', { type: 'number', default: FINETUNE_DEFAULTS.weightDecay, describe: 'AdamW decoupled weight decay' })
    .option('max-grad-norm', { type: 'number', default: FINETUNE_DEFAULTS.maxGradNorm, describe: 'gradient clipping (0: off)' })
    .option('seqlen', { type: 'number', describe: 'tokens per training window (default: model context)' })
    .option('batch-size', { type: 'number', default: FINETUNE_DEFAULTS.batchSize, describe: 'windows per micro-batch' })
    .option('grad-accum', { type: 'number', default: FINETUNE_DEFAULTS.gradAccum, describe: 'micro-batches per optimizer step' })
    .option('max-steps', { type: 'number', demandOption: true, describe: 'optimizer steps' })
    .option('time-budget', { type: 'number', describe: 'stop (with a checkpoint) after this many seconds' })
    .option('seed', { type: 'number', default: FINETUNE_DEFAULTS.seed, describe: 'data order, adapter init, dropout' })
    .option('checkpoint-every', { type: 'number', default: FINETUNE_DEFAULTS.checkpointEvery, describe: 'steps between resumable checkpoints' })
    .option('resume', { type: 'boolean', default: FINETUNE_DEFAULTS.resume, describe: 'continue from <out>/checkpoint when present' })
    .option('overwrite', { type: 'boolean', default: FINETUNE_DEFAULTS.overwrite, describe: 'start over in a non-empty --out' })
    .option('force-unlock', FORCE_UNLOCK)
    .option('eval-file', { type: 'string', describe: 'held-out text for perplexity before/after (e.g. WikiText-2 test)' })
    .option('eval-windows', { type: 'number', describe: 'perplexity windows scored before and after' })
    .option('merge', { choices: ['none', 'masked', 'dense'], default: FINETUNE_DEFAULTS.merge, describe: 'also write a merged checkpoint (masked keeps the sparsity)' })
    .option('format', { choices: CHECKPOINT_FORMATS as unknown as string[], default: FINETUNE_DEFAULTS.mergeFormat, describe: 'merged checkpoint format (compressed: with --merge masked)' });
}

/** Training progress on stderr: a step line, and a note per evaluation, checkpoint and the data summary. */
function showProgress(p: FinetuneProgress): void {
  if (p.phase === 'train') progress.update('finetune steps', p.step, p.maxSteps, `loss ${p.loss.toFixed(4)} lr ${p.lr.toExponential(2)} ${p.tokensPerSecond.toFixed(0)} tok/s`);
  else if (p.phase === 'eval') progress.note(`step ${p.step}: ${p.which} ppl ${p.ppl.toFixed(3)} (${p.windows} windows)`);
  else if (p.phase === 'checkpoint') progress.note(`step ${p.step}: checkpoint ${p.dir}`);
  else progress.note(`training windows: ${p.windows} from ${p.documents} documents (${p.excludedDocuments} calibration documents excluded)`);
}

export function finetuneCommand(ctx: CliContext) {
  return defineCommand({
    command: 'finetune',
    describe: 'Train LoRA adapters on a (pruned) checkpoint; save PEFT adapters and optionally a merged model',
    builder: finetuneFlags,
    examples: [
      ['llm-prune finetune --model runs/wanda-50 --data train.jsonl --out runs/lora --max-steps 200', 'LoRA adapters on a pruned model'],
      ['llm-prune finetune --model runs/wanda-50 --data train.jsonl --out runs/lora --max-steps 200 \\\n    --merge masked', 'also a merged model that keeps the sparsity'],
    ],
    handler: async (argv) => {
      await useBackend(argv);
      keepOnInterrupt(
        join(resolve(argv.out), 'checkpoint'),
        `kept the trainer checkpoint ${join(argv.out, 'checkpoint')}: the same command continues from its last saved step`,
        `no trainer checkpoint was saved yet (one every ${argv.checkpointEvery} steps)`,
      );
      const report = await finetune({
        model: await localModel(argv.model, argv, ctx.env),
        hubToken: hubTokenOf(argv, ctx.env),
        tokenCacheDir: tokenCacheDir(ctx.env),
        data: argv.data,
        out: argv.out,
        rank: argv.rank,
        alpha: argv.alpha,
        dropout: argv.dropout,
        targets: list(argv.targets) as LinearName[],
        lr: argv.lr,
        schedule: argv.schedule as 'constant' | 'linear' | 'cosine',
        warmupSteps: argv.warmupSteps,
        weightDecay: argv.weightDecay,
        maxGradNorm: argv.maxGradNorm,
        ...(argv.seqlen !== undefined ? { seqlen: argv.seqlen } : {}),
        batchSize: argv.batchSize,
        gradAccum: argv.gradAccum,
        maxSteps: argv.maxSteps,
        ...(argv.timeBudget !== undefined ? { timeBudget: argv.timeBudget } : {}),
        seed: argv.seed,
        checkpointEvery: argv.checkpointEvery,
        resume: argv.resume,
        overwrite: argv.overwrite,
        forceUnlock: argv.forceUnlock,
        ...(argv.evalFile !== undefined ? { eval: { file: argv.evalFile, ...(argv.evalWindows !== undefined ? { maxWindows: argv.evalWindows } : {}) } } : {}),
        merge: argv.merge as 'none' | 'masked' | 'dense',
        mergeFormat: argv.format as CheckpointFormat,
        onProgress: showProgress,
        optionName: (o) => (o === 'mergeFormat' ? '--format' : cliFlag(o)), // --format: the merged checkpoint's
      });
      progress.done();
      print(report);
    },
  });
}
