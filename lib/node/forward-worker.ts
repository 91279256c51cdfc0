/**
 * The forward pool's worker in Node (lib/model/forward-pool.ts): started as a worker thread by `startForwardWorker`
 * (from dist/ as .js; from the TypeScript sources through tsx's loader, which tests and benchmarks use), it starts a
 * single-threaded wasm backend and answers the pool's requests with `forwardWorkerHandler`. It sits above the model,
 * evaluation and pruning layers, so it hands the handler their functions.
 */
import { createRequire } from 'node:module';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import type { PoolWorker } from '../platform/index.js';

const ROLE = 'llm-prune:forward-pool';

/**
 * Start a worker running this module: from dist/ its own .js file; from the TypeScript sources a small bootstrap that
 * registers tsx's ESM loader in the worker first (a worker does not inherit the loader).
 */
export function startForwardWorker(): PoolWorker {
  const file = fileURLToPath(import.meta.url);
  // bundled into another file (esbuild), this module's URL is the bundle's: starting it would run the bundle's main
  if (!basename(file).startsWith('forward-worker.')) throw new Error(`this module is bundled into ${basename(file)}`);
  if (!file.endsWith('.ts')) return new Worker(file, { workerData: { role: ROLE } }) as unknown as PoolWorker;
  // tsx's ESM API (the .mjs build: its CommonJS build resolves the loader from the wrong folder)
  const api = pathToFileURL(join(dirname(createRequire(import.meta.url).resolve('tsx/package.json')), 'dist/esm/api/index.mjs')).href;
  const boot = `import(${JSON.stringify(api)}).then((tsx) => { tsx.register(); return import(${JSON.stringify(import.meta.url)}); });`;
  return new Worker(boot, { eval: true, workerData: { role: ROLE } }) as unknown as PoolWorker;
}

async function serve(): Promise<void> {
  const port = parentPort!;
  // loaded here, in the worker only: the main thread reaches this module through the platform, which must stay light
  await import('./platform.js');
  const { initBackend } = await import('../model/backend.js');
  const { forwardWorkerHandler } = await import('../model/forward-pool.js');
  const { windowLosses } = await import('../eval/perplexity.js');
  const { reduceSamples } = await import('../prune/stats.js');
  const info = await initBackend('wasm', { threads: 1 });
  const handle = forwardWorkerHandler({ windowLosses: (m, w) => windowLosses(m, w), reduceSamples }, info.note);
  port.on('message', (req: Parameters<typeof handle>[0]) => void handle(req).then((r) => port.postMessage(r)));
}

if (!isMainThread && (workerData as { role?: string } | null)?.role === ROLE) void serve();
