/** The browser layer's file tree (lib/browser/memory-fs.ts): Node's semantics where the core relies on them. */
import { bytesSource, type ByteSource } from '../../lib/platform/bytes.js';
import { MemoryFileSystem } from '../../lib/browser/memory-fs.js';

/** A source over `bytes` that records its reads. */
const source = (bytes: Uint8Array): ByteSource & { reads: [number, number][] } => {
  const inner = bytesSource(bytes, 'mem');
  const reads: [number, number][] = [];
  return {
    ...inner,
    reads,
    readSync: (offset, into) => {
      reads.push([offset, into.length]);
      return inner.readSync!(offset, into);
    },
  };
};

let fs: MemoryFileSystem;
beforeEach(() => {
  fs = new MemoryFileSystem();
});

test('a mounted source is read by ranges only where asked', () => {
  const src = source(Uint8Array.from({ length: 100 }, (_, i) => i));
  fs.mount('/m/model.safetensors', src);
  expect(fs.existsSync('/m')).toBe(true);
  expect(fs.statSync('/m').isDirectory()).toBe(true);
  expect(fs.statSync('/m/model.safetensors').size).toBe(100);
  const fd = fs.openSync('/m/model.safetensors', 'r');
  const buf = new Uint8Array(8);
  expect(fs.readSync(fd, buf, 2, 4, 50)).toBe(4);
  expect([...buf]).toEqual([0, 0, 50, 51, 52, 53, 0, 0]);
  expect(fs.readSync(fd, buf, 0, 8, 98)).toBe(2); // short read at the end
  fs.closeSync(fd);
  expect(src.reads).toEqual([[50, 4], [98, 2]]);
  expect(() => fs.readSync(fd, buf, 0, 1, 0)).toThrow(/EBADF/);
  const file = fs.openFile('/m/model.safetensors');
  const into = new Uint8Array(3);
  expect(file.readSync!(10, into)).toBe(3);
  expect([...into]).toEqual([10, 11, 12]);
});

test('writes at positions, rename, copy, rm and readdir behave as in Node', () => {
  fs.mkdirSync('/out/a.partial', { recursive: true });
  const fd = fs.openSync('/out/a.partial/x.bin', 'w');
  fs.writeSync(fd, new Uint8Array([9, 9]), 0, 2, 6);
  fs.writeSync(fd, new Uint8Array([1, 2, 3]), 0, 3, 0);
  fs.closeSync(fd);
  expect([...fs.readFileSync('/out/a.partial/x.bin')]).toEqual([1, 2, 3, 0, 0, 0, 9, 9]);
  fs.writeFileSync('/out/a.partial/c.json', '{"é": 1}');
  fs.copyFileSync('/out/a.partial/c.json', '/out/a.partial/d.json');
  fs.renameSync('/out/a.partial', '/out/a');
  expect(fs.readdirSync('/out/a')).toEqual(['c.json', 'd.json', 'x.bin']);
  expect(fs.readdirSync('/out', { withFileTypes: true }).map((d) => [d.name, d.isDirectory()])).toEqual([['a', true]]);
  expect(fs.readFileSync('/out/a/d.json', 'utf8')).toBe('{"é": 1}');
  expect(fs.realpathSync('/out/a/../a/./d.json')).toBe('/out/a/d.json');
  expect(fs.filesUnder('/out').map(([p, b]) => [p, b.length])).toEqual([['a/c.json', 9], ['a/d.json', 9], ['a/x.bin', 8]]);
  expect(() => fs.rmSync('/out/a')).toThrow(expect.objectContaining({ code: 'ENOTEMPTY' }));
  fs.rmSync('/out/a', { recursive: true, force: true });
  fs.rmSync('/out/a', { force: true }); // absent: nothing
  expect(() => fs.rmSync('/out/a')).toThrow(expect.objectContaining({ code: 'ENOENT' }));
  expect(() => fs.statSync('/nope')).toThrow(expect.objectContaining({ code: 'ENOENT', path: '/nope' }));
  expect(() => fs.writeFileSync('/nope/x', 'a')).toThrow(expect.objectContaining({ code: 'ENOENT' }));
  expect(() => fs.mkdirSync('/out')).toThrow(expect.objectContaining({ code: 'EEXIST' }));
  fs.writeFileSync('/out/l', 'a');
  expect(() => fs.writeFileSync('/out/l', 'b', { flag: 'wx' })).toThrow(expect.objectContaining({ code: 'EEXIST' }));
  fs.appendFileSync('/out/l', 'b');
  expect(fs.readFileSync('/out/l', 'utf8')).toBe('ab');
});

test('a mounted file is copied into memory on its first write; the source is never written', () => {
  const bytes = Uint8Array.of(1, 2, 3, 4);
  fs.mount('/in/f', source(bytes));
  const sink = fs.createFile('/in/f', { keep: true });
  sink.write(2, Uint8Array.of(9));
  expect([...fs.readFileSync('/in/f')]).toEqual([1, 2, 9, 4]);
  expect([...bytes]).toEqual([1, 2, 3, 4]);
  const fresh = fs.createFile('/in/g');
  fresh.write(3, Uint8Array.of(7));
  const back = new Uint8Array(4);
  expect(fresh.readSync!(0, back)).toBe(4);
  expect([...back]).toEqual([0, 0, 0, 7]);
  fs.unmount('/in');
  expect(fs.existsSync('/in')).toBe(false);
});

test('a source without synchronous reads is refused by the synchronous calls, naming it', async () => {
  const { readSync: _, ...asyncOnly } = bytesSource(Uint8Array.of(5, 6), 'blob.bin');
  fs.mount('/b', asyncOnly);
  expect(() => fs.readFileSync('/b')).toThrow(/blob\.bin reads asynchronously only/);
  const file = fs.openFile('/b');
  expect(file.readSync).toBeUndefined();
  expect([...(await file.read(1, 5))]).toEqual([6]);
});
