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
  // a flag may belong to several owners (--admm-iters: method admm and --refine admm): it goes to each one in use
  const owners = new Map<string, ReturnType<typeof optionFlags>>();
  for (const f of optionFlags()) owners.set(f.flag, [...(owners.get(f.flag) ?? []), f]);
  for (const [flag, fs] of owners) {
    const v = argv[flag];
    if (v === undefined) continue;
    const inUse = fs.filter((f) => used[f.owner.kind] === f.owner.name);
    if (inUse.length === 0) {
      const what = fs.map((f) => (f.owner.kind === 'method' ? `method ${f.owner.name}` : `--${f.owner.kind} ${f.owner.name}`)).join(' or ');
      throw new ConfigError(`--${flag}: an option of ${what}, which this run does not use`);
    }
    for (const f of inUse) out[f.owner.kind][f.key] = v;
  }
  return out;
}

/** Adds the method / allocator / refiner option flags (from the registry's schemas) to a command. */
export function withOwnerFlags<T>(y: Argv<T>): Argv<T> {
  let out = y;
  const seen = new Set<string>();
  for (const f of optionFlags()) {
    if (seen.has(f.flag)) continue; // shared by several owners: declared once
    seen.add(f.flag);
    out = out.option(f.flag, { type: f.type, ...(f.choices ? { choices: f.choices } : {}), describe: f.description }) as unknown as Argv<T>;
  }
  return out;
}
