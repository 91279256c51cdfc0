/** Generation and inspection on the shared real checkpoints (pinned tokens and counts). test/generate.test.ts covers tiny ones. */
import * as tf from '@tensorflow/tfjs-core';
import { ConfigError } from '../lib/errors.js';
import { generate, generateIds, inspectModel } from '../lib/generate.js';
import { loadModel, type LoadedModel } from '../lib/model/load.js';
import { useTestBackend } from './helpers/backend.js';
import { sharedPath } from './helpers/shared.js';

let tiny: LoadedModel;
beforeAll(async () => {
  await useTestBackend();
  tiny = await loadModel(sharedPath('models', 'TinyStories-656K'));
});
afterAll(() => tiny.dispose());

describe('greedy generation', () => {
  test('TinyStories-656K from BOS: the known 30 tokens and story opening', async () => {
    const out = await generate(tiny, '', 30);
    expect(out.ids).toEqual([
      1, 147, 201, 282, 215, 286, 598, 1662, 356, 499, 826, 1363, 1145, 1652, 615, 242, 1482, 951, 628, 499, 826, 872, 921, 318,
      385, 628, 499, 826, 617, 242, 198,
    ]);
    expect(out.newText.startsWith('Once upon a time, there was a little girl named Lily. She had a toy car that she loved very much.')).toBe(
      true,
    );
    expect(out.text.startsWith('<|start_story|>')).toBe(true); // special tokens kept in `text`
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

  test('stopAtEos stops right after the EOS token', async () => {
    const eos = tiny.tokenizer.eosId!;
    const prompt = 'And they were best friends forever.'; // greedy continuation ends the story within 20 tokens
    const free = await generate(tiny, prompt, 20);
    const n = tiny.tokenizer.encode(prompt, { addSpecialTokens: true }).length;
    const at = free.ids.indexOf(eos, n);
    expect(at).toBeGreaterThanOrEqual(n);
    expect(at).toBeLessThan(free.ids.length - 1); // it would go on generating after EOS
    const stopped = await generate(tiny, prompt, 20, { stopAtEos: true });
    expect(stopped.ids).toEqual(free.ids.slice(0, at + 1));
    // newText skips special tokens (the model also spells '<|end_story|>' with ordinary pieces before the real EOS)
    expect(stopped.newText).toBe(tiny.tokenizer.decode(stopped.ids.slice(n, -1), { skipSpecialTokens: true }));
    expect(stopped.text.endsWith('<|end_story|>')).toBe(true);
  });
});

describe('inspectModel', () => {
  test('TinyStories-656K', () => {
    const info = inspectModel(tiny);
    expect(info).toMatchObject({
      architecture: 'LlamaForCausalLM',
      modelType: 'llama',
      layers: 2,
      hiddenSize: 128,
      intermediateSize: 384,
      heads: 8,
      kvHeads: 4,
      headDim: 16,
      vocabSize: 2048,
      maxPositions: 512,
      ropeTheta: 10000,
      ropeScaling: null,
      tiedEmbeddings: true,
      biases: { qkv: false, o: false, mlp: false },
      dtype: 'F32',
      parameters: 656000,
      sharded: false,
    });
    expect(info.files).toHaveLength(1);
    expect(info.files[0]).toMatch(/TinyStories-656K[/\\]model\.safetensors$/);
    expect(info.tokenizer).toMatchObject({ model: 'BPE', vocabSize: 2048, bos: '<|start_story|>', eos: '<|end_story|>', bosId: 1, eosId: 2, addBos: true });
  });

  test('c4-llama-7m', async () => {
    const c4 = await loadModel(sharedPath('models', 'c4-llama-7m'));
    try {
      const info = inspectModel(c4);
      expect(info).toMatchObject({
        architecture: 'LlamaForCausalLM',
        layers: 6,
        hiddenSize: 256,
        intermediateSize: 768,
        heads: 8,
        kvHeads: 4,
        headDim: 32,
        vocabSize: 4096,
        maxPositions: 1024,
        tiedEmbeddings: false,
        dtype: 'BF16',
        sharded: false,
      });
      // 2 * 4096*256 (embed, lm_head) + 6 * (256*256*2 + 2*256*128 + 3*256*768 + 2*256) + 256
      expect(info.parameters).toBe(2 * 4096 * 256 + 6 * (2 * 256 * 256 + 2 * 256 * 128 + 3 * 256 * 768 + 2 * 256) + 256);
      expect(info.tokenizer.vocabSize).toBe(4096);
      expect(info.tokenizer.bosId).toBe(1);
    } finally {
      c4.dispose();
    }
  });
});
