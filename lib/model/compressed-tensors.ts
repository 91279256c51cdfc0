/**
 * Pruned checkpoints in the compressed-tensors format (what llm-compressor writes and transformers / vLLM read):
 * every sparse linear weight `<prefix>.weight` is replaced by
 *
 *   sparse-bitmask     <prefix>.shape        I64 [2]                 the dense shape [rows, cols]
 *                      <prefix>.compressed   dtype [nnz]             the non-zero values, row-major
 *                      <prefix>.bitmask      U8  [rows, ceil(cols/8)] 1 = value kept, bits packed along each row
 *                                                                    in little bit order (bit j of byte k = col 8k+j)
 *                      <prefix>.row_offsets  I64 [rows]              index in `compressed` of each row's first value
 *   sparse-24-bitmask  <prefix>.shape        I64 [2, 1]
 *                      <prefix>.compressed   dtype [rows, cols/2]    the two kept values of every group of four
 *                      <prefix>.bitmask      U8  [rows, ceil(cols/8)]
 *
 * and config.json gets `quantization_config` with `quant_method: "compressed-tensors"` and a `sparsity_config`.
 * Followed, in neuralmagic/compressed-tensors 0.12.2:
 *   src/compressed_tensors/compressors/sparse_compressors/sparse_bitmask.py     (BitmaskTensor.dict, bitmask_compress:
 *     values = tensor[tensor != 0], row_offsets = cumsum(row_counts) - row_counts, shape = torch.tensor(shape))
 *   src/compressed_tensors/compressors/sparse_compressors/sparse_24_bitmask.py  (Sparse24BitMaskTensor.dict: shape
 *     reshaped to (-1, 1), values reshaped to [rows, cols/2]; get_24_bytemasks: top-2 |w| of each group of 4)
 *   src/compressed_tensors/utils/helpers.py        (pack_bitmasks: numpy.packbits(axis=-1, bitorder="little"))
 *   src/compressed_tensors/config/base.py, sparse_bitmask.py, sparse_24_bitmask.py, dense.py (sparsity_config fields)
 *   src/compressed_tensors/compressors/model_compressors/model_compressor.py (update_config: version, quant_method,
 *     sparsity_config, transform_config; json.dump(sort_keys=True))
 * and, for targets / ignore / global_sparsity of a sparse-only LLaMA, vllm-project/llm-compressor
 *   src/llmcompressor/transformers/compression/sparsity_metadata_config.py and helpers.py (targets ['Linear'],
 *   ignore ['lm_head'] for a model whose decoder linears are all pruned; global_sparsity = zeros / all parameters).
 */
import { CheckpointError, UnsupportedError } from '../errors.js';
import type { RawTensor } from './safetensors.js';

/** How a checkpoint is written: dense safetensors, or compressed-tensors sparse formats for pruned linears. */
export const CHECKPOINT_FORMATS = ['dense', 'compressed'] as const;
export type CheckpointFormat = (typeof CHECKPOINT_FORMATS)[number];

export type SparseFormat = 'sparse-bitmask' | 'sparse-24-bitmask';
/** Formats this package reads: the two sparse ones and `dense` (plain tensors with sparsity metadata). */
export const READABLE_FORMATS = ['dense', 'sparse-bitmask', 'sparse-24-bitmask'] as const;
export type ReadableFormat = (typeof READABLE_FORMATS)[number];

/** The compressed-tensors release whose layout and config block this module follows. */
export const COMPRESSED_TENSORS_VERSION = '0.12.2';

/** The tensors stored per compressed weight, by format (COMPRESSION_PARAM_NAMES of each compressor). */
export const PARAM_NAMES: Record<SparseFormat, readonly string[]> = {
  'sparse-bitmask': ['shape', 'compressed', 'bitmask', 'row_offsets'],
  'sparse-24-bitmask': ['shape', 'compressed', 'bitmask'],
};

/** The sparse format for a pruning structure: 2:4 gets sparse-24-bitmask, anything else sparse-bitmask. */
export function sparseFormatFor(structure: string): SparseFormat {
  return structure === '2:4' ? 'sparse-24-bitmask' : 'sparse-bitmask';
}

/** A parsed `quantization_config` of a compressed-tensors checkpoint this package can read. */
export interface SparsityInfo {
  format: ReadableFormat;
  structure: string; // sparsity_structure ('unstructured', '2:4', ...)
  globalSparsity: number | null;
  targets: string[] | null;
  ignore: string[] | null;
}

function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (v && typeof v === 'object') {
    return Object.fromEntries(Object.keys(v).sort().map((k) => [k, sortKeys((v as Record<string, unknown>)[k])]));
  }
  return v;
}

/**
 * The `quantization_config` block of a sparse-only model, as compressed-tensors' ModelCompressor.update_config
 * writes it (keys sorted). `globalSparsity` is the zero fraction over all parameters.
 */
export function quantizationConfigBlock(format: SparseFormat, structure: string, globalSparsity: number): Record<string, unknown> {
  return sortKeys({
    version: COMPRESSED_TENSORS_VERSION,
    quant_method: 'compressed-tensors',
    sparsity_config: {
      format,
      targets: ['Linear'],
      ignore: ['lm_head'],
      global_sparsity: globalSparsity,
      sparsity_structure: structure,
      registry_requires_subclass: false,
    },
    transform_config: {},
  }) as Record<string, unknown>;
}

function stringList(v: unknown): string[] | null {
  return Array.isArray(v) && v.every((x) => typeof x === 'string') ? (v as string[]) : null;
}

/**
 * Read config.json's `quantization_config`: null when there is none; the sparsity info of a compressed-tensors
 * checkpoint in a readable format; an UnsupportedError naming the format for anything else (quantized
 * compressed-tensors formats, other quantization methods).
 */
export function readSparsityInfo(raw: Record<string, unknown>, file: string): SparsityInfo | null {
  const qc = raw['quantization_config'];
  if (qc === undefined || qc === null) return null;
  if (typeof qc !== 'object' || Array.isArray(qc)) throw new CheckpointError(`${file}: quantization_config must be an object`);
  const q = qc as Record<string, unknown>;
  const method = q['quant_method'];
  if (method !== 'compressed-tensors') {
    throw new UnsupportedError(
      `${file}: quantization_config.quant_method ${JSON.stringify(method)} is not supported; this package reads ` +
        `unquantized checkpoints and compressed-tensors sparse ones (${READABLE_FORMATS.join(', ')})`,
    );
  }
  const groups = q['config_groups'];
  const quantized = groups && typeof groups === 'object' && Object.keys(groups).length > 0;
  if (quantized || (q['format'] !== undefined && q['format'] !== null && q['format'] !== 'dense')) {
    const fmt = typeof q['format'] === 'string' ? q['format'] : 'quantized';
    throw new UnsupportedError(
      `${file}: quantization_config has the quantized compressed-tensors format '${fmt}', which is not supported; ` +
        `this package reads the sparsity formats ${READABLE_FORMATS.join(', ')} of unquantized models`,
    );
  }
  const sc = q['sparsity_config'];
  if (sc === undefined || sc === null || (typeof sc === 'object' && Object.keys(sc).length === 0)) {
    return { format: 'dense', structure: 'unstructured', globalSparsity: null, targets: null, ignore: null };
  }
  if (typeof sc !== 'object' || Array.isArray(sc)) throw new CheckpointError(`${file}: quantization_config.sparsity_config must be an object`);
  const s = sc as Record<string, unknown>;
  const format = s['format'];
  if (typeof format !== 'string' || !(READABLE_FORMATS as readonly string[]).includes(format)) {
    throw new UnsupportedError(
      `${file}: quantization_config.sparsity_config.format ${JSON.stringify(format)} is not supported; readable: ${READABLE_FORMATS.join(', ')}`,
    );
  }
  return {
    format: format as ReadableFormat,
    structure: typeof s['sparsity_structure'] === 'string' ? s['sparsity_structure'].toLowerCase() : 'unstructured',
    globalSparsity: typeof s['global_sparsity'] === 'number' ? s['global_sparsity'] : null,
    targets: stringList(s['targets']),
    ignore: stringList(s['ignore']),
  };
}

// ---------------------------------------------------------------------------------------------------------------
// encoding

/** Whether element i of little-endian float bytes (2 or 4 bytes each) is +0 or -0 (`tensor != 0` is false). */
function isZero(bytes: Uint8Array, i: number, es: number): boolean {
  if (es === 2) return bytes[2 * i] === 0 && (bytes[2 * i + 1]! & 0x7f) === 0;
  const j = 4 * i;
  return bytes[j] === 0 && bytes[j + 1] === 0 && bytes[j + 2] === 0 && (bytes[j + 3]! & 0x7f) === 0;
}

/** Number of stored zeros (+0 or -0) in little-endian float bytes of element size `es`. */
export function countZeros(bytes: Uint8Array, es: number): number {
  let n = 0;
  for (let i = 0, len = bytes.length / es; i < len; i++) if (isZero(bytes, i, es)) n++;
  return n;
}

function int64Bytes(values: number[]): Uint8Array {
  const a = new BigInt64Array(values.map((v) => BigInt(v)));
  return new Uint8Array(a.buffer);
}

/** Keep-mask of one row for sparse-24-bitmask: the non-zeros of each group of 4, topped up to 2 with its first zeros. */
function row24Mask(dense: Uint8Array, es: number, row: number, cols: number, keep: Uint8Array, where: string): void {
  for (let g = 0; g < cols; g += 4) {
    let n = 0;
    for (let j = 0; j < 4; j++) if (!isZero(dense, row * cols + g + j, es)) (keep[g + j] = 1), n++;
    if (n > 2) {
      throw new CheckpointError(
        `${where}: row ${row}, columns ${g}..${g + 3} hold ${n} non-zeros; sparse-24-bitmask needs at most 2 of every 4 ` +
          `(the weight is not 2:4 sparse; write it with structure unstructured to get sparse-bitmask)`,
      );
    }
    for (let j = 0; j < 4 && n < 2; j++) if (!keep[g + j]) (keep[g + j] = 1), n++;
  }
}

/**
 * Compress one [rows, cols] weight given as its stored bytes (F32/F16/BF16, element size `es`) into the tensors of
 * `format`. Zeros are decided on the stored bytes, so what is dropped is exactly what the dense file holds as 0.
 */
export function compressWeight(
  name: string,
  dense: Uint8Array,
  dtype: string,
  es: number,
  shape: [number, number],
  format: SparseFormat,
): { tensors: RawTensor[]; zeros: number } {
  const [rows, cols] = shape;
  const prefix = name.endsWith('.weight') ? name.slice(0, -'.weight'.length) : name;
  if (format === 'sparse-24-bitmask' && cols % 4 !== 0) {
    throw new CheckpointError(`${name}: ${cols} columns are not a multiple of 4, as sparse-24-bitmask needs`);
  }
  const bpr = Math.ceil(cols / 8);
  const bitmask = new Uint8Array(rows * bpr);
  const values = new Uint8Array(dense.length); // upper bound; trimmed below
  const offsets: number[] = new Array<number>(rows);
  const keep = new Uint8Array(cols);
  let nnz = 0;
  let zeros = 0;
  for (let r = 0; r < rows; r++) {
    offsets[r] = nnz;
    if (format === 'sparse-24-bitmask') {
      keep.fill(0);
      row24Mask(dense, es, r, cols, keep, name);
    }
    for (let c = 0; c < cols; c++) {
      const i = r * cols + c;
      const zero = isZero(dense, i, es);
      if (zero) zeros++;
      if (format === 'sparse-24-bitmask' ? keep[c] : !zero) {
        bitmask[r * bpr + (c >> 3)]! |= 1 << (c & 7);
        values.set(dense.subarray(i * es, (i + 1) * es), nnz * es);
        nnz++;
      }
    }
  }
  const tensors: RawTensor[] = [
    { name: `${prefix}.shape`, dtype: 'I64', shape: format === 'sparse-24-bitmask' ? [2, 1] : [2], bytes: int64Bytes([rows, cols]) },
    {
      name: `${prefix}.compressed`,
      dtype,
      shape: format === 'sparse-24-bitmask' ? [rows, cols / 2] : [nnz],
      bytes: values.slice(0, nnz * es),
    },
    { name: `${prefix}.bitmask`, dtype: 'U8', shape: [rows, bpr], bytes: bitmask },
  ];
  if (format === 'sparse-bitmask') tensors.push({ name: `${prefix}.row_offsets`, dtype: 'I64', shape: [rows], bytes: int64Bytes(offsets) });
  return { tensors, zeros };
}

// ---------------------------------------------------------------------------------------------------------------
// decoding

/** Header facts of one stored part (for validation before any data is read). */
export interface PartHeader {
  dtype: string;
  shape: number[];
}

/**
 * Check the stored parts of one compressed weight against its dense shape from config.json (dtypes, ranks and
 * sizes only; the values are checked by `decompressWeight`). `where` names the weight in errors.
 */
export function checkCompressedHeaders(
  where: string,
  format: SparseFormat,
  parts: Record<string, PartHeader>,
  expected: number[],
): void {
  const [rows, cols] = expected as [number, number];
  const want: Record<string, { dtypes: string[]; shape: number[] | null }> = {
    shape: { dtypes: ['I64'], shape: format === 'sparse-24-bitmask' ? [2, 1] : [2] },
    bitmask: { dtypes: ['U8'], shape: [rows, Math.ceil(cols / 8)] },
    compressed: { dtypes: ['F32', 'F16', 'BF16'], shape: format === 'sparse-24-bitmask' ? [rows, cols / 2] : null },
    row_offsets: { dtypes: ['I64'], shape: [rows] },
  };
  for (const p of PARAM_NAMES[format]) {
    const h = parts[p]!;
    const w = want[p]!;
    if (!w.dtypes.includes(h.dtype)) throw new CheckpointError(`${where}: '${p}' has dtype ${h.dtype}; ${format} stores it as ${w.dtypes.join(' or ')}`);
    if (w.shape && h.shape.join(',') !== w.shape.join(',')) {
      throw new CheckpointError(
        `${where}: '${p}' has shape [${h.shape.join(', ')}]; a ${format} weight of shape [${rows}, ${cols}] (from config.json) needs [${w.shape.join(', ')}]`,
      );
    }
    if (p === 'compressed' && !w.shape && h.shape.length !== 1) throw new CheckpointError(`${where}: 'compressed' has shape [${h.shape.join(', ')}], expected 1-D`);
  }
}

function readInt64(bytes: Uint8Array, i: number): number {
  return Number(new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getBigInt64(8 * i, true));
}

const POPCOUNT = new Uint8Array(256).map((_, i) => {
  let n = 0;
  for (let b = i; b; b >>= 1) n += b & 1;
  return n;
});

/** The stored parts of one compressed weight: raw bytes of the integer tensors, float32 values of `compressed`. */
export interface CompressedParts {
  shape: Uint8Array;
  compressed: Float32Array;
  bitmask: Uint8Array;
  rowOffsets?: Uint8Array;
}

/**
 * Decode one compressed weight into its dense [rows, cols] float32 values, validating the stored shape, the
 * bitmask padding, values count = popcount, the row offsets and (sparse-24-bitmask) cols/2 values per row.
 */
export function decompressWeight(where: string, format: SparseFormat, parts: CompressedParts, expected: number[]): Float32Array {
  const [rows, cols] = expected as [number, number];
  const stored = [readInt64(parts.shape, 0), readInt64(parts.shape, 1)];
  if (stored[0] !== rows || stored[1] !== cols) {
    throw new CheckpointError(`${where}: 'shape' holds [${stored.join(', ')}], config.json implies [${rows}, ${cols}]`);
  }
  const bpr = Math.ceil(cols / 8);
  const tail = cols % 8 === 0 ? 0 : 0xff & ~((1 << (cols % 8)) - 1); // padding bits of each row's last byte
  const out = new Float32Array(rows * cols);
  const v = parts.compressed;
  let k = 0;
  for (let r = 0; r < rows; r++) {
    const row = parts.bitmask.subarray(r * bpr, (r + 1) * bpr);
    if (tail && row[bpr - 1]! & tail) throw new CheckpointError(`${where}: 'bitmask' row ${r} has bits set past column ${cols - 1}`);
    let count = 0;
    for (let b = 0; b < bpr; b++) count += POPCOUNT[row[b]!]!;
    if (parts.rowOffsets && readInt64(parts.rowOffsets, r) !== k) {
      throw new CheckpointError(`${where}: 'row_offsets'[${r}] is ${readInt64(parts.rowOffsets, r)}, but the bitmask rows before it hold ${k} values`);
    }
    if (format === 'sparse-24-bitmask' && count !== cols / 2) {
      throw new CheckpointError(`${where}: 'bitmask' row ${r} has ${count} bits set; sparse-24-bitmask keeps exactly ${cols / 2} (2 of every 4)`);
    }
    if (k + count > v.length) {
      throw new CheckpointError(`${where}: 'bitmask' has more bits set than the ${v.length} values in 'compressed'`);
    }
    for (let b = 0; b < bpr; b++) {
      let byte = row[b]!;
      while (byte) {
        const j = 31 - Math.clz32(byte & -byte); // lowest set bit
        out[r * cols + 8 * b + j] = v[k++]!;
        byte &= byte - 1;
      }
    }
  }
  if (k !== v.length) throw new CheckpointError(`${where}: 'compressed' holds ${v.length} values but 'bitmask' has ${k} bits set`);
  return out;
}
