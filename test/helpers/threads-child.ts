/**
 * Child process for test/wasm-threads.test.ts: how a process with a threaded wasm backend ends.
 *   tsx test/helpers/threads-child.ts <mode>
 * modes: natural (work, then the event loop empties), throw (an error escapes), signal (waits to be killed by
 * SIGINT while computing), fallback (a bundle whose prelude cannot be built: must fall back to 1 thread).
 * Prints one JSON line {threads, note, sum} on stdout once the backend works.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../lib/model/backend.js';
import { setWasmBackend } from '../../lib/model/wasm-threads.js';

const mode = process.argv[2] ?? 'natural';
let threads: number;
let note: string | null;
if (mode === 'fallback') {
  const pkg = await import('@tensorflow/tfjs-backend-wasm');
  const bundle = readFileSync(createRequire(import.meta.url).resolve('@tensorflow/tfjs-backend-wasm'), 'utf8');
  const broken = bundle.replace(/^var require\$\$4 = require\('os'\);$/m, '');
  if (broken === bundle) throw new Error('test set-up: the os require line was not found');
  const r = await setWasmBackend(pkg, 2, broken);
  if (!r.ok || tf.getBackend() !== 'wasm') throw new Error('fallback left no wasm backend');
  threads = r.threads;
  note = r.note;
} else {
  const info = await initBackend('wasm', { threads: 2 });
  threads = info.threads ?? -1;
  note = info.note;
}
const a = tf.tensor2d(Array.from({ length: 256 * 256 }, (_, i) => ((i * 7) % 13) - 6), [256, 256]);
const sum = tf.sum(tf.matMul(a, a)).dataSync()[0];
process.stdout.write(JSON.stringify({ threads, note, sum }) + '\n');
if (mode === 'throw') throw new Error('deliberate failure after the backend started');
if (mode === 'signal') {
  for (;;) tf.tidy(() => tf.matMul(a, a).dataSync()); // killed by the parent while computing
}
