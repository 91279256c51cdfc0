/**
 * Where things are for an installed package: the package's own folder (its package.json, shipped configs) and the
 * user's shared folder of models and data. Nothing here resolves a user path against the package folder: shipped
 * configs name the shared folder as `${shared}` and their outputs as `${cwd}/runs/...` (see expandPathVars).
 */
import { existsSync, readFileSync } from './platform/fs.js';
import { dirname, join, resolve } from './platform/path.js';
import { platform } from './platform/index.js';
import { ConfigError } from './errors.js';

/** The package root: the folder with package.json above the platform layer (lib/ in a clone, dist/lib/ when installed). */
export function packageRoot(): string {
  let dir = platform().moduleDir;
  while (!existsSync(join(dir, 'package.json')) && dirname(dir) !== dir) dir = dirname(dir);
  return dir;
}

/** The package's own version (never the host project's). */
export function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { version?: string };
  return pkg.version ?? 'unknown';
}

/** How to say where the shared folder comes from, in every error that needs it. */
export const SHARED_HINT =
  'set LLM_PRUNE_SHARED=/path/to/shared (the folder with models/ and data/), pass --shared DIR, ' +
  'or put that folder at ./shared or ../shared of the working directory';

/**
 * The shared folder (models/ and data/): `explicit` (the CLI passes --shared, else $LLM_PRUNE_SHARED), else ./shared
 * or ../shared of the working directory when it exists. null when none is found. Reads no environment.
 */
export function findSharedDir(explicit?: string): string | null {
  if (explicit) return resolve(explicit);
  for (const c of [resolve('shared'), resolve('..', 'shared')]) if (existsSync(join(c, 'models')) || existsSync(join(c, 'data'))) return c;
  return null;
}

/** Values of the `${name}` variables of experiment files. */
export interface PathVars {
  shared?: string | undefined; // the shared folder, if given (the CLI: --shared, else $LLM_PRUNE_SHARED)
}

const VAR = /\$\{(\w+)\}/g;

/**
 * Expand `${shared}` (the shared folder, see findSharedDir) and `${cwd}` (the working directory) in one string.
 * `where` names the key in errors. A string without variables is returned as is.
 */
export function expandPathVars(value: string, where: string, vars: PathVars = {}): string {
  if (!value.includes('${')) return value;
  return value.replace(VAR, (_, name: string) => {
    if (name === 'cwd') return resolve('.');
    if (name === 'shared') {
      const dir = findSharedDir(vars.shared);
      if (dir === null) throw new ConfigError(`${where}: '${value}' names \${shared}, but no shared folder was found: ${SHARED_HINT}`);
      return dir;
    }
    throw new ConfigError(`${where}: unknown variable \${${name}} in '${value}' (known: \${shared}, \${cwd})`);
  });
}
