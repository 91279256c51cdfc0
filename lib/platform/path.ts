/**
 * Path operations under Node's names, forwarded to the installed platform (the Node layer passes node:path; a
 * browser layer passes POSIX rules over its own file names). Core modules import these instead of node:path.
 */
import { platform } from './index.js';

export interface PathApi {
  sep: string;
  join(...parts: string[]): string;
  resolve(...parts: string[]): string;
  relative(from: string, to: string): string;
  dirname(path: string): string;
  basename(path: string, ext?: string): string;
  extname(path: string): string;
  isAbsolute(path: string): boolean;
}

const p = (): PathApi => platform().path;

export const join = (...parts: string[]): string => p().join(...parts);
export const resolve = (...parts: string[]): string => p().resolve(...parts);
export const relative = (from: string, to: string): string => p().relative(from, to);
export const dirname = (path: string): string => p().dirname(path);
export const basename = (path: string, ext?: string): string => p().basename(path, ext);
export const extname = (path: string): string => p().extname(path);
export const isAbsolute = (path: string): boolean => p().isAbsolute(path);
/** The platform's path separator ('/' before a platform is installed). */
export function sep(): string {
  return p().sep;
}
