import { parseConfig } from '../../lib/model/config.js';
import { estimateMemory, refusal } from '../../web/src/estimate.js';

const llama = (hidden: number, inter: number, layers: number, heads: number, vocab = 32000) =>
  parseConfig({
    architectures: ['LlamaForCausalLM'], model_type: 'llama', vocab_size: vocab, hidden_size: hidden, intermediate_size: inter,
    num_hidden_layers: layers, num_attention_heads: heads, max_position_embeddings: 2048, rms_norm_eps: 1e-6,
  }, 'config.json');

const base = { outBytesPerParam: 2, nsamples: 128, seqlen: 2048, binding: null, hostBytes: 8 * 2 ** 30 };

test('a 7B LLaMA is refused on wasm (the dense model alone is 27 GB of float32), with the figures', () => {
  const e = estimateMemory({ ...base, config: llama(4096, 11008, 32, 32), backend: 'wasm' });
  expect(e.fits).toBe(false);
  expect(refusal(e)).toMatch(/^the model does not fit this backend: model: 6738\.\d+ M parameters, 32 blocks; wasm: dense model for perplexity \d+\.\d MiB/);
});

test('a small model fits wasm; on webgpu the largest tensor is checked against the adapter binding limit', () => {
  const small = llama(256, 688, 4, 4);
  expect(estimateMemory({ ...base, config: small, backend: 'wasm', nsamples: 8, seqlen: 128 }).fits).toBe(true);
  const binding = { maxStorageBufferBindingSize: 2 ** 30, maxBufferSize: 2 * 2 ** 30 };
  const e = estimateMemory({ ...base, config: llama(2048, 5632, 22, 32), backend: 'webgpu', binding, hostBytes: 64 * 2 ** 30 });
  expect(e.largestTensorBytes).toBe(32000 * 2048 * 4); // embed_tokens, float32
  expect(e.bindingLimitBytes).toBe(2 ** 30);
  expect(e.fits).toBe(true);
  expect(estimateMemory({ ...base, config: llama(4096, 14336, 2, 32, 128256), backend: 'webgpu', binding, hostBytes: 64 * 2 ** 30 }).fits).toBe(false);
});

test('the host must hold the written checkpoint and its zip', () => {
  const c = llama(1024, 2816, 8, 16);
  expect(estimateMemory({ ...base, config: c, backend: 'webgpu', binding: null, hostBytes: 2 ** 30 }).fits).toBe(true);
  expect(estimateMemory({ ...base, config: c, backend: 'webgpu', binding: null, hostBytes: 2 ** 28 }).fits).toBe(false);
});
