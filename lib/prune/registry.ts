/**
 * The only list of pruning methods, layerwise allocators and mask refiners. Each brings its options as a zod
 * schema; the CLI flags (`optionFlags`) and the experiment-file keys are derived from these schemas.
 */
import { ConfigError } from '../errors.js';
import { admm, admmUpdate } from './admm.js';
import { dsnot } from './dsnot.js';
import { magnitude } from './magnitude.js';
import type { LayerwiseAllocator, MaskRefiner, PruneMethod } from './method.js';
import { owl } from './owl.js';
import { ria } from './ria.js';
import { sparsegpt } from './sparsegpt.js';
import { wanda } from './wanda.js';

const METHODS = {
  magnitude,
  wanda,
  sparsegpt,
  ria,
  admm,
} as const;

const LAYERWISE = { owl } as const;

const REFINERS = { dsnot, admm: admmUpdate } as const;

/** A method name as users write it (`--method`, experiment files). */
export type MethodName = keyof typeof METHODS;
export type LayerwiseName = keyof typeof LAYERWISE;
export type RefinerName = keyof typeof REFINERS;

/** Every valid name, in registry order. */
export const METHOD_NAMES = Object.keys(METHODS) as MethodName[];
export const LAYERWISE_NAMES = Object.keys(LAYERWISE) as LayerwiseName[];
export const REFINER_NAMES = Object.keys(REFINERS) as RefinerName[];

function lookup<T>(kind: string, table: Record<string, T>, name: string): T {
  if (!Object.prototype.hasOwnProperty.call(table, name)) {
    throw new ConfigError(`${kind}: '${name}' is not one of ${Object.keys(table).join(', ')}`);
  }
  return table[name] as T;
}

/**
 * The method called `name`; a ConfigError listing the valid names for anything else, naming the option as `option`
 * (how the caller names it: `--method` for the CLI, `prune.method` in an experiment file). Methods are stateless.
 */
export function getMethod(name: string, option = 'method'): PruneMethod<unknown> {
  return lookup(option, METHODS as Record<string, PruneMethod<unknown>>, name);
}

export function getLayerwise(name: string, option = 'layerwise'): LayerwiseAllocator<unknown> {
  return lookup(option, LAYERWISE as Record<string, LayerwiseAllocator<unknown>>, name);
}

export function getRefiner(name: string, option = 'refine'): MaskRefiner<unknown> {
  return lookup(option, REFINERS as Record<string, MaskRefiner<unknown>>, name);
}

/** One option of a method, allocator or refiner as a CLI flag. */
export interface OptionFlag {
  owner: { kind: 'method' | 'layerwise' | 'refine'; name: string };
  key: string; // the option's key in the schema (and in experiment files)
  flag: string; // the CLI flag, without dashes
  type: 'number' | 'boolean' | 'string';
  choices?: string[];
  description: string;
}

interface FieldDef {
  type: string;
  innerType?: { def: FieldDef };
  entries?: Record<string, string>;
}

/** Every option flag, derived from the schemas' `.meta({ flag, description })`. */
export function optionFlags(): OptionFlag[] {
  const out: OptionFlag[] = [];
  const owners: [OptionFlag['owner']['kind'], Record<string, { options: unknown }>][] = [
    ['method', METHODS],
    ['layerwise', LAYERWISE],
    ['refine', REFINERS],
  ];
  for (const [kind, table] of owners) {
    for (const [name, item] of Object.entries(table)) {
      const shape = (item.options as { shape: Record<string, { meta(): Record<string, unknown> | undefined; def: FieldDef }> }).shape;
      for (const [key, field] of Object.entries(shape)) {
        const meta = field.meta() ?? {};
        let def = field.def;
        while (def.innerType) def = def.innerType.def;
        const type = def.type === 'boolean' ? 'boolean' : def.type === 'number' ? 'number' : 'string';
        out.push({
          owner: { kind, name },
          key,
          flag: String(meta['flag'] ?? key),
          type,
          ...(def.type === 'enum' && def.entries ? { choices: Object.values(def.entries) } : {}),
          description: String(meta['description'] ?? key),
        });
      }
    }
  }
  return out;
}
