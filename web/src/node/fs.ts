/**
 * `node:fs` for the browser build, over the in-memory tree of ./vfs.ts: the calls the library's file code makes,
 * with Node's semantics (positions, ENOENT codes, utf8 decoding). File descriptors index an open-file table.
 */
import { Buffer } from 'buffer';
import { fileRead, fileSize, fsError, lookup, newFile, parentOf, type VNode } from './vfs.js';

type FileNode = VNode & { kind: 'file' };
type Data = string | Uint8Array;
type Encoding = string | { encoding?: string | null } | undefined | null;

class Stats {
  constructor(private readonly node: VNode) {}
  get size(): number {
    return this.node.kind === 'file' ? fileSize(this.node) : 0;
  }
  get mtimeMs(): number {
    return 0;
  }
  get mtime(): Date {
    return new Date(0);
  }
  isFile(): boolean {
    return this.node.kind === 'file';
  }
  isDirectory(): boolean {
    return this.node.kind === 'dir';
  }
}

function node(path: string): VNode {
  const n = lookup(String(path));
  if (!n) throw fsError('ENOENT', 'no such file or directory', String(path));
  return n;
}

function file(path: string): FileNode {
  const n = node(path);
  if (n.kind !== 'file') throw fsError('EISDIR', 'illegal operation on a directory', path);
  return n;
}

function encodingOf(e: Encoding): string | null {
  if (typeof e === 'string') return e;
  return e?.encoding ?? null;
}

function bytesOf(data: Data): Uint8Array {
  return typeof data === 'string' ? new TextEncoder().encode(data) : data;
}

/** A writable copy of a mounted (read-only) file's bytes, made on the first write. */
function writable(n: FileNode): FileNode {
  if (n.source) {
    n.bytes.write(n.source.read(0, n.source.size), 0);
    n.source = null;
  }
  return n;
}

export function existsSync(path: string): boolean {
  return lookup(String(path)) !== null;
}

export function statSync(path: string): Stats {
  return new Stats(node(path));
}

export function readFileSync(path: string, enc?: Encoding): string | Buffer {
  const f = file(path);
  const bytes = fileRead(f, 0, fileSize(f));
  return encodingOf(enc) ? new TextDecoder().decode(bytes) : Buffer.from(bytes);
}

export function readdirSync(path: string): string[] {
  const n = node(path);
  if (n.kind !== 'dir') throw fsError('ENOTDIR', 'not a directory', path);
  return [...n.children.keys()].sort();
}

export function writeFileSync(path: string, data: Data): void {
  const { dir, name } = parentOf(path, false);
  const f = newFile();
  if (f.kind === 'file') f.bytes.write(bytesOf(data), 0);
  dir.children.set(name, f);
}

export function appendFileSync(path: string, data: Data): void {
  const n = lookup(path);
  if (!n) return writeFileSync(path, data);
  if (n.kind !== 'file') throw fsError('EISDIR', 'illegal operation on a directory', path);
  writable(n).bytes.write(bytesOf(data), fileSize(n));
}

export function mkdirSync(path: string, options?: { recursive?: boolean }): void {
  const n = lookup(path);
  if (n) {
    if (options?.recursive && n.kind === 'dir') return;
    throw fsError('EEXIST', 'file already exists', path);
  }
  const { dir, name } = parentOf(path, options?.recursive === true);
  dir.children.set(name, { kind: 'dir', children: new Map() });
}

export function rmSync(path: string, options?: { force?: boolean; recursive?: boolean }): void {
  if (!lookup(path)) {
    if (options?.force) return;
    throw fsError('ENOENT', 'no such file or directory', path);
  }
  const { dir, name } = parentOf(path, false);
  dir.children.delete(name);
}

export function renameSync(from: string, to: string): void {
  const n = node(from);
  const src = parentOf(from, false);
  const dst = parentOf(to, false);
  src.dir.children.delete(src.name);
  dst.dir.children.set(dst.name, n);
}

export function copyFileSync(from: string, to: string): void {
  const f = file(from);
  const { dir, name } = parentOf(to, false);
  dir.children.set(name, f.source ? newFile(f.source) : copyOf(f));
}

function copyOf(f: FileNode): VNode {
  const c = newFile();
  if (c.kind === 'file') c.bytes.write(f.bytes.view().slice(), 0);
  return c;
}

/** A second name for a file (the same node, as a hard link is); EEXIST when `to` exists. */
export function linkSync(from: string, to: string): void {
  const f = file(from);
  if (lookup(to)) throw fsError('EEXIST', 'file already exists', to);
  const { dir, name } = parentOf(to, false);
  dir.children.set(name, f);
}

/** The tree keeps no times (every mtime is 0): nothing to set. */
export function utimesSync(path: string): void {
  node(path);
}

/** The hub's download cache links files; the page reads hub models by URL instead and never asks for links. */
export function symlinkSync(_target: string, path: string): never {
  throw fsError('ENOSYS', 'symbolic links are not available in the browser', path);
}

export function statfsSync(): { bavail: number; bsize: number } {
  return { bavail: Number.MAX_SAFE_INTEGER / 4096, bsize: 4096 }; // memory is the limit, checked by the page before a run
}

const open = new Map<number, FileNode>();
let nextFd = 3;

export function openSync(path: string, flags = 'r'): number {
  let n = lookup(path);
  if (flags.includes('x') && n) throw fsError('EEXIST', 'file already exists', path);
  if (flags.startsWith('w') || (flags.startsWith('a') && !n)) {
    const { dir, name } = parentOf(path, false);
    n = newFile();
    dir.children.set(name, n);
  }
  if (!n) throw fsError('ENOENT', 'no such file or directory', path);
  if (n.kind !== 'file') throw fsError('EISDIR', 'illegal operation on a directory', path);
  const fd = nextFd++;
  open.set(fd, n);
  return fd;
}

function fdFile(fd: number): FileNode {
  const f = open.get(fd);
  if (!f) throw fsError('EBADF', 'bad file descriptor', String(fd));
  return f;
}

export function readSync(fd: number, buf: Uint8Array, offset: number, length: number, position: number): number {
  const got = fileRead(fdFile(fd), position, length);
  buf.set(got, offset);
  return got.length;
}

export function writeSync(fd: number, data: Uint8Array | string, offset = 0, length?: number, position?: number | null): number {
  const buf = bytesOf(data);
  length ??= buf.length - offset;
  const f = writable(fdFile(fd));
  f.bytes.write(buf.subarray(offset, offset + length), position ?? f.bytes.size);
  return length;
}

export function fstatSync(fd: number): Stats {
  return new Stats(fdFile(fd));
}

export function fsyncSync(fd: number): void {
  fdFile(fd);
}

export function closeSync(fd: number): void {
  fdFile(fd);
  open.delete(fd);
}

import { createReadStream } from './stream.js';

export { createReadStream };

export const promises = {
  async readFile(path: string, enc?: Encoding): Promise<string | Buffer> {
    return readFileSync(path, enc);
  },
  async stat(path: string): Promise<Stats> {
    return statSync(path);
  },
  async open(path: string): Promise<never> {
    throw fsError('ENOSYS', 'file handles are not available in the browser (the hub cache writes through them)', path);
  },
};

export const constants = { F_OK: 0, R_OK: 4, W_OK: 2, X_OK: 1 };

export default {
  existsSync, statSync, readFileSync, readdirSync, writeFileSync, appendFileSync, mkdirSync, rmSync, renameSync, copyFileSync,
  statfsSync, openSync, createReadStream, linkSync, utimesSync, symlinkSync, readSync, writeSync, fstatSync, fsyncSync, closeSync, promises, constants,
};
