/**
 * Greedy generation and inspectModel on tiny checkpoints: greedy ids against an argmax loop over the reference
 * implementation, stopAtEos with an EOS chosen from a free run, and inspectModel's counts computed here from the
 * stored tensors. test/generate.acceptance.test.ts pins the shared real checkpoints.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { ConfigError } from '../lib/errors.js';
import { generate, generateIds, inspectModel } from '../lib/generate.js';
import { loadModel, type LoadedModel } from '../lib/model/load.js';
import { useTestBackend } from './helpers/backend.js';
import { ReferenceLlama, readSafetensorsFolder } from './helpers/reference-llama.js';
import { writeTinyCheckpoint, type TinyCheckpoint } from './helpers/tiny-checkpoint.js';

let tmp: string;
let written: TinyCheckpoint; // tied embeddings stored only as lm_head.weight, as TinyStories-656K
let tiny: LoadedModel;
beforeAll(async () => {
  await useTestBackend();
  tmp = mkdtempSync(join(tmpdir(), 'llm-prune-generate-'));
  written = writeTinyCheckpoint(join(tmp, 'tied'), { seed: 31, tie: 'lm_head', numHeads: 4, numKvHeads: 2 });
  tiny = await loadModel(written.dir);
});
afterAll(() => {
  tiny.dispose();
  rmSync(tmp, { recursive: true, force: true });
});

/** Greedy continuation by the reference implementation: argmax of the last position's logits, `n` times. */
function referenceGreedy(dir: string, prompt: number[], n: number): number[] {
  const ref = new ReferenceLlama(JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>, readSafetensorsFolder(dir));
  const ids = [...prompt];
  for (let k = 0; k < n; k++) {
    const logits = ref.logits(ids);
    const v = logits.length / ids.length;
    const last = logits.subarray((ids.length - 1) * v);
    let best = 0;
    for (let j = 1; j < v; j++) if (last[j]! > last[best]!) best = j;
    ids.push(best);
  }
  return ids;
}

describe('greedy generation', () => {
  test('from BOS: the reference argmax loop\'s 12 tokens; text keeps the special tokens, newText drops them', async () => {
    const out = await generate(tiny, '', 12);
    expect(out.ids).toEqual(referenceGreedy(written.dir, [tiny.tokenizer.bosId!], 12));
    expect(out.text.startsWith('<s>')).toBe(true); // special tokens kept in `text`
    expect(out.newText).toBe(tiny.tokenizer.decode(out.ids.slice(1), { skipSpecialTokens: true }));
  });

  test('a prompt is kept as the prefix, no tensors leak; zero new tokens returns the prompt; bad counts are refused', async () => {
    const prompt = tiny.tokenizer.encode('Once upon a time', { addSpecialTokens: true });
    await generate(tiny, '', 1); // warm-up: the model caches its RoPE table
    const before = tf.memory().numTensors;
    const out = await generate(tiny, 'Once upon a time', 5);
    expect(tf.memory().numTensors).toBe(before);
    expect(out.ids.slice(0, prompt.length)).toEqual(prompt);
    expect(out.ids).toHaveLength(prompt.length + 5);
    expect(await generateIds(tiny.model, prompt, 0)).toEqual(prompt);
    await expect(async () => generateIds(tiny.model, prompt, -1)).rejects.toThrow(ConfigError);
    await expect(async () => generateIds(tiny.model, prompt, 1.5)).rejects.toThrow(/^maxNewTokens must be a non-negative integer, got 1\.5/);
    await expect(async () => generateIds(tiny.model, [], 3)).rejects.toThrow(/the prompt has no tokens/);
  });

  test('stopAtEos stops right after the EOS token (an EOS chosen from a free run: its first new token not in the prompt)', async () => {
    const prompt = 'And they were best friends forever.';
    const free = await generate(tiny, prompt, 20);
    const n = tiny.tokenizer.encode(prompt, { addSpecialTokens: true }).length;
    const at = free.ids.findIndex((id, i) => i >= n && free.ids.indexOf(id) === i && i < free.ids.length - 1);
    expect(at).toBeGreaterThanOrEqual(n);
    // the same checkpoint whose tokenizer names that token as EOS
    const vocab = (JSON.parse(readFileSync(join(written.dir, 'tokenizer.json'), 'utf8')) as { model: { vocab: Record<string, number> } }).model.vocab;
    const eosToken = Object.keys(vocab).find((k) => vocab[k] === free.ids[at])!;
    const cfgFile = join(written.dir, 'tokenizer_config.json');
    const saved = readFileSync(cfgFile, 'utf8');
    writeFileSync(cfgFile, JSON.stringify({ ...(JSON.parse(saved) as Record<string, unknown>), eos_token: eosToken }));
    const other = await loadModel(written.dir);
    writeFileSync(cfgFile, saved);
    try {
      expect(other.tokenizer.eosId).toBe(free.ids[at]);
      const stopped = await generate(other, prompt, 20, { stopAtEos: true });
      expect(stopped.ids).toEqual(free.ids.slice(0, at + 1));
      expect((await generate(other, prompt, 20)).ids).toEqual(free.ids); // without stopAtEos it goes on
    } finally {
      other.dispose();
    }
  });
});

describe('inspectModel', () => {
  test('a tied tiny checkpoint: shape, counts from the stored tensors, files, tokenizer', () => {
    const info = inspectModel(tiny);
    let parameters = 0;
    for (const v of written.tensors.values()) parameters += v.length; // the tied embedding once
    expect(info).toMatchObject({
      architecture: 'LlamaForCausalLM',
      modelType: 'llama',
      layers: 2,
      hiddenSize: 64,
      intermediateSize: 128,
      heads: 4,
      kvHeads: 2,
      headDim: 16,
      vocabSize: 2048,
      maxPositions: 128,
      ropeTheta: 10000,
      ropeScaling: null,
      tiedEmbeddings: true,
      biases: { qkv: false, o: false, mlp: false },
      dtype: 'F32',
      parameters,
      sharded: false,
    });
    expect(info.files).toEqual([join(written.dir, 'model.safetensors')]);
    expect(info.tokenizer).toMatchObject({ model: 'BPE', vocabSize: 2048, bos: '<s>', eos: '</s>', bosId: 1, eosId: 2, addBos: true });
  });

  test('a BF16, untied, sharded checkpoint: the parameter count by formula', async () => {
    const t = writeTinyCheckpoint(join(tmp, 'bf16'), { seed: 32, dtype: 'BF16', numHeads: 4, numKvHeads: 2, numLayers: 3, maxShardBytes: 40_000 });
    const m = await loadModel(t.dir);
    try {
      const info = inspectModel(m);
      expect(info).toMatchObject({ layers: 3, hiddenSize: 64, intermediateSize: 128, heads: 4, kvHeads: 2, headDim: 16, tiedEmbeddings: false, dtype: 'BF16', sharded: true });
      // 2 * 2048*64 (embed, lm_head) + 3 * (q, o: 64*64; k, v: 64*32; gate, up, down: 64*128; 2 norms of 64) + final norm
      expect(info.parameters).toBe(2 * 2048 * 64 + 3 * (2 * 64 * 64 + 2 * 64 * 32 + 3 * 64 * 128 + 2 * 64) + 64);
      expect(info.files).toHaveLength(t.files.length);
      expect(info.tokenizer.vocabSize).toBe(2048);
      expect(info.tokenizer.bosId).toBe(1);
    } finally {
      m.dispose();
    }
  });
});
