/**
 * `--backend webgpu` against wasm on the same inputs, in one process: logits (plain and with a cached prefix), the
 * zero-shot scorer, perplexity, and the layer loop's masks (Wanda unstructured and 2:4, magnitude) on c4-llama-7m.
 * It needs the optional packages (devDependencies here) and an adapter: on machines without a GPU that is Mesa's
 * llvmpipe through OpenGL ES (.ci/run installs it), a software adapter: correct, not fast. The adapter is printed.
 * WebGPU in Node has no synchronous read, so these paths passing also shows they make no host sync. Every method,
 * generate and finetune: test/model/webgpu-methods.acceptance.test.ts.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { CalibrationSet } from '../../lib/data/calibration.js';
import { evaluationIds, perplexityOfIds } from '../../lib/eval/perplexity.js';
import { modelScorer } from '../../lib/eval/scorer.js';
import type { Request, Score } from '../../lib/eval/harness.js';
import { generateIds } from '../../lib/generate.js';
import { initBackend, kernelsFor, type BackendInfo } from '../../lib/model/backend.js';
import { Checkpoint } from '../../lib/model/checkpoint.js';
import { linearTensorName } from '../../lib/model/architecture.js';
import { loadModel } from '../../lib/model/load.js';
import { adapterLine, setupWebgpu } from '../../lib/model/webgpu.js';
import { forceBindingLimit } from '../../lib/model/binding.js';
import { type PruneOptions } from '../../lib/prune/method.js';
import { LINEAR_NAMES } from '../../lib/model/architecture.js';
import { runLayerLoop } from '../../lib/prune/pipeline.js';
import { wandaVariantMask } from '../../lib/prune/wanda.js';
import { getMethod } from '../../lib/prune/registry.js';
import { sharedPath } from '../helpers/shared.js';

const MODEL = sharedPath('models', 'c4-llama-7m');
const WIKI = sharedPath('data', 'wikitext-2-raw-v1', 'test.jsonl');

/** Everything computed on one backend, read back to plain arrays. */
interface Results {
  logits: Float32Array;
  cached: Float32Array; // continueFrom after prefill
  scores: Score[];
  ppl: number;
  masks: Record<string, Map<string, Uint8Array>>; // run -> tensor name -> 1 = zero
}

const RUNS: Record<string, { method: string; prune: PruneOptions }> = {
  'wanda 0.5': { method: 'wanda', prune: { sparsity: 0.5, structure: { kind: 'unstructured' } } },
  'wanda 2:4': { method: 'wanda', prune: { sparsity: 0.5, structure: { kind: 'nm', n: 2, m: 4 } } },
  'magnitude 0.5': { method: 'magnitude', prune: { sparsity: 0.5, structure: { kind: 'unstructured' } } },
};

let wiki: number[];
let wasm: Results;
let gpu: Results;
let info: BackendInfo;

async function computeAll(): Promise<Results> {
  const m = await loadModel(MODEL);
  const ids = [wiki.slice(0, 48), wiki.slice(48, 96)];
  const requests: Request[] = [
    { context: wiki.slice(100, 120), continuation: wiki.slice(120, 124) }, // three choices sharing a context
    { context: wiki.slice(100, 120), continuation: wiki.slice(130, 133) },
    { context: wiki.slice(100, 120), continuation: [wiki[140]!] },
    { context: wiki.slice(200, 230), continuation: wiki.slice(230, 236) }, // distinct contexts (padded batch)
    { context: wiki.slice(300, 310), continuation: wiki.slice(310, 312) },
  ];
  const masks: Results['masks'] = {};
  try {
    const l = m.model.logits(ids);
    const { logits: pre, cache } = m.model.prefill(wiki.slice(0, 24));
    const cont = m.model.continueFrom(cache, [wiki.slice(24, 32), wiki.slice(60, 68)]);
    const out = {
      logits: (await l.data()) as Float32Array,
      cached: (await cont.data()) as Float32Array,
      scores: await modelScorer(m.model)(requests),
      ppl: (await perplexityOfIds(m.model, wiki, { seqlen: 128, maxWindows: 3, batchSize: 2 })).ppl,
    };
    tf.dispose([l, pre, cont]);
    cache.dispose();
    const calibration: CalibrationSet = { windows: [0, 1].map((i) => ({ doc: 0, offset: i * 64, ids: wiki.slice(1000 + i * 64, 1064 + i * 64) })), hash: 'test' };
    const ckpt = Checkpoint.open(MODEL);
    try {
      for (const [run, r] of Object.entries(RUNS)) {
        const kept: [string, tf.Tensor][] = [];
        await runLayerLoop({
          checkpoint: ckpt,
          method: getMethod(r.method),
          prune: r.prune,
          calibration,
          batchSize: 2,
          writer: null,
          onBlock: (layer, block) => {
            for (const n of LINEAR_NAMES) kept.push([linearTensorName(layer, n), tf.tidy(() => tf.cast(tf.equal(block.linears[n].wT!, 0), 'int32'))]);
          },
        });
        masks[run] = new Map();
        for (const [name, t] of kept) {
          masks[run]!.set(name, Uint8Array.from(await t.data()));
          t.dispose();
        }
      }
    } finally {
      ckpt.close();
    }
    return { ...out, masks };
  } finally {
    m.dispose();
  }
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - b[i]!));
  return d;
}

beforeAll(async () => {
  // `auto` on a machine whose only adapter is a software one: wasm (it never loads Dawn without a GPU driver).
  const auto = await initBackend('auto', { threads: 1 }); // single-threaded wasm, as the rest of the suite
  expect(auto.name === 'webgpu' ? !auto.adapter!.software : auto.name !== 'webgpu').toBe(true);
  await initBackend('wasm', { threads: 1 });
  const tok = (await loadModel(MODEL, { blocks: false })).tokenizer;
  wiki = await evaluationIds('wikitext2', WIKI, tok, 128);
  wasm = await computeAll();
  info = await initBackend('webgpu');
  process.stderr.write(`webgpu parity tests on: ${adapterLine(info.adapter!)}\n`);
  gpu = await computeAll();
}, 1_800_000); // llvmpipe is a CPU: both backends take minutes on 2 cores

afterAll(async () => {
  await initBackend('wasm', { threads: 1 });
});

describe('webgpu against wasm (float tolerance)', () => {
  test('the adapter is reported: vendor / architecture / device, and whether it is software', () => {
    const a = info.adapter!;
    expect(info.name).toBe('webgpu');
    expect(`${a.vendor}${a.architecture}${a.device}${a.description}`.length).toBeGreaterThan(0);
    expect(info.note).toContain(a.software ? 'software adapter' : a.device);
  });

  test('logits, plain and after a cached prefix, within 1e-3 of wasm', () => {
    expect(gpu.logits.length).toBe(2 * 48 * 4096);
    expect(maxAbsDiff(gpu.logits, wasm.logits)).toBeLessThan(1e-3);
    expect(maxAbsDiff(gpu.cached, wasm.cached)).toBeLessThan(1e-3);
    expect(maxAbsDiff(wasm.logits, wasm.logits.map((v) => v + 1e-2))).toBeGreaterThan(1e-3); // the bound can fail
  });

  test('zero-shot scores: log-probs within 1e-3, the same greedy flags', () => {
    expect(gpu.scores.map((s) => s.greedy)).toEqual(wasm.scores.map((s) => s.greedy));
    gpu.scores.forEach((s, i) => expect(Math.abs(s.logprob - wasm.scores[i]!.logprob)).toBeLessThan(1e-3));
  });

  test('perplexity (3 WikiText-2 windows of 128) within 1e-5 relative', () => {
    expect(Math.abs(gpu.ppl - wasm.ppl) / wasm.ppl).toBeLessThan(1e-5);
  });

  test('masks: magnitude identical; Wanda unstructured and 2:4 identical but for near-ties (< 0.1%)', () => {
    for (const run of Object.keys(RUNS)) {
      let differ = 0;
      let total = 0;
      for (const [name, want] of wasm.masks[run]!) {
        const got = gpu.masks[run]!.get(name)!;
        expect(got.length).toBe(want.length);
        for (let i = 0; i < want.length; i++) differ += got[i] !== want[i] ? 1 : 0;
        total += want.length;
        expect(got.reduce((a, v) => a + v, 0)).toBe(want.reduce((a, v) => a + v, 0)); // same zero count per matrix
      }
      expect(wasm.masks[run]!.size).toBe(6 * 7); // every linear of the six blocks
      expect([run, run.startsWith('magnitude') ? differ : differ / total < 1e-3]).toEqual([run, run.startsWith('magnitude') ? 0 : true]);
    }
  });
});

describe('webgpu: host reads are awaited, the binding limit is kept', () => {
  test('generate and the Wanda variant run (no synchronous read left)', async () => {
    const m = await loadModel(MODEL);
    try {
      expect(await generateIds(m.model, [1, 2, 3], 2)).toHaveLength(5);
    } finally {
      m.dispose();
    }
    const w = tf.randomUniform([4, 8], 0, 1, 'float32', 3) as tf.Tensor2D;
    try {
      const r = await wandaVariantMask(w, 0.5);
      expect(r.mask.shape).toEqual([4, 8]);
      r.mask.dispose();
    } finally {
      w.dispose();
    }
  });

  test('a binding limit forced small: embedding, lm_head, attention scores and MLP linears in chunks give the same values', async () => {
    const long = [wiki.slice(0, 256)]; // scores 8 heads x 256 x 256: 2 groups of 4 heads at 1 MiB (the MLP outputs, 768 KiB, fit)
    const short = [wiki.slice(0, 24), wiki.slice(24, 48)]; // logits 48 x 4096 (768 KiB) fit 1 MiB
    const run = async (limit: number | null, tokens = long, logitTokens = short): Promise<{ hidden: Float32Array; logits: Float32Array; chunks: number }> => {
      forceBindingLimit(limit);
      const m = await loadModel(MODEL);
      try {
        const h = m.model.hidden(tokens);
        const l = m.model.logits(logitTokens);
        const out = { hidden: (await h.data()) as Float32Array, logits: (await l.data()) as Float32Array, chunks: m.model.headParts!.length + m.model.embedParts.length };
        tf.dispose([h, l]);
        const mlp = m.model.blocks[0]!.linears.gate_proj;
        if (limit !== null && limit < 768 * 256 * 4) expect([mlp.parts?.length, m.model.blocks[0]!.linears.q_proj.parts]).toEqual([2, undefined]);
        return out;
      } finally {
        m.dispose();
      }
    };
    try {
      const whole = await run(null);
      // c4-llama-7m: the table and the head are 4096 x 256 float32 (4 MiB); its largest linear is 768 x 256 (768 KiB)
      const chunked = await run(1 << 20);
      expect([whole.chunks, chunked.chunks]).toEqual([2, 8]);
      expect(maxAbsDiff(chunked.hidden, whole.hidden)).toBe(0);
      expect(maxAbsDiff(chunked.logits, whole.logits)).toBe(0);
      // at 512 KiB the MLP linears (768 x 256 float32: 768 KiB) are held in two row chunks each; the MLP outputs of
      // 2 x 256 tokens (1.5 MiB) and the logits of 48 tokens (768 KiB) are over it: 2 x 6 tokens
      const few = short.map((x) => x.slice(0, 6));
      const wholeFew = await run(null, few, few);
      const mlpChunked = await run(1 << 19, few, few);
      expect(maxAbsDiff(mlpChunked.hidden, wholeFew.hidden)).toBe(0);
      expect(maxAbsDiff(mlpChunked.logits, wholeFew.logits)).toBe(0);
    } finally {
      forceBindingLimit(null);
    }
  });

  test('kernels per backend: per-head attention and host reads on wasm/cpu, batched and none on webgpu', () => {
    expect(kernelsFor('wasm')).toEqual({ attention: 'per-head', hostReads: 'sync', park: 'js-memory', windows: 'workers' });
    expect(kernelsFor('cpu')).toEqual({ attention: 'per-head', hostReads: 'sync', park: 'none', windows: 'backend' });
    expect(kernelsFor('webgpu')).toEqual({ attention: 'batched', hostReads: 'none', park: 'none', windows: 'backend' });
    expect(kernelsFor('tensorflow')).toEqual({ attention: 'batched', hostReads: 'sync', park: 'none', windows: 'backend' });
  });

  test('a software adapter is refused when software is not allowed (what --backend auto asks)', async () => {
    if (info.adapter!.software) await expect(setupWebgpu(false)).rejects.toThrow(/only a software adapter was found/);
    else expect((await setupWebgpu(false)).software).toBe(false);
  });
});
