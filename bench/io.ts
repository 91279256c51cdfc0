/**
 * bench/prune.ts part 3: the memory-bound I/O of every block of the layer loop, against the operating system's
 * speed on the same bytes, measured in the same run.
 *
 * A file of `mb` megabytes of LLaMA-7B MLP matrices (4096 x 11008) in BF16 or F16:
 * - write: SafetensorsWriter.write from float32 (a fresh file each time) against `dd if=file of=copy bs=4M` (a fresh
 *   copy: dd's read from the page cache plus its write).
 * - warm read (the file in the page cache, after a cat of it): SafetensorsFile.readFloat32 into a reused array (what
 *   the layer loop's block load does) and into a fresh array each time (the API without `out`), against
 *   `cat file > /dev/null` (which splices: the bytes are never copied to user space, ~0 CPU), `dd ... of=/dev/null
 *   bs=4M` (read() into a buffer: what any reader of the bytes pays), and the ceiling of a JS reader: readSync of
 *   the bytes into a reused buffer plus a memcpy of the same bytes (and of twice as many: what the float32 values
 *   take) into a preallocated Float32Array, i.e. the memory traffic of the conversion without any conversion work.
 * - cold read: the file dropped from the page cache (`dd iflag=nocache`, POSIX_FADV_DONTNEED on this file only), as a
 *   model larger than RAM is read: cat against readFloat32 into a reused array, wall seconds (best of 3, alternating).
 * Read and write run with the WebAssembly SIMD conversion kernels (the default) and with plain JS only.
 * CPU seconds (user + system of the process doing the work) are what a loaded machine distorts least; wall seconds
 * are given too. Best of 3 (the shell commands loop 10 times per timing: /usr/bin/time counts in 10 ms steps).
 */
import '../lib/node/platform.js'; // the Node platform layer (files, workers, backends)
import { spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { blockTensors } from '../lib/model/architecture.js';
import { Checkpoint } from '../lib/model/checkpoint.js';
import { useSimd } from '../lib/model/dtype-convert.js';
import { blockWeightsToArrays, linearParts, loadBlockWeights, type BlockWeights } from '../lib/model/llama.js';
import { SafetensorsFile, SafetensorsWriter, dtypeSize, type DType } from '../lib/model/safetensors.js';
import { makeSyntheticLlama, syntheticValues } from '../scripts/make-synthetic-llama.js';

export interface Timing {
  wall: number;
  cpu: number;
}

/** Best (least CPU) of `n` runs of `f`: wall seconds and CPU seconds (user + system) of this process. */
export function best(n: number, f: () => void): Timing {
  let b = { wall: Infinity, cpu: Infinity };
  for (let i = 0; i < n; i++) {
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    f();
    const c = process.cpuUsage(c0);
    const r = { wall: (performance.now() - t0) / 1000, cpu: (c.user + c.system) / 1e6 };
    if (r.cpu < b.cpu) b = r;
  }
  return b;
}

/** Best of `n` runs of a shell command under /usr/bin/time, run `reps` times per timing: seconds per run. */
export function bestShell(n: number, cmd: string, reps = 1): Timing {
  let b = { wall: Infinity, cpu: Infinity };
  const loop = reps > 1 ? `for i in $(seq ${reps}); do ${cmd}; done` : cmd;
  for (let i = 0; i < n; i++) {
    const r = spawnSync('/usr/bin/time', ['-f', '%e %U %S', 'sh', '-c', loop], { encoding: 'utf8' });
    const [e, u, sy] = r.stderr.trim().split('\n').pop()!.split(' ').map(Number);
    if (u! + sy! < b.cpu) b = { wall: e! / reps, cpu: (u! + sy!) / reps };
  }
  return b;
}

/** Drop `file` from the page cache (dirty pages are written first: they cannot be dropped). */
export function evict(file: string): void {
  spawnSync('sync', [file]);
  spawnSync('dd', [`if=${file}`, 'iflag=nocache', 'count=0', 'status=none']);
}

/**
 * The memory-copy ceiling of a JS reader, tensor by tensor: readSync of each tensor's bytes into a reused buffer,
 * then a copy of `widen` times as many bytes into a preallocated Float32Array (1: the same bytes, as a plain memcpy
 * of the file; 2: as many bytes as the float32 values of a 16-bit file take, the memory traffic of the conversion
 * without its arithmetic).
 */
function ceiling(file: string, tensorBytes: number, count: number, widen: 1 | 2): () => void {
  const buf = new Uint8Array(tensorBytes).fill(1);
  const src = new Uint8Array(tensorBytes * widen).fill(2);
  const dst = new Float32Array((tensorBytes * widen) / 4).fill(1);
  const dstBytes = new Uint8Array(dst.buffer);
  return () => {
    const fd = openSync(file, 'r');
    try {
      for (let i = 0; i < count; i++) {
        for (let off = 0; off < tensorBytes; ) off += readSync(fd, buf, off, tensorBytes - off, i * tensorBytes + off);
        dstBytes.set(src);
      }
    } finally {
      closeSync(fd);
    }
  };
}

const gbps = (bytes: number, s: number): number => +(bytes / 1e9 / s).toFixed(2);
const ratio = (a: number, b: number): number => +(a / b).toFixed(2);

/** Part 3 for one dtype: figures in GB (of the 16-bit file) per second, and ratios (>1: slower than the baseline). */
// long: one measurement protocol (write, warm, cold) on one file, kept together so its cache states stay in order
export function ioBench(dtype: DType, mb: number): Record<string, number | string> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-io-'));
  try {
    const rows = 4096;
    const cols = 11008; // a LLaMA-7B MLP matrix: 45M values, 90 MB in 16 bits
    const count = Math.max(1, Math.round((mb * 1e6) / (rows * cols * 2)));
    const plan = Array.from({ length: count }, (_, i) => ({ name: `w${i}`, shape: [rows, cols], dtype }));
    const values = syntheticValues(rows * cols, 0, 'bench', 'weight');
    const file = join(dir, 'a.safetensors');
    const copy = join(dir, 'copy');
    const writeFile = (): void => {
      const w = new SafetensorsWriter(file, plan);
      for (const t of plan) w.write(t.name, values);
      w.finish();
    };
    useSimd(false);
    const writeJs = best(3, writeFile);
    useSimd(true);
    const write = best(3, writeFile);
    const ddCopy = bestShell(3, `dd if='${file}' of='${copy}' bs=4M status=none`, 10);
    rmSync(copy, { force: true });
    const bytes = statSync(file).size;
    const out = new Float32Array(rows * cols).fill(1);
    const f = SafetensorsFile.open(file);
    let cold: { cat: Timing; ours: Timing };
    let warm: { reused: Timing; js: Timing; fresh: Timing; cat: Timing; dd: Timing; memcpy: Timing; memcpy2x: Timing };
    try {
      const readReused = (): void => {
        for (const t of plan) f.readFloat32(t.name, out);
      };
      cold = { cat: { wall: Infinity, cpu: Infinity }, ours: { wall: Infinity, cpu: Infinity } };
      for (let i = 0; i < 3; i++) {
        // alternating, best wall of 3 each: the disk is shared with whatever else runs
        evict(file);
        const c = bestShell(1, `cat '${file}' > /dev/null`);
        if (c.wall < cold.cat.wall) cold.cat = c;
        evict(file);
        const o = best(1, readReused);
        if (o.wall < cold.ours.wall) cold.ours = o;
      }
      bestShell(1, `cat '${file}' > /dev/null`); // warm: every page of the file in the page cache
      warm = {
        reused: best(3, readReused),
        js: ((): Timing => {
          useSimd(false);
          const r = best(3, readReused);
          useSimd(true);
          return r;
        })(),
        fresh: best(3, () => {
          for (const t of plan) f.readFloat32(t.name);
        }),
        cat: bestShell(3, `cat '${file}' > /dev/null`, 10),
        dd: bestShell(3, `dd if='${file}' of=/dev/null bs=4M status=none`, 10),
        memcpy: best(3, ceiling(file, rows * cols * 2, count, 1)),
        memcpy2x: best(3, ceiling(file, rows * cols * 2, count, 2)),
      };
    } finally {
      f.close();
    }
    const g = (s: number): number => gbps(bytes, s);
    process.stderr.write(
      `io ${dtype}: warm read ${g(warm.reused.cpu)} GB per CPU-s (plain JS ${g(warm.js.cpu)}, fresh arrays ${g(warm.fresh.cpu)}; dd ${g(warm.dd.cpu)}, read+memcpy ${g(warm.memcpy.cpu)}, read+memcpy 2x ${g(warm.memcpy2x.cpu)}), ` +
        `cold read ${g(cold.ours.wall)} GB/s (cat ${g(cold.cat.wall)}); write ${g(write.cpu)} GB per CPU-s (plain JS ${g(writeJs.cpu)}, dd copy ${g(ddCopy.cpu)})\n`,
    );
    return {
      fileMB: Math.round(bytes / 1e6),
      readGBperCpuSecond: g(warm.reused.cpu),
      readGBps: g(warm.reused.wall),
      readFreshArraysGBperCpuSecond: g(warm.fresh.cpu),
      readPlainJsGBperCpuSecond: g(warm.js.cpu),
      catGBperCpuSecond: g(warm.cat.cpu),
      catGBps: g(warm.cat.wall),
      ddReadGBperCpuSecond: g(warm.dd.cpu),
      ddReadGBps: g(warm.dd.wall),
      readMemcpyGBperCpuSecond: g(warm.memcpy.cpu),
      readMemcpy2xGBperCpuSecond: g(warm.memcpy2x.cpu),
      readVsDdCpu: ratio(warm.reused.cpu, warm.dd.cpu),
      readVsDdWall: ratio(warm.reused.wall, warm.dd.wall),
      readVsCatWall: ratio(warm.reused.wall, warm.cat.wall),
      readVsMemcpyCpu: ratio(warm.reused.cpu, warm.memcpy.cpu),
      readVsMemcpy2xCpu: ratio(warm.reused.cpu, warm.memcpy2x.cpu),
      coldReadGBps: g(cold.ours.wall),
      coldCatGBps: g(cold.cat.wall),
      coldReadVsCatWall: ratio(cold.ours.wall, cold.cat.wall),
      writeGBperCpuSecond: g(write.cpu),
      writeGBps: g(write.wall),
      writePlainJsGBperCpuSecond: g(writeJs.cpu),
      ddCopyGBperCpuSecond: g(ddCopy.cpu),
      ddCopyGBps: g(ddCopy.wall),
      writeVsDdCopyCpu: ratio(write.cpu, ddCopy.cpu),
      writeVsDdCopyWall: ratio(write.wall, ddCopy.wall),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * The block load + save path of the layer loop on one LLaMA-7B-shaped decoder block (202M parameters, 405 MB in
 * 16 bits; a 1-layer synthetic checkpoint written by scripts/make-synthetic-llama.ts): load = loadBlockWeights (read
 * into float32, tensors on the active backend, linears transposed to [in, out]); save = blockWeightsToArrays
 * (transposed back, read back from the backend) + SafetensorsWriter.write. The file parts alone (the weights read
 * into a reused array, transposed as loadBlockWeights reads them; writing the arrays) are timed too, so the
 * backend's share is visible. Warm page cache.
 */
// long: one measurement protocol on one synthetic block, kept together so the block is written and read once
export async function blockBench(dtype: DType): Promise<Record<string, number | string>> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-io-block-'));
  const ckptDir = join(dir, 'ckpt');
  try {
    makeSyntheticLlama({ shape: '7b', layers: 1, vocab: 4096, out: ckptDir, dtype });
    const ckpt = Checkpoint.open(ckptDir);
    const c = ckpt.config;
    const numel = (shape: number[]): number => shape.reduce((a, b) => a * b, 1);
    const bytes = blockTensors(c, 0).reduce((a, t) => a + numel(t.shape) * dtypeSize(dtype), 0);
    const plan = blockTensors(c, 0).map((t) => ({ ...t, dtype }));
    const out = join(dir, 'out.safetensors');
    try {
      const scratch = new Float32Array(Math.max(...blockTensors(c, 0).map((t) => numel(t.shape))));
      const readOnly = best(3, () => {
        for (const t of blockTensors(c, 0)) {
          const into = scratch.subarray(0, numel(t.shape));
          if (t.shape.length === 2) ckpt.readTransposed(t.name, into); // as loadBlockWeights reads the linears
          else ckpt.read(t.name, into);
        }
      });
      let block = loadBlockWeights(ckpt, 0);
      disposeBlockTensors(block);
      const load = best(3, () => {
        block = loadBlockWeights(ckpt, 0);
        disposeBlockTensors(block); // the last one is kept below
      });
      block = loadBlockWeights(ckpt, 0);
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      const arrays = await blockWeightsToArrays(c, 0, block);
      const cu = process.cpuUsage(c0);
      const readBack = { wall: (performance.now() - t0) / 1000, cpu: (cu.user + cu.system) / 1e6 };
      disposeBlockTensors(block);
      const writeOnly = best(3, () => {
        const w = new SafetensorsWriter(out, plan);
        for (const [name, values] of arrays) w.write(name, values);
        w.finish();
      });
      const g = (s: number): number => gbps(bytes, s);
      const save = { wall: readBack.wall + writeOnly.wall, cpu: readBack.cpu + writeOnly.cpu };
      process.stderr.write(
        `io block (7B shape, ${dtype}, ${tf.getBackend()}): load ${g(load.cpu)} GB per CPU-s (file part ${g(readOnly.cpu)}), save ${g(save.cpu)} (file part ${g(writeOnly.cpu)})\n`,
      );
      return {
        backend: tf.getBackend(),
        blockMB: Math.round(bytes / 1e6),
        loadSeconds: +load.wall.toFixed(3),
        loadCpuSeconds: +load.cpu.toFixed(3),
        loadGBperCpuSecond: g(load.cpu),
        loadReadOnlyGBperCpuSecond: g(readOnly.cpu),
        saveSeconds: +save.wall.toFixed(3),
        saveCpuSeconds: +save.cpu.toFixed(3),
        saveGBperCpuSecond: g(save.cpu),
        saveReadBackCpuSeconds: +readBack.cpu.toFixed(3),
        saveWriteOnlyGBperCpuSecond: g(writeOnly.cpu),
      };
    } finally {
      ckpt.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function disposeBlockTensors(b: BlockWeights): void {
  tf.dispose([...Object.values(b.norms), ...Object.values(b.linears).flatMap((l) => (l.bias ? [...linearParts(l), l.bias] : linearParts(l)))]);
}
