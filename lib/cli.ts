#!/usr/bin/env node
/**
 * llm-prune: a thin shell over the library. Parses flags (yargs), calls the library, prints JSON results on stdout
 * and progress on stderr. The only place that calls process.exit.
 */
import { existsSync, realpathSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import yargs, { type Argv } from 'yargs';
import { hideBin } from 'yargs/helpers';
import { ConfigError, LlmPruneError } from './errors.js';
import { BACKEND_NAMES, initBackend, type BackendName } from './model/backend.js';
import { loadModel } from './model/load.js';
import { Checkpoint } from './model/checkpoint.js';
import { saveCheckpoint } from './model/save.js';
import { resolveModelPath } from './model/hub.js';
import { DTYPES, type DType } from './model/safetensors.js';
import { CHECKPOINT_FORMATS, type CheckpointFormat } from './model/compressed-tensors.js';
import { generate, inspectModel } from './generate.js';
import { prune, parseStructure } from './prune/prune.js';
import { LAYERWISE_NAMES, METHOD_NAMES, REFINER_NAMES, optionFlags, type LayerwiseName, type MethodName, type RefinerName } from './prune/registry.js';
import { evaluate } from './eval/evaluate.js';
import { defaultDataDir } from './eval/datasets.js';
import { FINETUNE_DEFAULTS } from './finetune/defaults.js';
import { EVAL_DEFAULTS } from './eval/defaults.js';
import { PRUNE_DEFAULTS } from './prune/defaults.js';
import { PERPLEXITY_SETS, type PerplexitySet } from './eval/perplexity.js';
import { resultsTable } from './eval/results.js';
import { createProgress, type ProgressReporter } from './progress.js';
import { loadExperiment, type Experiment } from './experiment/schema.js';
import { formatPlan, planExperiment } from './experiment/plan.js';
import { runExperiment } from './experiment/run.js';
import { mergeResults, parseShard, type Shard } from './experiment/shard.js';
import { finetune } from './finetune/train.js';
import { loadAdapters } from './finetune/peft.js';
import { LINEAR_NAMES, type LinearName } from './prune/method.js';
import { getMethod } from './prune/registry.js';
import { writeJsonAtomic } from './model/save.js';
import { keepOnInterrupt, shown } from './interrupt.js';
import { findSharedDir, packageRoot, packageVersion, SHARED_HINT } from './paths.js';

const progress: ProgressReporter = createProgress();

function list(value: string | undefined): string[] {
  return value === undefined || value === '' ? [] : value.split(',').map((s) => s.trim()).filter(Boolean);
}

/** "5GB", "500MB", "1e9" -> bytes. */
export function parseSize(flag: string, value: string): number {
  const m = /^(\d+(?:\.\d+)?(?:e\d+)?)\s*(b|kb|mb|gb|kib|mib|gib)?$/i.exec(value.trim());
  if (!m) throw new ConfigError(`${flag}: '${value}' is not a size like 2GB or 500MB`);
  const unit = (m[2] ?? 'b').toLowerCase();
  const mult: Record<string, number> = { b: 1, kb: 1e3, mb: 1e6, gb: 1e9, kib: 1024, mib: 1024 ** 2, gib: 1024 ** 3 };
  return Math.floor(Number(m[1]) * mult[unit]!);
}

async function backend(argv: { backend: string; threads?: number | undefined }): Promise<void> {
  const info = await initBackend(argv.backend as BackendName, argv.threads !== undefined ? { threads: argv.threads } : {});
  progress.note(info.note);
}

function print(value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, 2) + '\n');
}

/**
 * The options of the chosen method, allocator and refiner from their flags (derived from the registry's schemas).
 * A flag of something this run does not use is an error.
 */
export function ownerOptions(argv: Record<string, unknown>, used: { method: string; layerwise?: string; refine?: string }): {
  method: Record<string, unknown>;
  layerwise: Record<string, unknown>;
  refine: Record<string, unknown>;
} {
  const out = { method: {} as Record<string, unknown>, layerwise: {} as Record<string, unknown>, refine: {} as Record<string, unknown> };
  for (const f of optionFlags()) {
    const v = argv[f.flag];
    if (v === undefined) continue;
    if (used[f.owner.kind] !== f.owner.name) {
      const what = f.owner.kind === 'method' ? `method ${f.owner.name}` : `--${f.owner.kind} ${f.owner.name}`;
      throw new ConfigError(`--${f.flag}: an option of ${what}, which this run does not use`);
    }
    out[f.owner.kind][f.key] = v;
  }
  return out;
}

/** Adds the method / allocator / refiner option flags (from the registry's schemas) to a command. */
function withOwnerFlags<T>(y: Argv<T>): Argv<T> {
  let out = y;
  for (const f of optionFlags()) {
    out = out.option(f.flag, { type: f.type, ...(f.choices ? { choices: f.choices } : {}), describe: f.description }) as unknown as Argv<T>;
  }
  return out;
}

/** The yargs definition: exported so a test can check the README's CLI reference against it. */
export function buildCli(args: string[]): Argv {
  const cli = yargs(args)
    .scriptName('llm-prune')
    .wrap(120)
    .usage('$0 <command> [options]\n\nPrune LLaMA-family models with Wanda, magnitude or SparseGPT in TensorFlow.js, and evaluate them.')
    .version(packageVersion())
    .option('backend', { choices: BACKEND_NAMES as unknown as string[], default: 'auto', describe: 'tfjs backend (auto: tensorflow if installed, else webgpu on a GPU, else wasm)' })
    .option('threads', { type: 'number', describe: 'wasm compute threads (default: every logical core; at most 8)' })
    .option('hf-token', { type: 'string', describe: 'Hugging Face token for gated hub models such as Llama (default $HF_TOKEN); never printed' })
    .middleware((argv) => {
      // Handed to @huggingface/hub through the environment only (lib/model/hub.ts); never echoed.
      if (typeof argv['hfToken'] === 'string' && argv['hfToken'] !== '') process.env['HF_TOKEN'] = argv['hfToken'];
    })
    .command(
      'inspect',
      'Show a checkpoint: architecture, sizes, dtype, parameters, tokenizer',
      (y) => y.option('model', { type: 'string', demandOption: true, describe: 'checkpoint folder or hub id' }),
      async (argv) => {
        await backend(argv);
        const m = await loadModel(argv.model);
        try {
          print(inspectModel(m));
        } finally {
          m.dispose();
        }
      },
    )
    .command(
      'generate',
      'Greedy generation (proves a checkpoint, pruned or not, is usable)',
      (y) =>
        y
          .option('model', { type: 'string', demandOption: true, describe: 'checkpoint folder or hub id' })
          .option('prompt', { type: 'string', default: '', describe: 'text to continue (BOS is added)' })
          .option('max-new-tokens', { type: 'number', default: 30, describe: 'tokens to generate' })
          .option('stop-at-eos', { type: 'boolean', default: false, describe: 'stop at the EOS token' }),
      async (argv) => {
        await backend(argv);
        const m = await loadModel(argv.model);
        try {
          print(generate(m, argv.prompt, argv.maxNewTokens, { stopAtEos: argv.stopAtEos }));
        } finally {
          m.dispose();
        }
      },
    )
    .command(
      'prune',
      'Prune layer by layer; write a Hugging Face checkpoint folder with report.json',
      (y) =>
        withOwnerFlags(
          y
          .option('model', { type: 'string', demandOption: true, describe: 'checkpoint folder or hub id' })
          .option('method', { choices: METHOD_NAMES as unknown as string[], demandOption: true, describe: 'pruning method' })
          .option('sparsity', { type: 'number', describe: 'zero fraction in [0, 1) (default 0.5; N:M implies N/M)' })
          .option('structure', { type: 'string', default: 'unstructured', describe: 'unstructured or N:M (2:4, 4:8)' })
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
          .option('format', { choices: CHECKPOINT_FORMATS as unknown as string[], default: 'dense', describe: 'compressed: compressed-tensors sparse-bitmask (2:4: sparse-24-bitmask)' })
          .option('max-shard-size', { type: 'string', describe: 'shard the output, e.g. 2GB' })
          .option('overwrite', { type: 'boolean', default: PRUNE_DEFAULTS.overwrite, describe: 'replace an existing --out folder' })
          .option('resume', { type: 'boolean', default: PRUNE_DEFAULTS.resume, describe: 'continue the killed run in <out>.partial at its first unfinished block' })
          .option('resumable', { type: 'boolean', default: PRUNE_DEFAULTS.resumable, describe: 'keep a resume state after every block (--no-resumable: none)' })
          .option('resume-activations', { choices: ['F32', 'input'], default: PRUNE_DEFAULTS.resumeActivations, describe: 'stored activations: F32 (exact) or the input dtype (half the disk)' }),
        ),
      async (argv) => {
        await backend(argv);
        const usesData = getMethod(argv.method as MethodName).stats.length > 0 || argv.layerwise !== undefined || argv.refine !== undefined;
        warnIgnored(args, usesData ? [] : CALIBRATION_FLAGS, `method ${argv.method} uses no calibration data (nor does any --layerwise or --refine)`);
        const structure = parseStructure(argv.structure);
        const opts = ownerOptions(argv as Record<string, unknown>, {
          method: argv.method,
          ...(argv.layerwise !== undefined ? { layerwise: argv.layerwise } : {}),
          ...(argv.refine !== undefined ? { refine: argv.refine } : {}),
        });
        const sparsity = argv.sparsity ?? (structure.kind === 'nm' ? structure.n / structure.m : PRUNE_DEFAULTS.sparsity);
        const report = await prune({
          model: argv.model,
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
          resume: argv.resume,
          resumable: argv.resumable,
          resumeActivations: argv.resumeActivations as 'F32' | 'input',
          onProgress: (p) =>
            progress.update(p.pass === 'owl' ? 'OWL outlier pass, blocks' : 'prune blocks', p.layer + 1, p.layers, p.tokensPerSecond > 0 ? `${p.tokensPerSecond.toFixed(0)} tok/s` : ''),
          onNote: (line) => progress.note(line),
        });
        progress.note(`wrote ${report.out} (sparsity ${(100 * report.sparsity.overall).toFixed(2)}%)`);
        print({
          ...report,
          calibration: report.calibration && { ...report.calibration, windows: `${report.calibration.windows.length} windows (see report.json)` },
          ...(report.permutations ? { permutations: `${Object.keys(report.permutations).length} linears (see report.json)` } : {}),
        });
      },
    )
    .command(
      'convert',
      'Write a checkpoint again as dense or compressed (compressed-tensors) safetensors',
      (y) =>
        y
          .option('model', { type: 'string', demandOption: true, describe: 'checkpoint folder (dense or compressed-tensors) or hub id' })
          .option('out', { type: 'string', demandOption: true, describe: 'output checkpoint folder' })
          .option('format', { choices: CHECKPOINT_FORMATS as unknown as string[], demandOption: true, describe: 'dense or compressed' })
          .option('structure', { type: 'string', describe: 'sparsity structure for compressed (default: detected; 2:4 gets sparse-24-bitmask)' })
          .option('dtype', { choices: DTYPES as unknown as string[], describe: 'output dtype (default: the input one)' })
          .option('max-shard-size', { type: 'string', describe: 'shard the output, e.g. 2GB' })
          .option('overwrite', { type: 'boolean', default: false, describe: 'replace an existing --out folder' }),
      async (argv) => {
        if (argv.structure !== undefined) parseStructure(argv.structure); // 'unstructured' or N:M, before any work
        const ckpt = Checkpoint.open(await resolveModelPath(argv.model));
        try {
          const storage = saveCheckpoint(ckpt, {
            out: argv.out,
            format: argv.format as CheckpointFormat,
            ...(argv.structure !== undefined ? { structure: argv.structure } : {}),
            ...(argv.dtype !== undefined ? { dtype: argv.dtype as DType } : {}),
            ...(argv.maxShardSize !== undefined ? { maxShardBytes: parseSize('--max-shard-size', argv.maxShardSize) } : {}),
            overwrite: argv.overwrite,
          });
          print({ model: ckpt.dir, out: resolve(argv.out), storage });
        } finally {
          ckpt.close();
        }
      },
    )
    .command(
      'eval',
      'Evaluate perplexity (wikitext2, c4) and zero-shot tasks',
      (y) =>
        y
          .option('model', { type: 'string', demandOption: true, describe: 'checkpoint folder or hub id' })
          .option('ppl', { type: 'string', default: '', describe: `perplexity sets, comma-separated (${PERPLEXITY_SETS.join(', ')})` })
          .option('tasks', { type: 'string', default: '', describe: 'tasks, comma-separated: boolq,rte,hellaswag,winogrande,arc_easy,arc_challenge,openbookqa; name=FILE; or custom task files' })
          .option('limit', { type: 'number', describe: 'first N items of each task' })
          .option('seqlen', { type: 'number', describe: 'perplexity window (default: model context)' })
          .option('max-windows', { type: 'number', describe: 'score only the first N perplexity windows' })
          .option('batch-size', { type: 'number', default: EVAL_DEFAULTS.batchSize, describe: 'perplexity windows per forward' })
          .option('data-dir', { type: 'string', describe: 'folder laid out like shared/data (default $LLM_PRUNE_DATA or ../shared/data)' })
          .option('add-bos', { type: 'boolean', default: EVAL_DEFAULTS.addBos, describe: 'prepend BOS to task contexts' })
          .option('adapter', { type: 'string', describe: 'LoRA adapter folder (PEFT layout) applied without merging' })
          .option('download', { type: 'boolean', default: false, describe: 'fetch missing perplexity sets from the hub' })
          .option('out', { type: 'string', describe: 'also write the JSON results to this file' }),
      async (argv) => {
        await backend(argv);
        const ppl = list(argv.ppl) as PerplexitySet[];
        const tasks = list(argv.tasks);
        if (ppl.length === 0 && tasks.length === 0) throw new ConfigError('eval: give --ppl and/or --tasks');
        if (ppl.length === 0) warnIgnored(args, ['--seqlen', '--max-windows', '--batch-size'], 'no --ppl set is evaluated');
        if (tasks.length === 0) warnIgnored(args, ['--limit', '--add-bos'], 'no --tasks are evaluated');
        const m = await loadModel(argv.model);
        let adapters: ReturnType<typeof loadAdapters> | null = null;
        try {
          adapters = argv.adapter !== undefined ? loadAdapters(argv.adapter, m.model) : null;
          const forward = adapters?.forward;
          const r = await evaluate(m, {
            ppl,
            tasks,
            ...(argv.limit !== undefined ? { limit: argv.limit } : {}),
            ...(argv.seqlen !== undefined ? { seqlen: argv.seqlen } : {}),
            ...(argv.maxWindows !== undefined ? { maxWindows: argv.maxWindows } : {}),
            dataDir: argv.dataDir ?? defaultDataDir(process.env),
            ...(forward ? { forward } : {}),
            batchSize: argv.batchSize,
            addBos: argv.addBos,
            download: argv.download,
            onProgress: (what, d, t, e) => progress.update(what, d, t, e),
          });
          progress.done();
          const result = { model: m.dir, ...(argv.adapter !== undefined ? { adapter: argv.adapter } : {}), ...r };
          if (argv.out) writeJsonAtomic(argv.out, result);
          print(result);
          const label = argv.adapter !== undefined ? `${argv.model} + LoRA ${argv.adapter}` : argv.model;
          progress.note('\n' + resultsTable([{ label, zeroShot: r.zeroShot, perplexity: r.perplexity }]));
        } finally {
          adapters?.dispose();
          m.dispose();
        }
      },
    )
    .command(
      'run [config]',
      'Run an experiment file: dense + every setting, pruned and evaluated; results table and charts',
      (y) =>
        y
          .positional('config', { type: 'string', describe: 'experiment file (.yaml or .json)' })
          .option('config', { type: 'string', describe: 'the experiment file, as a flag (same as the positional)' })
          .option('set', { type: 'string', array: true, default: [], describe: 'override a key: --set calibration.nsamples=16 (repeatable)' })
          .option('shared', { type: 'string', describe: 'the folder that ${shared} names in experiment files (default $LLM_PRUNE_SHARED, ./shared, ../shared)' })
          .option('dry-run', { type: 'boolean', default: false, describe: 'print the plan (settings, what is reused, estimated time) and compute nothing' })
          .option('shard', { type: 'string', describe: 'K/N: run only the settings whose id hashes to K of N (0-based); merge with `report`' }),
      async (argv) => {
        if (!argv.config) throw new ConfigError('run: give the experiment file: llm-prune run CONFIG (.yaml or .json)');
        const shard = argv.shard !== undefined ? parseShard(argv.shard) : undefined;
        const exp = withThreads(loadExperiment(argv.config, parseOverrides(argv.set as string[]), argv.shared !== undefined ? { shared: argv.shared } : {}), argv.threads);
        await runOrPlan(exp, argv.dryRun, shard);
      },
    )
    .command(
      'report <dirs..>',
      'Merge the results folders of `run` (shards of one experiment) into one results.json/md/csv with charts',
      (y) =>
        y
          .positional('dirs', { type: 'string', array: true, demandOption: true, describe: 'results folders (each with experiment.json and settings/)' })
          .option('out', { type: 'string', demandOption: true, describe: 'folder for the merged report (may be one of the inputs)' })
          .option('allow-missing', { type: 'boolean', default: false, describe: 'write the report even when settings of the grid are in no folder' }),
      async (argv) => {
        const r = await mergeResults(argv.dirs as string[], argv.out, { allowMissing: argv.allowMissing });
        if (r.missing.length) progress.note(`missing settings: ${r.missing.join(', ')}`);
        progress.note(`wrote ${join(argv.out, 'results.md')} (${r.results.results.length} settings)`);
        print({ out: argv.out, files: r.files, settings: r.results.results.map((x) => x.id), missing: r.missing, sources: r.sources });
      },
    )
    .command(
      'demo',
      'Run configs/demo.yaml (model: $LLM_PRUNE_MODEL, else shared c4-llama-7m, else a hub model)',
      (y) =>
        y
          .option('set', { type: 'string', array: true, default: [], describe: 'override a key of configs/demo.yaml' })
          .option('shared', { type: 'string', describe: 'the shared folder with models/ and data/ (default $LLM_PRUNE_SHARED, ./shared, ../shared)' })
          .option('dry-run', { type: 'boolean', default: false, describe: 'print the plan and compute nothing' }),
      async (argv) => {
        const overrides = parseOverrides(argv.set as string[]);
        const shared = findSharedDir(argv.shared);
        if (shared === null || !existsSync(join(shared, 'data'))) {
          throw new ConfigError(
            `demo: the shared data folder (C4 calibration sample, WikiText-2, tasks) was not found${shared ? ` in ${shared}` : ''}: ${SHARED_HINT}` +
              '; the model can also be given alone with LLM_PRUNE_MODEL=/path/to/checkpoint',
          );
        }
        const model = demoModel(shared);
        progress.note(`demo model: ${model.path} (${model.why}); data: ${join(shared, 'data')}`);
        const exp = withThreads(loadExperiment(DEMO_CONFIG, { model: model.path, ...overrides }, { shared }), argv.threads);
        await runOrPlan(exp, argv.dryRun);
      },
    )
    .command(
      'finetune',
      'Train LoRA adapters on a (pruned) checkpoint; save PEFT adapters and optionally a merged model',
      (y) =>
        y
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
          // the CLI's own default (running the command again continues); finetune()'s is FINETUNE_DEFAULTS.resume (false)
          .option('resume', { type: 'boolean', default: true, describe: 'continue from <out>/checkpoint when present' })
          .option('overwrite', { type: 'boolean', default: false, describe: 'start over in a non-empty --out' })
          .option('eval-file', { type: 'string', describe: 'held-out text for perplexity before/after (e.g. WikiText-2 test)' })
          .option('eval-windows', { type: 'number', describe: 'perplexity windows scored before and after' })
          .option('merge', { choices: ['none', 'masked', 'dense'], default: FINETUNE_DEFAULTS.merge, describe: 'also write a merged checkpoint (masked keeps the sparsity)' })
          .option('format', { choices: CHECKPOINT_FORMATS as unknown as string[], default: 'dense', describe: 'merged checkpoint format (compressed: with --merge masked)' }),
      async (argv) => {
        await backend(argv);
        keepOnInterrupt(
          join(resolve(argv.out), 'checkpoint'),
          `kept the trainer checkpoint ${join(argv.out, 'checkpoint')}: the same command continues from its last saved step`,
          `no trainer checkpoint was saved yet (one every ${argv.checkpointEvery} steps)`,
        );
        const targets = list(argv.targets) as LinearName[];
        const report = await finetune({
          model: argv.model,
          data: argv.data,
          out: argv.out,
          rank: argv.rank,
          alpha: argv.alpha,
          dropout: argv.dropout,
          targets,
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
          ...(argv.evalFile !== undefined
            ? { eval: { file: argv.evalFile, ...(argv.evalWindows !== undefined ? { maxWindows: argv.evalWindows } : {}) } }
            : {}),
          merge: argv.merge as 'none' | 'masked' | 'dense',
          mergeFormat: argv.format as CheckpointFormat,
          onProgress: (p) => {
            if (p.phase === 'train') progress.update('finetune steps', p.step, p.maxSteps, `loss ${p.loss.toFixed(4)} lr ${p.lr.toExponential(2)} ${p.tokensPerSecond.toFixed(0)} tok/s`);
            else if (p.phase === 'eval') progress.note(`step ${p.step}: ${p.which} ppl ${p.ppl.toFixed(3)} (${p.windows} windows)`);
            else if (p.phase === 'checkpoint') progress.note(`step ${p.step}: checkpoint ${p.dir}`);
            else progress.note(`training windows: ${p.windows} from ${p.documents} documents (${p.excludedDocuments} calibration documents excluded)`);
          },
        });
        progress.done();
        print(report);
      },
    );
  return cli
    .demandCommand(1, 'give a command: inspect, generate, prune, convert, eval, run, demo, finetune')
    .strict()
    .help()
    .fail((msg, err) => {
      if (err) throw err;
      const command = args.find((a) => COMMANDS.includes(a));
      process.stderr.write(`error: ${msg}\n(${command ? `llm-prune ${command} --help` : 'llm-prune --help'} lists the options)\n`);
      process.exit(1);
    });
}

/** --threads, when given, overrides the experiment file's `threads:`. */
function withThreads(exp: Experiment, threads: number | undefined): Experiment {
  return threads === undefined ? exp : { ...exp, threads };
}

/** --set key=value pairs -> overrides (values parsed as YAML by the schema). */
function parseOverrides(pairs: string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const p of pairs) {
    const i = p.indexOf('=');
    if (i <= 0) throw new ConfigError(`--set: '${p}' is not key=value (like calibration.nsamples=16)`);
    out[p.slice(0, i)] = p.slice(i + 1);
  }
  return out;
}

const DEMO_CONFIG = join(packageRoot(), 'configs', 'demo.yaml');
const DEMO_HUB_MODEL = 'HuggingFaceTB/SmolLM2-135M';

/** The demo's model: $LLM_PRUNE_MODEL, else the shared c4-llama-7m, else a small hub model (needs the network). */
function demoModel(shared: string): { path: string; why: string } {
  const env = process.env['LLM_PRUNE_MODEL'];
  if (env) return { path: resolve(env), why: 'from $LLM_PRUNE_MODEL' };
  const local = join(shared, 'models', 'c4-llama-7m');
  if (existsSync(local)) return { path: local, why: 'the shared c4-llama-7m' };
  return { path: DEMO_HUB_MODEL, why: `no ${local} and no LLM_PRUNE_MODEL: fetched from the Hugging Face hub (needs the network)` };
}

const COMMANDS = ['inspect', 'generate', 'prune', 'convert', 'eval', 'run', 'demo', 'finetune'];

/** Flags that only feed calibration data (ignored by methods without it). */
const CALIBRATION_FLAGS = ['--calibration', '--calibration-field', '--nsamples', '--seqlen', '--seed', '--batch-size'];

/** Warn (stderr) about each of `flags` that the user typed although it has no effect: `why` says why. */
function warnIgnored(args: string[], flags: string[], why: string): void {
  const given = flags.filter((f) => args.some((a) => a === f || a.startsWith(`${f}=`)));
  if (given.length) progress.note(`warning: ${given.join(', ')} ${given.length > 1 ? 'are' : 'is'} ignored: ${why}`);
}

/** Run an experiment, or with `dryRun` print its plan without computing anything. */
async function runOrPlan(exp: Experiment, dryRun: boolean, shard?: Shard): Promise<void> {
  const callbacks = {
    ...(shard ? { shard } : {}),
    dataDir: defaultDataDir(process.env),
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

export async function main(args: string[]): Promise<void> {
  try {
    await buildCli(args).parseAsync();
  } catch (e) {
    progress.done();
    if (e instanceof LlmPruneError) {
      process.stderr.write(`error: ${e.message}\n`);
      process.exit(1);
    }
    process.stderr.write(`internal error: ${(e as Error).stack ?? String(e)}\n`);
    process.exit(2);
  }
}

/** Whether this file is the program (not imported): lib/bin.ts, the `llm-prune` command, starts it in a child. */
function isMain(): boolean {
  try {
    return realpathSync(process.argv[1] ?? '') === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isMain()) void main(hideBin(process.argv));
