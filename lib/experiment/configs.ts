/**
 * The experiment files shipped with the package (its configs/ folder), found by name: `demo` is configs/demo.yaml,
 * and a name may leave out the model suffix when one file starts with it (`paper-grid` is
 * configs/paper-grid-c4-llama-7m.yaml). A path to an existing file is always taken as it is.
 */
import { existsSync, readdirSync } from 'node:fs';
import { basename, extname, join } from 'node:path';
import { ConfigError } from '../errors.js';
import { packageRoot } from '../paths.js';

const EXTENSIONS = ['.yaml', '.yml', '.json'];

/** The shipped configs folder (configs/ next to the package's package.json). */
export function shippedConfigDir(): string {
  return join(packageRoot(), 'configs');
}

/** The names of the shipped experiment files (file names without extension), sorted. */
export function shippedConfigs(): string[] {
  const dir = shippedConfigDir();
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => EXTENSIONS.includes(extname(f).toLowerCase()))
    .map((f) => basename(f, extname(f)))
    .sort();
}

/**
 * The experiment file that `config` names: an existing file, else a shipped config by name (its file name without
 * extension, or the one file name that starts with `<config>-`). Anything else is returned as it is (a path that
 * loadExperiment then reads). `option` names the option in errors.
 */
export function experimentFile(config: string, option = 'config'): string {
  const isName = !/[\\/]/.test(config) && !EXTENSIONS.includes(extname(config).toLowerCase());
  if (existsSync(config) || !isName) return config; // a path: reading it says what is wrong with it
  const names = shippedConfigs();
  const known = `shipped configs: ${names.join(', ') || 'none'}`;
  const matches = names.includes(config) ? [config] : names.filter((n) => n.startsWith(`${config}-`));
  if (matches.length !== 1) {
    const why = matches.length === 0 ? 'is neither a file nor a shipped config' : `names several shipped configs (${matches.join(', ')})`;
    throw new ConfigError(`${option}: '${config}' ${why}; ${known}`);
  }
  const dir = shippedConfigDir();
  const file = readdirSync(dir).find((f) => basename(f, extname(f)) === matches[0] && EXTENSIONS.includes(extname(f).toLowerCase()));
  return join(dir, file!);
}
