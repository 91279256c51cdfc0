/**
 * Block-level resume of a pruning run. After every block the layer loop hands its state to a `ResumeStore`, which
 * persists, inside the staged output folder (`<out>.partial/resume/`):
 *   activations-<k>.safetensors  the calibration activations entering block k (one tensor per forward batch),
 *                                float32 by default (exact), or the checkpoint's dtype (half the disk, not exact)
 *   state.json                   { fingerprint, nextLayer: k, blocks done, accumulated times, ... }
 * The order makes every moment of a SIGKILL safe: the output shards are fsynced (blocks < k are on disk), the new
 * activations are written to a temporary file, fsynced and renamed, then state.json is replaced the same way (the
 * commit point), then the previous activations are removed. A resumed run reopens the shards without truncating
 * them and continues at block k; since every block is a deterministic function of the stored inputs, the result is
 * byte-identical to an uninterrupted run. The fingerprint covers everything the bytes depend on (model files,
 * method and options, calibration windows, output dtype and sharding, batch size): a state made from other inputs is
 * refused, never silently continued.
 */
import { canonicalSha256 } from '../canonical.js';
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from '../platform/fs.js';
import { join } from '../platform/path.js';
import * as tf from '@tensorflow/tfjs-core';
import { ConfigError, CheckpointError } from '../errors.js';
import { type Checkpoint } from '../model/checkpoint.js';
import { blockTensors, linearShape } from '../model/architecture.js';
import type { LlamaConfig } from '../model/config.js';
import { SafetensorsFile, SafetensorsWriter, type DType } from '../model/safetensors.js';
import { LINEAR_NAMES } from '../model/architecture.js';
import type { BlockSparsity, LoopCheckpoint, LoopStart, PhaseTimes } from './pipeline.js';
import { platform } from '../platform/index.js';

const STATE_VERSION = 2; // 2: permutations (RIA --permute) and OWL's allocation in the state
export const RESUME_DIR = 'resume';

/** A resume state made from other inputs than the run's (the caller may start over). */
export class ResumeMismatchError extends ConfigError {}

/** How the stored activations are kept: exact float32, or the checkpoint's own dtype (half the disk, not exact). */
export type ActivationStorage = 'F32' | 'input';

/** OWL's pass 1 result (lib/prune/owl.ts), kept so that a resumed run need not run pass 1 again. */
export interface StoredAllocation {
  ratios: number[];
  sparsities: number[];
}

/** state.json */
interface StoredState {
  version: number;
  fingerprint: string;
  nextLayer: number;
  layers: number;
  activations: string | null; // file name in resume/ (null: no calibration, or nothing left to compute)
  blocks: BlockSparsity[];
  times: PhaseTimes;
  forwardTokens: number;
  permutations: Record<string, number[]>;
  allocation: StoredAllocation | null; // --layerwise owl: the allocation the plan was built from
  seconds: number; // wall seconds of the layer loop over all attempts so far
  resumedAt: number[];
}

/** Whether a staged output folder holds a committed resume state. */
export function hasResumeState(stagedDir: string): boolean {
  return existsSync(join(stagedDir, RESUME_DIR, 'state.json'));
}

/** sha256 of a canonical JSON of everything the output bytes depend on. */
export function resumeFingerprint(inputs: Record<string, unknown>): Promise<string> {
  return canonicalSha256({ version: STATE_VERSION, ...inputs });
}

/** Name, size and mtime of each safetensors file of a checkpoint (a changed input file changes the fingerprint). */
export function checkpointStamp(ckpt: Checkpoint): { file: string; size: number; mtimeMs: number }[] {
  return ckpt.files.map((f) => {
    const s = statSync(f.path);
    return { file: f.path, size: s.size, mtimeMs: s.mtimeMs };
  });
}

function fsyncPath(path: string): void {
  const fd = openSync(path, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function writeFileDurable(file: string, data: string): void {
  const tmp = `${file}.tmp`;
  writeFileSync(tmp, data);
  fsyncPath(tmp);
  renameSync(tmp, file);
}

/** The resume state of one staged output folder. */
export class ResumeStore {
  readonly dir: string;
  private readonly resumedAt: number[] = [];
  private previousSeconds = 0;
  private allocation: StoredAllocation | null = null;

  constructor(
    stagedDir: string,
    readonly fingerprint: string,
    readonly activationDtype: DType,
  ) {
    this.dir = join(stagedDir, RESUME_DIR);
  }

  /** Whether a committed state exists. */
  exists(): boolean {
    return existsSync(join(this.dir, 'state.json'));
  }


  /**
   * Read the committed state: the loop's starting point (tensors owned by the caller). Throws ConfigError when the
   * state was made from other inputs, CheckpointError when it is unreadable. `resumeName` names the resume option
   * in those messages as the caller spells it (default the CLI flag).
   */
  load(config: LlamaConfig, resumeName = '--resume'): LoopStart & { allocation: StoredAllocation | null } {
    const file = join(this.dir, 'state.json');
    let s: StoredState;
    try {
      s = JSON.parse(readFileSync(file, 'utf8')) as StoredState;
    } catch (e) {
      throw new CheckpointError(`${file}: unreadable resume state (${(e as Error).message}); rerun without ${resumeName} to start over`);
    }
    if (s.version !== STATE_VERSION || s.fingerprint !== this.fingerprint) {
      throw new ResumeMismatchError(
        `${file}: this partial run was made from other inputs (model files, method, options, layerwise allocation options, targets, calibration, dtype, sharding or batch size differ); ` +
          `rerun with the same options, or without ${resumeName} to start over`,
      );
    }
    if (s.layers !== config.numLayers) throw new CheckpointError(`${file}: state for ${s.layers} layers, the model has ${config.numLayers}`);
    const inputs: tf.Tensor3D[] = [];
    if (s.activations) {
      const f = SafetensorsFile.open(join(this.dir, s.activations));
      try {
        const names = [...f.entries.keys()].filter((n) => n.startsWith('batch.')).sort((a, b) => Number(a.slice(6)) - Number(b.slice(6)));
        for (const n of names) inputs.push(tf.tensor3d(f.readFloat32(n), f.entries.get(n)!.shape as [number, number, number]));
      } catch (e) {
        for (const x of inputs) x.dispose();
        throw e;
      } finally {
        f.close();
      }
    }
    this.resumedAt.push(...s.resumedAt, s.nextLayer);
    this.previousSeconds = s.seconds;
    this.allocation = s.allocation;
    return {
      nextLayer: s.nextLayer,
      inputs,
      blocks: s.blocks,
      times: s.times,
      forwardTokens: s.forwardTokens,
      permutations: s.permutations,
      seconds: s.seconds,
      allocation: s.allocation,
    };
  }

  /** The layerwise allocation to keep in every state from now on (null: none). */
  setAllocation(a: StoredAllocation | null): void {
    this.allocation = a;
  }

  /** Layers at which this run was resumed (in order). */
  get resumes(): number[] {
    return [...this.resumedAt];
  }

  /**
   * Commit the state at `cp.nextLayer`. `sync` makes the output shards durable first (blocks < nextLayer written).
   * `cp.inputs` are not consumed.
   */
  async save(cp: LoopCheckpoint, sync: () => void): Promise<void> {
    mkdirSync(this.dir, { recursive: true });
    sync();
    const old = readdirSync(this.dir).filter((f) => f.startsWith('activations-'));
    let activations: string | null = null;
    if (cp.inputs.length > 0 && cp.nextLayer < cp.layers) {
      activations = `activations-${cp.nextLayer}.safetensors`;
      const tmp = join(this.dir, `${activations}.tmp`);
      const w = new SafetensorsWriter(tmp, cp.inputs.map((x, i) => ({ name: `batch.${i}`, shape: x.shape, dtype: this.activationDtype })));
      try {
        for (const [i, x] of cp.inputs.entries()) w.write(`batch.${i}`, (await x.data()) as Float32Array);
        w.finish();
      } catch (e) {
        w.abort();
        throw e;
      }
      fsyncPath(tmp);
      renameSync(tmp, join(this.dir, activations));
    }
    failpoint('state-commit', cp.nextLayer);
    const state: StoredState = {
      version: STATE_VERSION,
      fingerprint: this.fingerprint,
      nextLayer: cp.nextLayer,
      layers: cp.layers,
      activations,
      blocks: cp.blocks,
      times: cp.times,
      forwardTokens: cp.forwardTokens,
      permutations: cp.permutations,
      allocation: this.allocation,
      seconds: this.previousSeconds + cp.seconds,
      resumedAt: this.resumedAt,
    };
    writeFileDurable(join(this.dir, 'state.json'), JSON.stringify(state));
    fsyncPath(this.dir);
    for (const f of old) if (f !== activations) rmSync(join(this.dir, f), { force: true });
  }

  /** Remove the resume state (the run is complete). */
  clear(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Bytes of the stored activations: nsamples x seqlen x hidden in the storage dtype (one file at a time, plus one being written). */
export function activationBytes(c: LlamaConfig, nsamples: number, seqlen: number, dtype: DType): number {
  return nsamples * seqlen * c.hiddenSize * (dtype === 'F32' ? 4 : 2);
}

/** Parameters of one decoder block (seven linears and two norms, biases included). */
export function blockParams(c: LlamaConfig): number {
  return blockTensors(c, 0).reduce((a, t) => a + t.shape.reduce((x, y) => x * y, 1), 0);
}

/**
 * Peak-memory model of the layer loop (bytes), for docs/scaling.md ("Larger than RAM") and bench/scale.ts. With E the
 * embedding table, B one block and L the largest linear, all in float32, and A the calibration activations
 * (nsamples x seqlen x hidden float32), the loop goes through four phases, none of which holds more than one block:
 *   start    E on the backend (the windows are embedded, then E is freed); each non-block tensor passes through JS
 *            memory once (float32 + encoded: 1.5 E)
 *   forward  2 B + 2 A on the backend (the block, the packed copy of each weight XNNPACK's matMul keeps, the
 *            block's inputs and outputs) plus one forward's work
 *   prune    B parked in JS memory; on the backend one linear at a time with the method's transients, k L
 *            (Wanda: k ~ 4: transposed copy, metric, mask, masked result; the per-row top-k runs in chunks of 16M
 *            values) plus its statistics (Wanda: a vector per input; SparseGPT: in x in Hessians)
 *   write    B on the backend, B in JS (float32 copies) and B / 2 encoded
 * The wasm heap keeps its high-water mark, so peak RSS ~ runtime + W + J with W = max(E, 2B + 2A, k L + stats) and
 * J = max(1.5 E, 1.5 B). Depth does not appear: 4, 8 or 40 layers of one width need the same memory.
 */
export function memoryEstimate(
  c: LlamaConfig,
  o: { nsamples: number; seqlen: number; method?: string },
): { embedding: number; block: number; largestLinear: number; activations: number; statistics: number; wasmHeap: number; js: number; total: number } {
  const f = 4;
  const largest = Math.max(...LINEAR_NAMES.map((n) => linearShape(c, n).reduce((x, y) => x * y, 1))) * f;
  const inputs = [c.hiddenSize, c.numHeads * c.headDim, c.intermediateSize];
  const statistics =
    o.method === 'sparsegpt' ? inputs.reduce((a, n) => a + n * n * f, 0) : o.method === 'magnitude' ? 0 : (inputs.reduce((a, n) => a + n, 0) + c.hiddenSize) * f;
  const embedding = c.vocabSize * c.hiddenSize * f;
  const block = blockParams(c) * f;
  const activations = o.nsamples * o.seqlen * c.hiddenSize * f;
  const wasmHeap = Math.max(embedding, 2 * block + 2 * activations, 4 * largest + statistics);
  const js = Math.max(1.5 * embedding, 1.5 * block);
  return { embedding, block, largestLinear: largest, activations, statistics, wasmHeap, js, total: wasmHeap + js };
}

/**
 * Test hook: `LLM_PRUNE_FAILPOINT=<name>:<layer>` makes the process SIGKILL itself at that point (names: after-setup,
 * mid-block, writing, state-commit, between-blocks). Used by test/resume.test.ts to kill a run at exact places.
 */
export function failpoint(name: string, layer: number): void {
  // The library's one environment read, on purpose: the hook must reach a child process that a test starts through
  // the real CLI (test/prune/resume.test.ts), without an option in any public API. test/cli/env.test.ts lists it.
  const want = platform().env('LLM_PRUNE_FAILPOINT');
  if (want && want === `${name}:${layer}`) platform().crash();
}
