/**
 * `fs.createReadStream` for the browser build: a file of ./vfs.ts read in 1 MiB chunks, as an async iterable
 * (what the library's line reader uses) and with `on('data' | 'end' | 'error')` (what hyparquet's file reader uses).
 */
import { Buffer } from 'buffer';
import { fileRead, fileSize, fsError, lookup } from './vfs.js';

const CHUNK = 1 << 20;

type Listener = (arg?: unknown) => void;

export class FileReadStream {
  private encoding: string | null = null;
  private destroyed = false;
  private readonly listeners = new Map<string, Listener[]>();
  private started = false;

  constructor(private readonly path: string, private readonly start = 0, private readonly end = Infinity) {}

  setEncoding(enc: string): this {
    this.encoding = enc;
    return this;
  }

  destroy(): this {
    this.destroyed = true;
    return this;
  }

  /** The chunks, as Buffers or (after setEncoding) strings; a multi-byte character split by a chunk is kept whole. */
  async *[Symbol.asyncIterator](): AsyncGenerator<string | Buffer> {
    const n = lookup(this.path);
    if (!n) throw fsError('ENOENT', 'no such file or directory', this.path);
    if (n.kind !== 'file') throw fsError('EISDIR', 'illegal operation on a directory', this.path);
    const stop = Math.min(fileSize(n), this.end + 1);
    const decoder = new TextDecoder();
    for (let pos = this.start; pos < stop && !this.destroyed; pos += CHUNK) {
      const bytes = fileRead(n, pos, Math.min(CHUNK, stop - pos));
      yield this.encoding ? decoder.decode(bytes, { stream: true }) : Buffer.from(bytes);
    }
    if (this.encoding) {
      const rest = decoder.decode();
      if (rest) yield rest;
    }
  }

  on(event: string, cb: Listener): this {
    this.listeners.set(event, [...(this.listeners.get(event) ?? []), cb]);
    if (!this.started && event === 'data') {
      this.started = true;
      queueMicrotask(() => void this.flow());
    }
    return this;
  }

  once(event: string, cb: Listener): this {
    return this.on(event, cb);
  }

  pipe(): never {
    throw new Error(`${this.path}: gzip-compressed data cannot be read in the browser; decompress it first`);
  }

  private emit(event: string, arg?: unknown): void {
    for (const cb of this.listeners.get(event) ?? []) cb(arg);
  }

  private async flow(): Promise<void> {
    try {
      for await (const chunk of this) this.emit('data', chunk);
      this.emit('end');
    } catch (e) {
      this.emit('error', e);
    }
  }
}

export function createReadStream(path: string, options: { start?: number; end?: number } = {}): FileReadStream {
  return new FileReadStream(String(path), options.start ?? 0, options.end ?? Infinity);
}
