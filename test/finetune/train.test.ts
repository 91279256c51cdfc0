/**
 * Fine-tuning: learning-rate schedules, AdamW against a plain-number reference, the trainer (loss goes down, no
 * tensor growth, gradient accumulation equals a bigger batch, gradient norm), training windows kept away from the
 * calibration documents, and finetune() end to end on a tiny model: report, PEFT output, held-out perplexity,
 * refusals, and a run killed after a checkpoint that resumes to exactly the adapters of an uninterrupted run.
 */
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { ConfigError, DataError, keyPath } from '../../lib/errors.js';
import { FINETUNE_DEFAULTS } from '../../lib/finetune/defaults.js';
import { loadModel, type LoadedModel } from '../../lib/model/load.js';
import { LoraAdapters } from '../../lib/finetune/lora.js';
import { ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE, loadAdapters } from '../../lib/finetune/peft.js';
import { finetune, type FinetuneProgress } from '../../lib/finetune/train.js';
import { AdamW, learningRate } from '../../lib/finetune/optim.js';
import { LoraTrainer, type TrainerOptions } from '../../lib/finetune/trainer.js';
import { causalLmLoss, ensureGradients } from '../../lib/finetune/loss.js';
import { resolveFinetuneOptions, type FinetuneOptions } from '../../lib/finetune/options.js';
import { trainingWindows } from '../../lib/finetune/data.js';
import { perplexityOfIds, evaluationIds } from '../../lib/eval/perplexity.js';
import { useTestBackend } from '../helpers/backend.js';
import { TinyRandom, writeTinyCheckpoint } from '../helpers/tiny-checkpoint.js';

const WORDS = ['the', 'cat', 'sat', 'on', 'a', 'mat', 'and', 'dog', 'ran', 'to', 'big', 'red', 'ball', 'in', 'park', 'sun'];

/** A JSONL file of `n` documents of 20-40 words, seeded. */
function writeDocs(file: string, n: number, seed: number): string[] {
  const rng = new TinyRandom(seed);
  const docs: string[] = [];
  for (let i = 0; i < n; i++) {
    const len = 20 + Math.floor(rng.uniform() * 20);
    docs.push(Array.from({ length: len }, () => WORDS[Math.floor(rng.uniform() * WORDS.length)]!).join(' ') + '.');
  }
  writeFileSync(file, docs.map((text, i) => JSON.stringify({ text, id: i })).join('\n') + '\n');
  return docs;
}

const TRAINER: TrainerOptions = {
  lr: 1e-2,
  schedule: 'constant',
  warmupSteps: 0,
  totalSteps: 100,
  weightDecay: 0,
  beta1: 0.9,
  beta2: 0.999,
  eps: 1e-8,
  maxGradNorm: 1,
};

let tmp: string;
let modelDir: string;
let dataFile: string;
let evalFile: string;
beforeAll(async () => {
  await ensureGradients();
  await useTestBackend();
  tmp = mkdtempSync(join(tmpdir(), 'llm-prune-finetune-'));
  modelDir = join(tmp, 'model');
  writeTinyCheckpoint(modelDir, { seed: 5, numLayers: 2, hiddenSize: 32, intermediateSize: 64, numHeads: 4, numKvHeads: 2 });
  dataFile = join(tmp, 'train.jsonl');
  writeDocs(dataFile, 40, 1);
  evalFile = join(tmp, 'eval.txt');
  writeFileSync(evalFile, writeDocs(join(tmp, 'eval-src.jsonl'), 12, 99).join('\n\n'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('learning-rate schedules (as transformers get_*_schedule_with_warmup)', () => {
  const o = { lr: 1, warmupSteps: 2, totalSteps: 10 };
  test('warmup is linear from 0 at step 0', async () => {
    for (const schedule of ['constant', 'linear', 'cosine'] as const) {
      expect(learningRate(0, { ...o, schedule })).toBe(0);
      expect(learningRate(1, { ...o, schedule })).toBe(0.5);
      expect(learningRate(2, { ...o, schedule })).toBe(1);
    }
  });
  test('constant, linear and cosine decay', async () => {
    expect(learningRate(9, { ...o, schedule: 'constant' })).toBe(1);
    expect(learningRate(6, { ...o, schedule: 'linear' })).toBeCloseTo(0.5, 12);
    expect(learningRate(10, { ...o, schedule: 'linear' })).toBe(0);
    expect(learningRate(6, { ...o, schedule: 'cosine' })).toBeCloseTo(0.5, 12);
    expect(learningRate(4, { ...o, schedule: 'cosine' })).toBeCloseTo(0.5 * (1 + Math.cos(Math.PI / 4)), 12);
    expect(learningRate(10, { ...o, schedule: 'cosine' })).toBeCloseTo(0, 12);
    expect(learningRate(0, { lr: 3e-4, warmupSteps: 0, totalSteps: 5, schedule: 'linear' })).toBe(3e-4);
  });
});

describe('AdamW', () => {
  test('matches torch.optim.AdamW step for step (decoupled weight decay, bias correction)', async () => {
    const p0 = [0.5, -1.25, 2];
    const gs = [
      [0.1, -0.2, 0.3],
      [-0.4, 0.05, 0.3],
      [0.2, 0.2, -0.1],
    ];
    const o = { beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0.1 };
    const lrs = [0.01, 0.02, 0.005];
    // plain-number reference (float64)
    const p = [...p0];
    const m = [0, 0, 0];
    const v = [0, 0, 0];
    gs.forEach((g, s) => {
      const t = s + 1;
      const lr = lrs[s]!;
      for (let i = 0; i < 3; i++) {
        p[i] = p[i]! * (1 - lr * o.weightDecay);
        m[i] = o.beta1 * m[i]! + (1 - o.beta1) * g[i]!;
        v[i] = o.beta2 * v[i]! + (1 - o.beta2) * g[i]! * g[i]!;
        const denom = Math.sqrt(v[i]!) / Math.sqrt(1 - o.beta2 ** t) + o.eps;
        p[i] = p[i]! - (lr / (1 - o.beta1 ** t)) * (m[i]! / denom);
      }
    });
    const x = tf.variable(tf.tensor1d(p0));
    const opt = new AdamW([x], o);
    const before = tf.memory().numTensors;
    gs.forEach((g, s) => {
      const gt = tf.tensor1d(g);
      opt.step([gt], lrs[s]!);
      gt.dispose();
    });
    expect(tf.memory().numTensors).toBe(before);
    expect(opt.t).toBe(3);
    const got = Array.from(x.dataSync());
    for (let i = 0; i < 3; i++) expect(got[i]).toBeCloseTo(p[i]!, 6);
    opt.dispose();
    x.dispose();
  });
});

describe('LoraTrainer', () => {
  let loaded: LoadedModel;
  let windows: number[][];
  beforeAll(async () => {
    loaded = await loadModel(modelDir);
    const data = await trainingWindows({ file: dataFile, tokenizer: loaded.tokenizer, seqlen: 16, count: 4, seed: 0 });
    windows = data.windows.map((w) => w.ids);
  });
  afterAll(() => loaded?.dispose());

  test('a few steps lower the training loss, and the step leaves no tensors behind', async () => {
    const ad = LoraAdapters.create(loaded.model.config, { rank: 4, alpha: 8, dropout: 0.05, targets: ['q_proj', 'v_proj'] }, 0);
    const tr = new LoraTrainer(loaded.model, ad, TRAINER, 0);
    try {
      const batch = [[windows[0]!, windows[1]!]];
      const losses: number[] = [];
      let afterStep2 = 0;
      for (let i = 0; i < 8; i++) {
        const r = await tr.trainStep(batch);
        expect(r.step).toBe(i + 1);
        expect(r.lr).toBe(1e-2);
        expect(r.gradNorm).toBeGreaterThan(0);
        losses.push(r.loss);
        if (i === 1) afterStep2 = tf.memory().numTensors;
      }
      expect(tf.memory().numTensors).toBe(afterStep2);
      expect(losses[7]!).toBeLessThan(losses[0]! - 0.1);
      expect(losses[7]!).toBeLessThan(losses[3]!);
    } finally {
      tr.dispose();
      ad.dispose();
    }
  });

  test('ensureGradients is idempotent (tfjs registers once per process); a trainer refuses to start without gradients', async () => {
    const matMulGrad = tf.getGradient(tf.BatchMatMul);
    expect(matMulGrad).toBeDefined();
    await ensureGradients(); // already done in beforeAll: nothing registered again (the same gradient object stays)
    expect(tf.getGradient(tf.BatchMatMul)).toBe(matMulGrad);
    const ad = LoraAdapters.create(loaded.model.config, { rank: 4, alpha: 8, dropout: 0, targets: ['q_proj'] }, 0);
    const before = tf.memory().numTensors;
    tf.unregisterGradient(tf.BatchMatMul);
    try {
      expect(() => new LoraTrainer(loaded.model, ad, TRAINER, 0)).toThrow(
        'LoraTrainer: tfjs has no gradient functions registered; await ensureGradients() (lib/finetune/loss.ts) first',
      );
      expect(tf.memory().numTensors).toBe(before);
    } finally {
      tf.registerGradient(matMulGrad);
      ad.dispose();
    }
    expect(tf.getGradient(tf.BatchMatMul)).toBe(matMulGrad);
  });

  test('gradient accumulation over two micro-batches equals one batch of both windows; gradNorm is the global norm', async () => {
    const cfg = { rank: 4, alpha: 8, dropout: 0, targets: ['q_proj', 'v_proj'] as const };
    const run = async (micro: number[][][]): Promise<{ values: Float32Array[]; gradNorm: number; loss: number }> => {
      const ad = LoraAdapters.create(loaded.model.config, { ...cfg, targets: [...cfg.targets] }, 3);
      const tr = new LoraTrainer(loaded.model, ad, { ...TRAINER, maxGradNorm: 0 }, 3);
      try {
        // B = 0 at the start gives A no gradient; one step first makes both non-trivial
        await tr.trainStep([[windows[2]!]]);
        const r = await tr.trainStep(micro);
        return { values: ad.variables().map((v) => v.dataSync() as Float32Array), gradNorm: r.gradNorm, loss: r.loss };
      } finally {
        tr.dispose();
        ad.dispose();
      }
    };
    const accumulated = await run([[windows[0]!], [windows[1]!]]);
    const batched = await run([[windows[0]!, windows[1]!]]);
    expect(accumulated.loss).toBeCloseTo(batched.loss, 5);
    expect(accumulated.gradNorm).toBeCloseTo(batched.gradNorm, 5);
    accumulated.values.forEach((v, i) => {
      const w = batched.values[i]!;
      let m = 0;
      for (let k = 0; k < v.length; k++) m = Math.max(m, Math.abs(v[k]! - w[k]!));
      expect(m).toBeLessThan(1e-5);
    });

    // the reported norm is sqrt(sum of squares) of all adapter gradients
    const ad = LoraAdapters.create(loaded.model.config, { ...cfg, targets: [...cfg.targets] }, 3);
    const tr = new LoraTrainer(loaded.model, ad, { ...TRAINER, maxGradNorm: 1e-3 }, 3);
    try {
      const { value, grads } = tf.variableGrads(() => causalLmLoss(loaded.model, [windows[0]!], ad.forward()), ad.variables());
      const want = Math.sqrt(Object.values(grads).reduce((s, g) => s + tf.tidy(() => tf.sum(tf.square(g)).dataSync()[0]!), 0));
      tf.dispose([value, grads]);
      const r = await tr.trainStep([[windows[0]!]]);
      expect(r.gradNorm).toBeCloseTo(want, 5);
      expect(r.gradNorm).toBeGreaterThan(1e-3); // so the step was clipped
    } finally {
      tr.dispose();
      ad.dispose();
    }
  });
});

describe('training windows', () => {
  let loaded: LoadedModel;
  beforeAll(async () => {
    loaded = await loadModel(modelDir);
  });
  afterAll(() => loaded?.dispose());

  test('calibration documents are never drawn; doc indices are the file rows; a longer draw extends a shorter one', async () => {
    const exclude = new Set(Array.from({ length: 20 }, (_, i) => i));
    const d = await trainingWindows({ file: dataFile, tokenizer: loaded.tokenizer, seqlen: 16, count: 30, seed: 0, excludeDocuments: exclude });
    expect(d.documents).toBe(40);
    expect(d.excludedDocuments).toBe(20);
    expect(d.windows).toHaveLength(30);
    expect(d.windows.every((w) => w.doc >= 20 && w.doc < 40 && w.ids.length === 16)).toBe(true);
    const docs = readFileSync(dataFile, 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as { text: string }).text);
    const w = d.windows[3]!;
    expect(loaded.tokenizer.encode(docs[w.doc]!, { addSpecialTokens: true }).slice(w.offset, w.offset + 16)).toEqual(w.ids);
    const shorter = await trainingWindows({ file: dataFile, tokenizer: loaded.tokenizer, seqlen: 16, count: 10, seed: 0, excludeDocuments: exclude });
    expect(shorter.windows).toEqual(d.windows.slice(0, 10));
    const all = new Set(Array.from({ length: 40 }, (_, i) => i));
    await expect(
      trainingWindows({ file: dataFile, tokenizer: loaded.tokenizer, seqlen: 16, count: 3, seed: 0, excludeDocuments: all }),
    ).rejects.toThrow(new DataError(`data ${dataFile}: all 40 documents were used for calibration; nothing is left to train on`));
    await expect(
      trainingWindows({ file: evalFile, tokenizer: loaded.tokenizer, seqlen: 16, count: 3, seed: 0, excludeDocuments: new Set([0]) }),
    ).rejects.toThrow(ConfigError);
  });
});

describe('resolveFinetuneOptions (the one place FINETUNE_DEFAULTS are applied)', () => {
  const required = { model: 'm', data: 'train.jsonl', out: 'o', maxSteps: 7 };
  const D = FINETUNE_DEFAULTS;
  const defaults = {
    model: 'm',
    data: 'train.jsonl',
    out: 'o',
    dataField: D.dataField,
    lora: { rank: D.rank, alpha: D.alpha, dropout: D.dropout, targets: [...D.targets] },
    trainer: {
      lr: D.lr,
      schedule: D.schedule,
      warmupSteps: D.warmupSteps,
      totalSteps: 7, // maxSteps
      weightDecay: D.weightDecay,
      beta1: D.beta1,
      beta2: D.beta2,
      eps: D.eps,
      maxGradNorm: D.maxGradNorm,
    },
    seqlen: null, // the model context, known once the model is loaded
    batchSize: D.batchSize,
    gradAccum: D.gradAccum,
    maxSteps: 7,
    timeBudget: null,
    seed: D.seed,
    checkpointEvery: D.checkpointEvery,
    resume: D.resume,
    overwrite: D.overwrite,
    calibrationReport: null,
    eval: null,
    merge: D.merge,
    mergeDtype: null,
    mergeFormat: D.mergeFormat,
    hubToken: null, // the caller's (the CLI reads the environment); the library reads none
    tokenCacheDir: null, // tokenCacheDir()'s default
  };

  test('absent and undefined keys both take FINETUNE_DEFAULTS (a config section can be passed as it is)', async () => {
    const { optionName, ...r } = resolveFinetuneOptions(required);
    expect(r).toEqual(defaults);
    expect(optionName('maxSteps')).toBe('maxSteps'); // the library's own names unless the caller passes others
    const allUndefined: FinetuneOptions = { ...required };
    for (const k of ['dataField', 'rank', 'alpha', 'dropout', 'targets', 'lr', 'schedule', 'warmupSteps', 'totalSteps', 'weightDecay', 'beta1',
      'beta2', 'eps', 'maxGradNorm', 'seqlen', 'batchSize', 'gradAccum', 'timeBudget', 'seed', 'checkpointEvery', 'resume', 'overwrite',
      'calibrationReport', 'eval', 'merge', 'mergeDtype', 'mergeFormat', 'optionName', 'hubToken', 'tokenCacheDir', 'onProgress'] as const) {
      (allUndefined as unknown as Record<string, undefined>)[k] = undefined;
    }
    const { optionName: _n, ...u } = resolveFinetuneOptions(allUndefined);
    expect(u).toEqual(defaults);
    const ev = resolveFinetuneOptions({ ...required, eval: { file: 'eval.txt', set: undefined, every: undefined } }).eval;
    expect(ev).toEqual({ file: 'eval.txt', ...D.eval, seqlen: null, maxWindows: null });
  });

  test('given values win; targets come back in layer order; schedule length follows maxSteps unless given', async () => {
    const r = resolveFinetuneOptions({ ...required, rank: 4, targets: ['v_proj', 'q_proj'], schedule: 'cosine', gradAccum: 3, merge: 'masked', mergeFormat: 'compressed' });
    expect(r.lora).toEqual({ rank: 4, alpha: D.alpha, dropout: D.dropout, targets: ['q_proj', 'v_proj'] });
    expect(r.trainer.schedule).toBe('cosine');
    expect(r.trainer.totalSteps).toBe(7);
    expect(resolveFinetuneOptions({ ...required, totalSteps: 20 }).trainer.totalSteps).toBe(20);
    expect([r.gradAccum, r.merge, r.mergeFormat]).toEqual([3, 'masked', 'compressed']);
    expect(() => resolveFinetuneOptions({ ...required, merge: 'dense', mergeFormat: 'compressed' })).toThrow(ConfigError); // compressed needs a masked merge
  });
});

describe('finetune()', () => {
  /** A copy of the tiny model with a pruning report.json naming the training file as calibration source. */
  let pruned: string;
  beforeAll(() => {
    pruned = join(tmp, 'pruned');
    mkdirSync(pruned);
    for (const f of readdirSync(modelDir)) copyFileSync(join(modelDir, f), join(pruned, f));
    writeFileSync(
      join(pruned, 'report.json'),
      JSON.stringify({ method: 'wanda', calibration: { file: dataFile, nsamples: 3, seqlen: 16, seed: 0, hash: 'x', windows: [[0, 1], [7, 2], [7, 0], [31, 4]] } }),
    );
  });

  const base = (out: string, extra: Partial<FinetuneOptions> = {}): FinetuneOptions => ({
    model: pruned,
    data: dataFile,
    out: join(tmp, out),
    rank: 4,
    alpha: 8,
    dropout: 0.1,
    lr: 5e-3,
    schedule: 'cosine',
    warmupSteps: 1,
    totalSteps: 6,
    seqlen: 16,
    gradAccum: 2,
    maxSteps: 6,
    checkpointEvery: 2,
    merge: 'none', // the adapters only (the default also writes a masked merge: its own tests below)
    eval: { file: evalFile, maxWindows: 2, every: 3, periodicWindows: 1 },
    ...extra,
  });

  test('an uninterrupted run: report, PEFT output, held-out perplexity, calibration documents excluded', async () => {
    const events: FinetuneProgress[] = [];
    const r = await finetune(base('full', { onProgress: (p) => events.push(p) }));
    expect(r.training.steps).toBe(6);
    expect(r.training.stepsThisRun).toBe(6);
    expect(r.training.resumedFrom).toBeNull();
    expect(r.training.stoppedBy).toBe('maxSteps');
    expect(r.training.losses).toHaveLength(6);
    // First and last loss are measured the same way: means over the same number of steps (all 6 here).
    const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
    expect(r.training.lossWindow).toBe(6);
    expect(r.training.firstLoss).toBeCloseTo(mean(r.training.losses), 12);
    expect(r.training.lastLoss).toBeCloseTo(mean(r.training.losses), 12);
    expect(r.data.file).toBe(dataFile); // as given
    expect(r.data.excludedDocuments).toBe(3); // documents 0, 7, 31
    expect(r.data.windowsDrawn).toBe(12);
    expect(r.optimizer.tokensPerStep).toBe(32);
    expect(r.adapters).toMatchObject({ rank: 4, alpha: 8, dropout: 0.1, targets: ['q_proj', 'v_proj'], scale: 2 });
    expect(r.eval!.windows).toBe(2);
    expect(r.eval!.periodic.map((p) => p.step)).toEqual([3]);
    expect(r.eval!.after).not.toBe(r.eval!.before);
    expect(r.merge).toBeNull();
    const trainEvents = events.filter((e) => e.phase === 'train');
    expect(trainEvents.map((e) => e.step)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(events.filter((e) => e.phase === 'checkpoint').map((e) => e.step)).toEqual([2, 4, 6]);
    expect(events.filter((e) => e.phase === 'eval').map((e) => (e as { which: string }).which)).toEqual(['before', 'periodic', 'after']);
    const last = trainEvents[5] as Extract<FinetuneProgress, { phase: 'train' }>;
    expect(last.etaSeconds).toBe(0);
    expect(last.tokensPerSecond).toBeGreaterThan(0);
    expect(readdirSync(r.out).sort()).toEqual([ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE, 'checkpoint', 'report.json']);
    expect(JSON.parse(readFileSync(join(r.out, 'report.json'), 'utf8'))).toEqual(JSON.parse(JSON.stringify(r)));

    // the saved adapters reload for evaluation without merging and give the reported perplexity
    const m = await loadModel(pruned);
    const ad = loadAdapters(r.out, m.model);
    try {
      const ids = await evaluationIds('wikitext2', evalFile, m.tokenizer, 16);
      expect((await perplexityOfIds(m.model, ids, { seqlen: 16, maxWindows: 2, forward: ad.forward })).ppl).toBe(r.eval!.after);
      expect((await perplexityOfIds(m.model, ids, { seqlen: 16, maxWindows: 2 })).ppl).toBe(r.eval!.before);
    } finally {
      ad.dispose();
      m.dispose();
    }
  });

  test('a run killed after a checkpoint resumes to exactly the adapters of the uninterrupted run', async () => {
    const fullReport = await finetune(base('uninterrupted'));
    const full = readFileSync(join(tmp, 'uninterrupted', ADAPTER_WEIGHTS_FILE));
    // killed: an exception in the middle of step 3's progress report (the step-2 checkpoint is on disk)
    await expect(
      finetune(
        base('killed', {
          onProgress: (p) => {
            if (p.phase === 'train' && p.step === 3) throw new Error('killed');
          },
        }),
      ),
    ).rejects.toThrow('killed');
    const state = JSON.parse(readFileSync(join(tmp, 'killed', 'checkpoint', 'trainer_state.json'), 'utf8')) as { step: number };
    expect(state.step).toBe(2);
    // a restart with resume off is refused
    await expect(finetune(base('killed', { resume: false }))).rejects.toThrow(
      `out ${join(tmp, 'killed')}: holds a training checkpoint at step 2; pass resume to continue it or overwrite to start over`,
    );
    // stopped by maxSteps at 4 (resuming is the default: FINETUNE_DEFAULTS.resume), then resumed to 6
    const r4 = await finetune(base('killed', { maxSteps: 4 }));
    expect(r4.training.resumedFrom).toBe(2);
    expect(r4.training.steps).toBe(4);
    const r6 = await finetune(base('killed', { resume: true }));
    expect(r6.training.resumedFrom).toBe(4);
    expect(r6.training.stepsThisRun).toBe(2);
    expect(readFileSync(join(tmp, 'killed', ADAPTER_WEIGHTS_FILE)).equals(full)).toBe(true);
    expect(r6.training.losses).toEqual(fullReport.training.losses);
    expect(r6.eval!.before).toBe(fullReport.eval!.before);
    expect(r6.eval!.after).toBe(fullReport.eval!.after);
    // a different setting cannot continue the checkpoint
    await expect(finetune(base('killed', { lr: 1e-3, maxSteps: 8, resume: true }))).rejects.toThrow(
      "option 'lr' was 0.005 in the checkpoint and is 0.001 now",
    );
    const { totalSteps: _dropped, ...noTotal } = base('killed', { maxSteps: 8, resume: true });
    await expect(finetune(noTotal)).rejects.toThrow(
      "option 'totalSteps' was 6 in the checkpoint and is 8 now",
    );
  });

  test('time budget stops with a checkpoint; merge masked keeps the sparsity and is evaluated', async () => {
    const r = await finetune(base('budget', { timeBudget: 1e-9, maxSteps: 6 }));
    expect(r.training.stoppedBy).toBe('timeBudget');
    expect(r.training.steps).toBe(0);
    const { merge: _none, ...defaultMerge } = base('budget', { resume: true, maxSteps: 2, totalSteps: 6 });
    const r2 = await finetune(defaultMerge); // the default merge (FINETUNE_DEFAULTS.merge) is the masked one
    expect(r2.training.steps).toBe(2);
    expect(r2.merge!.mode).toBe('masked');
    expect(r2.merge!.sameZeroCounts).toBe(true);
    expect(r2.merge!.dtype).toBe('F32');
    expect(r2.eval!.merged).not.toBeNull();
    // unpruned F32 base: masked merge keeps the (absent) zeros, so the merged model is the adapters' model
    expect(Math.abs(r2.eval!.merged! - r2.eval!.after) / r2.eval!.after).toBeLessThan(1e-4);
  });

  test('no tensors are left behind: training, checkpoints, a failed run, resume, merge', async () => {
    const opts = base('leaks', { maxSteps: 3 }); // held-out evaluation included
    const before = tf.memory().numTensors;
    await expect(
      finetune({
        ...opts,
        onProgress: (p) => {
          if (p.phase === 'train' && p.step === 3) throw new Error('killed');
        },
      }),
    ).rejects.toThrow('killed');
    expect(tf.memory().numTensors).toBe(before);
    const r = await finetune({ ...opts, resume: true, merge: 'masked' });
    expect(r.training.resumedFrom).toBe(2);
    expect(tf.memory().numTensors).toBe(before);
  });

  test('refusals: evaluation text as training data, bad options, non-empty output folder', async () => {
    await expect(finetune(base('x', { eval: { file: dataFile } }))).rejects.toThrow(
      `data ${dataFile} is also the evaluation file: training on the evaluation text would make its perplexity meaningless`,
    );
    await expect(finetune(base('x', { maxSteps: 0 }))).rejects.toThrow(new ConfigError('maxSteps must be a positive integer, got 0'));
    await expect(finetune(base('x', { lr: 0 }))).rejects.toThrow(new ConfigError('lr must be in (0, 1], got 0'));
    await expect(finetune(base('x', { seqlen: 1000 }))).rejects.toThrow(new ConfigError('seqlen 1000: must be an integer in 2..128 (the model context)'));
    await expect(finetune(base('x', { merge: 'sparse' as 'masked' }))).rejects.toThrow(ConfigError);
    mkdirSync(join(tmp, 'busy'));
    writeFileSync(join(tmp, 'busy', 'keep.txt'), 'x');
    await expect(finetune(base('busy'))).rejects.toThrow(new ConfigError(`out ${join(tmp, 'busy')}: folder exists and is not empty (pass overwrite to replace it)`));
    expect(readFileSync(join(tmp, 'busy', 'keep.txt'), 'utf8')).toBe('x');
  });

  test('a caller that is a config file gets its key paths in the messages, not CLI flags', async () => {
    const optionName = keyPath('finetune');
    await expect(finetune(base('x', { maxSteps: 0, optionName }))).rejects.toThrow(new ConfigError('finetune.maxSteps must be a positive integer, got 0'));
    await expect(finetune(base('x', { rank: 0, optionName }))).rejects.toThrow(new ConfigError('finetune.rank must be a positive integer, got 0'));
    await expect(finetune(base('x', { warmupSteps: -1, optionName }))).rejects.toThrow(new ConfigError('finetune.warmupSteps must be a non-negative integer, got -1'));
    await expect(finetune(base('x', { seqlen: 1000, optionName }))).rejects.toThrow(
      new ConfigError('finetune.seqlen 1000: must be an integer in 2..128 (the model context)'),
    );
  });
});
