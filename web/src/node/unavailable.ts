/**
 * Node modules the browser build bundles but never calls on its paths (worker threads, child processes,
 * `createRequire`, zlib): every function throws an error naming what is not available in the browser.
 */
function unavailable(what: string): never {
  throw new Error(`${what} is not available in the browser`);
}

export const isMainThread = true;
export const parentPort = null;
export const workerData = null;
/**
 * A worker thread of inline Node code (`eval: true`: the output lock's heartbeat, which touches lock files of other
 * processes' concern) has nothing to do in a page, with one run and an in-memory tree: it is inert. Any other
 * (the forward pool's, which the page never asks for) is refused.
 */
export class Worker {
  constructor(_code: string, options?: { eval?: boolean }) {
    if (!options?.eval) unavailable('worker_threads.Worker');
  }
  postMessage(): void {}
  unref(): void {}
  on(): this {
    return this;
  }
  terminate(): Promise<number> {
    return Promise.resolve(0);
  }
}
export const createRequire = (): ((id: string) => never) => (id: string) => unavailable(`require('${id}')`);
export const spawn = (): never => unavailable('child_process.spawn');
export const spawnSync = (): never => unavailable('child_process.spawnSync');
export const execFileSync = (): never => unavailable('child_process.execFileSync');
export const createGunzip = (): never => unavailable('gzip decompression (decompress the file first)');
export const unzipSync = (): never => unavailable('gzip decompression of parquet pages');
export const gunzipSync = unzipSync;
export const brotliDecompressSync = (): never => unavailable('brotli decompression of parquet pages');
export const resolveObjectURL = (): never => unavailable('buffer.resolveObjectURL');
export const Readable = class {};

export default { isMainThread, parentPort, workerData, Worker, createRequire, spawn, spawnSync, execFileSync, createGunzip, unzipSync };
