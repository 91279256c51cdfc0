import { mkdirSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CheckpointError, UnsupportedError } from '../../lib/errors.js';
import { Checkpoint, CheckpointWriter } from '../../lib/model/checkpoint.js';
import { blockTensors, expectedTensors } from '../../lib/model/architecture.js';
import { parseConfig, SUPPORTED_ARCHITECTURES } from '../../lib/model/config.js';
import { parameterCount } from '../../lib/model/architecture.js';
import { resolveModelPath } from '../../lib/model/hub.js';
import { SafetensorsFile, SafetensorsWriter } from '../../lib/model/safetensors.js';
import { readSafetensorsFolder } from '../helpers/reference-llama.js';
import { patchConfigJson, tinyConfigJson, writeTinyCheckpoint, type TinyCheckpointOptions } from '../helpers/tiny-checkpoint.js';

let tmp: string;
let count = 0;
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'llm-prune-ckpt-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const esc = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** A fresh tiny checkpoint folder. */
function tiny(options: TinyCheckpointOptions = {}): ReturnType<typeof writeTinyCheckpoint> {
  return writeTinyCheckpoint(join(tmp, `c${count++}`), { seed: count, ...options });
}

/** Rewrite a safetensors file through `edit` of its tensor list (name, shape, values), keeping the dtype. */
function rewrite(
  path: string,
  edit: (tensors: { name: string; shape: number[]; values: Float32Array }[]) => { name: string; shape: number[]; values: Float32Array }[],
): void {
  const f = SafetensorsFile.open(path);
  const dtype = [...f.entries.values()][0]!.dtype as 'F32';
  const tensors = edit([...f.entries.values()].map((e) => ({ name: e.name, shape: e.shape, values: f.readFloat32(e.name) })));
  const metadata = f.metadata;
  f.close();
  const w = new SafetensorsWriter(path, tensors.map((t) => ({ name: t.name, shape: t.shape, dtype })), metadata);
  for (const t of tensors) w.write(t.name, t.values);
  w.finish();
}

/** Index of the first element where two float arrays differ (bitwise, so NaN and -0 count), or -1. */
function firstDifference(a: Float32Array, b: Float32Array | undefined): number {
  if (!b || a.length !== b.length) return 0;
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const y = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return i;
  return -1;
}

function readIndex(dir: string): { metadata: { total_size: number }; weight_map: Record<string, string> } {
  return JSON.parse(readFileSync(join(dir, 'model.safetensors.index.json'), 'utf8')) as {
    metadata: { total_size: number };
    weight_map: Record<string, string>;
  };
}

function writeIndex(dir: string, weightMap: Record<string, string>): void {
  writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: weightMap }));
}

describe('round trip through CheckpointWriter and Checkpoint.open', () => {
  test.each([
    ['F32', undefined],
    ['F16', undefined],
    ['BF16', undefined],
    ['F32', 60_000],
    ['F16', 30_000],
    ['BF16', 30_000],
  ] as const)('%s, maxShardBytes %p', (dtype, maxShardBytes) => {
    const t = tiny({ dtype, ...(maxShardBytes !== undefined ? { maxShardBytes } : {}) });
    const ckpt = Checkpoint.open(t.dir);
    try {
      expect(ckpt.sharded).toBe(maxShardBytes !== undefined);
      expect(ckpt.files.map((f) => f.path.slice(t.dir.length + 1)).sort()).toEqual(t.files);
      if (maxShardBytes !== undefined) {
        const n = t.files.length;
        expect(n).toBeGreaterThan(2);
        expect(t.files).toEqual(Array.from({ length: n }, (_, i) => `model-${String(i + 1).padStart(5, '0')}-of-${String(n).padStart(5, '0')}.safetensors`));
        const index = readIndex(t.dir);
        expect(Object.keys(index.weight_map).sort()).toEqual(expectedTensors(t.config).map((e) => e.name).sort());
        const bytesPer = dtype === 'F32' ? 4 : 2;
        expect(index.metadata.total_size).toBe(parameterCount(t.config) * bytesPer);
        for (const f of t.files) {
          // no shard exceeds the limit unless it holds a single larger tensor
          const sf = SafetensorsFile.open(join(t.dir, f));
          const bytes = [...sf.entries.values()].reduce((a, e) => a + e.end - e.begin, 0);
          if (sf.entries.size > 1) expect(bytes).toBeLessThanOrEqual(maxShardBytes);
          sf.close();
        }
      }
      expect(ckpt.mainDtype()).toBe(dtype);
      expect(ckpt.dataBytes()).toBe(parameterCount(t.config) * (dtype === 'F32' ? 4 : 2));
      for (const [name, values] of t.tensors) {
        expect(ckpt.dtypeOf(name)).toBe(dtype);
        expect([name, firstDifference(ckpt.read(name), values)]).toEqual([name, -1]);
      }
      expect(() => ckpt.read('model.layers.9.mlp.up_proj.weight')).toThrow(/no tensor 'model\.layers\.9\.mlp\.up_proj\.weight'/);
    } finally {
      ckpt.close();
    }
  });

  test('tied embeddings stored as lm_head.weight with a __metadata__ alias, or as embed_tokens only', () => {
    for (const tie of ['lm_head', 'embed'] as const) {
      for (const maxShardBytes of [undefined, 30_000]) {
        const t = tiny({ tie, ...(maxShardBytes !== undefined ? { maxShardBytes } : {}) });
        const stored = readSafetensorsFolder(t.dir);
        expect(stored.has('lm_head.weight')).toBe(tie === 'lm_head');
        expect(stored.has('model.embed_tokens.weight')).toBe(tie === 'embed');
        const ckpt = Checkpoint.open(t.dir);
        try {
          expect(ckpt.has('model.embed_tokens.weight')).toBe(true);
          expect(firstDifference(ckpt.read('model.embed_tokens.weight'), stored.get('lm_head.weight') ?? stored.get('model.embed_tokens.weight'))).toBe(-1);
        } finally {
          ckpt.close();
        }
      }
    }
  });

  test('a __metadata__ alias resolves a tensor even when embeddings are not tied', () => {
    const t = tiny();
    const path = join(t.dir, 'model.safetensors');
    rewrite(path, (ts) => ts.map((x) => (x.name === 'model.norm.weight' ? { ...x, name: 'final_norm_stored' } : x)));
    // without the alias the tensor is missing
    expect(() => Checkpoint.open(t.dir)).toThrow(/tensor 'model\.norm\.weight' is missing/);
    const f = SafetensorsFile.open(path);
    const ts = [...f.entries.values()].map((e) => ({ name: e.name, shape: e.shape, values: f.readFloat32(e.name) }));
    f.close();
    const w = new SafetensorsWriter(path, ts.map((x) => ({ name: x.name, shape: x.shape, dtype: 'F32' as const })), {
      format: 'pt',
      'model.norm.weight': 'final_norm_stored',
    });
    for (const x of ts) w.write(x.name, x.values);
    w.finish();
    const ckpt = Checkpoint.open(t.dir);
    try {
      expect(firstDifference(ckpt.read('model.norm.weight'), t.tensors.get('model.norm.weight'))).toBe(-1);
    } finally {
      ckpt.close();
    }
  });

  test('CheckpointWriter refuses tensors outside its plan and reports unwritten ones', () => {
    const dir = join(tmp, 'writer');
    mkdirSync(dir);
    const w = new CheckpointWriter(dir, [{ name: 'a', shape: [2] }, { name: 'b', shape: [2] }], { dtype: 'F32', maxShardBytes: 8 });
    expect(readIndex(dir).weight_map).toEqual({ a: 'model-00001-of-00002.safetensors', b: 'model-00002-of-00002.safetensors' });
    expect(() => w.write('c', new Float32Array(2))).toThrow(new RegExp(`^${esc(dir)}: tensor 'c' is not in the planned checkpoint$`));
    w.write('a', new Float32Array(2));
    expect(() => w.finish()).toThrow(/model-00002-of-00002\.safetensors: 1 planned tensors never written \(first: 'b'\)/);
  });

  test('blockTensors lists every tensor of a block with biases where the config has them', () => {
    const c = parseConfig(tinyConfigJson({ attentionBias: true, mlpBias: true, numKvHeads: 2, headDim: 24 }));
    const names = blockTensors(c, 1).map((t) => `${t.name} [${t.shape.join(',')}]`);
    expect(names).toEqual([
      'model.layers.1.input_layernorm.weight [64]',
      'model.layers.1.self_attn.q_proj.weight [96,64]',
      'model.layers.1.self_attn.q_proj.bias [96]',
      'model.layers.1.self_attn.k_proj.weight [48,64]',
      'model.layers.1.self_attn.k_proj.bias [48]',
      'model.layers.1.self_attn.v_proj.weight [48,64]',
      'model.layers.1.self_attn.v_proj.bias [48]',
      'model.layers.1.self_attn.o_proj.weight [64,96]',
      'model.layers.1.self_attn.o_proj.bias [64]',
      'model.layers.1.post_attention_layernorm.weight [64]',
      'model.layers.1.mlp.gate_proj.weight [128,64]',
      'model.layers.1.mlp.gate_proj.bias [128]',
      'model.layers.1.mlp.up_proj.weight [128,64]',
      'model.layers.1.mlp.up_proj.bias [128]',
      'model.layers.1.mlp.down_proj.weight [64,128]',
      'model.layers.1.mlp.down_proj.bias [64]',
    ]);
    const qwen = parseConfig(tinyConfigJson({ architecture: 'Qwen2ForCausalLM' }));
    expect(blockTensors(qwen, 0).filter((t) => t.name.endsWith('.bias')).map((t) => t.name)).toEqual([
      'model.layers.0.self_attn.q_proj.bias',
      'model.layers.0.self_attn.k_proj.bias',
      'model.layers.0.self_attn.v_proj.bias',
    ]);
  });
});

describe('malformed checkpoints are refused with a message naming the file or tensor', () => {
  test('folder or weights missing', () => {
    const absent = join(tmp, 'no-such-folder');
    expect(() => Checkpoint.open(absent)).toThrow(new RegExp(`^${esc(absent)}: checkpoint folder does not exist$`));
    const t = tiny();
    rmSync(join(t.dir, 'model.safetensors'));
    expect(() => Checkpoint.open(t.dir)).toThrow(CheckpointError);
    expect(() => Checkpoint.open(t.dir)).toThrow(
      new RegExp(`^${esc(t.dir)}: neither model\\.safetensors nor model\\.safetensors\\.index\\.json found \\(only safetensors is supported\\)$`),
    );
  });

  test('a tensor missing from the file', () => {
    const t = tiny();
    rewrite(join(t.dir, 'model.safetensors'), (ts) => ts.filter((x) => x.name !== 'model.layers.1.mlp.up_proj.weight'));
    expect(() => Checkpoint.open(t.dir)).toThrow(CheckpointError);
    expect(() => Checkpoint.open(t.dir)).toThrow(
      new RegExp(`^${esc(t.dir)}: tensor 'model\\.layers\\.1\\.mlp\\.up_proj\\.weight' is missing; config\\.json \\(LlamaForCausalLM, 2 layers\\) needs it$`),
    );
    // more layers in config.json than in the file
    const u = tiny();
    patchConfigJson(u.dir, { num_hidden_layers: 3 });
    expect(() => Checkpoint.open(u.dir)).toThrow(/tensor 'model\.layers\.2\.input_layernorm\.weight' is missing; config\.json \(LlamaForCausalLM, 3 layers\) needs it/);
  });

  test('a tensor with the wrong shape', () => {
    const t = tiny();
    const file = join(t.dir, 'model.safetensors');
    rewrite(file, (ts) => ts.map((x) => (x.name === 'model.layers.0.self_attn.k_proj.weight' ? { ...x, shape: [32, 128] } : x)));
    expect(() => Checkpoint.open(t.dir)).toThrow(CheckpointError);
    expect(() => Checkpoint.open(t.dir)).toThrow(
      new RegExp(`^${esc(file)}: tensor 'model\\.layers\\.0\\.self_attn\\.k_proj\\.weight' has shape \\[32, 128\\], config\\.json implies \\[64, 64\\]$`),
    );
    // config.json that disagrees with the weights
    const u = tiny();
    patchConfigJson(u.dir, { intermediate_size: 96 });
    expect(() => Checkpoint.open(u.dir)).toThrow(
      new RegExp(`^${esc(join(u.dir, 'model.safetensors'))}: tensor 'model\\.layers\\.0\\.mlp\\.gate_proj\\.weight' has shape \\[128, 64\\], config\\.json implies \\[96, 64\\]$`),
    );
  });

  test('a truncated shard names that shard', () => {
    const t = tiny({ maxShardBytes: 60_000 });
    const shard = join(t.dir, t.files[1]!);
    truncateSync(shard, statSync(shard).size - 100);
    expect(() => Checkpoint.open(t.dir)).toThrow(CheckpointError);
    expect(() => Checkpoint.open(t.dir)).toThrow(new RegExp(`^${esc(shard)}: tensor '[^']+': data_offsets .* fall outside the data area`));
  });

  test('weight_map pointing outside the folder', () => {
    const t = tiny({ maxShardBytes: 60_000 });
    const index = join(t.dir, 'model.safetensors.index.json');
    for (const bad of ['../x.safetensors', 'sub/../../x.safetensors', '/etc/x.safetensors']) {
      writeIndex(t.dir, { ...readIndex(t.dir).weight_map, 'model.norm.weight': bad });
      expect(() => Checkpoint.open(t.dir)).toThrow(CheckpointError);
      expect(() => Checkpoint.open(t.dir)).toThrow(
        new RegExp(`^${esc(index)}: weight_map\\['model\\.norm\\.weight'\\] = '${esc(bad)}' points outside the checkpoint folder`),
      );
    }
  });

  test('weight_map naming a tensor its shard lacks, or a shard that does not exist', () => {
    const t = tiny({ maxShardBytes: 60_000 });
    const index = join(t.dir, 'model.safetensors.index.json');
    const map = readIndex(t.dir).weight_map;
    writeIndex(t.dir, { ...map, 'model.layers.0.extra.weight': t.files[0]! });
    expect(() => Checkpoint.open(t.dir)).toThrow(CheckpointError);
    expect(() => Checkpoint.open(t.dir)).toThrow(
      new RegExp(`^${esc(index)}: weight_map lists 'model\\.layers\\.0\\.extra\\.weight' in ${esc(t.files[0]!)}, but that file has no such tensor$`),
    );
    // a tensor listed in the wrong shard
    const wrongShard = t.files.find((f) => f !== map['model.norm.weight'])!;
    writeIndex(t.dir, { ...map, 'model.norm.weight': wrongShard });
    expect(() => Checkpoint.open(t.dir)).toThrow(
      new RegExp(`^${esc(index)}: weight_map lists 'model\\.norm\\.weight' in ${esc(wrongShard)}, but that file has no such tensor$`),
    );
    writeIndex(t.dir, { ...map, 'model.norm.weight': 'model-00009-of-00009.safetensors' });
    expect(() => Checkpoint.open(t.dir)).toThrow(new RegExp(`${esc(join(t.dir, 'model-00009-of-00009.safetensors'))}: cannot open \\(ENOENT\\)`));
    writeFileSync(index, JSON.stringify({ weight_map: ['a'] }));
    expect(() => Checkpoint.open(t.dir)).toThrow(new RegExp(`^${esc(index)}: field 'weight_map' must be an object \\{tensor: file\\}$`));
    writeFileSync(index, '{"weight_map": ');
    expect(() => Checkpoint.open(t.dir)).toThrow(new RegExp(`^${esc(index)}: cannot read as JSON`));
  });

  test('a tensor stored in a non-float dtype', () => {
    const t = tiny();
    const file = join(t.dir, 'model.safetensors');
    const buf = readFileSync(file);
    const n = Number(buf.readBigUInt64LE(0));
    const header = buf.subarray(8, 8 + n).toString('utf8');
    // model.norm.weight [64] F32 (256 bytes) relabelled I32: same byte size, so the header stays valid
    const patched = header.replace(/("model\.norm\.weight":\{"dtype":)"F32"/, '$1"I32"');
    expect(patched).not.toBe(header);
    writeFileSync(file, Buffer.concat([buf.subarray(0, 8), Buffer.from(patched, 'utf8'), buf.subarray(8 + n)]));
    expect(() => Checkpoint.open(t.dir)).toThrow(
      new RegExp(`^${esc(file)}: tensor 'model\\.norm\\.weight' has dtype I32; supported: F32, F16, BF16$`),
    );
  });

  test('an unknown architecture is UnsupportedError naming it', () => {
    const t = tiny();
    patchConfigJson(t.dir, { architectures: ['GPT2LMHeadModel'], model_type: 'gpt2' });
    const cfg = join(t.dir, 'config.json');
    expect(() => Checkpoint.open(t.dir)).toThrow(UnsupportedError);
    expect(() => Checkpoint.open(t.dir)).toThrow(
      new RegExp(`^${esc(cfg)}: architecture 'GPT2LMHeadModel' is not supported; supported: ${SUPPORTED_ARCHITECTURES.join(', ')}$`), // the list is the spec's (test/model/architecture.test.ts)
    );
    patchConfigJson(t.dir, { architectures: undefined, model_type: 'gpt_neox' });
    expect(() => Checkpoint.open(t.dir)).toThrow(new RegExp(`^${esc(cfg)}: field 'architectures' is missing and model_type 'gpt_neox' is unknown$`));
    patchConfigJson(t.dir, { model_type: 'mistral' }); // model_type alone is enough for known families
    const ckpt = Checkpoint.open(t.dir);
    expect(ckpt.config.architecture).toBe('MistralForCausalLM');
    ckpt.close();
  });

  test('invalid or unsupported config fields', () => {
    const t = tiny();
    const cfg = join(t.dir, 'config.json');
    const cases: [Record<string, unknown>, RegExp, typeof CheckpointError | typeof UnsupportedError][] = [
      [{ hidden_size: 'abc' }, /field 'hidden_size' must be a positive integer, got "abc"$/, CheckpointError],
      [{ hidden_size: 0 }, /field 'hidden_size' must be a positive integer, got 0$/, CheckpointError],
      [{ num_hidden_layers: 1.5 }, /field 'num_hidden_layers' must be a positive integer, got 1\.5$/, CheckpointError],
      [{ vocab_size: undefined }, /field 'vocab_size' must be a positive integer, got undefined$/, CheckpointError],
      [{ rms_norm_eps: 'small' }, /field 'rms_norm_eps' must be a finite number, got "small"$/, CheckpointError],
      [{ tie_word_embeddings: 'yes' }, /field 'tie_word_embeddings' must be true or false, got "yes"$/, CheckpointError],
      [{ num_key_value_heads: 3 }, /num_attention_heads \(4\) must be a multiple of num_key_value_heads \(3\)$/, CheckpointError],
      [{ num_attention_heads: 6, num_key_value_heads: 6 }, /hidden_size \(64\) is not a multiple of num_attention_heads \(6\) and head_dim is not given$/, CheckpointError],
      [{ head_dim: 15 }, /head_dim 15 must be even for RoPE$/, CheckpointError],
      [{ hidden_act: 'gelu' }, /hidden_act 'gelu' is not supported \(only silu\)$/, UnsupportedError],
      [{ rope_scaling: { rope_type: 'yarn', factor: 4 } }, /rope_scaling type "yarn" is not supported \(supported: linear, llama3, longrope, default\)$/, UnsupportedError],
      [{ rope_scaling: { type: 'llama3', factor: 8 } }, /rope_scaling: field 'low_freq_factor' must be a finite number, got undefined$/, CheckpointError],
    ];
    const original = JSON.parse(readFileSync(cfg, 'utf8')) as Record<string, unknown>;
    for (const [patch, message, cls] of cases) {
      writeFileSync(cfg, JSON.stringify(original));
      patchConfigJson(t.dir, patch);
      expect(() => Checkpoint.open(t.dir)).toThrow(cls);
      expect(() => Checkpoint.open(t.dir)).toThrow(new RegExp(`^${esc(cfg)}: ${message.source}`));
    }
    writeFileSync(cfg, '{"hidden_size": 64,');
    expect(() => Checkpoint.open(t.dir)).toThrow(new RegExp(`^${esc(cfg)}: invalid JSON`));
    rmSync(cfg);
    expect(() => Checkpoint.open(t.dir)).toThrow(new RegExp(`^${esc(cfg)}: cannot read \\(ENOENT\\)$`));
  });
});

describe('hub ids', () => {
  test('offline: a hub id gives the message naming the files to provide', async () => {
    const fetchThatThrows = (async () => {
      throw new TypeError('fetch failed: getaddrinfo ENOTFOUND huggingface.co');
    }) as unknown as typeof fetch;
    const cacheDir = join(tmp, 'hub-cache');
    const p = resolveModelPath('someone/some-model', { cacheDir, fetch: fetchThatThrows });
    await expect(p).rejects.toThrow(CheckpointError);
    await expect(resolveModelPath('someone/some-model', { cacheDir, fetch: fetchThatThrows })).rejects.toThrow(
      /^model 'someone\/some-model': not a local folder, and fetching it from the Hugging Face hub failed \(.*ENOTFOUND.*\)\. Offline, download config\.json, tokenizer\.json, tokenizer_config\.json and model\.safetensors \(or model\.safetensors\.index\.json with its model-0000x-of-0000y\.safetensors shards\) from https:\/\/huggingface\.co\/someone\/some-model into one folder and pass --model FOLDER \(gated models such as Llama also need a token: set HF_TOKEN or pass --hf-token\)$/,
    );
  });

  test('a local folder is returned as is; a missing path that is not a hub id is a clear error', async () => {
    const t = tiny();
    await expect(resolveModelPath(t.dir)).resolves.toBe(t.dir);
    const missing = join(tmp, 'missing', 'model');
    await expect(resolveModelPath(missing)).rejects.toThrow(
      new RegExp(`^model '${esc(missing)}': folder does not exist \\(and it is not a hub id of the form owner/name\\)$`),
    );
  });
});
