/**
 * Byte sources of a browser's files for the browser layer's file tree (lib/browser/memory-fs.ts): a local File or
 * Blob, and a URL read with HTTP Range requests. Each reads asynchronously (Blob.slice, fetch) and, in a dedicated
 * Web Worker, also synchronously (FileReaderSync, synchronous XMLHttpRequest), as the core's checkpoint reader
 * does: a page's main thread has neither, so the core runs in a worker there.
 */
import { blobSource, type BlobLike, type ByteSource } from '../platform/bytes.js';

interface FileReaderSyncLike {
  readAsArrayBuffer(blob: unknown): ArrayBuffer;
}
interface XhrLike {
  open(method: string, url: string, async: false): void;
  setRequestHeader(name: string, value: string): void;
  responseType: string;
  send(): void;
  readonly status: number;
  readonly statusText: string;
  readonly response: unknown;
  getResponseHeader(name: string): string | null;
}
interface BrowserGlobals {
  FileReaderSync?: new () => FileReaderSyncLike;
  XMLHttpRequest?: new () => XhrLike;
  fetch: (url: string, init?: { method?: string; headers?: Record<string, string> }) => Promise<{
    status: number;
    statusText: string;
    headers: { get(name: string): string | null };
    arrayBuffer(): Promise<ArrayBuffer>;
  }>;
}

const g = (): BrowserGlobals => globalThis as unknown as BrowserGlobals;

/** An error for a source that cannot read synchronously here. */
function noSyncReads(name: string, what: string): Error {
  return new Error(`${name}: ${what} is not available here; read files from a dedicated Web Worker`);
}

/** A local File or Blob: read by slices where asked, never whole. */
export function fileSource(blob: BlobLike, name = blob.name ?? 'blob'): ByteSource {
  return {
    ...blobSource(blob, name),
    readSync(offset, into) {
      const Reader = g().FileReaderSync;
      if (!Reader) throw noSyncReads(name, 'FileReaderSync');
      const end = Math.min(blob.size, offset + into.length);
      if (end <= offset) return 0;
      const got = new Uint8Array(new Reader().readAsArrayBuffer(blob.slice(offset, end)));
      into.set(got);
      return got.length;
    },
  };
}

/** Bytes [start, end) of `url` in one synchronous request (a server that ignores Range: its whole answer, cut). */
function syncRange(url: string, start: number, end: number): Uint8Array {
  const Xhr = g().XMLHttpRequest;
  if (!Xhr) throw noSyncReads(url, 'synchronous XMLHttpRequest');
  const r = new Xhr();
  r.open('GET', url, false);
  r.setRequestHeader('Range', `bytes=${start}-${end - 1}`);
  r.responseType = 'arraybuffer';
  try {
    r.send();
  } catch (e) {
    throw new Error(`${url}: cannot fetch (${(e as Error).message}; a cross-origin URL needs CORS)`);
  }
  if (r.status < 200 || r.status >= 300) throw new Error(`${url}: HTTP ${r.status} ${r.statusText}`);
  const got = new Uint8Array(r.response as ArrayBuffer);
  return r.status === 206 ? got : got.subarray(start, end);
}

/** Bytes [start, end) of `url` (fetch; a server that ignores Range: its whole answer, cut). */
async function range(url: string, start: number, end: number): Promise<Uint8Array> {
  const r = await g().fetch(url, { headers: { Range: `bytes=${start}-${end - 1}` } });
  if (r.status < 200 || r.status >= 300) throw new Error(`${url}: HTTP ${r.status} ${r.statusText}`);
  const got = new Uint8Array(await r.arrayBuffer());
  return r.status === 206 ? got : got.subarray(start, end);
}

/** The size of a URL's content (HEAD; a one-byte Range request where HEAD gives no plain length); null on HTTP 404. */
async function urlSize(url: string): Promise<number | null> {
  let head;
  try {
    head = await g().fetch(url, { method: 'HEAD' });
  } catch (e) {
    throw new Error(`${url}: cannot fetch (${(e as Error).message}; a cross-origin URL needs CORS)`);
  }
  if (head.status === 404) return null;
  if (head.status < 200 || head.status >= 300) throw new Error(`${url}: HTTP ${head.status} ${head.statusText}`);
  const length = head.headers.get('content-length');
  if (length !== null && head.headers.get('content-encoding') === null) return Number(length);
  const r = await g().fetch(url, { headers: { Range: 'bytes=0-0' } });
  const total = /\/(\d+)\s*$/.exec(r.headers.get('content-range') ?? '')?.[1];
  return total !== undefined ? Number(total) : (await r.arrayBuffer()).byteLength;
}

/** A file behind a URL (null when the server answers 404): each read is one HTTP Range request. */
export async function urlSource(url: string): Promise<ByteSource | null> {
  const size = await urlSize(url);
  if (size === null) return null;
  const clamp = (offset: number, length: number): number => Math.max(offset, Math.min(size, offset + length));
  return {
    name: url,
    size,
    read: async (offset, length) => (clamp(offset, length) > offset ? range(url, offset, clamp(offset, length)) : new Uint8Array(0)),
    readSync(offset, into) {
      const end = clamp(offset, into.length);
      if (end <= offset) return 0;
      const got = syncRange(url, offset, end);
      into.set(got);
      return got.length;
    },
  };
}
