/** `node:path` for the browser build: POSIX paths (path-browserify). */
import path from 'path-browserify';

export const { join, resolve, dirname, basename, relative, isAbsolute, sep, extname, normalize, parse, format, delimiter } = path;
export const posix = path;
export default path;
