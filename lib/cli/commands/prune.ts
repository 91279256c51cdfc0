/** `llm-prune prune`: prune layer by layer and write a Hugging Face checkpoint folder with report.json. */
import type { Argv } from 'yargs';
import { cliFlag } from '../../errors.js';
import { CHECKPOINT_FORMATS, type CheckpointFormat } from '../../model/compressed-tensors.js';
import { DTYPES, type DType } from '../../model/safetensors.js';
import { PRUNE_DEFAULTS } from '../../prune/defaults.js';
import { prune, parseStructure, type PruneReport } from '../../prune/prune.js';
import { getMethod, LAYERWISE_NAMES, METHOD_NAMES, REFINER_NAMES, type LayerwiseName, type MethodName, type RefinerName } from '../../prune/registry.js';
import { backendOptions, defineCommand, FORCE_UNLOCK, hubOptions, useBackend, type CliContext } from '../command.js';
import { hubTokenOf } from '../env.js';
import { print, progress, warnIgnored } from '../output.js';
import { ownerOptions, withOwnerFlags } from '../owner-flags.js';
import { parseSize } from '../values.js';
import { localModel } from '../hub.js';

/** Flags that only feed calibration data (ignored by methods without it). */
const CALIBRATION_FLAGS = ['--calibration', '--calibration-field', '--nsamples', '--seqlen', '--seed', '--batch-size'];

function pruneFlags(y: Argv) {
  return withOwnerFlags(
    hubOptions(backendOptions(y))
      .option('model', { type: 'string', demandOption: true, describe: 'checkpoint folder or hub id' })
      .option('method', { choices: METHOD_NAMES as unknown as string[], demandOption: true, describe: 'pruning method' })
      .option('sparsity', { type: 'number', describe: `zero fraction in [0, 1) (default ${PRUNE_DEFAULTS.sparsity}; N:M implies N/M)` })
      .option('structure', { type: 'string', default: PRUNE_DEFAULTS.structure, describe: 'unstructured or N:M (2:4, 4:8)' })
      .option('layerwise', { choices: LAYERWISE_NAMES as string[], describe: 'per-block sparsities around --sparsity (owl)' })
      .option('refine', { choices: REFINER_NAMES as string[], describe: 'refine each mask after the method (dsnot)' })
      .option('targets', { type: 'string', array: true, describe: "linears to prune: names, parents or 're:' patterns (default all)" })
      .option('ignore', { type: 'string', array: true, describe: "linears to leave unchanged, e.g. 're:.*down_proj' model.layers.0" })
      .option('calibration', { type: 'string', describe: 'calibration data: .jsonl, .jsonl.gz, .json, .parquet or text' })
      .option('calibration-field', { type: 'string', default: PRUNE_DEFAULTS.calibrationField, describe: 'text field of calibration rows' })
      .option('nsamples', { type: 'number', default: PRUNE_DEFAULTS.nsamples, describe: 'calibration windows' })
      .option('seqlen', { type: 'number', describe: 'calibration window length (default: model context)' })
      .option('seed', { type: 'number', default: PRUNE_DEFAULTS.seed, describe: 'calibration sampler seed (Python random)' })
      .option('batch-size', { type: 'number', default: PRUNE_DEFAULTS.batchSize, describe: 'calibration samples per forward (same result)' })
      .option('out', { type: 'string', demandOption: true, describe: 'output checkpoint folder' })
      .option('dtype', { choices: DTYPES as unknown as string[], describe: 'output dtype (default: the input one)' })
      .option('format', { choices: CHECKPOINT_FORMATS as unknown as string[], default: PRUNE_DEFAULTS.format, describe: 'compressed: compressed-tensors sparse-bitmask (2:4: sparse-24-bitmask)' })
      .option('max-shard-size', { type: 'string', describe: 'shard the output, e.g. 2GB' })
      .option('overwrite', { type: 'boolean', default: PRUNE_DEFAULTS.overwrite, describe: 'replace an existing --out folder' })
      .option('force-unlock', FORCE_UNLOCK)
      .option('resume', { type: 'boolean', default: PRUNE_DEFAULTS.resume, describe: 'continue the killed run in <out>.partial at its first unfinished block' })
      .option('resumable', { type: 'boolean', default: PRUNE_DEFAULTS.resumable, describe: 'keep a resume state after every block (--no-resumable: none)' })
      .option('resume-activations', { choices: ['F32', 'input'], default: PRUNE_DEFAULTS.resumeActivations, describe: 'stored activations: F32 (exact) or the input dtype (half the disk)' }),
  );
}

/** The report on stdout: report.json's long lists (calibration windows, permutations) only counted. */
function printReport(report: PruneReport): void {
  print({
    ...report,
    calibration: report.calibration && { ...report.calibration, windows: `${report.calibration.windows.length} windows (see report.json)` },
    ...(report.permutations ? { permutations: `${Object.keys(report.permutations).length} linears (see report.json)` } : {}),
  });
}

export function pruneCommand(ctx: CliContext) {
  return defineCommand({
    command: 'prune',
    describe: 'Prune layer by layer; write a Hugging Face checkpoint folder with report.json',
    builder: pruneFlags,
    examples: [
      ['llm-prune prune --model ./c4-llama-7m --method wanda --calibration c4.jsonl --out runs/wanda-50', 'Wanda at 50% unstructured (the default sparsity)'],
      ['llm-prune prune --model ./c4-llama-7m --method magnitude --structure 2:4 --out runs/magnitude-2of4', '2:4 semi-structured, no calibration data'],
    ],
    handler: async (argv) => {
      await useBackend(argv);
      const usesData = getMethod(argv.method as MethodName).stats.length > 0 || argv.layerwise !== undefined || argv.refine !== undefined;
      warnIgnored(ctx.args, usesData ? [] : CALIBRATION_FLAGS, `method ${argv.method} uses no calibration data (nor does any --layerwise or --refine)`);
      const structure = parseStructure(argv.structure);
      const opts = ownerOptions(argv as Record<string, unknown>, {
        method: argv.method,
        ...(argv.layerwise !== undefined ? { layerwise: argv.layerwise } : {}),
        ...(argv.refine !== undefined ? { refine: argv.refine } : {}),
      });
      const sparsity = argv.sparsity ?? (structure.kind === 'nm' ? structure.n / structure.m : PRUNE_DEFAULTS.sparsity);
      const report = await prune({
        model: await localModel(argv.model, argv, ctx.env),
        hubToken: hubTokenOf(argv, ctx.env),
        out: argv.out,
        method: argv.method as MethodName,
        sparsity,
        structure,
        methodOptions: opts.method,
        ...(argv.layerwise !== undefined ? { layerwise: argv.layerwise as LayerwiseName, layerwiseOptions: opts.layerwise } : {}),
        ...(argv.refine !== undefined ? { refine: argv.refine as RefinerName, refineOptions: opts.refine } : {}),
        ...(argv.targets !== undefined ? { targets: argv.targets } : {}),
        ...(argv.ignore !== undefined ? { ignore: argv.ignore } : {}),
        ...(argv.calibration !== undefined ? { calibration: argv.calibration } : {}),
        calibrationField: argv.calibrationField,
        nsamples: argv.nsamples,
        ...(argv.seqlen !== undefined ? { seqlen: argv.seqlen } : {}),
        seed: argv.seed,
        batchSize: argv.batchSize,
        ...(argv.dtype !== undefined ? { dtype: argv.dtype as DType } : {}),
        format: argv.format as CheckpointFormat,
        ...(argv.maxShardSize !== undefined ? { maxShardBytes: parseSize('--max-shard-size', argv.maxShardSize) } : {}),
        overwrite: argv.overwrite,
        forceUnlock: argv.forceUnlock,
        resume: argv.resume,
        resumable: argv.resumable,
        resumeActivations: argv.resumeActivations as 'F32' | 'input',
        optionName: cliFlag,
        onProgress: (p) =>
          progress.update(p.pass === 'owl' ? 'OWL outlier pass, blocks' : 'prune blocks', p.layer + 1, p.layers, p.tokensPerSecond > 0 ? `${p.tokensPerSecond.toFixed(0)} tok/s` : ''),
        onNote: (line) => progress.note(line),
      });
      progress.note(`wrote ${report.out} (sparsity ${(100 * report.sparsity.overall).toFixed(2)}%)`);
      printReport(report);
    },
  });
}
