/**
 * The byte sources of the worker's file tree (./vfs.ts): a local file and a URL. Reads are synchronous, as
 * `node:fs`'s are: `FileReaderSync` for blobs and synchronous XMLHttpRequest (with a Range header) for URLs, both
 * available in a dedicated Web Worker (not in a page).
 */
import { fsError, type ByteSource } from './vfs.js';

declare const FileReaderSync: { new (): { readAsArrayBuffer(b: Blob): ArrayBuffer } };

/** A local file (a `File` from a picker or a drop): read by slices, never whole. */
export function blobSource(blob: Blob, name: string): ByteSource {
  return {
    size: blob.size,
    describe: name,
    read(offset, length) {
      return new Uint8Array(new FileReaderSync().readAsArrayBuffer(blob.slice(offset, offset + length)));
    },
  };
}

function xhr(method: string, url: string, range: [number, number] | null): XMLHttpRequest {
  const r = new XMLHttpRequest();
  r.open(method, url, false);
  if (range) r.setRequestHeader('Range', `bytes=${range[0]}-${range[1] - 1}`);
  if (method === 'GET') r.responseType = 'arraybuffer';
  try {
    r.send();
  } catch (e) {
    throw fsError('EIO', `cannot fetch (${(e as Error).message}; a cross-origin URL needs CORS)`, url);
  }
  if (r.status === 404) throw fsError('ENOENT', 'no such file (HTTP 404)', url);
  if (r.status < 200 || r.status >= 300) throw fsError('EIO', `HTTP ${r.status} ${r.statusText}`, url);
  return r;
}

/** The size of a URL's content (HEAD; a GET of the first byte when HEAD gives no length), or null when absent. */
export function urlSize(url: string): number | null {
  let r: XMLHttpRequest;
  try {
    r = xhr('HEAD', url, null);
  } catch (e) {
    if ((e as { code?: string }).code === 'ENOENT') return null;
    throw e;
  }
  const len = r.getResponseHeader('Content-Length');
  if (len !== null && r.getResponseHeader('Content-Encoding') === null) return Number(len);
  const g = xhr('GET', url, [0, 1]);
  const m = /\/(\d+)$/.exec(g.getResponseHeader('Content-Range') ?? '');
  return m ? Number(m[1]) : (g.response as ArrayBuffer).byteLength;
}

/** A file behind a URL: each read is one HTTP range request (a server without ranges: its whole reply, cut). */
export function urlSource(url: string, size: number): ByteSource {
  return {
    size,
    describe: url,
    read(offset, length) {
      const r = xhr('GET', url, [offset, offset + length]);
      const got = new Uint8Array(r.response as ArrayBuffer);
      if (r.status === 206) return got;
      return got.subarray(offset, offset + length); // 200: the server ignored the range and sent everything
    },
  };
}
