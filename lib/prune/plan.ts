/**
 * The pruning plan, built before the layer loop: for each block and linear, the method, its options, its target
 * sparsity and structure, and the refiner (or nothing: the linear is left as it is). Layerwise allocators (OWL) give
 * per-block sparsities; `targets` / `ignore` choose linears by name (llm-compressor's convention).
 */
import { cliFlag, ConfigError, optionKey, type OptionName } from '../errors.js';
import type { LlamaConfig } from '../model/config.js';
import { linearTensorName } from '../model/architecture.js';
import { validateOptions } from './mask.js';
import { type LinearRef, type MaskRefiner, type PruneMethod, type PruneOptions } from './method.js';
import { LINEAR_NAMES, type LinearName } from '../model/architecture.js';

/** One linear's entry of the plan. */
export interface LinearPlan {
  ref: LinearRef;
  method: PruneMethod<unknown>;
  options: unknown; // parsed by method.options
  target: PruneOptions;
  refine: { refiner: MaskRefiner<unknown>; options: unknown } | null; // null: no refiner, or it skips this linear
}

/** One block: its allocated sparsity and the linears it prunes (absent = left unchanged). */
export interface BlockPlan {
  layer: number;
  sparsity: number; // allocated target (uniform unless a layerwise allocator ran)
  linears: Partial<Record<LinearName, LinearPlan>>;
}

export interface PrunePlan {
  blocks: BlockPlan[];
  skipped: string[]; // linears left unchanged by targets / ignore
}

/** The module name of a linear ('model.layers.3.self_attn.q_proj'). */
export function linearModuleName(layer: number, linear: LinearName): string {
  return linearTensorName(layer, linear).replace(/\.weight$/, '');
}

/**
 * Whether `pattern` selects the linear `name`, as llm-compressor matches targets and ignore lists: 're:<regex>'
 * matches from the start of the name (Python's re.match); 'Linear' (the class name) matches every linear; any other
 * string matches the name itself or a module containing it ('model.layers.0' selects block 0's seven linears).
 */
export function matchesLinear(pattern: string, name: string): boolean {
  if (pattern.startsWith('re:')) return compilePattern(pattern).test(name);
  if (pattern === 'Linear') return true;
  return name === pattern || name.startsWith(pattern + '.');
}

function compilePattern(pattern: string): RegExp {
  try {
    return new RegExp('^(?:' + pattern.slice(3) + ')');
  } catch (e) {
    throw new ConfigError(`'${pattern}': not a valid regular expression (${(e as Error).message})`);
  }
}

/**
 * The linears selected by `targets` (default: every linear) minus those matched by `ignore`. Every pattern must match
 * at least one linear (a typo would otherwise silently prune everything, or nothing). Messages name the two options
 * as `optionName` does (default the library's names).
 */
export function selectLinears(
  c: LlamaConfig,
  targets: readonly string[],
  ignore: readonly string[],
  optionName: OptionName = optionKey,
): { selected: Set<string>; skipped: string[] } {
  const all: string[] = [];
  for (let layer = 0; layer < c.numLayers; layer++) for (const n of LINEAR_NAMES) all.push(linearModuleName(layer, n));
  for (const [option, list] of [['targets', targets], ['ignore', ignore]] as const) {
    for (const p of list) {
      if (!all.some((name) => matchesLinear(p, name))) {
        throw new ConfigError(`${optionName(option)} '${p}' matches no linear layer (names look like ${all[0]}; use 're:' for a pattern)`);
      }
    }
  }
  const tgt = targets.length === 0 ? ['Linear'] : targets;
  const selected = new Set(all.filter((name) => tgt.some((p) => matchesLinear(p, name)) && !ignore.some((p) => matchesLinear(p, name))));
  if (selected.size === 0) throw new ConfigError(`${optionName('targets')} / ${optionName('ignore')}: no linear layer is left to prune`);
  return { selected, skipped: all.filter((n) => !selected.has(n)) };
}

/** Everything `buildPlan` needs. */
export interface PlanSpec {
  method: PruneMethod<unknown>;
  methodOptions?: unknown; // raw; parsed by method.options
  target: PruneOptions; // the global target
  blockSparsities?: readonly number[]; // per block (a layerwise allocator's result); default: target.sparsity
  refiner?: MaskRefiner<unknown> | null;
  refinerOptions?: unknown;
  targets?: readonly string[];
  ignore?: readonly string[];
  optionName?: OptionName; // how messages name the options (default the library's names: refine, targets)
}

/** The plan of a run. Validates every option before any work. */
export function buildPlan(c: LlamaConfig, spec: PlanSpec): PrunePlan {
  const name = spec.optionName ?? optionKey;
  validateOptions(spec.target);
  const options = parseOptions(`${name('method')} ${spec.method.name}`, spec.method.options, spec.methodOptions);
  spec.method.check?.(spec.target, options, methodOptionName(spec.optionName, spec.method.name));
  const refiner = spec.refiner ?? null;
  if (refiner && spec.target.structure.kind !== 'unstructured') {
    const { n, m } = spec.target.structure;
    throw new ConfigError(`${name('refine')} ${refiner.name}: unstructured sparsity only (as the reference), got ${name('structure')} ${n}:${m}`);
  }
  const refinerOptions = refiner ? parseOptions(`${name('refine')} ${refiner.name}`, refiner.options, spec.refinerOptions) : null;
  if (refiner && spec.method.updatesWeights) {
    throw new ConfigError(`${name('refine')} ${refiner.name}: ${spec.method.name} updates the weights it keeps; refine a method that only masks (wanda, magnitude, ria)`);
  }
  if (spec.blockSparsities && spec.blockSparsities.length !== c.numLayers) {
    throw new ConfigError(`block sparsities: ${spec.blockSparsities.length} values for ${c.numLayers} blocks`);
  }
  const { selected, skipped } = selectLinears(c, spec.targets ?? [], spec.ignore ?? [], name);
  const blocks: BlockPlan[] = [];
  for (let layer = 0; layer < c.numLayers; layer++) {
    const sparsity = spec.blockSparsities?.[layer] ?? spec.target.sparsity;
    const target: PruneOptions = { sparsity, structure: spec.target.structure };
    validateOptions(target);
    const linears: Partial<Record<LinearName, LinearPlan>> = {};
    for (const linear of LINEAR_NAMES) {
      const name = linearModuleName(layer, linear);
      if (!selected.has(name)) continue;
      const ref: LinearRef = { layer, linear, name };
      const refine = refiner && refiner.applies(ref, refinerOptions) ? { refiner, options: refinerOptions } : null;
      linears[linear] = { ref, method: spec.method, options, target, refine };
    }
    blocks.push({ layer, sparsity, linears });
  }
  return { blocks, skipped };
}

/**
 * How messages name a method's own options: by the method's CLI flags (`--permute`, its schema's flag names) when the
 * caller gave no naming or the CLI's (`cliFlag`), else the caller's name of `<method>.<key>` (an experiment file:
 * `prune.ria.permute`).
 */
export function methodOptionName(optionName: OptionName | undefined, method: string): OptionName | undefined {
  return optionName && optionName !== cliFlag ? (key) => optionName(`${method}.${key}`) : undefined;
}

/** `schema.parse(raw ?? {})` with a ConfigError naming `what` and each bad key. */
export function parseOptions(what: string, schema: { safeParse(v: unknown): { success: boolean; data?: unknown; error?: { issues: { path: PropertyKey[]; message: string }[] } } }, raw: unknown): unknown {
  const r = schema.safeParse(raw ?? {});
  if (!r.success) {
    const issues = r.error!.issues.map((i) => `${i.path.map(String).join('.') || '(options)'}: ${i.message}`).join('; ');
    throw new ConfigError(`${what}: bad options: ${issues}`);
  }
  return r.data;
}
