/** Files as byte sources and sinks (lib/platform/bytes.ts) in Node. */
import { closeSync, fstatSync, fsyncSync, openSync, readSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { CheckpointError } from '../errors.js';
import type { ByteSink, ByteSource, SinkFolder } from '../platform/bytes.js';

/** A file opened for reading; synchronous reads too (the loader's fast path). Throws a CheckpointError naming it. */
export function fileSource(path: string): ByteSource {
  let fd: number | null;
  try {
    fd = openSync(path, 'r');
  } catch (e) {
    throw new CheckpointError(`${path}: cannot open (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  const size = fstatSync(fd).size;
  const live = (): number => {
    if (fd === null) throw new CheckpointError(`${path}: file already closed`);
    return fd;
  };
  const readSyncInto = (offset: number, into: Uint8Array): number => {
    let done = 0;
    while (done < into.length) {
      const got = readSync(live(), into, done, into.length - done, offset + done);
      if (got === 0) break;
      done += got;
    }
    return done;
  };
  return {
    name: path,
    size,
    readSync: readSyncInto,
    read: async (offset, length) => {
      const buf = new Uint8Array(Math.max(0, Math.min(length, size - offset)));
      return buf.subarray(0, readSyncInto(offset, buf));
    },
    close: () => {
      if (fd !== null) closeSync(fd);
      fd = null;
    },
  };
}

/** A file opened for positional writes: truncated, or kept as it is (`keep`: a resumed run continues it). */
export function fileSink(path: string, options: { keep?: boolean } = {}): ByteSink {
  let fd: number | null = openSync(path, options.keep ? 'r+' : 'w+');
  const live = (): number => {
    if (fd === null) throw new CheckpointError(`${path}: file already closed`);
    return fd;
  };
  return {
    name: path,
    write: (offset, bytes) => {
      let done = 0;
      while (done < bytes.length) done += writeSync(live(), bytes, done, bytes.length - done, offset + done);
    },
    readSync: (offset, into) => readSync(live(), into, 0, into.length, offset),
    sync: () => {
      if (fd !== null) fsyncSync(fd);
    },
    close: () => {
      if (fd !== null) closeSync(fd);
      fd = null;
    },
  };
}

/** Sinks that are files in a folder (the folder of `path` when given a file path). */
export function fileFolder(dir: string): SinkFolder {
  return {
    create: (name) => fileSink(join(dir, name)),
    remove: (name) => rmSync(join(dir, name), { force: true }),
  };
}

