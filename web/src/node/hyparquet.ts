/** hyparquet for the browser build: its browser entry plus `asyncBufferFromFile` over the in-memory tree. */
import { fileRead, fileSize, fsError, lookup } from './vfs.js';

export * from 'hyparquet/src/index.js';

export async function asyncBufferFromFile(path: string): Promise<{ byteLength: number; slice(start: number, end?: number): Promise<ArrayBuffer> }> {
  const n = lookup(path);
  if (!n || n.kind !== 'file') throw fsError('ENOENT', 'no such file', path);
  return {
    byteLength: fileSize(n),
    async slice(start: number, end?: number) {
      return fileRead(n, start, (end ?? fileSize(n)) - start).slice().buffer;
    },
  };
}
