/**
 * The stages of one experiment setting (lib/experiment/run.ts): prune it, evaluate a checkpoint folder, fine-tune
 * it and evaluate the result, and the setting's result record built from them.
 *
 * THE FINETUNE STAGE (`finetune:` in the experiment): each pruned setting (never the dense model) is, after it was
 * pruned and evaluated, fine-tuned with lib/finetune/train.ts's `finetune()` on its pruned checkpoint (LoRA
 * adapters; training windows drawn from `finetune.data` with the pruning's calibration documents left out) and
 * evaluated again with the same evaluation: the merged checkpoint for `merge: masked` (the default: the pruning
 * mask re-applied, so the zeros are exactly those of the pruned model, which the runner checks) or `dense`, the
 * adapters unmerged on the pruned checkpoint for `merge: none`. The setting's result gets a `finetune` block
 * (steps, training seconds, first and final training loss, the merged model's zero fraction, perplexities, tasks,
 * mean) and timings `finetune` (training and merge), `finetune_load`, `finetune_ppl`, `finetune_tasks`.
 * `finetune()` is passed the finetune keys as the experiment file gives them and fills in its own defaults
 * (lib/finetune/defaults.ts); only `merge` is passed resolved (the same default, masked, which the evaluation and
 * the fingerprint read).
 */
import { rmSync } from 'node:fs';
import { CheckpointError, DataError, keyPath } from '../errors.js';
import { evaluate, type EvaluateResult } from '../eval/evaluate.js';
import { loadAdapters, type LoadedAdapters } from '../finetune/peft.js';
import { finetune, type FinetuneReport } from '../finetune/train.js';
import { linearSparsity } from '../model/sparsity.js';
import { loadModel, type LoadedModel } from '../model/load.js';
import { prune } from '../prune/prune.js';
import { ResumeMismatchError } from '../prune/resume.js';
import { finetuneLabel, type FinetuneResult, type SettingResult } from './report.js';
import { planTag, pruneOptionName, type Experiment, type FinetuneConfig, type PruneSetting } from './schema.js';
import { structureLabel } from '../prune/structure.js';
import { definedOnly, type RunContext } from './context.js';

/** What a pruning returns (its report). */
export type PruneReport = Awaited<ReturnType<typeof prune>>;

/** An evaluation of one checkpoint folder: the result fields, its zero fraction when measured, timings (seconds). */
export interface Evaluation {
  fields: Pick<SettingResult, 'perplexity' | 'tasks' | 'mean'>;
  sparsity: number | null;
  timings: Record<string, number>;
}

/** The result fields an evaluation fills, keyed as the experiment names them (tasks by name or file path). */
function evaluationFields(exp: Experiment, r: Pick<EvaluateResult, 'perplexity' | 'zeroShot'>): Evaluation['fields'] {
  const perplexity: SettingResult['perplexity'] = {};
  for (const p of r.perplexity) perplexity[p.dataset] = { ppl: Number.isFinite(p.ppl) ? p.ppl : null, windows: p.windows, tokens: p.tokens };
  const tasks: SettingResult['tasks'] = {};
  const scored = r.zeroShot?.tasks ?? [];
  exp.eval.tasks.forEach((task, i) => {
    const t = scored[i];
    if (t === undefined) {
      throw new DataError(`eval.tasks: '${task}' gave no result (evaluate() scored ${scored.length} of ${exp.eval.tasks.length} tasks)`);
    }
    tasks[task] = { acc: t.acc, ...(t.accNorm !== null ? { acc_norm: t.accNorm } : {}), n: t.n };
  });
  return { perplexity, tasks, mean: r.zeroShot ? r.zeroShot.mean.value : null };
}

/**
 * Load a checkpoint folder (with LoRA adapters from `adapterDir`, unmerged, when given), evaluate it, free it.
 * `measure`: also count its zeros. Progress is labelled `label`.
 */
export async function evaluateFolder(ctx: RunContext, label: string, dir: string, measure: boolean, adapterDir: string | null = null): Promise<Evaluation> {
  const { exp, evalConfig } = ctx;
  const tl = performance.now();
  const m: LoadedModel = await loadModel(dir);
  let adapters: LoadedAdapters | null = null;
  try {
    if (adapterDir !== null) adapters = loadAdapters(adapterDir, m.model);
    const load = (performance.now() - tl) / 1000;
    const sparsity = measure ? linearSparsity(m.checkpoint) : null;
    const onProgress = (what: string, d: number, t: number, e?: string): void => ctx.progress(`${label}: ${what}`, d, t, e);
    const forward = adapters ? { forward: adapters.forward } : {};
    // Perplexity and tasks as two calls, to time each (tokenizing a perplexity set counts as perplexity).
    const timings: Record<string, number> = { load };
    const perplexity: EvaluateResult['perplexity'] = [];
    let zeroShot: EvaluateResult['zeroShot'] = null;
    if (exp.eval.ppl.length) {
      const r = await evaluate(m, { ...evalConfig, ...forward, tasks: [], onProgress });
      perplexity.push(...r.perplexity);
      timings['ppl'] = r.seconds;
    }
    if (exp.eval.tasks.length) {
      const r = await evaluate(m, { ...evalConfig, ...forward, ppl: [], onProgress });
      zeroShot = r.zeroShot;
      timings['tasks'] = r.seconds;
    }
    return { fields: evaluationFields(exp, { perplexity, zeroShot }), sparsity, timings };
  } finally {
    adapters?.dispose();
    m.dispose();
  }
}

/**
 * Prune setting `s` of the model into `out` (replacing what is there), continuing at its first unfinished block a
 * pruning that a killed run left in `<out>.partial`; a partial pruning made from other inputs is started over.
 */
export async function pruneSetting(ctx: RunContext, s: PruneSetting, out: string): Promise<PruneReport> {
  try {
    return await pruneOnce(ctx, s, out, ctx.exp.outputFormat === 'dense'); // compressed outputs cannot resume
  } catch (e) {
    if (!(e instanceof ResumeMismatchError)) throw e;
    ctx.note(`${s.id}: its partial pruning was made from other inputs; starting over`);
    rmSync(`${out}.partial`, { recursive: true, force: true });
    return pruneOnce(ctx, s, out, false);
  }
}

function pruneOnce(ctx: RunContext, s: PruneSetting, out: string, resume: boolean): Promise<PruneReport> {
  const { exp, note, progress } = ctx;
  return prune({
    model: ctx.modelDir,
    out,
    method: s.method,
    sparsity: s.sparsity,
    structure: s.structure,
    useVariant: s.useVariant,
    methodOptions: s.methodOptions,
    ...(s.layerwise ? { layerwise: s.layerwise.name, layerwiseOptions: s.layerwise.options } : {}),
    ...(s.refine ? { refine: s.refine.name, refineOptions: s.refine.options } : {}),
    targets: s.targets,
    ignore: s.ignore,
    calibration: exp.calibration.source,
    nsamples: exp.calibration.nsamples,
    seqlen: ctx.calibSeqlen,
    seed: exp.calibration.seed,
    batchSize: exp.calibration.batchSize,
    format: exp.outputFormat,
    overwrite: true,
    resume,
    resumeHint: 'the same command continues it',
    optionName: pruneOptionName(s.id),
    onNote: (line) => (line.startsWith('resuming') ? note(`${s.id}: ${line}`) : undefined),
    onProgress: (p) => progress(p.pass === 'owl' ? `${s.id}: OWL outlier pass` : `${s.id}: prune`, p.layer + 1, p.layers, p.tokensPerSecond > 0 ? `${p.tokensPerSecond.toFixed(0)} tok/s` : undefined),
  });
}

/** The dense model's result. */
export function denseResult(id: string, ev: Evaluation): SettingResult {
  return {
    id,
    method: 'dense',
    structure: null,
    sparsity: 0,
    useVariant: false,
    actualSparsity: ev.sparsity ?? 0,
    ...ev.fields,
    blockSparsity: [],
    timings: ev.timings,
  };
}

/** A pruned setting's result, from its pruning's report and its evaluation. */
export function prunedResult(s: PruneSetting, report: PruneReport, ev: Evaluation): SettingResult {
  return {
    id: s.id,
    method: s.method,
    structure: structureLabel(s.structure),
    sparsity: s.sparsity,
    useVariant: s.useVariant,
    ...(planTag(s) !== '' && planTag(s) !== '-variant' ? { plan: planTag(s).replace(/^[-+]/, '') } : {}),
    actualSparsity: report.sparsity.overall,
    ...ev.fields,
    blockSparsity: report.sparsity.blocks.map((b) => b.sparsity),
    ...(s.layerwise ? { blockAllocated: report.sparsity.blocks.map((b) => b.allocated) } : {}),
    timings: { prune: report.times.total, ...ev.timings },
  };
}

/** The finetune keys as the experiment file gives them, as finetune() options (it fills in the keys left out). */
function givenFinetuneOptions(f: FinetuneConfig) {
  const { data: _data, merge: _merge, targets, maxSteps, ...rest } = f;
  return { ...definedOnly(rest), targets: [...targets], maxSteps };
}

/** Train LoRA adapters on the pruned checkpoint `ckptDir` into `ftDir` (continuing there when `resume`). */
function trainSetting(ctx: RunContext, id: string, ckptDir: string, ftDir: string, resume: boolean, tag: string): Promise<FinetuneReport> {
  const { exp, note, progress } = ctx;
  const merge = ctx.ft!.merge;
  return finetune({
    optionName: keyPath('finetune', { out: `the fine-tune folder of ${id}` }),
    model: ckptDir,
    data: ctx.ft!.data,
    out: ftDir,
    ...givenFinetuneOptions(exp.finetune!),
    resume,
    overwrite: true,
    tokenCacheDir: ctx.evalConfig.tokenCacheDir,
    merge,
    ...(merge === 'masked' ? { mergeFormat: exp.outputFormat } : {}), // output.format; dense and none merges stay dense
    onProgress: (p) => {
      if (p.phase === 'train') {
        progress(`${id}: finetune`, p.step, p.maxSteps, `loss ${p.loss.toFixed(4)}, ${p.tokensPerSecond.toFixed(0)} tok/s`);
      } else if (p.phase === 'data') {
        note(`${tag}: fine-tuning on ${p.windows} windows from ${p.documents - p.excludedDocuments} documents (${p.excludedDocuments} calibration documents left out)`);
      }
    },
  });
}

/**
 * Fine-tune the pruned checkpoint `ckptDir` into `ftDir` (continuing an interrupted fine-tune there when
 * `resume`), then evaluate the result: the merged checkpoint, or the adapters unmerged for merge 'none'.
 */
export async function finetuneSetting(
  ctx: RunContext,
  id: string,
  ckptDir: string,
  ftDir: string,
  resume: boolean,
  tag: string,
): Promise<{ block: FinetuneResult; timings: Record<string, number> }> {
  const { note } = ctx;
  const label = finetuneLabel(id);
  const r = await trainSetting(ctx, id, ckptDir, ftDir, resume, tag);
  if (r.training.resumedFrom !== null) note(`${tag}: the fine-tune continued from its checkpoint at step ${r.training.resumedFrom}`);
  let actualSparsity: number | null = null;
  let ev: Evaluation;
  if (r.merge) {
    if (r.merge.mode === 'masked' && (!r.merge.sameZeroCounts || r.merge.zerosLost !== 0)) {
      throw new CheckpointError(
        `${id}: the masked merge in ${r.merge.dir} changed the zeros of the pruned checkpoint (${r.merge.zerosLost} zeros filled in); ` +
          'a masked merge must keep every zero',
      );
    }
    actualSparsity = r.merge.sparsityAfter;
    note(`${tag}: fine-tuned ${r.training.steps} steps in ${r.training.totalSeconds.toFixed(1)}s, merged (${r.merge.mode}, ${(100 * actualSparsity).toFixed(2)}% zeros); evaluating`);
    ev = await evaluateFolder(ctx, label, r.merge.dir, false);
  } else {
    note(`${tag}: fine-tuned ${r.training.steps} steps in ${r.training.totalSeconds.toFixed(1)}s; evaluating with the adapters unmerged`);
    ev = await evaluateFolder(ctx, label, ckptDir, false, ftDir);
  }
  const timings: Record<string, number> = { finetune: r.seconds };
  for (const [k, v] of Object.entries(ev.timings)) timings[`finetune_${k}`] = v;
  const block: FinetuneResult = {
    merge: ctx.ft!.merge,
    steps: r.training.steps,
    seconds: r.training.totalSeconds,
    firstLoss: r.training.firstLoss,
    finalLoss: r.training.lastLoss,
    actualSparsity,
    ...ev.fields,
  };
  return { block, timings };
}
