/**
 * LoRA adapters: autodiff gradients against central finite differences, the frozen-linear and cross-entropy custom
 * gradients against tfjs's own, dropout determinism, PEFT files (names, shapes, config) and reload, merged
 * checkpoints (masked keeps the base's exact zero pattern; dense equals base + adapter forward).
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { CheckpointError, cliFlag, ConfigError, UnsupportedError } from '../../lib/errors.js';
import { Checkpoint } from '../../lib/model/checkpoint.js';
import { linearTensorName } from '../../lib/model/architecture.js';
import { loadModel, type LoadedModel } from '../../lib/model/load.js';
import { SafetensorsFile } from '../../lib/model/safetensors.js';
import { LINEAR_NAMES, type LinearName } from '../../lib/model/architecture.js';
import { prune } from '../../lib/prune/prune.js';
import { LoraAdapters, SeededRandom, dropoutMask, frozenLinear, frozenMatMul, validateLoraConfig } from '../../lib/finetune/lora.js';
import {
  ADAPTER_CONFIG_FILE,
  ADAPTER_WEIGHTS_FILE,
  loadAdapters,
  peftTensorName,
  saveAdapters,
  writeMergedCheckpoint,
} from '../../lib/finetune/peft.js';
import { causalLmLoss, ensureGradients } from '../../lib/finetune/loss.js';
import { windowLosses } from '../../lib/eval/perplexity.js';
import { useTestBackend } from '../helpers/backend.js';
import { TinyRandom, writeTinyCheckpoint } from '../helpers/tiny-checkpoint.js';

const IDS = [
  [1, 5, 77, 300, 12, 2047, 9, 9, 400, 1000],
  [1, 2000, 45, 6, 7, 8, 100, 200, 300, 1536],
];

let tmp: string;
let base: LoadedModel; // tiny random F32 model, 2 layers, hidden 64
beforeAll(async () => {
  await ensureGradients();
  await useTestBackend();
  tmp = mkdtempSync(join(tmpdir(), 'llm-prune-lora-'));
  writeTinyCheckpoint(join(tmp, 'base'), { seed: 3, numKvHeads: 2 });
  base = await loadModel(join(tmp, 'base'));
});
afterAll(() => {
  base?.dispose();
  rmSync(tmp, { recursive: true, force: true });
});

/** Set every B (and optionally A) to seeded N(0, std^2) values, so that both A and B receive gradient. */
function randomize(ad: LoraAdapters, seed: number, stdB: number, stdA?: number): void {
  const rng = new TinyRandom(seed);
  for (const p of ad.pairs) {
    p.bT.assign(tf.tidy(() => tf.tensor2d(rng.normals(p.bT.size, stdB), p.bT.shape as [number, number])));
    if (stdA !== undefined) p.aT.assign(tf.tidy(() => tf.tensor2d(rng.normals(p.aT.size, stdA), p.aT.shape as [number, number])));
  }
}

function lossValue(model: LoadedModel, ad: LoraAdapters): number {
  return tf.tidy(() => causalLmLoss(model.model, IDS, ad.forward()).dataSync()[0]!);
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

function logitsOf(model: LoadedModel, forward: Parameters<LoadedModel['model']['logits']>[1] = {}): Float32Array {
  const t = model.model.logits(IDS, forward);
  const v = t.dataSync() as Float32Array;
  t.dispose();
  return v;
}

describe('LoRA gradients', () => {
  test('autodiff gradients of A and B match central finite differences (float32, relative error < 1e-3)', async () => {
    const targets: LinearName[] = ['q_proj', 'v_proj', 'o_proj', 'down_proj'];
    const ad = LoraAdapters.create(base.model.config, { rank: 4, alpha: 8, dropout: 0, targets }, 7);
    try {
      randomize(ad, 11, 0.3);
      const vars = ad.variables();
      const { value, grads } = tf.variableGrads(() => causalLmLoss(base.model, IDS, ad.trainingForward(new SeededRandom(0))), vars);
      // the training-mode loss (frozen linears, custom cross-entropy) is the evaluation loss
      expect(value.dataSync()[0]).toBeCloseTo(lossValue(base, ad), 5);
      value.dispose();
      let checked = 0;
      let worst = 0;
      vars.forEach((v, vi) => {
        const g = grads[v.name]!.dataSync() as Float32Array;
        // the largest-|g| entry of this matrix: well-conditioned, its gradient is far above the float32 loss noise
        const order = Array.from(g.keys()).sort((a, b) => Math.abs(g[b]!) - Math.abs(g[a]!)).slice(0, 1);
        for (const idx of order) {
          const orig = v.dataSync()[idx]!;
          const at = (x: number): number => {
            const vals = (v.dataSync() as Float32Array).slice();
            vals[idx] = x;
            v.assign(tf.tidy(() => tf.tensor(vals, v.shape)));
            return lossValue(base, ad);
          };
          const h = 6e-2; // float32 loss noise (~1e-6) rules out small steps; Richardson removes the h^2 error
          const d1 = (at(orig + h) - at(orig - h)) / (2 * h);
          const d2 = (at(orig + h / 2) - at(orig - h / 2)) / h;
          const fd = (4 * d2 - d1) / 3; // Richardson extrapolation of the central difference: O(h^4)
          at(orig);
          const rel = Math.abs(fd - g[idx]!) / Math.abs(g[idx]!);
          worst = Math.max(worst, rel);
          if (rel >= 1e-3) throw new Error(`variable ${vi} entry ${idx}: autodiff ${g[idx]}, finite difference ${fd}, relative error ${rel}`);
          checked++;
        }
      });
      expect(checked).toBe(vars.length);
      expect(worst).toBeLessThan(1e-3);
      process.stderr.write(`LoRA gradient check: ${checked} entries, worst relative error ${worst.toExponential(2)}\n`);
      tf.dispose(grads);
    } finally {
      ad.dispose();
    }
  });

  test('with B = 0 (fresh adapters) only B gets gradient and the output equals the base model', async () => {
    const ad = LoraAdapters.create(base.model.config, { rank: 2, alpha: 4, dropout: 0, targets: ['q_proj', 'v_proj'] }, 1);
    try {
      expect(maxAbsDiff(logitsOf(base, ad.forward()), logitsOf(base))).toBe(0);
      const { value, grads } = tf.variableGrads(() => causalLmLoss(base.model, IDS, ad.trainingForward(new SeededRandom(0))), ad.variables());
      value.dispose();
      for (const p of ad.pairs) {
        expect(tf.tidy(() => tf.max(tf.abs(grads[p.aT.name]!)).dataSync()[0])).toBe(0);
        expect(tf.tidy(() => tf.max(tf.abs(grads[p.bT.name]!)).dataSync()[0])).toBeGreaterThan(0);
      }
      tf.dispose(grads);
    } finally {
      ad.dispose();
    }
  });

  test('frozenLinear over a weight held in column chunks (WebGPU, over the binding limit): the whole layer\'s output and input gradient', () => {
    const x = tf.variable(tf.randomNormal([2, 3, 6], 0, 1, 'float32', 6) as tf.Tensor3D);
    const w = tf.randomNormal([6, 7], 0, 1, 'float32', 7) as tf.Tensor2D; // wT [in, out]
    const bias = tf.randomNormal([7], 0, 1, 'float32', 8) as tf.Tensor1D;
    const parts = tf.split(w, [3, 3, 1], 1) as tf.Tensor2D[];
    const r = tf.randomNormal([2, 3, 7], 0, 1, 'float32', 9);
    const before = tf.memory().numTensors;
    const whole = tf.variableGrads(() => tf.sum(tf.mul(frozenLinear(x, { wT: w, bias }), r)), [x]);
    const chunked = tf.variableGrads(() => tf.sum(tf.mul(frozenLinear(x, { parts, bias }), r)), [x]);
    expect(chunked.value.dataSync()[0]).toBeCloseTo(whole.value.dataSync()[0]!, 5);
    expect(maxAbsDiff(chunked.grads[x.name]!.dataSync(), whole.grads[x.name]!.dataSync())).toBeLessThan(1e-5); // sums grouped by chunk
    const y = [frozenLinear(x, { wT: w, bias }), frozenLinear(x, { parts, bias })];
    expect(Array.from(y[1]!.dataSync())).toEqual(Array.from(y[0]!.dataSync())); // each output: the same dot product
    tf.dispose([whole.value, chunked.value, whole.grads, chunked.grads, ...y]);
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([x, w, bias, r, ...parts]);
  });

  test('frozenMatMul and the cross-entropy give the gradients of tfjs defaults', async () => {
    const x = tf.variable(tf.randomNormal([5, 6], 0, 1, 'float32', 3) as tf.Tensor2D);
    const w = tf.randomNormal([6, 4], 0, 1, 'float32', 4) as tf.Tensor2D;
    const r = tf.tidy(() => tf.randomNormal([5, 4], 0, 1, 'float32', 5));
    const g1 = tf.variableGrads(() => tf.sum(tf.mul(frozenMatMul(x, w), r)), [x]);
    const g2 = tf.variableGrads(() => tf.sum(tf.mul(tf.matMul(x, w), r)), [x]);
    expect(maxAbsDiff(g1.grads[x.name]!.dataSync(), g2.grads[x.name]!.dataSync())).toBeLessThan(1e-5);
    tf.dispose([x, w, r, g1.value, g2.value, g1.grads, g2.grads]);

    // the whole training loss against the same loss written with tfjs's default gradients only
    const ad = LoraAdapters.create(base.model.config, { rank: 4, alpha: 8, dropout: 0, targets: ['q_proj', 'v_proj'] }, 7);
    try {
      randomize(ad, 11, 0.3);
      const v = base.model.config.vocabSize;
      const plain = (): tf.Scalar => {
        const logits = base.model.logits(IDS, ad.forward()); // [2, 10, vocab]
        const pred = tf.reshape(tf.slice(logits, [0, 0, 0], [2, 9, v]), [18, v]);
        const onehot = tf.cast(tf.oneHot(tf.tensor1d(IDS.flatMap((row) => row.slice(1)), 'int32'), v), 'float32');
        return tf.mean(tf.sub(tf.logSumExp(pred, 1), tf.sum(tf.mul(pred, onehot), 1)));
      };
      const mine = tf.variableGrads(() => causalLmLoss(base.model, IDS, ad.trainingForward(new SeededRandom(0))), ad.variables());
      const ref = tf.variableGrads(plain, ad.variables());
      expect(mine.value.dataSync()[0]).toBeCloseTo(ref.value.dataSync()[0]!, 5);
      for (const vr of ad.variables()) {
        const a = mine.grads[vr.name]!.dataSync();
        const b = ref.grads[vr.name]!.dataSync();
        const scale = Math.max(...Array.from(b, Math.abs));
        expect(maxAbsDiff(a, b) / scale).toBeLessThan(1e-4);
      }
      tf.dispose([mine.value, ref.value, mine.grads, ref.grads]);
    } finally {
      ad.dispose();
    }
  });

  test('causalLmLoss equals the mean of perplexity.ts window losses', async () => {
    const ad = LoraAdapters.create(base.model.config, validateLoraConfig({ rank: 2, alpha: 2, dropout: 0, targets: ['v_proj'] }), 2);
    try {
      randomize(ad, 5, 0.1);
      const per = await windowLosses(base.model, IDS, ad.forward());
      expect(lossValue(base, ad)).toBeCloseTo((per[0]! + per[1]!) / 2, 5);
    } finally {
      ad.dispose();
    }
  });

  test('no tensors are left behind by the forward options', async () => {
    const ad = LoraAdapters.create(base.model.config, { rank: 2, alpha: 4, dropout: 0.1, targets: ['q_proj'] }, 1);
    const rng = new SeededRandom(9);
    tf.dispose(base.model.logits(IDS, ad.trainingForward(rng)));
    const before = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) {
      tf.dispose(base.model.logits(IDS, ad.trainingForward(rng)));
      tf.dispose(base.model.logits(IDS, ad.forward()));
    }
    expect(tf.memory().numTensors).toBe(before);
    ad.dispose();
  });
});

describe('LoRA configuration and dropout', () => {
  test('A starts uniform in +-1/sqrt(in), B at zero, the same for the same seed', async () => {
    const cfg = { rank: 8, alpha: 16, dropout: 0.05, targets: ['v_proj', 'q_proj'] as LinearName[] };
    const a = LoraAdapters.create(base.model.config, cfg, 4);
    const b = LoraAdapters.create(base.model.config, cfg, 4);
    const c = LoraAdapters.create(base.model.config, cfg, 5);
    try {
      expect(a.config.targets).toEqual(['q_proj', 'v_proj']); // execution order
      expect(a.scale).toBe(2);
      expect(a.pairs.map((p) => `${p.layer}.${p.name}`)).toEqual(['0.q_proj', '0.v_proj', '1.q_proj', '1.v_proj']);
      const aVals = a.pairs[0]!.aT.dataSync();
      const bound = 1 / Math.sqrt(64);
      expect(Math.max(...Array.from(aVals, Math.abs))).toBeLessThanOrEqual(bound);
      expect(Math.max(...Array.from(aVals, Math.abs))).toBeGreaterThan(0.9 * bound);
      expect(Array.from(a.pairs[0]!.bT.dataSync()).every((v) => v === 0)).toBe(true);
      expect(Array.from(b.pairs[0]!.aT.dataSync())).toEqual(Array.from(aVals));
      expect(Array.from(c.pairs[0]!.aT.dataSync())).not.toEqual(Array.from(aVals));
      // q_proj [64 -> 64], v_proj [64 -> 32] (2 KV heads of 16): r (in + out) each, 2 layers
      expect(a.parameterCount()).toBe(2 * (8 * (64 + 64) + 8 * (64 + 32)));
    } finally {
      a.dispose();
      b.dispose();
      c.dispose();
    }
  });

  test('invalid settings are refused with the option named', async () => {
    const ok = { rank: 8, alpha: 16, dropout: 0, targets: ['q_proj'] as LinearName[] };
    expect(() => validateLoraConfig({ ...ok, rank: 0 })).toThrow(new ConfigError('rank must be a positive integer, got 0'));
    expect(() => validateLoraConfig({ ...ok, alpha: -1 })).toThrow(new ConfigError('alpha must be a positive number, got -1'));
    expect(() => validateLoraConfig({ ...ok, dropout: 1 })).toThrow(new ConfigError('dropout must be in [0, 1), got 1'));
    expect(() => validateLoraConfig({ ...ok, rank: 0 }, cliFlag)).toThrow(new ConfigError('--rank must be a positive integer, got 0')); // the CLI's names
    expect(() => validateLoraConfig({ ...ok, targets: [] })).toThrow(ConfigError);
    expect(() => validateLoraConfig({ ...ok, targets: ['qkv' as LinearName] })).toThrow(/^targets: 'qkv' is not a linear layer/);
    expect(() => validateLoraConfig({ ...ok, targets: ['q_proj', 'q_proj'] })).toThrow('names a layer twice');
  });

  test('dropout masks: fraction p zeroed, kept values scaled by 1/(1-p), reproducible from the generator state', async () => {
    const rng = new SeededRandom(42);
    const m1 = dropoutMask(rng, 20000, 0.25);
    const zeros = m1.filter((v) => v === 0).length;
    expect(zeros / 20000).toBeGreaterThan(0.23);
    expect(zeros / 20000).toBeLessThan(0.27);
    expect(m1.every((v) => v === 0 || v === Math.fround(1 / 0.75))).toBe(true);
    const state = rng.state;
    const next = dropoutMask(rng, 100, 0.5);
    const again = dropoutMask(new SeededRandom(state), 100, 0.5);
    expect(Array.from(again)).toEqual(Array.from(next));
    expect(SeededRandom.derive(0, 1).state).not.toBe(SeededRandom.derive(0, 2).state);
  });
});

describe('PEFT files', () => {
  test('names, shapes, dtype and adapter_config fields; reload gives identical outputs', async () => {
    const ad = LoraAdapters.create(base.model.config, { rank: 4, alpha: 8, dropout: 0.05, targets: ['q_proj', 'v_proj', 'up_proj'] }, 3);
    const dir = join(tmp, 'peft');
    rmSync(dir, { recursive: true, force: true });
    try {
      randomize(ad, 8, 0.2);
      mkdirSync(dir, { recursive: true });
      await saveAdapters(dir, ad, '/models/pruned');
      const cfg = JSON.parse(readFileSync(join(dir, ADAPTER_CONFIG_FILE), 'utf8')) as Record<string, unknown>;
      expect(cfg).toEqual({
        base_model_name_or_path: '/models/pruned',
        bias: 'none',
        fan_in_fan_out: false,
        inference_mode: true,
        init_lora_weights: true,
        lora_alpha: 8,
        lora_dropout: 0.05,
        modules_to_save: null,
        peft_type: 'LORA',
        r: 4,
        target_modules: ['q_proj', 'v_proj', 'up_proj'],
        task_type: 'CAUSAL_LM',
      });
      const f = SafetensorsFile.open(join(dir, ADAPTER_WEIGHTS_FILE));
      try {
        const names = [...f.entries.keys()].sort();
        expect(names).toContain('base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight');
        expect(names).toContain('base_model.model.model.layers.1.mlp.up_proj.lora_B.weight');
        expect(names).toHaveLength(2 * 3 * 2);
        expect(f.entries.get(peftTensorName(0, 'q_proj', 'A'))!.shape).toEqual([4, 64]); // [r, in]
        expect(f.entries.get(peftTensorName(0, 'v_proj', 'B'))!.shape).toEqual([32, 4]); // [out, r]
        expect(f.entries.get(peftTensorName(1, 'up_proj', 'A'))!.shape).toEqual([4, 64]);
        expect(f.entries.get(peftTensorName(1, 'up_proj', 'B'))!.shape).toEqual([128, 4]);
        expect([...f.entries.values()].every((e) => e.dtype === 'F32')).toBe(true);
        expect(f.metadata).toEqual({ format: 'pt' });
        // A as stored is aT transposed: A[i][j] = aT[j][i]
        const a = f.readFloat32(peftTensorName(0, 'q_proj', 'A'));
        const aT = ad.get(0, 'q_proj')!.aT.dataSync();
        expect(a[1 * 64 + 5]).toBe(aT[5 * 4 + 1]);
      } finally {
        f.close();
      }
      const loaded = loadAdapters(dir, base.model);
      try {
        expect(loaded.config).toEqual(ad.config);
        expect(loaded.baseModel).toBe('/models/pruned');
        expect(maxAbsDiff(logitsOf(base, loaded.forward), logitsOf(base, ad.forward()))).toBe(0);
        expect(maxAbsDiff(logitsOf(base, loaded.forward), logitsOf(base))).toBeGreaterThan(1e-3);
      } finally {
        loaded.dispose();
      }
    } finally {
      ad.dispose();
    }
  });

  test('malformed or unsupported adapter folders are refused with the file and field named', async () => {
    const ad = LoraAdapters.create(base.model.config, { rank: 2, alpha: 4, dropout: 0, targets: ['q_proj'] }, 3);
    const dir = join(tmp, 'peft-bad');
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    await saveAdapters(dir, ad, 'x');
    ad.dispose();
    const cfgFile = join(dir, ADAPTER_CONFIG_FILE);
    const good = readFileSync(cfgFile, 'utf8');
    const patch = (p: Record<string, unknown>): void => writeFileSync(cfgFile, JSON.stringify({ ...JSON.parse(good), ...p }));
    expect(() => loadAdapters(join(tmp, 'nowhere'), base.model)).toThrow(`no ${ADAPTER_CONFIG_FILE} (not a PEFT adapter folder)`);
    patch({ peft_type: 'IA3' });
    expect(() => loadAdapters(dir, base.model)).toThrow(`${cfgFile}: field 'peft_type' must be "LORA", got "IA3"`);
    patch({ r: 0 });
    expect(() => loadAdapters(dir, base.model)).toThrow(`field 'r' must be a positive integer, got 0`);
    patch({ use_dora: true });
    expect(() => loadAdapters(dir, base.model)).toThrow(UnsupportedError);
    patch({ target_modules: '.*attn.*' });
    expect(() => loadAdapters(dir, base.model)).toThrow("target_modules entry '.*attn.*' is not a LLaMA linear layer name");
    patch({ r: 3 }); // the stored tensors are rank 2
    expect(() => loadAdapters(dir, base.model)).toThrow(
      `tensor '${peftTensorName(0, 'q_proj', 'A')}' has shape [2, 64], expected [3, 64]`,
    );
    patch({ target_modules: ['q_proj', 'k_proj'] });
    expect(() => loadAdapters(dir, base.model)).toThrow(`tensor '${peftTensorName(0, 'k_proj', 'A')}' is missing`);
    patch({ target_modules: ['v_proj'] });
    expect(() => loadAdapters(dir, base.model)).toThrow(CheckpointError);
    writeFileSync(cfgFile, good);
    const l = loadAdapters(dir, base.model);
    l.dispose();
  });
});

describe('merged checkpoints', () => {
  let pruned: string;
  beforeAll(async () => {
    writeTinyCheckpoint(join(tmp, 'dense-bf16'), { seed: 4, dtype: 'BF16' });
    pruned = join(tmp, 'pruned-bf16');
    await prune({ model: join(tmp, 'dense-bf16'), out: pruned, method: 'magnitude', sparsity: 0.5 });
  });

  test('masked: zeros of the pruned base stay exactly zero (same positions, same counts); dense: they fill in', async () => {
    const m = await loadModel(pruned);
    const ad = LoraAdapters.create(m.model.config, { rank: 4, alpha: 8, dropout: 0, targets: ['q_proj', 'v_proj'] }, 1);
    try {
      randomize(ad, 12, 0.05);
      const masked = await writeMergedCheckpoint({ checkpoint: m.checkpoint, adapters: ad, mode: 'masked', out: join(tmp, 'merged-masked') });
      const dense = await writeMergedCheckpoint({ checkpoint: m.checkpoint, adapters: ad, mode: 'dense', out: join(tmp, 'merged-dense') });
      expect(masked.dtype).toBe('BF16');
      expect(masked.sameZeroCounts).toBe(true);
      expect(masked.zerosLost).toBe(0);
      expect(masked.sparsityAfter).toBe(masked.sparsityBefore);
      expect(masked.sparsityBefore).toBeGreaterThanOrEqual(0.5);
      expect(masked.adapted).toHaveLength(4);
      for (const a of masked.adapted) expect(a.zerosAfter).toBe(a.zerosBefore);
      expect(dense.sameZeroCounts).toBe(false);
      expect(dense.zerosLost).toBeGreaterThan(0);
      expect(dense.sparsityAfter).toBeLessThan(dense.sparsityBefore);
      for (const a of dense.adapted) expect(a.zerosAfter).toBeLessThan(a.zerosBefore / 10);

      const b = Checkpoint.open(pruned);
      const mm = Checkpoint.open(masked.dir);
      const dd = Checkpoint.open(dense.dir);
      try {
        for (let layer = 0; layer < 2; layer++) {
          for (const n of LINEAR_NAMES) {
            const name = linearTensorName(layer, n);
            const w = b.read(name);
            const wm = mm.read(name);
            const wd = dd.read(name);
            let zerosBase = 0;
            let zerosMasked = 0;
            let changed = 0;
            let wrong = 0;
            for (let i = 0; i < w.length; i++) {
              if (w[i] === 0) {
                zerosBase++;
                if (!Object.is(wm[i], w[i])) wrong++; // must be the base's own zero, bit for bit
              } else if (wm[i] !== wd[i]) {
                wrong++; // kept weights must be the dense merge's values
              }
              if (wm[i] === 0) zerosMasked++;
              if (wm[i] !== w[i]) changed++;
            }
            expect(wrong).toBe(0);
            expect(zerosMasked).toBe(zerosBase);
            if (n === 'q_proj' || n === 'v_proj') expect(changed).toBeGreaterThan(0);
            else expect(changed).toBe(0); // unadapted matrices copied value for value
          }
        }
        const bytes = (v: Float32Array): Buffer => Buffer.from(v.buffer, v.byteOffset, v.byteLength);
        expect(bytes(mm.read('model.embed_tokens.weight')).equals(bytes(b.read('model.embed_tokens.weight')))).toBe(true);
        expect(mm.dtypeOf(linearTensorName(0, 'q_proj'))).toBe('BF16');
      } finally {
        b.close();
        mm.close();
        dd.close();
      }
    } finally {
      ad.dispose();
      m.dispose();
    }
  });

  test('dense merge (F32) computes the same outputs as base + unmerged adapters', async () => {
    const ad = LoraAdapters.create(base.model.config, { rank: 4, alpha: 8, dropout: 0, targets: ['q_proj', 'v_proj', 'down_proj'] }, 1);
    try {
      randomize(ad, 13, 0.2);
      const r = await writeMergedCheckpoint({ checkpoint: base.checkpoint, adapters: ad, mode: 'dense', out: join(tmp, 'merged-f32') });
      expect(r.dtype).toBe('F32');
      const merged = await loadModel(r.dir);
      try {
        const want = logitsOf(base, ad.forward());
        const got = logitsOf(merged);
        const scale = Math.max(...Array.from(want, Math.abs));
        expect(maxAbsDiff(got, want) / scale).toBeLessThan(1e-5);
        expect(maxAbsDiff(logitsOf(base), want) / scale).toBeGreaterThan(1e-3); // the adapters do change the output
      } finally {
        merged.dispose();
      }
      await expect(async () => writeMergedCheckpoint({ checkpoint: base.checkpoint, adapters: ad, mode: 'dense', out: join(tmp, 'merged-f32') })).rejects.toThrow(
        'folder exists and is not empty',
      );
      writeTinyCheckpoint(join(tmp, 'narrow'), { hiddenSize: 32 });
      const narrow = Checkpoint.open(join(tmp, 'narrow'));
      try {
        await expect(async () => writeMergedCheckpoint({ checkpoint: narrow, adapters: ad, mode: 'masked', out: join(tmp, 'merged-narrow') })).rejects.toThrow(
          `merge: the adapter of block 0 q_proj [64, 64] does not fit the checkpoint ${narrow.dir} (2 blocks, q_proj is [32, 32])`,
        );
      } finally {
        narrow.close();
      }
    } finally {
      ad.dispose();
    }
  });
});
