/** The browser build's `node:fs` (web/src/node/fs.ts) over the in-memory tree: Node's semantics where the library relies on them. */
import * as fs from '../../web/src/node/fs.js';
import { filesUnder, mount, unmount, type ByteSource } from '../../web/src/node/vfs.js';

const source = (bytes: Uint8Array): ByteSource & { reads: [number, number][] } => {
  const reads: [number, number][] = [];
  return { size: bytes.length, describe: 'mem', reads, read: (o, l) => (reads.push([o, l]), bytes.slice(o, o + l)) };
};

beforeEach(() => unmount('/'));

test('a mounted source is read by ranges only where asked', () => {
  const src = source(Uint8Array.from({ length: 100 }, (_, i) => i));
  mount('/m/model.safetensors', src);
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
});

test('writes at positions, rename, copy, rm and readdir behave as in Node', () => {
  fs.mkdirSync('/out/a.partial', { recursive: true });
  const fd = fs.openSync('/out/a.partial/x.bin', 'w');
  fs.writeSync(fd, new Uint8Array([9, 9]), 0, 2, 6);
  fs.writeSync(fd, new Uint8Array([1, 2, 3]), 0, 3, 0);
  fs.closeSync(fd);
  expect([...(fs.readFileSync('/out/a.partial/x.bin') as Uint8Array)]).toEqual([1, 2, 3, 0, 0, 0, 9, 9]);
  fs.writeFileSync('/out/a.partial/c.json', '{"é": 1}');
  fs.copyFileSync('/out/a.partial/c.json', '/out/a.partial/d.json');
  fs.renameSync('/out/a.partial', '/out/a');
  expect(fs.readdirSync('/out/a')).toEqual(['c.json', 'd.json', 'x.bin']);
  expect(fs.readFileSync('/out/a/d.json', 'utf8')).toBe('{"é": 1}');
  expect(filesUnder('/out').map(([p, b]) => [p, b.length])).toEqual([['a/c.json', 9], ['a/d.json', 9], ['a/x.bin', 8]]);
  fs.rmSync('/out/a', { recursive: true, force: true });
  fs.rmSync('/out/a', { force: true }); // absent: nothing
  expect(() => fs.rmSync('/out/a')).toThrow(expect.objectContaining({ code: 'ENOENT' }));
  expect(() => fs.statSync('/nope')).toThrow(expect.objectContaining({ code: 'ENOENT' }));
  expect(() => fs.writeFileSync('/nope/x', 'a')).toThrow(expect.objectContaining({ code: 'ENOENT' }));
  expect(() => fs.mkdirSync('/out')).toThrow(expect.objectContaining({ code: 'EEXIST' }));
});

test("the output lock's calls: exclusive create ('wx'), link (EEXIST when taken), string writes", () => {
  fs.mkdirSync('/o', { recursive: true });
  const fd = fs.openSync('/o/a.lock.tmp', 'w');
  fs.writeSync(fd, '{"pid": 1}');
  fs.closeSync(fd);
  fs.linkSync('/o/a.lock.tmp', '/o/a.lock');
  expect(() => fs.linkSync('/o/a.lock.tmp', '/o/a.lock')).toThrow(expect.objectContaining({ code: 'EEXIST' }));
  expect(() => fs.openSync('/o/a.lock', 'wx')).toThrow(expect.objectContaining({ code: 'EEXIST' }));
  fs.rmSync('/o/a.lock.tmp', { force: true });
  expect(fs.readFileSync('/o/a.lock', 'utf8')).toBe('{"pid": 1}');
});

test('createReadStream: text chunks keep a multi-byte character split by the 1 MiB chunking whole; ranges for hyparquet', async () => {
  const text = 'a'.repeat((1 << 20) - 1) + 'é\nzz';
  mount('/d/t.txt', source(new TextEncoder().encode(text)));
  const s = fs.createReadStream('/d/t.txt');
  s.setEncoding('utf8');
  let got = '';
  for await (const chunk of s) got += chunk as string;
  expect(got).toBe(text);
  const part = await new Promise<Buffer>((ok, fail) => {
    const parts: Buffer[] = [];
    const r = fs.createReadStream('/d/t.txt', { start: 1, end: 3 });
    r.on('data', (c) => parts.push(c as Buffer));
    r.on('error', fail);
    r.on('end', () => ok(Buffer.concat(parts)));
  });
  expect(part.toString()).toBe('aaa');
});
