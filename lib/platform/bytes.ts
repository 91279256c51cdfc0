/**
 * Random-access byte sources and positional byte sinks: what the checkpoint reader and writer
 * (lib/model/safetensors.ts) read from and write to, on any runtime. Sources here: bytes in memory, a Blob or File
 * (browsers, also Node >= 20), an HTTP(S) URL read with Range requests. The Node layer adds files
 * (lib/node/files.ts). Sinks here: memory (Uint8Array chunks, a Blob at the end) and a directory handle (the File
 * System Access API's `FileSystemDirectoryHandle`, or anything with the same two methods).
 */

/** Bytes read at any offset. `read` returns at most `length` bytes: fewer only where the source ends. */
export interface ByteSource {
  /** Names the source in messages (a path, a URL, a file name). */
  readonly name: string;
  /** Total bytes. */
  readonly size: number;
  read(offset: number, length: number): Promise<Uint8Array>;
  /** Synchronous read into `into` (sources that can: a Node file, memory); returns the bytes read. */
  readSync?(offset: number, into: Uint8Array): number;
  close?(): void;
}

/** Bytes written at any offset (a tensor's place in a planned file is known before its values are). */
export interface ByteSink {
  readonly name: string;
  /** Write `bytes` at `offset`. The bytes may be reused by the caller once this returns (copy them if kept). */
  write(offset: number, bytes: Uint8Array): void;
  /** Make what was written durable (a no-op where there is no disk). */
  sync?(): void;
  /** Finish; a sink whose storage is asynchronous resolves once everything is stored. */
  close(): void | Promise<void>;
  /** Read back bytes written earlier (a file assembled from parts); absent where the sink cannot. */
  readSync?(offset: number, into: Uint8Array): number;
}

/** Opens sinks by file name (a checkpoint folder: model.safetensors, shards, the index). */
export interface SinkFolder {
  create(name: string): ByteSink;
  /** Delete a file created here (temporary parts); a no-op where absent. */
  remove(name: string): void;
}

/** A source over bytes in memory. */
export function bytesSource(bytes: Uint8Array, name = 'bytes'): ByteSource {
  return {
    name,
    size: bytes.length,
    read: async (offset, length) => bytes.slice(offset, Math.min(bytes.length, offset + length)),
    readSync: (offset, into) => {
      const n = Math.max(0, Math.min(into.length, bytes.length - offset));
      into.set(bytes.subarray(offset, offset + n));
      return n;
    },
  };
}

/** The part of a Blob (or File) used here. */
export interface BlobLike {
  readonly size: number;
  slice(start: number, end: number): { arrayBuffer(): Promise<ArrayBuffer> };
  readonly name?: string;
}

/** A source over a Blob or a File: each read slices it (nothing is read before it is asked for). */
export function blobSource(blob: BlobLike, name = blob.name ?? 'blob'): ByteSource {
  return {
    name,
    size: blob.size,
    read: async (offset, length) => new Uint8Array(await blob.slice(offset, Math.min(blob.size, offset + length)).arrayBuffer()),
  };
}

/** The part of `fetch` used here (the global one by default). */
export type FetchLike = (url: string, init?: { method?: string; headers?: Record<string, string> }) => Promise<{
  ok: boolean;
  status: number;
  headers: { get(name: string): string | null };
  arrayBuffer(): Promise<ArrayBuffer>;
}>;

/**
 * A source over an HTTP(S) URL: the size from a one-byte Range request (Content-Range), then one Range request per
 * read. The server must answer ranges with 206 Partial Content; one that ignores Range is refused (it would send the
 * whole file for every read).
 */
export async function httpSource(url: string, fetchFn: FetchLike = globalThis.fetch as unknown as FetchLike): Promise<ByteSource> {
  const range = async (start: number, end: number): Promise<{ bytes: Uint8Array; total: number }> => {
    const r = await fetchFn(url, { headers: { Range: `bytes=${start}-${end}` } });
    if (r.status !== 206) {
      throw new Error(`${url}: a request for bytes ${start}-${end} got HTTP ${r.status}; the server must answer Range requests with 206`);
    }
    const total = Number(/\/(\d+)\s*$/.exec(r.headers.get('content-range') ?? '')?.[1]);
    if (!Number.isSafeInteger(total)) throw new Error(`${url}: the 206 answer has no Content-Range total ('${r.headers.get('content-range')}')`);
    return { bytes: new Uint8Array(await r.arrayBuffer()), total };
  };
  const { total } = await range(0, 0);
  return {
    name: url,
    size: total,
    read: async (offset, length) => {
      const end = Math.min(total, offset + length);
      if (end <= offset) return new Uint8Array(0);
      const { bytes } = await range(offset, end - 1);
      return bytes.length > end - offset ? bytes.subarray(0, end - offset) : bytes;
    },
  };
}

/** A sink in memory: positional writes into chunks that grow as needed; `bytes()` or `blob()` at the end. */
export class MemorySink implements ByteSink {
  private chunks: Uint8Array[] = [];
  private length = 0;
  static readonly CHUNK = 1 << 24;

  constructor(readonly name = 'memory') {}

  write(offset: number, bytes: Uint8Array): void {
    let done = 0;
    while (done < bytes.length) {
      const at = offset + done;
      const k = Math.floor(at / MemorySink.CHUNK);
      while (this.chunks.length <= k) this.chunks.push(new Uint8Array(MemorySink.CHUNK));
      const inChunk = at - k * MemorySink.CHUNK;
      const n = Math.min(bytes.length - done, MemorySink.CHUNK - inChunk);
      this.chunks[k]!.set(bytes.subarray(done, done + n), inChunk);
      done += n;
    }
    this.length = Math.max(this.length, offset + bytes.length);
  }

  readSync(offset: number, into: Uint8Array): number {
    const n = Math.max(0, Math.min(into.length, this.length - offset));
    for (let done = 0; done < n; ) {
      const at = offset + done;
      const k = Math.floor(at / MemorySink.CHUNK);
      const inChunk = at - k * MemorySink.CHUNK;
      const m = Math.min(n - done, MemorySink.CHUNK - inChunk);
      into.set(this.chunks[k]!.subarray(inChunk, inChunk + m), done);
      done += m;
    }
    return n;
  }

  close(): void {}

  /** The parts, in order, trimmed to the bytes written (views, no copy): for `new Blob(parts)`. */
  parts(): Uint8Array[] {
    const out: Uint8Array[] = [];
    for (let k = 0, left = this.length; left > 0; k++, left -= MemorySink.CHUNK) out.push(this.chunks[k]!.subarray(0, Math.min(left, MemorySink.CHUNK)));
    return out;
  }

  /** Everything written, as one array (a copy). */
  bytes(): Uint8Array {
    const out = new Uint8Array(this.length);
    this.readSync(0, out);
    return out;
  }
}

/** Sinks in memory by file name. */
export class MemoryFolder implements SinkFolder {
  readonly files = new Map<string, MemorySink>();
  create(name: string): MemorySink {
    const s = new MemorySink(name);
    this.files.set(name, s);
    return s;
  }
  remove(name: string): void {
    this.files.delete(name);
  }
}

/** The part of the File System Access API's FileSystemDirectoryHandle used here. */
export interface DirectoryHandleLike {
  getFileHandle(name: string, options: { create: true }): Promise<{
    createWritable(): Promise<{ write(data: { type: 'write'; position: number; data: Uint8Array }): Promise<void>; close(): Promise<void> }>;
  }>;
  removeEntry(name: string): Promise<void>;
}

/**
 * Sinks that are files in a directory handle. Writes are queued in order (each one copied, as the caller reuses its
 * buffers) and stored asynchronously; `close()` resolves once the file is complete. Such a sink cannot be read back,
 * so compressed checkpoints (assembled from parts) go through memory instead (MemoryFolder).
 */
export class DirectoryHandleFolder implements SinkFolder {
  constructor(private readonly dir: DirectoryHandleLike) {}

  create(name: string): ByteSink {
    const writable = this.dir.getFileHandle(name, { create: true }).then((h) => h.createWritable());
    let queue: Promise<unknown> = writable;
    return {
      name,
      write(offset, bytes) {
        const data = bytes.slice();
        queue = queue.then(async () => (await writable).write({ type: 'write', position: offset, data }));
      },
      async close() {
        await queue;
        await (await writable).close();
      },
    };
  }

  remove(name: string): void {
    void this.dir.removeEntry(name).catch(() => {});
  }
}
