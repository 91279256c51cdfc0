/** Output folders: written under a temporary name and renamed into place only when complete. */
import { copyFileSync, existsSync, mkdirSync, readdirSync, renameSync, rmSync, writeFileSync } from '../platform/fs.js';
import { basename, dirname, join, resolve } from '../platform/path.js';
import { ConfigError, cliFlag, type OptionName } from '../errors.js';
import type { LlamaConfig } from './config.js';
import type { DType } from './safetensors.js';
import { Checkpoint, CheckpointWriter, compressOptions, expectedTensors, sparsityStructureOf, storageReport, type StorageReport } from './checkpoint.js';
import type { CheckpointFormat } from './compressed-tensors.js';
import { removeStaleStaged, stagedDone, stagedStarted } from '../interrupt.js';
import { platform } from '../platform/index.js';

const TOKENIZER_FILES = ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'generation_config.json', 'tokenizer.model'];
const TORCH_DTYPE: Record<DType, string> = { F32: 'float32', F16: 'float16', BF16: 'bfloat16' };

/**
 * A folder being written: everything goes to `<out>.partial-<pid>` and `commit()` renames it to `out`.
 * A run killed before `commit()` leaves only the `.partial-*` folder, which never looks like a finished result;
 * the `llm-prune` command removes it when interrupted (lib/interrupt.ts), and the next StagedFolder for the same
 * `out` removes those of dead processes (`onNote` hears their names).
 */
export class StagedFolder {
  readonly tmp: string;
  readonly out: string;

  private protectedState = false;

  /**
   * `resumable`: stage in `<out>.partial` (no pid), so that a later process can continue it; `keep`: continue the
   * one there instead of emptying it. A resumable folder that holds a resume state (`resume/state.json`, see
   * lib/prune/resume.ts; `protect()` once one is written) is not removed by llm-prune's signal cleanup.
   */
  constructor(
    out: string,
    options: { overwrite?: boolean; resumable?: boolean; keep?: boolean; onNote?: (line: string) => void; optionName?: OptionName } = {},
  ) {
    this.out = resolve(out);
    if (existsSync(this.out) && readdirSync(this.out).length > 0 && !options.overwrite) {
      const name = options.optionName ?? cliFlag;
      throw new ConfigError(`${name('out')} ${out}: folder exists and is not empty (pass ${name('overwrite')} to replace it)`);
    }
    const stale = removeStaleStaged(this.out);
    if (stale.length) options.onNote?.(`removed ${stale.join(', ')} (left by interrupted runs whose process is gone)`);
    mkdirSync(dirname(this.out), { recursive: true });
    this.tmp = join(dirname(this.out), `${basename(this.out)}.partial${options.resumable ? '' : `-${platform().processId}`}`);
    if (!options.keep) rmSync(this.tmp, { recursive: true, force: true });
    if (options.resumable && existsSync(join(this.tmp, 'resume', 'state.json'))) this.protectedState = true;
    else stagedStarted(this.tmp);
    mkdirSync(this.tmp, { recursive: true });
  }

  path(name: string): string {
    return join(this.tmp, name);
  }

  /** Move the finished folder into place (replacing an older one when allowed). */
  commit(): void {
    if (existsSync(this.out)) {
      const old = `${this.out}.old-${platform().processId}`;
      renameSync(this.out, old);
      renameSync(this.tmp, this.out);
      rmSync(old, { recursive: true, force: true });
    } else {
      renameSync(this.tmp, this.out);
    }
    stagedDone(this.tmp);
  }

  /** The folder now holds a resume state: an interruption keeps it (lib/interrupt.ts). */
  protect(): void {
    if (this.protectedState) return;
    this.protectedState = true;
    stagedDone(this.tmp);
  }

  /** Remove the temporary folder after a failure. */
  abandon(): void {
    rmSync(this.tmp, { recursive: true, force: true });
    stagedDone(this.tmp);
  }
}

/**
 * Write config.json (the input's, with torch_dtype set to the stored dtype and `quantization_config` replaced by
 * what was written: `quantizationConfig` for a compressed checkpoint, none for a dense one) and copy the tokenizer
 * files.
 */
export function writeModelFiles(
  dir: string,
  config: LlamaConfig,
  sourceDir: string,
  dtype: DType,
  quantizationConfig: Record<string, unknown> | null = null,
): void {
  const { quantization_config: _input, ...rest } = config.raw;
  const raw: Record<string, unknown> = { ...rest, torch_dtype: TORCH_DTYPE[dtype] };
  if (quantizationConfig) raw['quantization_config'] = quantizationConfig;
  writeFileSync(join(dir, 'config.json'), JSON.stringify(raw, null, 2) + '\n');
  for (const f of TOKENIZER_FILES) if (existsSync(join(sourceDir, f))) copyFileSync(join(sourceDir, f), join(dir, f));
}

/** The one temporary-name scheme of atomic writes: `<file>.tmp-<pid>`; TEMP_FILE finds what a killed run left. */
export const TEMP_FILE = /\.tmp-\d+$/;

/**
 * Write `file` atomically: `write(tmp)` fills a temporary file (`<file>.tmp-<pid>`), which is then renamed to
 * `file`, so a reader never sees a half-written file. On failure the temporary file is removed.
 */
export function writeAtomic(file: string, write: (tmp: string) => void): void {
  const tmp = `${file}.tmp-${platform().processId}`;
  try {
    write(tmp);
    renameSync(tmp, file);
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
}

/** Write text or bytes atomically (writeAtomic). */
export function writeFileAtomic(file: string, data: string | Uint8Array): void {
  writeAtomic(file, (tmp) => writeFileSync(tmp, data));
}

/** Write JSON atomically (writeAtomic), indented, with a final newline. */
export function writeJsonAtomic(file: string, value: unknown): void {
  writeFileAtomic(file, JSON.stringify(value, null, 2) + '\n');
}

/** Options of `saveCheckpoint`. */
export interface SaveOptions {
  out: string;
  format?: CheckpointFormat; // default dense
  structure?: string; // sparsity structure for the compressed format (default: the checkpoint's, see sparsityStructureOf)
  dtype?: DType; // default: the checkpoint's main dtype
  overwrite?: boolean;
  maxShardBytes?: number;
}

/**
 * Write an open checkpoint again, tensor by tensor, as a dense or compressed folder (with its tokenizer files):
 * a compressed-tensors folder saved dense, or a dense pruned folder (pruned here or elsewhere) compressed.
 */
export function saveCheckpoint(ckpt: Checkpoint, o: SaveOptions): StorageReport {
  const c = ckpt.config;
  const dtype = o.dtype ?? ckpt.mainDtype();
  const format = o.format ?? 'dense';
  const compress = compressOptions(c, format, format === 'compressed' ? (o.structure ?? sparsityStructureOf(ckpt)) : 'unstructured');
  const staged = new StagedFolder(o.out, { overwrite: o.overwrite ?? false });
  let writer: CheckpointWriter | null = null;
  try {
    writer = new CheckpointWriter(staged.tmp, expectedTensors(c), {
      dtype,
      ...(o.maxShardBytes !== undefined ? { maxShardBytes: o.maxShardBytes } : ckpt.sharded ? { maxShardBytes: 5e9 } : {}),
      ...(compress ? { compress } : {}),
    });
    for (const { name } of expectedTensors(c)) writer.write(name, ckpt.read(name));
    writer.finish();
    const storage = storageReport(writer, c, staged.tmp, dtype, compress);
    writeModelFiles(staged.tmp, c, ckpt.dir, dtype, writer.quantizationConfig());
    writer = null;
    staged.commit();
    return storage;
  } catch (e) {
    writer?.abort();
    staged.abandon();
    throw e;
  }
}
