/**
 * POSIX paths for the browser layer's file tree (lib/browser/memory-fs.ts), with node:path's results for the calls
 * the core makes (test/browser/path.test.ts compares them with node:path.posix). The working directory is `/`.
 */
import type { PathApi } from '../platform/path.js';

/** `path` with `.` and `..` resolved and repeated slashes merged (`..` above the root of an absolute path is dropped). */
function normalizeParts(path: string): string {
  const absolute = path.startsWith('/');
  const out: string[] = [];
  for (const p of path.split('/')) {
    if (p === '' || p === '.') continue;
    if (p === '..') {
      if (out.length > 0 && out[out.length - 1] !== '..') out.pop();
      else if (!absolute) out.push('..');
    } else out.push(p);
  }
  const body = out.join('/');
  return absolute ? `/${body}` : body || '.';
}

/** node:path's normalize: as normalizeParts, a trailing slash kept. */
function normalize(path: string): string {
  const n = normalizeParts(path);
  return path.endsWith('/') && n !== '/' ? `${n}/` : n;
}

function join(...parts: string[]): string {
  const joined = parts.filter((p) => p !== '').join('/');
  return joined === '' ? '.' : normalize(joined);
}

function resolve(...parts: string[]): string {
  let path = '';
  for (let i = parts.length - 1; i >= 0 && !path.startsWith('/'); i--) {
    if (parts[i] !== '') path = path === '' ? parts[i]! : `${parts[i]}/${path}`;
  }
  return normalizeParts(path.startsWith('/') ? path : `/${path}`);
}

function relative(from: string, to: string): string {
  const a = resolve(from).split('/').filter((p) => p !== '');
  const b = resolve(to).split('/').filter((p) => p !== '');
  let same = 0;
  while (same < a.length && same < b.length && a[same] === b[same]) same++;
  return [...a.slice(same).map(() => '..'), ...b.slice(same)].join('/');
}

function trimSlashes(path: string): string {
  let end = path.length;
  while (end > 1 && path[end - 1] === '/') end--;
  return path.slice(0, end);
}

function dirname(path: string): string {
  const p = trimSlashes(path);
  const slash = p.lastIndexOf('/');
  if (slash < 0) return '.';
  return slash === 0 ? '/' : trimSlashes(p.slice(0, slash));
}

function basename(path: string, ext?: string): string {
  const p = trimSlashes(path);
  const base = p === '/' ? '' : p.slice(p.lastIndexOf('/') + 1);
  return ext !== undefined && ext !== base && base.endsWith(ext) ? base.slice(0, base.length - ext.length) : base;
}

function extname(path: string): string {
  const base = basename(path);
  const dot = base.lastIndexOf('.');
  return dot <= 0 || base === '..' ? '' : base.slice(dot);
}

export const posixPath: PathApi = {
  sep: '/',
  join,
  resolve,
  relative,
  dirname,
  basename,
  extname,
  isAbsolute: (path) => path.startsWith('/'),
};
