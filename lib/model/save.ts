/** Output folders: written under a temporary name and renamed into place only when complete. */
import { closeSync, copyFileSync, existsSync, fsyncSync, mkdirSync, openSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { ConfigError, optionKey, type OptionName } from '../errors.js';
import type { LlamaConfig } from './config.js';
import type { DType } from './safetensors.js';
import { Checkpoint, CheckpointWriter, compressOptions, sparsityStructureOf, storageReport, type StorageReport } from './checkpoint.js';
import { expectedTensors, fusedTensors } from './architecture.js';
import type { CheckpointFormat } from './compressed-tensors.js';
import { removeStaleStaged, stagedDone, stagedStarted } from '../interrupt.js';
import { acquireOutputLock, type OutputLock } from '../output-lock.js';

const TOKENIZER_FILES = ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'generation_config.json', 'tokenizer.model'];
const TORCH_DTYPE: Record<DType, string> = { F32: 'float32', F16: 'float16', BF16: 'bfloat16' };

/** The steps of StagedFolder.commit, in order (a test kills the process at each). */
export const COMMIT_STEPS = ['synced', 'old-moved-aside', 'renamed', 'dir-synced', 'old-removed'] as const;
export type CommitStep = (typeof COMMIT_STEPS)[number];

/** Options of a StagedFolder. */
export interface StagedOptions {
  overwrite?: boolean;
  /** Stage in `<out>.partial` (no pid), so that a later process can continue it. */
  resumable?: boolean;
  /** Continue the staged folder there instead of emptying it. */
  keep?: boolean;
  onNote?: (line: string) => void;
  optionName?: OptionName;
  /** Hold `<out>.lock` while writing (default true; see lib/output-lock.ts). */
  lock?: boolean;
  /** Take over the output's lock even when its holder looks alive. */
  forceUnlock?: boolean;
  /** What this process is doing, told to a second process refused by the lock. */
  command?: string;
}

/**
 * A folder being written: everything goes to `<out>.partial-<pid>` and `commit()` renames it to `out`, after every
 * file was flushed to disk. A run killed before `commit()` leaves only the `.partial-*` folder, which never looks
 * like a finished result; the `llm-prune` command removes it when interrupted (lib/interrupt.ts), and the next
 * StagedFolder for the same `out` removes those of dead processes (`onNote` hears their names), or puts back an
 * older `out` that a run killed inside `commit()` had moved aside. While it exists the process holds `<out>.lock`:
 * a second process writing the same output is refused (lib/output-lock.ts).
 */
export class StagedFolder {
  readonly tmp: string;
  readonly out: string;

  private protectedState = false;
  private lock: OutputLock | null = null;

  /**
   * `resumable`: stage in `<out>.partial` (no pid), so that a later process can continue it; `keep`: continue the
   * one there instead of emptying it. A resumable folder that holds a resume state (`resume/state.json`, see
   * lib/prune/resume.ts; `protect()` once one is written) is not removed by llm-prune's signal cleanup.
   */
  constructor(out: string, options: StagedOptions = {}) {
    this.out = resolve(out);
    const name = options.optionName ?? optionKey;
    mkdirSync(dirname(this.out), { recursive: true });
    if (options.lock ?? true) {
      this.lock = acquireOutputLock(`${this.out}.lock`, {
        command: options.command ?? 'llm-prune',
        forceUnlock: options.forceUnlock ?? false,
        forceOption: name('forceUnlock'),
        ...(options.onNote ? { onNote: options.onNote } : {}),
      });
    }
    try {
      this.tmp = this.open(out, options, name);
    } catch (e) {
      this.lock?.release();
      throw e;
    }
  }

  private open(out: string, options: StagedOptions, name: OptionName): string {
    const stale = removeStaleStaged(this.out);
    if (existsSync(this.out) && readdirSync(this.out).length > 0 && !options.overwrite) {
      throw new ConfigError(`${name('out')} ${out}: folder exists and is not empty (pass ${name('overwrite')} to replace it)`);
    }
    if (stale.length) options.onNote?.(`removed ${stale.join(', ')} (left by interrupted runs whose process is gone)`);
    const tmp = join(dirname(this.out), `${basename(this.out)}.partial${options.resumable ? '' : `-${process.pid}`}`);
    if (!options.keep) rmSync(tmp, { recursive: true, force: true });
    if (options.resumable && existsSync(join(tmp, 'resume', 'state.json'))) this.protectedState = true;
    else stagedStarted(tmp);
    mkdirSync(tmp, { recursive: true });
    return tmp;
  }

  path(name: string): string {
    return join(this.tmp, name);
  }

  /**
   * Move the finished folder into place (replacing an older one when allowed): every file is flushed to disk
   * first, so the renamed folder is complete even after a power loss. A process killed between moving an older
   * `out` aside and renaming leaves `<out>.old-<pid>`, which the next StagedFolder for `out` puts back.
   * `onStep` (tests) hears each step of COMMIT_STEPS once it is done.
   */
  commit(onStep?: (step: CommitStep) => void): void {
    syncTree(this.tmp);
    onStep?.('synced');
    const old = `${this.out}.old-${process.pid}`;
    const replacing = existsSync(this.out);
    if (replacing) renameSync(this.out, old);
    onStep?.('old-moved-aside');
    renameSync(this.tmp, this.out);
    onStep?.('renamed');
    syncPath(dirname(this.out));
    onStep?.('dir-synced');
    if (replacing) rmSync(old, { recursive: true, force: true });
    onStep?.('old-removed');
    stagedDone(this.tmp);
    this.lock?.release();
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
    this.lock?.release();
  }

  /** Stop writing but keep the temporary folder (a resume state); the output's lock is released. */
  release(): void {
    this.lock?.release();
  }
}

/** Flush a file or folder entry to disk (folders: their list of names; ignored where the platform refuses). */
function syncPath(path: string): void {
  let fd: number | null = null;
  try {
    fd = openSync(path, 'r');
    fsyncSync(fd);
  } catch {
    // fsync of a directory is refused on some platforms (Windows); the data files were synced
  } finally {
    if (fd !== null) closeSync(fd);
  }
}

/** Flush every file under `dir`, then the folders themselves. */
function syncTree(dir: string): void {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) syncTree(p);
    else syncPath(p);
  }
  syncPath(dir);
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
  const tmp = `${file}.tmp-${process.pid}`;
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
  optionName?: OptionName; // how messages name the options (default the library's names; the CLI passes its flags)
  maxShardBytes?: number;
  /** Take over `<out>.lock` even when its holder looks alive. */
  forceUnlock?: boolean;
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
  const staged = new StagedFolder(o.out, {
    overwrite: o.overwrite ?? false,
    forceUnlock: o.forceUnlock ?? false,
    command: 'llm-prune convert',
    ...(o.optionName ? { optionName: o.optionName } : {}),
  });
  let writer: CheckpointWriter | null = null;
  try {
    writer = new CheckpointWriter(staged.tmp, expectedTensors(c), {
      dtype,
      fused: fusedTensors(c),
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
