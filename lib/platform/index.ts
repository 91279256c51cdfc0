/**
 * What the core asks of its runtime, in one injected object: files and paths (lib/platform/fs.ts, path.ts), the
 * machine (cores, free memory, host name), SHA-256 (asynchronous, as WebCrypto's digest is), worker threads for the
 * forward pool, and the start-up of the wasm and WebGPU backends. The core (everything under lib/ but the platform
 * layers, test/layers.test.ts lists them) imports no Node built-in and reaches these only through `platform()`. The
 * Node layer (lib/node/) installs itself when lib/index.ts, the CLI or a worker loads; the browser layer
 * (lib/browser/) is installed by `installBrowserPlatform()` in a Web Worker.
 */
import type { ByteSink, ByteSource } from './bytes.js';
import type { HubDownloads } from './hub.js';
import type { DataFiles } from './data.js';
import type { FileSystem } from './fs.js';
import type { acquireOutputLock } from '../output-lock.js';
import type { PathApi } from './path.js';
import type { AdapterInfo } from '../model/adapter.js';
import { defaultSha256 } from './sha256.js';

/** A message port of a started worker (the forward pool's protocol runs over it). */
export interface PoolWorker {
  postMessage(message: unknown): void;
  on(event: 'message' | 'error' | 'exit', listener: (value: never) => void): void;
  off(event: 'message' | 'error' | 'exit', listener: (value: never) => void): void;
  terminate(): Promise<unknown>;
}

/** What the backend start-up (lib/model/backend.ts) needs from the platform. */
export interface BackendStarters {
  /** Start tfjs-backend-wasm (`pkg`, the imported module) with `threads` threads. */
  wasm(pkg: unknown, threads: number): Promise<{ ok: boolean; threads: number; note: string | null }>;
  /** The most wasm threads the platform can start. */
  maxWasmThreads: number;
  /** Set up WebGPU (Dawn in Node, navigator.gpu in a browser); throws with the reason when there is no adapter. */
  webgpu(allowSoftware: boolean): Promise<AdapterInfo>;
  /** What to install or pass when webgpu() fails: appended to the refusal of `initBackend('webgpu')`. */
  webgpuAdvice: string;
  /** Whether `auto` should try WebGPU at all (a hardware adapter may be present). */
  hardwareAdapterPossible(): boolean;
  /** One line naming an adapter webgpu() returned. */
  adapterLine(adapter: AdapterInfo): string;
}

export interface Platform {
  /** Short name for messages ('node', 'browser'). */
  name: string;
  fs: FileSystem;
  path: PathApi;
  /** SHA-256 of the concatenated parts (strings as UTF-8): 32 bytes (Node: node:crypto; browsers: WebCrypto). */
  sha256(parts: readonly (Uint8Array | string)[]): Promise<Uint8Array>;
  /** Logical cores the process may use. */
  cpuCount(): number;
  /** Free memory in bytes (the forward pool's budget). */
  freeMemory(): number;
  hostname(): string;
  /** The folder of the platform layer's own module (the package's files are found from there: lib/paths.ts). */
  moduleDir: string;
  /** This process's id (temporary file names, lock owners) and whether a process of this host is alive. */
  processId: number;
  processAlive(pid: number): boolean;
  /** Peak resident memory in MB so far (reports), or null where unknown. */
  peakMemoryMB(): number | null;
  /** A warning for the user (Node: process.emitWarning). */
  warn(message: string): void;
  /** An environment variable (the failure-injection hook of the resume tests reads one), undefined where none. */
  env(name: string): string | undefined;
  /** End the process at once, as a crash would (the failure-injection hook). */
  crash(): never;
  /** Start a forward-pool worker, or null where the platform has no worker threads (everything runs in-process). */
  startForwardWorker: (() => PoolWorker) | null;
  backends: BackendStarters;
  /** A file as a random-access byte source (synchronous reads allowed), and a file as a positional byte sink. */
  openFile(path: string): ByteSource;
  /** An exclusive lock on an output (lib/platform/locks.ts). */
  acquireOutputLock: typeof acquireOutputLock;
  /** Data files (JSON lines, JSON, parquet, text) and tokenized data sets (lib/platform/data.ts). */
  data: DataFiles;
  /** Download a file of a hub repository into the local cache; resolves to its path (lib/platform/hub.ts). */
  downloadHubFile: HubDownloads;
  createFile(path: string, options?: { keep?: boolean }): ByteSink;
}

let installed: Platform | null = null;

/** Install the runtime's layer (the Node layer does this on import; a browser layer calls it before using the core). */
export function installPlatform(p: Platform): void {
  installed = p;
}

/** The installed platform; throws naming what is missing when none is. */
export function platform(): Platform {
  if (!installed) {
    throw new Error(
      "no platform layer installed: import 'tfjs-llm-prune' (Node) or call installBrowserPlatform() (lib/browser/) before using files, workers or backends",
    );
  }
  return installed;
}

/** Whether a platform layer is installed. */
export function hasPlatform(): boolean {
  return installed !== null;
}

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

/** Lower-case hex of bytes. */
export function toHex(bytes: Uint8Array): string {
  let s = '';
  for (const b of bytes) s += HEX[b];
  return s;
}

/** sha256 (hex) of the concatenated parts, through the installed platform's function (WebCrypto before any is installed). */
export async function sha256Hex(...parts: (Uint8Array | string)[]): Promise<string> {
  return toHex(await (installed ? installed.sha256(parts) : defaultSha256(parts)));
}
