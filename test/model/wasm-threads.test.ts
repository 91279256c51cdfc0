/**
 * Multi-threaded wasm (lib/model/wasm-threads.ts): the thread count obtained is the one asked, results do not depend
 * on it (logits bit-identical with 1 and 2 threads), processes end cleanly, and a broken assumption falls back to one
 * thread with a note. Speed belongs in bench/forward.ts (--threads-compare).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { tmpdir } from 'node:os';
import * as tf from '@tensorflow/tfjs-core';
import { getThreadsCount } from '@tensorflow/tfjs-backend-wasm';
import { initBackend } from '../../lib/model/backend.js';
import { loadModel } from '../../lib/model/load.js';
import { bundlePrelude, checkAssumptions } from '../../lib/model/wasm-threads.js';
import { writeTinyCheckpoint } from '../helpers/tiny-checkpoint.js';

const bundle = readFileSync(createRequire(import.meta.url).resolve('@tensorflow/tfjs-backend-wasm'), 'utf8');

describe('assumption checks', () => {
  it('hold for the installed tfjs-backend-wasm', async () => {
    await import('@tensorflow/tfjs-backend-wasm'); // registers the flag
    expect(checkAssumptions(bundle)).toBeNull();
  });
  it('name what a changed bundle no longer has', () => {
    const changed = bundle.replace('commonjsGlobal.Worker = nodeWorkerThreads.Worker', 'commonjsGlobal.Worker = X');
    expect(checkAssumptions(changed)).toMatch(/no longer contains "commonjsGlobal.Worker = nodeWorkerThreads.Worker"/);
  });
  it('build the prelude of the factory from the bundle, transitively', () => {
    const prelude = bundlePrelude(bundle, 'x = require$$4.cpus(); __spreadArray([], __read(a), false); __values(b);');
    expect(prelude).toContain("var require$$4 = require('os');");
    for (const f of ['__spreadArray', '__read', '__values']) expect(prelude).toContain(`function ${f}(`);
    expect(prelude).not.toContain("require('fs')");
    expect(() => bundlePrelude(bundle, 'require$$9.x')).toThrow(/no top-level declaration of require\$\$9/);
  });
});

describe('threads', () => {
  const ids = [Array.from({ length: 128 }, (_, i) => (i * 37 + 1) % 2048)];
  // a BF16 checkpoint wide enough that the threads split the matrix products
  const dir = writeTinyCheckpoint(join(mkdtempSync(join(tmpdir(), 'llm-prune-threads-')), 'model'), { seed: 5, dtype: 'BF16', hiddenSize: 128, intermediateSize: 384, numHeads: 4, numKvHeads: 2, maxPositions: 256 }).dir;
  afterAll(() => rmSync(dirname(dir), { recursive: true, force: true }));

  async function logitsWith(threads: number): Promise<Float32Array> {
    const info = await initBackend('wasm', { threads });
    expect(info.threads).toBe(threads);
    expect(getThreadsCount()).toBe(threads); // what XNNPACK really uses
    expect(info.note).toContain(threads === 1 ? 'single-threaded' : `${threads} threads`);
    const m = await loadModel(dir);
    try {
      const t = m.model.logits(ids);
      const out = (await t.data()) as Float32Array;
      t.dispose();
      return out;
    } finally {
      m.dispose();
    }
  }

  it('give bit-identical logits with 1 and 2 threads (and 1 again: switching back uses the unthreaded build)', async () => {
    const one = await logitsWith(1);
    const two = await logitsWith(2);
    expect(await logitsWith(1)).toEqual(one);
    expect(two.length).toBe(one.length);
    let differing = 0;
    for (let i = 0; i < one.length; i++) if (!Object.is(one[i], two[i])) differing++;
    expect(differing).toBe(0);
    expect(Number.isFinite(one[0]!)).toBe(true);
  });
});

describe('processes with threads', () => {
  const tsx = join(process.cwd(), 'node_modules', '.bin', 'tsx');
  const child = join(process.cwd(), 'test', 'fixtures', 'threads-child.ts');

  /** Run the child; `onLine` may kill it after its first stdout line. Resolves with its exit and output. */
  function run(mode: string, onLine?: (kill: (s: NodeJS.Signals) => void) => void) {
    return new Promise<{ code: number | null; signal: string | null; out: string; err: string }>((resolve, reject) => {
      const p = spawn(tsx, [child, mode], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      const timer = setTimeout(() => {
        p.kill('SIGKILL');
        reject(new Error(`child '${mode}' did not exit within 90 s (stdout: ${out}, stderr: ${err})`));
      }, 90_000);
      p.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        if (onLine && out.includes('\n')) onLine((s) => p.kill(s));
      });
      p.stderr.on('data', (d: Buffer) => (err += d.toString()));
      p.on('exit', (code, signal) => {
        clearTimeout(timer);
        resolve({ code, signal, out, err });
      });
    });
  }
  const EXPECTED_SUM = (() => {
    // the same matMul in plain JS (exact: small integers)
    const n = 256;
    const a = Array.from({ length: n * n }, (_, i) => ((i * 7) % 13) - 6);
    let s = 0;
    for (let i = 0; i < n; i++) for (let k = 0; k < n; k++) {
      const aik = a[i * n + k]!;
      for (let j = 0; j < n; j++) s += aik * a[k * n + j]!;
    }
    return s;
  })();

  it('end by themselves when the work is done', async () => {
    const r = await run('natural');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out)).toEqual({ threads: 2, note: 'backend wasm (SIMD, 2 threads)', sum: EXPECTED_SUM });
  });
  it('end with a non-zero status when an error escapes', async () => {
    const r = await run('throw');
    expect(r.code).not.toBe(0);
    expect(r.err).toContain('deliberate failure');
  });
  it('end on SIGINT while computing', async () => {
    const r = await run('signal', (kill) => kill('SIGINT'));
    expect(r.signal ?? r.code).toBeTruthy();
    expect(JSON.parse(r.out).threads).toBe(2);
  });
  it('fall back to one thread with a one-line note when an assumption breaks at run time', async () => {
    const r = await run('fallback');
    expect(r.code).toBe(0);
    const j = JSON.parse(r.out) as { threads: number; note: string; sum: number };
    expect(j.threads).toBe(1);
    expect(j.note).toMatch(/^wasm threads unavailable \(.*require\$\$4.*\); using 1 thread$/);
    expect(j.note).not.toContain('\n');
    expect(j.sum).toBe(EXPECTED_SUM);
  });
});
