/**
 * The browser layer's file system: an in-memory tree of POSIX paths (from `/`) that implements the core's
 * FileSystem (lib/platform/fs.ts) and its files as byte sources and sinks (lib/platform/bytes.ts). Input files are
 * mounted byte sources (a File, a Blob, a URL: lib/browser/sources.ts), read by ranges where the core asks, never
 * copied whole; written files live in memory until the page takes them (`filesUnder`). Errors carry Node's codes
 * (ENOENT, EEXIST, ...) with the path, as the core tests `code` where a file may be missing.
 *
 * The core reads checkpoints synchronously, so a mounted source must read synchronously (`readSync`): the sources of
 * lib/browser/sources.ts do in a dedicated worker (FileReaderSync, synchronous XMLHttpRequest).
 */
import type { ByteSink, ByteSource } from '../platform/bytes.js';
import type { Dirent, FileSystem, Stats } from '../platform/fs.js';
import { posixPath } from './path.js';

/** Bytes of a written file, grown by doubling. */
class GrowingBytes {
  data = new Uint8Array(1024);
  size = 0;

  write(src: Uint8Array, pos: number): void {
    const end = pos + src.length;
    if (end > this.data.length) {
      let n = this.data.length;
      while (n < end) n *= 2;
      const grown = new Uint8Array(n);
      grown.set(this.data.subarray(0, this.size));
      this.data = grown;
    }
    this.data.set(src, pos);
    this.size = Math.max(this.size, end);
  }

  view(): Uint8Array {
    return this.data.subarray(0, this.size);
  }
}

interface FileNode {
  kind: 'file';
  source: ByteSource | null; // a mounted input until its first write, then `bytes`
  bytes: GrowingBytes;
  mtimeMs: number;
}
interface DirNode {
  kind: 'dir';
  children: Map<string, Node>;
  mtimeMs: number;
}
type Node = FileNode | DirNode;

/** An error as node:fs gives it: `code` (ENOENT, EEXIST, ...) and `path`. */
export function fsError(code: string, what: string, path: string): Error & { code: string; path: string } {
  return Object.assign(new Error(`${code}: ${what}, '${path}'`), { code, path });
}

const newFile = (source: ByteSource | null = null): FileNode => ({ kind: 'file', source, bytes: new GrowingBytes(), mtimeMs: Date.now() });
const newDir = (): DirNode => ({ kind: 'dir', children: new Map(), mtimeMs: Date.now() });
const sizeOf = (n: FileNode): number => (n.source ? n.source.size : n.bytes.size);
const encode = (data: string | Uint8Array): Uint8Array => (typeof data === 'string' ? new TextEncoder().encode(data) : data);

function stats(n: Node): Stats {
  return { size: n.kind === 'file' ? sizeOf(n) : 0, mtimeMs: n.mtimeMs, isFile: () => n.kind === 'file', isDirectory: () => n.kind === 'dir' };
}

/** Read up to `into.length` bytes of a file at `offset` into `into`; returns the count. */
function readInto(n: FileNode, name: string, offset: number, into: Uint8Array): number {
  const len = Math.max(0, Math.min(into.length, sizeOf(n) - offset));
  if (len === 0) return 0;
  if (!n.source) {
    into.set(n.bytes.view().subarray(offset, offset + len));
    return len;
  }
  if (!n.source.readSync) throw fsError('EIO', `${n.source.name} reads asynchronously only (open it in a dedicated worker)`, name);
  return n.source.readSync(offset, into.subarray(0, len));
}

/** The file's bytes from `offset`, at most `length` (a fresh array). */
function readBytes(n: FileNode, name: string, offset: number, length: number): Uint8Array {
  const out = new Uint8Array(Math.max(0, Math.min(length, sizeOf(n) - offset)));
  return out.subarray(0, readInto(n, name, offset, out));
}

/** A file that can be written: a mounted input is copied into memory on its first write. */
function writable(n: FileNode, name: string): FileNode {
  if (n.source) {
    const bytes = readBytes(n, name, 0, n.source.size);
    n.source = null;
    n.bytes.write(bytes, 0);
  }
  n.mtimeMs = Date.now();
  return n;
}

export class MemoryFileSystem implements FileSystem {
  private readonly root: DirNode = newDir();
  private readonly fds = new Map<number, { node: FileNode; path: string }>();
  private nextFd = 3;

  private parts(path: string): string[] {
    return posixPath.resolve(String(path)).split('/').filter((p) => p !== '');
  }

  private lookup(path: string): Node | null {
    let n: Node = this.root;
    for (const p of this.parts(path)) {
      if (n.kind !== 'dir') return null;
      const c: Node | undefined = n.children.get(p);
      if (!c) return null;
      n = c;
    }
    return n;
  }

  private node(path: string): Node {
    const n = this.lookup(path);
    if (!n) throw fsError('ENOENT', 'no such file or directory', path);
    return n;
  }

  private file(path: string): FileNode {
    const n = this.node(path);
    if (n.kind !== 'file') throw fsError('EISDIR', 'illegal operation on a directory', path);
    return n;
  }

  /** The folder holding `path` and the last name; with `create`, missing folders are made. */
  private parentOf(path: string, create: boolean): { dir: DirNode; name: string } {
    const ps = this.parts(path);
    const name = ps.pop();
    if (name === undefined) throw fsError('EISDIR', 'illegal operation on a directory', path);
    let n: Node = this.root;
    for (const p of ps) {
      if (n.kind !== 'dir') throw fsError('ENOTDIR', 'not a directory', path);
      let c = n.children.get(p);
      if (!c) {
        if (!create) throw fsError('ENOENT', 'no such file or directory', path);
        c = newDir();
        n.children.set(p, c);
      }
      n = c;
    }
    if (n.kind !== 'dir') throw fsError('ENOTDIR', 'not a directory', path);
    return { dir: n, name };
  }

  private put(path: string, n: Node, createParents = false): void {
    const { dir, name } = this.parentOf(path, createParents);
    dir.children.set(name, n);
  }

  /** Put a byte source at `path` (folders made as needed), replacing what was there. */
  mount(path: string, source: ByteSource): void {
    this.put(path, newFile(source), true);
  }

  /** Remove everything under `path` (`/`: the whole tree); nothing when absent. */
  unmount(path: string): void {
    if (this.parts(path).length === 0) this.root.children.clear();
    else this.rmSync(path, { recursive: true, force: true });
  }

  /** Every file under `dir` as [path relative to dir, bytes], in name order. */
  filesUnder(dir: string): [string, Uint8Array][] {
    const out: [string, Uint8Array][] = [];
    const walk = (n: Node, rel: string): void => {
      if (n.kind === 'file') out.push([rel, readBytes(n, rel, 0, sizeOf(n))]);
      else for (const [name, c] of [...n.children].sort(([a], [b]) => (a < b ? -1 : 1))) walk(c, rel ? `${rel}/${name}` : name);
    };
    const n = this.lookup(dir);
    if (n) walk(n, '');
    return out;
  }

  /** A file as a byte source (synchronous reads where the mounted source has them). */
  openFile(path: string): ByteSource {
    const n = this.file(path);
    const src: ByteSource = {
      name: path,
      size: sizeOf(n),
      read: async (offset, length) => (n.source ? n.source.read(offset, length) : readBytes(n, path, offset, length)),
    };
    if (n.source && !n.source.readSync) return src;
    return { ...src, readSync: (offset, into) => readInto(n, path, offset, into) };
  }

  /** A file as a positional byte sink: truncated, or kept as it is (`keep`). */
  createFile(path: string, options: { keep?: boolean } = {}): ByteSink {
    const existing = this.lookup(path);
    const n = options.keep && existing?.kind === 'file' ? writable(existing, path) : newFile();
    if (n !== existing) this.put(path, n);
    return {
      name: path,
      write: (offset, bytes) => writable(n, path).bytes.write(bytes, offset),
      readSync: (offset, into) => readInto(n, path, offset, into),
      close: () => {},
    };
  }

  existsSync(path: string): boolean {
    return this.lookup(path) !== null;
  }

  readFileSync(path: string): Uint8Array;
  readFileSync(path: string, encoding: 'utf8'): string;
  readFileSync(path: string, encoding?: 'utf8'): string | Uint8Array {
    const f = this.file(path);
    const bytes = readBytes(f, path, 0, sizeOf(f));
    return encoding ? new TextDecoder().decode(bytes) : bytes;
  }

  writeFileSync(path: string, data: string | Uint8Array, options?: { flag?: string }): void {
    const flag = options?.flag ?? 'w';
    if (flag.startsWith('a')) return this.appendFileSync(path, data);
    if (flag.includes('x') && this.lookup(path)) throw fsError('EEXIST', 'file already exists', path);
    const f = newFile();
    f.bytes.write(encode(data), 0);
    this.put(path, f);
  }

  appendFileSync(path: string, data: string | Uint8Array): void {
    const n = this.lookup(path);
    if (!n) return this.writeFileSync(path, data);
    if (n.kind !== 'file') throw fsError('EISDIR', 'illegal operation on a directory', path);
    writable(n, path).bytes.write(encode(data), sizeOf(n));
  }

  statSync(path: string): Stats {
    return stats(this.node(path));
  }

  readdirSync(path: string): string[];
  readdirSync(path: string, options: { withFileTypes: true }): Dirent[];
  readdirSync(path: string, options?: { withFileTypes: true }): string[] | Dirent[] {
    const n = this.node(path);
    if (n.kind !== 'dir') throw fsError('ENOTDIR', 'not a directory', path);
    const names = [...n.children.keys()].sort();
    if (!options?.withFileTypes) return names;
    return names.map((name) => ({ name, ...stats(n.children.get(name)!) }));
  }

  mkdirSync(path: string, options?: { recursive?: boolean }): undefined {
    const n = this.lookup(path);
    if (n) {
      if (options?.recursive && n.kind === 'dir') return undefined;
      throw fsError('EEXIST', 'file already exists', path);
    }
    this.put(path, newDir(), options?.recursive === true);
    return undefined;
  }

  renameSync(from: string, to: string): void {
    const n = this.node(from);
    if (posixPath.resolve(from) === posixPath.resolve(to)) return;
    const src = this.parentOf(from, false);
    this.put(to, n);
    src.dir.children.delete(src.name);
  }

  rmSync(path: string, options?: { recursive?: boolean; force?: boolean }): void {
    const n = this.lookup(path);
    if (!n) {
      if (options?.force) return;
      throw fsError('ENOENT', 'no such file or directory', path);
    }
    if (n.kind === 'dir' && n.children.size > 0 && !options?.recursive) throw fsError('ENOTEMPTY', 'directory not empty', path);
    const { dir, name } = this.parentOf(path, false);
    dir.children.delete(name);
  }

  realpathSync(path: string): string {
    this.node(path);
    return posixPath.resolve(path);
  }

  copyFileSync(from: string, to: string): void {
    const f = this.file(from);
    const copy = newFile(f.source);
    if (!f.source) copy.bytes.write(f.bytes.view().slice(), 0);
    this.put(to, copy);
  }

  openSync(path: string, flags: string): number {
    let n = this.lookup(path);
    if (flags.includes('x') && n) throw fsError('EEXIST', 'file already exists', path);
    if (flags.startsWith('w') || (flags.startsWith('a') && !n)) {
      n = newFile();
      this.put(path, n);
    }
    if (!n) throw fsError('ENOENT', 'no such file or directory', path);
    if (n.kind !== 'file') throw fsError('EISDIR', 'illegal operation on a directory', path);
    const fd = this.nextFd++;
    this.fds.set(fd, { node: n, path });
    return fd;
  }

  private fd(fd: number): { node: FileNode; path: string } {
    const f = this.fds.get(fd);
    if (!f) throw fsError('EBADF', 'bad file descriptor', String(fd));
    return f;
  }

  closeSync(fd: number): void {
    this.fd(fd);
    this.fds.delete(fd);
  }

  fsyncSync(fd: number): void {
    this.fd(fd);
  }

  readSync(fd: number, buffer: Uint8Array, offset: number, length: number, position: number): number {
    const { node, path } = this.fd(fd);
    return readInto(node, path, position, buffer.subarray(offset, offset + length));
  }

  writeSync(fd: number, buffer: Uint8Array, offset: number, length: number, position: number): number {
    const { node, path } = this.fd(fd);
    writable(node, path).bytes.write(buffer.subarray(offset, offset + length), position);
    return length;
  }

  fstatSync(fd: number): Stats {
    return stats(this.fd(fd).node);
  }

  /** Free space: memory is the limit here (the page estimates it before a run), so a large count. */
  statfsSync(): { bavail: number; bsize: number } {
    return { bavail: Number.MAX_SAFE_INTEGER / 4096, bsize: 4096 };
  }
}
