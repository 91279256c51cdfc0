/** The browser layer's POSIX paths (lib/browser/path.ts) give node:path.posix's results. */
import { posix } from 'node:path';
import { posixPath } from '../../lib/browser/path.js';

const PATHS = ['', '.', '..', '/', '//', 'a', 'a/', '/a', '/a/', 'a/b', '/a/b/', '/a//b/./c/..', '../a/../../b', 'a/../..', '/..', '/a/b.c', 'x.tar.gz', '.hidden', 'a/.b', 'a..', '/m/model.safetensors'];

test('join, resolve, relative, dirname, basename, extname and isAbsolute equal node:path.posix', () => {
  for (const p of PATHS) {
    expect([p, posixPath.dirname(p)]).toEqual([p, posix.dirname(p)]);
    expect([p, posixPath.basename(p)]).toEqual([p, posix.basename(p)]);
    // node:path answers basename('//', ext) with '//' (and basename('//') with ''): that quirk is not copied
    if (p !== '//') expect([p, posixPath.basename(p, '.c')]).toEqual([p, posix.basename(p, '.c')]);
    expect([p, posixPath.extname(p)]).toEqual([p, posix.extname(p)]);
    expect([p, posixPath.isAbsolute(p)]).toEqual([p, posix.isAbsolute(p)]);
    // the working directory of the browser layer is '/'
    expect([p, posixPath.resolve(p)]).toEqual([p, posix.resolve('/', p)]);
    for (const q of PATHS) {
      expect([p, q, posixPath.join(p, q)]).toEqual([p, q, posix.join(p, q)]);
      expect([p, q, posixPath.resolve(p, q)]).toEqual([p, q, posix.resolve('/', p, q)]);
      expect([p, q, posixPath.relative(p, q)]).toEqual([p, q, posix.relative(posix.resolve('/', p), posix.resolve('/', q))]);
    }
  }
  expect(posixPath.join()).toBe('.');
  expect(posixPath.sep).toBe('/');
});
