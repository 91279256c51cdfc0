/**
 * An in-memory file tree for the browser build: the library's file code (checkpoint reader and writer, data
 * sources, tokenizer) runs unchanged over it. Input files are mounted as random-access byte sources (a local
 * `File`/`Blob`, or a URL read by HTTP range requests), read only where asked; written files live in memory until
 * the page downloads them. Paths are POSIX; the tree starts at `/`.
 *
 * Reads are synchronous, as `node:fs`'s are (the byte sources of ./sources.ts).
 */

/** A random-access, read-only byte source. */
export interface ByteSource {
  readonly size: number;
  read(offset: number, length: number): Uint8Array;
  readonly describe: string; // for messages: the URL or the file name
}

/** What a write target holds: bytes growing by doubling. */
class Bytes {
  data = new Uint8Array(1024);
  size = 0;

  ensure(end: number): void {
    if (end <= this.data.length) return;
    let n = this.data.length;
    while (n < end) n *= 2;
    const grown = new Uint8Array(n);
    grown.set(this.data.subarray(0, this.size));
    this.data = grown;
  }

  write(src: Uint8Array, pos: number): void {
    this.ensure(pos + src.length);
    this.data.set(src, pos);
    this.size = Math.max(this.size, pos + src.length);
  }

  view(): Uint8Array {
    return this.data.subarray(0, this.size);
  }
}

export type VNode = { kind: 'dir'; children: Map<string, VNode> } | { kind: 'file'; source: ByteSource | null; bytes: Bytes };

export function newFile(source: ByteSource | null = null): VNode {
  return { kind: 'file', source, bytes: new Bytes() };
}

export function fileSize(n: VNode & { kind: 'file' }): number {
  return n.source ? n.source.size : n.bytes.size;
}

export function fileRead(n: VNode & { kind: 'file' }, offset: number, length: number): Uint8Array {
  const size = fileSize(n);
  const len = Math.max(0, Math.min(length, size - offset));
  if (len === 0) return new Uint8Array(0);
  return n.source ? n.source.read(offset, len) : n.bytes.view().subarray(offset, offset + len);
}

/** A Node-style error with a code (ENOENT, EEXIST, ...): callers test `code` as they would in Node. */
export function fsError(code: string, what: string, path: string): Error {
  const e = new Error(`${code}: ${what}, '${path}'`) as Error & { code: string; path: string };
  e.code = code;
  e.path = path;
  return e;
}

const root: VNode = { kind: 'dir', children: new Map() };

function parts(path: string): string[] {
  if (!path.startsWith('/')) path = `/${path}`;
  const out: string[] = [];
  for (const p of path.split('/')) {
    if (p === '' || p === '.') continue;
    if (p === '..') out.pop();
    else out.push(p);
  }
  return out;
}

/** The node at `path`, or null. */
export function lookup(path: string): VNode | null {
  let n: VNode = root;
  for (const p of parts(path)) {
    if (n.kind !== 'dir') return null;
    const c = n.children.get(p);
    if (!c) return null;
    n = c;
  }
  return n;
}

/** The folder holding `path` and the last name; with `create`, missing folders are made. */
export function parentOf(path: string, create: boolean): { dir: VNode & { kind: 'dir' }; name: string } {
  const ps = parts(path);
  const name = ps.pop();
  if (name === undefined) throw fsError('EISDIR', 'illegal operation on a directory', path);
  let n: VNode = root;
  for (const p of ps) {
    if (n.kind !== 'dir') throw fsError('ENOTDIR', 'not a directory', path);
    let c = n.children.get(p);
    if (!c) {
      if (!create) throw fsError('ENOENT', 'no such file or directory', path);
      c = { kind: 'dir', children: new Map() };
      n.children.set(p, c);
    }
    n = c;
  }
  if (n.kind !== 'dir') throw fsError('ENOTDIR', 'not a directory', path);
  return { dir: n, name };
}

/** Put a byte source at `path` (folders made as needed), replacing what was there. */
export function mount(path: string, source: ByteSource): void {
  const { dir, name } = parentOf(path, true);
  dir.children.set(name, newFile(source));
}

/** Remove everything under `path` (nothing when absent). */
export function unmount(path: string): void {
  const ps = parts(path);
  if (ps.length === 0) {
    if (root.kind === 'dir') root.children.clear();
    return;
  }
  const parent = lookup(`/${ps.slice(0, -1).join('/')}`);
  if (parent?.kind === 'dir') parent.children.delete(ps[ps.length - 1]!);
}

/** Every file under `dir` as [path relative to dir, bytes] (for the download). */
export function filesUnder(dir: string): [string, Uint8Array][] {
  const out: [string, Uint8Array][] = [];
  const walk = (n: VNode, rel: string): void => {
    if (n.kind === 'file') out.push([rel, fileRead(n, 0, fileSize(n))]);
    else for (const [name, c] of [...n.children].sort(([a], [b]) => (a < b ? -1 : 1))) walk(c, rel ? `${rel}/${name}` : name);
  };
  const n = lookup(dir);
  if (n) walk(n, '');
  return out;
}
