/**
 * The option flags of pruning methods, layer-wise allocators and refiners, derived from the registry's schemas
 * (lib/prune/registry.ts): added to the prune command, and read back into each owner's options.
 */
import type { Argv } from 'yargs';
import { ConfigError } from '../errors.js';
import { optionFlags } from '../prune/registry.js';

/**
 * The options of the chosen method, allocator and refiner from their flags (derived from the registry's schemas).
 * A flag of something this run does not use is an error.
 */
export function ownerOptions(argv: Record<string, unknown>, used: { method: string; layerwise?: string; refine?: string }): {
  method: Record<string, unknown>;
  layerwise: Record<string, unknown>;
  refine: Record<string, unknown>;
} {
  const out = { method: {} as Record<string, unknown>, layerwise: {} as Record<string, unknown>, refine: {} as Record<string, unknown> };
  for (const f of optionFlags()) {
    const v = argv[f.flag];
    if (v === undefined) continue;
    if (used[f.owner.kind] !== f.owner.name) {
      const what = f.owner.kind === 'method' ? `method ${f.owner.name}` : `--${f.owner.kind} ${f.owner.name}`;
      throw new ConfigError(`--${f.flag}: an option of ${what}, which this run does not use`);
    }
    out[f.owner.kind][f.key] = v;
  }
  return out;
}

/** Adds the method / allocator / refiner option flags (from the registry's schemas) to a command. */
export function withOwnerFlags<T>(y: Argv<T>): Argv<T> {
  let out = y;
  for (const f of optionFlags()) {
    out = out.option(f.flag, { type: f.type, ...(f.choices ? { choices: f.choices } : {}), describe: f.description }) as unknown as Argv<T>;
  }
  return out;
}
