/**
 * Write a LLaMA checkpoint of a published shape with random weights (for scale tests and benchmarks):
 *   npx tsx scripts/make-synthetic-llama.ts --shape 13b --out DIR [--layers N] [--seed 0] [--dtype BF16]
 *                                         [--max-shard-bytes 5e9] [--tokenizer-from DIR]
 * Shapes are the LLaMA-2 configs (7b, 13b, 70b) plus `tiny` for tests; --layers/--hidden/--intermediate/--heads/
 * --kv-heads/--vocab override any field. Weights are uniform with standard deviation 0.02 (the LLaMA init range),
 * rounded to the storage dtype, from a seeded generator keyed by (seed, tensor name): the same arguments always give
 * the same bytes, whatever the sharding. Tensors are written one at a time (peak memory: the largest tensor, the
 * embedding table), sharded with a model.safetensors.index.json like real checkpoints. The tokenizer files are copied
 * from --tokenizer-from (default: $LLM_PRUNE_SHARED/models/c4-llama-7m, its 4,096 ids are all inside the vocabulary).
 */
import { copyFileSync, existsSync, mkdirSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { CheckpointWriter } from '../lib/model/checkpoint.js';
import { expectedTensors } from '../lib/model/architecture.js';
import { parseConfig } from '../lib/model/config.js';
import { DTYPES, type DType } from '../lib/model/safetensors.js';

/** Published LLaMA-2 shapes (config.json fields). */
export const SHAPES: Record<string, Record<string, number>> = {
  tiny: { hidden_size: 64, intermediate_size: 176, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, vocab_size: 4096, max_position_embeddings: 256 },
  '7b': { hidden_size: 4096, intermediate_size: 11008, num_hidden_layers: 32, num_attention_heads: 32, num_key_value_heads: 32, vocab_size: 32000, max_position_embeddings: 4096 },
  '13b': { hidden_size: 5120, intermediate_size: 13824, num_hidden_layers: 40, num_attention_heads: 40, num_key_value_heads: 40, vocab_size: 32000, max_position_embeddings: 4096 },
  '70b': { hidden_size: 8192, intermediate_size: 28672, num_hidden_layers: 80, num_attention_heads: 64, num_key_value_heads: 8, vocab_size: 32000, max_position_embeddings: 4096 },
};

export interface SyntheticOptions {
  shape: string;
  out: string;
  layers?: number;
  hidden?: number;
  intermediate?: number;
  heads?: number;
  kvHeads?: number;
  vocab?: number;
  seed?: number;
  dtype?: DType;
  maxShardBytes?: number;
  tokenizerFrom?: string;
  onTensor?: (name: string, index: number, total: number) => void;
}

/** FNV-1a of a string, mixed with the seed: the per-tensor generator state. */
function tensorSeed(seed: number, name: string): number {
  let h = 0x811c9dc5 ^ seed;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193);
  return h >>> 0 || 1;
}

/** Uniform values in [-a, a] (a = 0.02 * sqrt(3): standard deviation 0.02), from xorshift32, truncated to BF16. */
export function syntheticValues(n: number, seed: number, name: string, kind: 'norm' | 'weight'): Float32Array {
  const out = new Float32Array(n);
  if (kind === 'norm') return out.fill(1);
  const bits = new Uint32Array(out.buffer);
  const a = 0.02 * Math.sqrt(3);
  let s = tensorSeed(seed, name);
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    out[i] = ((s >>> 8) / 8388608 - 1) * a; // (s >>> 8) in [0, 2^24): [-a, a)
    bits[i] = bits[i]! & 0xffff0000; // exactly representable in BF16 and F16-free rounding questions
  }
  return out;
}

function configFor(o: SyntheticOptions): Record<string, unknown> {
  const base = SHAPES[o.shape];
  if (!base) throw new Error(`--shape: '${o.shape}' is not one of ${Object.keys(SHAPES).join(', ')}`);
  const f = { ...base };
  if (o.layers !== undefined) f['num_hidden_layers'] = o.layers;
  if (o.hidden !== undefined) f['hidden_size'] = o.hidden;
  if (o.intermediate !== undefined) f['intermediate_size'] = o.intermediate;
  if (o.heads !== undefined) f['num_attention_heads'] = o.heads;
  if (o.kvHeads !== undefined) f['num_key_value_heads'] = o.kvHeads;
  if (o.vocab !== undefined) f['vocab_size'] = o.vocab;
  const torchDtype = { F32: 'float32', F16: 'float16', BF16: 'bfloat16' }[o.dtype ?? 'BF16'];
  return {
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
    bos_token_id: 1,
    eos_token_id: 2,
    hidden_act: 'silu',
    initializer_range: 0.02,
    rms_norm_eps: 1e-5,
    rope_theta: 10000.0,
    tie_word_embeddings: false,
    torch_dtype: torchDtype,
    ...f,
  };
}

/** Write the checkpoint into `out` (staged in `<out>.partial`, renamed when complete). Returns its data bytes. */
export function makeSyntheticLlama(o: SyntheticOptions): number {
  const dtype = o.dtype ?? 'BF16';
  if (!DTYPES.includes(dtype)) throw new Error(`--dtype: '${dtype}' is not one of ${DTYPES.join(', ')}`);
  const out = resolve(o.out);
  if (existsSync(out) && readdirSync(out).length > 0) throw new Error(`--out ${o.out}: folder exists and is not empty`);
  const raw = configFor(o);
  const config = parseConfig(raw, join(out, 'config.json'));
  const tmp = join(dirname(out), `${basename(out)}.partial`);
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  const plan = expectedTensors(config);
  const writer = new CheckpointWriter(tmp, plan, { dtype, maxShardBytes: o.maxShardBytes ?? 5e9 });
  let bytes = 0;
  try {
    plan.forEach((t, i) => {
      const n = t.shape.reduce((a, b) => a * b, 1);
      const kind = t.name.endsWith('norm.weight') ? 'norm' : 'weight';
      writer.write(t.name, syntheticValues(n, o.seed ?? 0, t.name, kind));
      bytes += n * (dtype === 'F32' ? 4 : 2);
      o.onTensor?.(t.name, i, plan.length);
    });
    writer.finish();
  } catch (e) {
    writer.abort();
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  writeFileSync(join(tmp, 'config.json'), JSON.stringify(raw, null, 2) + '\n');
  const tokDir = o.tokenizerFrom ?? join(resolve(process.env['LLM_PRUNE_SHARED'] ?? '../shared'), 'models', 'c4-llama-7m');
  if (!existsSync(join(tokDir, 'tokenizer.json'))) {
    rmSync(tmp, { recursive: true, force: true });
    throw new Error(`--tokenizer-from ${tokDir}: no tokenizer.json there (set LLM_PRUNE_SHARED or pass --tokenizer-from)`);
  }
  for (const f of ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json']) {
    if (existsSync(join(tokDir, f))) copyFileSync(join(tokDir, f), join(tmp, f));
  }
  rmSync(out, { recursive: true, force: true });
  renameSync(tmp, out);
  return bytes;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({
    options: {
      shape: { type: 'string', default: '13b' },
      out: { type: 'string' },
      layers: { type: 'string' },
      hidden: { type: 'string' },
      intermediate: { type: 'string' },
      heads: { type: 'string' },
      'kv-heads': { type: 'string' },
      vocab: { type: 'string' },
      seed: { type: 'string', default: '0' },
      dtype: { type: 'string', default: 'BF16' },
      'max-shard-bytes': { type: 'string', default: '5e9' },
      'tokenizer-from': { type: 'string' },
    },
  });
  if (!values.out) {
    process.stderr.write('usage: make-synthetic-llama.ts --shape 7b|13b|70b|tiny --out DIR [--layers N] [--seed S]\n');
    process.exit(2);
  }
  const num = (v: string | undefined): number | undefined => (v === undefined ? undefined : Number(v));
  const t0 = performance.now();
  let last = 0;
  const bytes = makeSyntheticLlama({
    shape: values.shape,
    out: values.out,
    ...(values.layers !== undefined ? { layers: num(values.layers)! } : {}),
    ...(values.hidden !== undefined ? { hidden: num(values.hidden)! } : {}),
    ...(values.intermediate !== undefined ? { intermediate: num(values.intermediate)! } : {}),
    ...(values.heads !== undefined ? { heads: num(values.heads)! } : {}),
    ...(values['kv-heads'] !== undefined ? { kvHeads: num(values['kv-heads'])! } : {}),
    ...(values.vocab !== undefined ? { vocab: num(values.vocab)! } : {}),
    seed: Number(values.seed),
    dtype: values.dtype as DType,
    maxShardBytes: Number(values['max-shard-bytes']),
    ...(values['tokenizer-from'] ? { tokenizerFrom: values['tokenizer-from'] } : {}),
    onTensor: (name, i, n) => {
      const t = performance.now();
      if (t - last > 5000 || i === n - 1) {
        last = t;
        process.stderr.write(`tensor ${i + 1} of ${n} (${name}), ${((t - t0) / 1000).toFixed(0)} s\n`);
      }
    },
  });
  const s = (performance.now() - t0) / 1000;
  process.stdout.write(JSON.stringify({ out: resolve(values.out), bytes, seconds: s, mbPerSecond: bytes / 1e6 / s }) + '\n');
}
