/**
 * Multi-threaded `@tensorflow/tfjs-backend-wasm` under Node.
 *
 * tfjs 4.22 ships a threaded SIMD build (XNNPACK on a pthread pool of `worker_threads`) but never uses it in Node:
 *  1. the flag `WASM_HAS_MULTITHREAD_SUPPORT` answers false when `IS_NODE` (tfjs issue #3830). It can be set to true
 *     after the backend module is imported and before `setBackend('wasm')`.
 *  2. Emscripten's glue starts each pthread worker from a `blob:` URL (the worker script) and sends it the main
 *     script as a `Blob` in its `load` message; Node's `worker_threads` can run neither. The glue takes `Worker` from
 *     `require('worker_threads')` when the module is set up, so during `setBackend` that export is replaced by
 *     `BlobWorker` below: it starts a tiny bootstrap with `eval: true`, sends it the text of both blobs, and the
 *     bootstrap evaluates the worker script and answers its `importScripts(<main script>)` from memory (no temp
 *     file, nothing to clean up). The main script is the bundle's factory (`factory.toString()`), which refers to a
 *     few top-level names of the dist bundle (`require$$N` modules, `commonjsGlobal`, tslib helpers): their
 *     declarations are read from the dist file and sent ahead of it (the "prelude").
 *  3. The C++ side caps the pool at min(requested, logical cores / 2) (tfjs issue #6081), with logical cores from
 *     `os.cpus().length`, so on a 2-core machine it silently stays at 1 thread. `os.cpus` is made to report
 *     2 x requested entries while the backend initialises, then restored. The count obtained is read back with
 *     `getThreadsCount()`.
 *  4. Emscripten refs each pthread's worker while it runs, so XNNPACK's pool (threads that live as long as the
 *     backend) would keep the process from ever exiting. `BlobWorker.ref` is a no-op once the worker has loaded:
 *     pool threads work only inside synchronous calls from the main thread, so when the event loop is empty they
 *     are idle and safe to drop. The backend is also removed at process exit (normal end, errors, process.exit
 *     from signal handlers).
 * Every assumption is checked (flag registered, bundle shapes, Blob/Worker behaviour, the count obtained). When one
 * fails the backend is set up single-threaded and `note` says why in one line, instead of breaking on a future tfjs.
 */
import * as tf from '@tensorflow/tfjs-core';
import { resolveObjectURL } from 'node:buffer';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import type { Worker as NodeWorker, WorkerOptions } from 'node:worker_threads';

type WasmPackage = typeof import('@tensorflow/tfjs-backend-wasm');

const require = createRequire(import.meta.url);
const FLAG = 'WASM_HAS_MULTITHREAD_SUPPORT';
/** Emscripten's pthread pool in this build holds 8 workers; XNNPACK's pool is taken from it. */
export const MAX_WASM_THREADS = 8;
/** How long the threaded initialisation may take before falling back (it takes well under a second idle). */
const INIT_TIMEOUT_MS = 60_000;
/** What the worker asks `importScripts` for instead of the main-script Blob. */
const MAIN_TOKEN = 'llm-prune:wasm-threaded-main-script';

/** Code the bundle must contain for the design above to hold (checked, never patched). */
const BUNDLE_MARKERS = [
  'require("worker_threads")', // the glue takes Worker from worker_threads ...
  'commonjsGlobal.Worker = nodeWorkerThreads.Worker', // ... when the module is set up
  '"urlOrBlob": Module["mainScriptUrlOrBlob"]', // the main script travels in the load message
  'importScripts(e.data.urlOrBlob)', // the worker script loads it through importScripts
  'mainScriptUrlOrBlob = new Blob(["var WasmBackendModuleThreadedSimd = "', // as the factory's source text
  '.cpus().length', // logical cores come from os.cpus()
  'init_with_threads_count',
];

/** The worker's first code: evaluate the worker script sent as text, then serve the main script from memory. */
const BOOTSTRAP = `
const { parentPort } = require('worker_threads');
parentPort.once('message', (boot) => {
  eval(boot.workerJs); // direct eval: the glue needs this scope's require and __filename
  const importFile = globalThis.importScripts;
  globalThis.importScripts = (f) => (f === ${JSON.stringify(MAIN_TOKEN)} ? (0, eval)(boot.mainJs) : importFile(f));
});`;

/**
 * The top-level declarations of the dist bundle that `script` (the factory's source) refers to, transitively:
 * `var require$$N = require('...');`, `var commonjsGlobal = ...;` and tslib helpers `function __name(...) {...}`.
 * Returns an error string when a referenced name has no declaration.
 */
export function bundlePrelude(bundle: string, script: string): string {
  const decls = new Map<string, string>();
  for (const m of bundle.matchAll(/^var (require\$\$\d+|commonjsGlobal) = [^\n]*;$/gm)) decls.set(m[1]!, m[0]);
  for (const m of bundle.matchAll(/^function (__\w+)\([^)]*\) \{\n[\s\S]*?\n\}$/gm)) decls.set(m[1]!, m[0]);
  for (const m of bundle.matchAll(/^var (extendStatics) = function[\s\S]*?\n\};$/gm)) decls.set(m[1]!, m[0]);
  const tslib = 'extends|assign|rest|awaiter|generator|values|read|spread|spreadArrays|spreadArray|await|asyncValues';
  const wanted = new RegExp(`\\b(require\\$\\$\\d+|commonjsGlobal|extendStatics)\\b|\\b(__(?:${tslib}))\\(`, 'g');
  const out: string[] = [];
  const seen = new Set<string>();
  const visit = (text: string): void => {
    for (const m of text.matchAll(wanted)) {
      const name = m[1] ?? m[2]!;
      if (seen.has(name)) continue;
      seen.add(name);
      const d = decls.get(name);
      if (d === undefined) throw new Error(`the bundle has no top-level declaration of ${name}`);
      visit(d);
      out.push(d);
    }
  };
  visit(script);
  return out.join('\n') + '\n';
}

function flagRegistered(): boolean {
  const registry = (tf.env() as unknown as { flagRegistry?: Record<string, unknown> }).flagRegistry;
  return registry !== undefined && FLAG in registry;
}

/** Why the threaded set-up cannot be tried, or null when every static assumption holds. */
export function checkAssumptions(bundle: string): string | null {
  if (!flagRegistered()) return `flag ${FLAG} is not registered`;
  if (typeof SharedArrayBuffer === 'undefined') return 'SharedArrayBuffer is unavailable';
  if (typeof resolveObjectURL !== 'function') return 'node:buffer has no resolveObjectURL';
  const missing = BUNDLE_MARKERS.find((m) => !bundle.includes(m));
  if (missing !== undefined) return `the tfjs-backend-wasm bundle no longer contains ${JSON.stringify(missing)}`;
  return null;
}

interface Pending {
  value: unknown;
  transfer: readonly unknown[] | undefined;
}

/**
 * A `worker_threads.Worker` that can start from a `blob:` URL and load a main script sent as a Blob (see point 2
 * above). Any other use behaves exactly like `Worker`.
 */
function blobWorkerClass(
  Base: typeof NodeWorker,
  bundle: string,
  failed: (e: unknown) => void,
  started: Set<NodeWorker>,
): typeof NodeWorker {
  const mainTexts = new WeakMap<Blob, Promise<string>>();
  const mainText = (blob: Blob): Promise<string> => {
    let p = mainTexts.get(blob);
    if (!p) {
      p = blob.text().then((t) => bundlePrelude(bundle, t) + t);
      mainTexts.set(blob, p);
    }
    return p;
  };
  return class BlobWorker extends Base {
    #workerJs: Promise<string> | null = null;
    #pending: Pending[] | null = null; // messages held until the bootstrap has the scripts
    #pthread = false; // started from a blob: URL, i.e. one of Emscripten's pthread workers

    constructor(url: string | URL, options?: WorkerOptions) {
      const blob = typeof url === 'string' && url.startsWith('blob:') ? resolveObjectURL(url) : undefined;
      super(blob ? BOOTSTRAP : url, blob ? { ...options, eval: true } : options);
      if (!blob) return;
      this.#pthread = true;
      started.add(this);
      this.once('exit', () => started.delete(this));
      this.#workerJs = blob.text();
      this.#pending = [];
    }

    // Emscripten refs a worker while it runs a pthread; XNNPACK's pool threads run for the backend's whole life but
    // work only inside synchronous calls from the main thread, so they must not hold the event loop (point 4).
    // Emscripten itself unrefs each worker once loaded; before that the ref keeps the process waiting for the load.
    override ref(): void {
      if (!this.#pthread || this.#pending !== null) super.ref();
    }

    override postMessage(value: unknown, transfer?: readonly unknown[]): void {
      const pending = this.#pending;
      if (pending === null) return super.postMessage(value, transfer as never);
      pending.push({ value, transfer });
      const load = value as { cmd?: string; urlOrBlob?: unknown };
      if (load?.cmd !== 'load') return;
      if (!(load.urlOrBlob instanceof Blob)) return failed(new Error('the load message carries no Blob'));
      Promise.all([this.#workerJs!, mainText(load.urlOrBlob)]).then(([workerJs, mainJs]) => {
        super.postMessage({ workerJs, mainJs });
        for (const m of pending) {
          const v = m.value === value ? { ...load, urlOrBlob: MAIN_TOKEN } : m.value;
          super.postMessage(v, m.transfer as never);
        }
        this.#pending = null;
      }, failed);
    }

    // A worker that fails while the backend initialises makes the set-up fall back instead of crashing the process.
    override emit(event: string | symbol, ...args: unknown[]): boolean {
      if (event === 'error' && initialising) {
        failed(args[0]);
        return true;
      }
      return super.emit(event, ...args);
    }
  };
}

let initialising = false;
/** Every pthread worker started through BlobWorker and still alive: terminated when the set-up falls back. */
const workers = new Set<NodeWorker>();

function withTimeout<T>(p: Promise<T>, ms: number, failure: Promise<never>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms / 1000} s`)), ms);
  });
  return Promise.race([p, timeout, failure]).finally(() => clearTimeout(timer));
}

/** Remove the wasm backend at exit so that pthread workers never hold the process (idempotent). */
let exitHookInstalled = false;
function removeAtExit(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  const remove = (): void => {
    try {
      if (tf.findBackend('wasm')) tf.removeBackend('wasm');
    } catch {
      // exiting anyway
    }
  };
  process.once('exit', remove);
}

async function initThreaded(pkg: WasmPackage, threads: number, bundle: string): Promise<number> {
  const wt = require('node:worker_threads') as { Worker: typeof NodeWorker };
  const cpus = os.cpus;
  const OriginalWorker = wt.Worker;
  let fail: (e: unknown) => void = () => undefined;
  const failure = new Promise<never>((_, reject) => (fail = reject));
  failure.catch(() => undefined); // a late failure must not become an unhandled rejection
  wt.Worker = blobWorkerClass(OriginalWorker, bundle, (e) => fail(e), workers);
  const real = cpus();
  os.cpus = () => Array.from({ length: 2 * threads }, (_, i) => real[i % real.length]!);
  initialising = true;
  try {
    pkg.setThreadsCount(threads);
    tf.env().set(FLAG, true);
    if (!(await withTimeout(tf.setBackend('wasm'), INIT_TIMEOUT_MS, failure))) throw new Error('setBackend failed');
  } finally {
    initialising = false;
    os.cpus = cpus;
    wt.Worker = OriginalWorker;
  }
  removeAtExit();
  return pkg.getThreadsCount();
}

/** After a failed threaded attempt: forget that backend instance and register the factory again, single-threaded. */
function resetBackend(pkg: WasmPackage, factory: ReturnType<typeof tf.findBackendFactory>): void {
  try {
    tf.removeBackend('wasm'); // disposes a half-built instance and its workers; also drops the registration
  } catch {
    // nothing was built
  }
  for (const w of workers) void w.terminate();
  if (factory && !tf.findBackendFactory('wasm')) tf.registerBackend('wasm', factory, 2);
}

/** The text of tfjs-backend-wasm's dist bundle, or null where there is none (e.g. an esbuild bundle without node_modules). */
function readBundle(): string | null {
  try {
    return readFileSync(require.resolve('@tensorflow/tfjs-backend-wasm'), 'utf8');
  } catch {
    return null;
  }
}

export interface WasmThreadsResult {
  ok: boolean; // the wasm backend is active
  threads: number; // the thread count XNNPACK uses (getThreadsCount)
  note: string | null; // one line when threads were asked and not obtained
}

/**
 * Make `wasm` the active tfjs backend with `threads` threads (1 = the single-threaded SIMD build, as before).
 * Requests above MAX_WASM_THREADS are capped. Never throws for a threads problem: falls back to 1 thread with a note.
 */
export async function setWasmBackend(
  pkg: WasmPackage,
  threads: number,
  bundleText?: string, // the dist bundle's text (default: read from node_modules); tests pass altered copies
): Promise<WasmThreadsResult> {
  return withoutProcessHandlers(() => startWasm(pkg, threads, bundleText));
}

/** The process-wide handlers that the Emscripten glue of tfjs-backend-wasm installs under Node. */
const GLUE_EVENTS = ['uncaughtException', 'unhandledRejection'] as const;

/**
 * Run `init` and then remove the `uncaughtException` / `unhandledRejection` listeners added meanwhile. The wasm
 * module's Emscripten glue, when it starts under Node, installs listeners that rethrow every uncaught error from
 * inside the glue: the process then exits 7 instead of 1, its first stderr line points into tf-backend-wasm.node.js,
 * and tsx prints the glue's minified source. Without them, an uncaught error ends the process as Node ends any.
 */
export async function withoutProcessHandlers<T>(init: () => Promise<T>): Promise<T> {
  const emitter: NodeJS.EventEmitter = process;
  const before = new Map(GLUE_EVENTS.map((e) => [e, new Set(emitter.listeners(e))]));
  try {
    return await init();
  } finally {
    for (const e of GLUE_EVENTS) {
      for (const l of emitter.listeners(e)) if (!before.get(e)!.has(l)) emitter.removeListener(e, l as (...a: unknown[]) => void);
    }
  }
}

async function startWasm(pkg: WasmPackage, threads: number, bundleText: string | undefined): Promise<WasmThreadsResult> {
  const want = Math.min(Math.max(1, Math.floor(threads)), MAX_WASM_THREADS);
  const capNote = threads > MAX_WASM_THREADS ? `wasm threads: ${threads} asked, tfjs's pool holds ${MAX_WASM_THREADS}` : null;
  let note: string | null = null;
  if (want > 1) {
    const bundle = bundleText ?? readBundle();
    const factory = tf.findBackendFactory('wasm');
    const reason = bundle === null ? 'the tfjs-backend-wasm dist file is not readable (bundled build?)' : checkAssumptions(bundle);
    if (reason === null && bundle !== null) {
      try {
        const got = await initThreaded(pkg, want, bundle);
        if (got === want) return { ok: true, threads: got, note: capNote };
        return { ok: true, threads: got, note: `wasm threads: ${want} asked, tfjs started ${got}` };
      } catch (e) {
        note = `wasm threads unavailable (${e instanceof Error ? e.message : String(e)}); using 1 thread`;
        resetBackend(pkg, factory);
      }
    } else note = `wasm threads unavailable (${reason}); using 1 thread`;
  }
  // The single-threaded SIMD build (the flag may still say true from an earlier threaded instance).
  if (flagRegistered()) tf.env().set(FLAG, false);
  pkg.setThreadsCount(1);
  let ok = false;
  try {
    ok = await tf.setBackend('wasm');
  } catch {
    ok = false;
  }
  return { ok, threads: ok ? pkg.getThreadsCount() : 0, note };
}
