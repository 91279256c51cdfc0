/**
 * Experiment files (YAML or JSON): what to prune, how, and how to evaluate it.
 *
 * PATHS: every relative path written in an experiment file (`model`, `calibration.source`, `eval.dataDir`,
 * task files, `finetune.data`, `output`) is resolved against the folder that holds the file, never against the
 * current working directory, so an experiment file means the same thing whatever folder it is run from. Two
 * variables are expanded first (lib/paths.ts): `${shared}` (the shared models/data folder: --shared,
 * $LLM_PRUNE_SHARED, else ./shared or ../shared of the working directory) and `${cwd}` (the working directory).
 * The shipped configs in `configs/` use them (`${shared}/models/...`, `output: ${cwd}/runs/<name>`), so they work
 * the same from a clone and from an installed package, and never write into the package folder. Path values given as
 * command-line overrides (`loadExperiment(file, { model: './m' })`) are what the user typed in a shell, so they
 * are resolved against the current working directory instead. After loading, every local path is absolute.
 *
 * `model` is a local checkpoint folder or a Hugging Face hub id (`owner/name`). A value that starts with `.`,
 * `/` or `~`, or that names an existing path, is local and must be a folder with a config.json; anything else
 * must look like a hub id. Write local folders with a leading `./` or `../` to make that unambiguous.
 *
 * Errors are `ExperimentConfigError` (a `ConfigError`) naming the file, the key path (`prune[1].sparsity`),
 * what is allowed and what was found; all problems of a file are reported at once.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, extname, isAbsolute, resolve } from 'node:path';
import YAML from 'yaml';
import { z } from 'zod';
import { ConfigError, keyPath, type OptionName } from '../errors.js';
import { expandPathVars, type PathVars } from '../paths.js';
import { PERPLEXITY_SETS, type PerplexitySet } from '../eval/perplexity.js';
import { TASKS } from '../eval/tasks.js';
import { BACKEND_NAMES, type BackendName } from '../model/backend.js';
import { CHECKPOINT_FORMATS, type CheckpointFormat } from '../model/compressed-tensors.js';
import { type Structure } from '../prune/method.js';
import { LINEAR_NAMES } from '../model/architecture.js';
import { FINETUNE_DEFAULTS } from '../finetune/defaults.js';
import { parseStructure } from '../prune/structure.js';
import { EVAL_DEFAULTS } from '../eval/defaults.js';
import { PRUNE_DEFAULTS } from '../prune/defaults.js';
import {
  LAYERWISE_NAMES,
  METHOD_NAMES,
  REFINER_NAMES,
  getLayerwise,
  getMethod,
  getRefiner,
  type LayerwiseName,
  type MethodName,
  type RefinerName,
} from '../prune/registry.js';

// ---------------------------------------------------------------------------------------------------------------
// Vocabularies: methods, tasks, perplexity sets and backends come from their modules (the only lists).

export type { MethodName };

/** The named zero-shot tasks (lib/eval/tasks.ts); any other task entry is a path to a task file. */
const TASK_NAMES: readonly string[] = Object.keys(TASKS);

/** The id of the dense (unpruned) baseline in settings lists and reports. */
export const DENSE_ID = 'dense';

// ---------------------------------------------------------------------------------------------------------------
// Small helpers shared by the schema pieces

/** Where relative paths of the file resolve (see the top of this file) and the file's name for defaults. */
interface SchemaContext {
  baseDir: string; // folder of the experiment file
  defaultName: string; // file name without extension
}

function describe(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (typeof value === 'string') return `'${value}'`;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (Array.isArray(value)) return `a list (${JSON.stringify(value)})`;
  return `an object (${JSON.stringify(value)})`;
}

/** An integer >= min, with a message that gives the value. */
function int(min: number) {
  return z.number().superRefine((v, ctx) => {
    if (!Number.isSafeInteger(v) || v < min) ctx.addIssue({ code: 'custom', message: `must be an integer >= ${min}, got ${v}` });
  });
}

function positiveNumber() {
  return z.number().superRefine((v, ctx) => {
    if (!(v > 0)) ctx.addIssue({ code: 'custom', message: `must be > 0, got ${v}` });
  });
}

/** A single value or a non-empty list of them; the output is always a list. */
function oneOrMany<T extends z.ZodType>(item: T) {
  return z.preprocess((v) => (Array.isArray(v) || v === undefined ? v : [v]), z.array(item).min(1));
}

function sparsityValue() {
  return z.number().superRefine((v, ctx) => {
    if (!(v >= 0 && v < 1)) ctx.addIssue({ code: 'custom', message: `must be >= 0 and < 1, got ${v}` });
  });
}


function structureValue() {
  return z.string().superRefine((v, ctx) => {
    try {
      parseStructure(v);
    } catch (e) {
      ctx.addIssue({ code: 'custom', message: (e as Error).message.replace(/^structure: /, '') });
    }
  });
}

/** ` (resolved to /abs/path)` when the written path is not already that absolute path. */
function resolvedNote(written: string, p: string): string {
  return written === p ? '' : ` (resolved to ${p})`;
}

function isFile(p: string): boolean {
  return existsSync(p) && statSync(p).isFile();
}

function isDir(p: string): boolean {
  return existsSync(p) && statSync(p).isDirectory();
}

/** An existing file, resolved against the experiment file's folder. */
function filePath(c: SchemaContext, what: string) {
  return z
    .string()
    .superRefine((v, ctx) => {
      const p = resolve(c.baseDir, v);
      if (!isFile(p)) ctx.addIssue({ code: 'custom', message: `${what} '${v}' does not exist${resolvedNote(v, p)}` });
    })
    .transform((v) => resolve(c.baseDir, v));
}

function dirPath(c: SchemaContext, what: string) {
  return z
    .string()
    .superRefine((v, ctx) => {
      const p = resolve(c.baseDir, v);
      if (!isDir(p)) ctx.addIssue({ code: 'custom', message: `${what} '${v}' does not exist${resolvedNote(v, p)}` });
    })
    .transform((v) => resolve(c.baseDir, v));
}

const HUB_ID = /^[A-Za-z0-9][\w.-]*(\/[\w.-]+)?$/;

function looksLocal(v: string): boolean {
  return v.startsWith('.') || v.startsWith('~') || isAbsolute(v) || v.includes('\\');
}

/** A local checkpoint folder (made absolute) or a hub id (kept as is). */
function modelRef(c: SchemaContext) {
  return z
    .string()
    .superRefine((v, ctx) => {
      const p = resolve(c.baseDir, v);
      if (existsSync(p)) {
        if (!isDir(p)) ctx.addIssue({ code: 'custom', message: `'${v}' is a file, expected a checkpoint folder${resolvedNote(v, p)}` });
        else if (!isFile(resolve(p, 'config.json'))) {
          ctx.addIssue({ code: 'custom', message: `folder '${v}' has no config.json, so it is not a checkpoint${resolvedNote(v, p)}` });
        }
      } else if (looksLocal(v)) {
        ctx.addIssue({ code: 'custom', message: `folder '${v}' does not exist${resolvedNote(v, p)}` });
      } else if (!HUB_ID.test(v)) {
        ctx.addIssue({ code: 'custom', message: `'${v}' is neither an existing folder nor a hub id like 'owner/name'` });
      }
    })
    .transform((v) => (existsSync(resolve(c.baseDir, v)) ? resolve(c.baseDir, v) : v));
}

/**
 * A task: a name of lib/eval/tasks.ts TASKS (read from eval.dataDir), or a multiple-choice file (jsonl, json,
 * parquet; rows {query, choices, gold} or {context_options, continuation, gold}), resolved and made absolute.
 */
function taskRef(c: SchemaContext) {
  return z
    .string()
    .superRefine((v, ctx) => {
      if (TASK_NAMES.includes(v)) return;
      const p = resolve(c.baseDir, v);
      if (isFile(p)) return;
      if (looksLocal(v) || /[/\\]|\.\w+$/.test(v)) {
        ctx.addIssue({ code: 'custom', message: `task file '${v}' does not exist${resolvedNote(v, p)}` });
      } else {
        ctx.addIssue({ code: 'custom', message: `must be one of ${TASK_NAMES.join(', ')} or a task file, got '${v}'` });
      }
    })
    .transform((v) => (TASK_NAMES.includes(v) ? v : resolve(c.baseDir, v)));
}

// ---------------------------------------------------------------------------------------------------------------
// The schema

/**
 * How `prune()` names its options in messages when an experiment file runs it: by the keys written in the file
 * (`calibration.nsamples`, `prune.targets`, `output.format`), not by the CLI's flags.
 */
export function pruneOptionName(settingId: string): OptionName {
  return keyPath('prune', {
    calibration: 'calibration.source',
    nsamples: 'calibration.nsamples',
    seqlen: 'calibration.seqlen',
    seed: 'calibration.seed',
    batchSize: 'calibration.batchSize',
    format: 'output.format',
    out: `the checkpoint folder of ${settingId}`,
  });
}

function calibrationSchema(c: SchemaContext) {
  return z.strictObject({
    source: filePath(c, 'calibration file'), // jsonl / json.gz / parquet / text file of documents
    nsamples: int(1).default(PRUNE_DEFAULTS.nsamples), // number of calibration windows
    seqlen: int(2).optional(), // tokens per window; default: the model's max_position_embeddings
    seed: int(0).default(PRUNE_DEFAULTS.seed), // Python random.seed of the window sampler
    batchSize: int(1).default(PRUNE_DEFAULTS.batchSize), // windows per forward pass (speed and memory only; results do not depend on it)
  });
}

type OptionOwner = MethodName | LayerwiseName | RefinerName;
type OptionsValue = z.ZodOptional<z.ZodType<Record<string, unknown>>>;

/** The schema of each method's, allocator's and refiner's own options, keyed by its name (from the registry). */
function ownerSchema(name: string): z.ZodType<Record<string, unknown>> {
  const owner = (METHOD_NAMES as string[]).includes(name) ? getMethod(name) : (LAYERWISE_NAMES as string[]).includes(name) ? getLayerwise(name) : getRefiner(name);
  return owner.options as z.ZodType<Record<string, unknown>>;
}

/** `ria: { permute: true }`, `owl: { lambda: 0.1 }`, `dsnot: { cycles: 20 }`: options by owner name. */
const optionShape = Object.fromEntries(
  [...METHOD_NAMES, ...LAYERWISE_NAMES, ...REFINER_NAMES].map((n) => [n, ownerSchema(n).optional()]),
) as Record<OptionOwner, OptionsValue>;

const pruneShape = {
  method: oneOrMany(z.enum(METHOD_NAMES as [MethodName, ...MethodName[]])), // one method or a list to sweep
  structure: oneOrMany(structureValue()).default([PRUNE_DEFAULTS.structure]), // 'unstructured' or 'N:M', or a list
  sparsity: oneOrMany(sparsityValue()).optional(), // target zero fraction; optional for N:M (must be N/M)
  useVariant: z.boolean().default(false), // Wanda's alpha-bisection variant (unstructured only)
  layerwise: z.enum(LAYERWISE_NAMES as [LayerwiseName, ...LayerwiseName[]]).optional(), // per-block sparsities (owl)
  refine: z.enum(REFINER_NAMES as [RefinerName, ...RefinerName[]]).optional(), // mask refiner after the method (dsnot)
  targets: z.array(z.string().min(1)).default([]), // linears to prune: names, parent modules, 're:' patterns (default all)
  ignore: z.array(z.string().min(1)).default([]), // linears left unchanged, same syntax
  ...optionShape, // each method's / allocator's / refiner's own options under its name
};

/** Plan checks of one entry that need no model: option owners in use, allocator/refiner/structure combinations. */
function checkEntryPlan(p: z.output<z.ZodObject<typeof pruneShape>>, structures: Structure[], ctx: z.RefinementCtx): void {
  const used = new Set<string>([...p.method, ...(p.layerwise ? [p.layerwise] : []), ...(p.refine ? [p.refine] : [])]);
  for (const name of Object.keys(optionShape)) {
    if (p[name as OptionOwner] !== undefined && !used.has(name)) {
      ctx.addIssue({ code: 'custom', path: [name], message: `options for ${name}, which this entry does not use` });
    }
  }
  const nm = structures.find((s) => s.kind === 'nm');
  if (nm && nm.kind === 'nm' && p.layerwise) {
    ctx.addIssue({ code: 'custom', path: ['layerwise'], message: `${p.layerwise} allocates unstructured sparsities, got structure ${nm.n}:${nm.m}` });
  }
  if (nm && nm.kind === 'nm' && p.refine) {
    ctx.addIssue({ code: 'custom', path: ['refine'], message: `${p.refine} refines unstructured masks only, got structure ${nm.n}:${nm.m}` });
  }
  for (const m of p.method) {
    const method = getMethod(m);
    if (p.refine && method.updatesWeights) {
      ctx.addIssue({ code: 'custom', path: ['refine'], message: `${m} updates the weights it keeps; ${p.refine} refines masks of wanda, magnitude or ria` });
    }
    const opts = method.options.safeParse(p[m] ?? {}); // (useVariant has its own checks below)
    if (!opts.success) continue; // reported by the key's own schema
    for (const structure of structures) {
      for (const sparsity of structure.kind === 'nm' ? [structure.n / structure.m] : (p.sparsity ?? [])) {
        try {
          method.check?.({ sparsity, structure }, opts.data, (key) => key); // reported under the key path prune[i].<method>
        } catch (e) {
          ctx.addIssue({ code: 'custom', path: [m], message: (e as Error).message.replace(new RegExp(`^${m}: `), '') });
        }
      }
    }
  }
}

function pruneEntrySchema() {
  return z.strictObject(pruneShape).superRefine((p, ctx) => {
    // Zod still runs this check when a structure string failed its own check (already reported): skip those.
    const structures: Structure[] = [];
    for (const text of p.structure) {
      try {
        structures.push(parseStructure(text));
      } catch {
        return;
      }
    }
    if (p.sparsity === undefined) {
      if (structures.some((s) => s.kind === 'unstructured')) {
        ctx.addIssue({ code: 'custom', path: ['sparsity'], message: 'required for unstructured pruning (a number >= 0 and < 1)' });
      }
    } else {
      for (const s of structures) {
        if (s.kind !== 'nm') continue;
        for (const x of p.sparsity) {
          if (Math.abs(x - s.n / s.m) > 1e-9) {
            ctx.addIssue({
              code: 'custom',
              path: ['sparsity'],
              message: `structure ${s.n}:${s.m} fixes sparsity at ${s.n / s.m}, got ${x} (leave sparsity out for N:M, or use a separate entry)`,
            });
          }
        }
      }
    }
    checkEntryPlan(p, structures, ctx);
    if (p.useVariant) {
      const others = p.method.filter((m) => m !== 'wanda');
      if (others.length > 0) {
        ctx.addIssue({ code: 'custom', path: ['useVariant'], message: `only wanda has a variant, got method ${others.join(', ')}` });
      }
      if (structures.some((s) => s.kind === 'nm')) {
        ctx.addIssue({ code: 'custom', path: ['useVariant'], message: 'the wanda variant is unstructured only, got an N:M structure' });
      }
    }
  });
}

function evalSchema(c: SchemaContext) {
  return z.strictObject({
    ppl: z.array(z.enum(PERPLEXITY_SETS as [PerplexitySet, ...PerplexitySet[]])).default(['wikitext2']), // perplexity sets
    seqlen: int(2).optional(), // perplexity window; default: the model's max_position_embeddings
    maxWindows: int(1).optional(), // evaluate only the first N windows of each perplexity set (default: all)
    tasks: z.array(taskRef(c)).default([]), // zero-shot tasks
    limit: int(1).optional(), // only the first N items of each task (default: all)
    addBos: z.boolean().default(EVAL_DEFAULTS.addBos), // prepend BOS to task contexts (the reference does not)
    meanMetric: z.enum(['acc', 'acc_norm']).default(EVAL_DEFAULTS.meanMetric), // what each task adds to the mean (paper: acc)
    dataDir: dirPath(c, 'data folder').optional(), // folder with wikitext-2-raw-v1/, c4/, tasks/ (like shared/data)
  });
}

/**
 * Defaults of the finetune keys: the fine-tuning stage's (FINETUNE_DEFAULTS of lib/finetune/defaults.ts). The
 * optional keys are filled in from the same object for fingerprints and the report by lib/experiment/context.ts
 * (resolveFinetune); finetune() fills them in itself.
 */
const D = FINETUNE_DEFAULTS;

/**
 * The LoRA stage: every pruned setting (not the dense model) is fine-tuned after its own evaluation and evaluated
 * again (lib/experiment/run.ts). Training windows are drawn from `data` with the pruning run's calibration
 * documents left out.
 */
function finetuneSchema(c: SchemaContext) {
  return z.strictObject({
    rank: int(1).default(D.rank), // LoRA rank (the paper: 8)
    alpha: positiveNumber().default(D.alpha), // LoRA scale numerator (scale = alpha / rank)
    dropout: z
      .number()
      .superRefine((v, ctx) => {
        if (!(v >= 0 && v < 1)) ctx.addIssue({ code: 'custom', message: `must be >= 0 and < 1, got ${v}` });
      })
      .optional(), // dropout on the adapter input (default 0.05)
    targets: z.array(z.enum(LINEAR_NAMES)).min(1).default([...D.targets]), // adapted linears (paper: q, v)
    lr: positiveNumber().default(D.lr), // peak learning rate (AdamW)
    schedule: z.enum(['constant', 'linear', 'cosine']).optional(), // learning-rate decay (default linear)
    warmupSteps: int(0).optional(), // linear warmup steps (default 0)
    maxSteps: int(1), // optimizer steps
    data: filePath(c, 'fine-tuning data file'), // training text (the paper: C4)
    seqlen: int(2).optional(), // tokens per training window; default: the model's max_position_embeddings
    batchSize: int(1).default(D.batchSize), // windows per micro-batch
    gradAccum: int(1).optional(), // micro-batches per optimizer step (default 1)
    seed: int(0).default(D.seed), // window sampling, adapter init and dropout seed
    merge: z.enum(['masked', 'dense', 'none']).optional(), // how the tuned model is evaluated (default masked)
    checkpointEvery: int(1).optional(), // steps between resumable trainer checkpoints (default 50; speed only)
  });
}

/** The results folder: a path, resolved against the experiment file's folder; must not be a file. */
function outputDir(c: SchemaContext) {
  return z
    .string()
    .min(1)
    .superRefine((v, ctx) => {
      const p = resolve(c.baseDir, v);
      if (existsSync(p) && !isDir(p)) ctx.addIssue({ code: 'custom', message: `'${v}' is a file, expected a folder${resolvedNote(v, p)}` });
    })
    .transform((v) => resolve(c.baseDir, v));
}

/** The experiment schema for a file in `baseDir` (paths resolve there; see the top of this file). */
export function experimentSchema(c: SchemaContext) {
  return z.strictObject({
    name: z.string().min(1).default(c.defaultName), // shown in reports; default: the file name
    model: modelRef(c), // checkpoint folder or hub id
    backend: z.enum(BACKEND_NAMES as [BackendName, ...BackendName[]]).default('auto'), // tfjs backend
    threads: z.number().int().min(1).optional(), // wasm compute threads (default: every logical core)
    calibration: calibrationSchema(c),
    prune: oneOrMany(pruneEntrySchema()), // one or more settings (each may sweep)
    dense: z.boolean().default(true), // also evaluate the unpruned model, once
    eval: evalSchema(c).prefault({}),
    finetune: finetuneSchema(c).optional(), // LoRA stage after pruning (sparsity kept)
    // results folder (created by the runner): a path, or { dir, format } where format is how checkpoints are
    // written (dense, or compressed: compressed-tensors sparse formats); normalised by parseExperiment
    output: z.union([outputDir(c), z.strictObject({ dir: outputDir(c), format: z.enum(CHECKPOINT_FORMATS).default(PRUNE_DEFAULTS.format) })]),
    keepCheckpoints: z.boolean().default(false), // keep each pruned checkpoint in output/
    // reuse stored results computed by another package or method version (a warning names them); default: redo
    reuseAnyVersion: z.boolean().default(false),
  });
}

type Schema = ReturnType<typeof experimentSchema>;
/** An experiment as written in a file (before defaults). */
export type ExperimentInput = z.input<Schema>;
/** A validated experiment: defaults filled, lists normalised, local paths absolute. */
/** A validated experiment: defaults filled, lists normalised, local paths absolute, `output` split into the results
 * folder and `outputFormat` (how checkpoints are written). */
export type Experiment = Omit<z.output<Schema>, 'output'> & { output: string; outputFormat: CheckpointFormat };
export type CalibrationConfig = Experiment['calibration'];
export type PruneEntry = Experiment['prune'][number];
export type EvalConfig = Experiment['eval'];
export type FinetuneConfig = NonNullable<Experiment['finetune']>;

/** Known keys of each object, for "did you mean" (keyed by key path with list indices removed). */
function knownKeys(): Record<string, string[]> {
  const c: SchemaContext = { baseDir: '.', defaultName: '' };
  return {
    '': Object.keys(experimentSchema(c).shape),
    calibration: Object.keys(calibrationSchema(c).shape),
    prune: Object.keys(pruneShape),
    eval: Object.keys(evalSchema(c).shape),
    finetune: Object.keys(finetuneSchema(c).shape),
    output: ['dir', 'format'],
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Errors

/** One problem of an experiment file. */
export interface ConfigIssue {
  path: string; // key path, e.g. 'prune[1].sparsity' ('' for the whole file)
  message: string; // what is allowed and what was found
}

/** An experiment file failed to load; `issues` lists every problem, the message shows them all. */
export class ExperimentConfigError extends ConfigError {
  override name = 'ExperimentConfigError';
  constructor(
    readonly file: string,
    readonly issues: ConfigIssue[],
  ) {
    const lines = issues.map((i) => (i.path ? `${i.path}: ${i.message}` : i.message));
    super(lines.length === 1 ? `${file}: ${lines[0]}` : `${file}: ${lines.length} problems:\n  ${lines.join('\n  ')}`);
  }
}

type PathKey = string | number;

/** ['prune', 1, 'sparsity'] -> 'prune[1].sparsity'. */
export function formatPath(path: readonly PathKey[]): string {
  let out = '';
  for (const k of path) out += typeof k === 'number' ? `[${k}]` : out ? `.${k}` : k;
  return out;
}

/**
 * The value at `path` in the raw input, and the path as the user wrote it: a list index that oneOrMany added
 * to a single value is dropped (`prune.sparsity`, not `prune[0].sparsity`, when prune is one object).
 */
function locate(raw: unknown, path: readonly PropertyKey[]): { value: unknown; path: PathKey[] } {
  let value: unknown = raw;
  const out: PathKey[] = [];
  for (const k of path) {
    if (typeof k === 'number') {
      if (Array.isArray(value)) {
        value = value[k];
        out.push(k);
      } else if (k !== 0) {
        value = undefined;
        out.push(k);
      }
    } else {
      const key = String(k);
      value = value && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>)[key] : undefined;
      out.push(key);
    }
  }
  return { value, path: out };
}

function editDistance(a: string, b: string): number {
  const d = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = d[0]!;
    d[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = d[j]!;
      d[j] = Math.min(d[j]! + 1, d[j - 1]! + 1, prev + (a[i - 1]!.toLowerCase() === b[j - 1]!.toLowerCase() ? 0 : 1));
      prev = cur;
    }
  }
  return d[b.length]!;
}

function suggest(key: string, known: readonly string[]): string | null {
  let best: string | null = null;
  let bestD = Infinity;
  for (const k of known) {
    const dist = editDistance(key, k);
    if (dist < bestD) [best, bestD] = [k, dist];
  }
  return best !== null && bestD <= Math.max(1, Math.floor(key.length / 3)) ? best : null;
}

function issuesOf(error: z.ZodError, raw: unknown): ConfigIssue[] {
  return describeIssues(error.issues, raw);
}

function describeIssues(issues: readonly z.core.$ZodIssue[], raw: unknown): ConfigIssue[] {
  const keys = knownKeys();
  const out: ConfigIssue[] = [];
  for (const issue of issues) {
    const { value, path } = locate(raw, issue.path);
    const where = formatPath(path);
    switch (issue.code) {
      case 'invalid_union': {
        // `output`: a path or { dir, format }; report the branch that matches the value's kind
        const branch = issue.errors[value !== null && typeof value === 'object' ? issue.errors.length - 1 : 0] ?? [];
        if (value === undefined) out.push({ path: where, message: 'required (a string)' });
        else out.push(...describeIssues(branch.map((i) => ({ ...i, path: [...issue.path, ...i.path] })), raw));
        break;
      }
      case 'unrecognized_keys': {
        const known = keys[path.filter((k) => typeof k === 'string').join('.')] ?? [];
        for (const key of issue.keys) {
          const s = suggest(key, known);
          out.push({
            path: formatPath([...path, key]),
            message: `unknown key '${key}'${s ? ` (did you mean '${s}'?)` : ''}; allowed: ${known.join(', ')}`,
          });
        }
        break;
      }
      case 'invalid_type': {
        const expected = issue.expected === 'int' ? 'an integer' : `${/^[aeiou]/.test(issue.expected) ? 'an' : 'a'} ${issue.expected}`;
        out.push({ path: where, message: value === undefined ? `required (${expected})` : `expected ${expected}, got ${describe(value)}` });
        break;
      }
      case 'invalid_value':
        out.push({ path: where, message: `must be one of ${issue.values.map(String).join(', ')}, got ${describe(value)}` });
        break;
      case 'too_small':
        out.push({
          path: where,
          message:
            issue.origin === 'array' ? `must list at least ${String(issue.minimum)}, got an empty list` : `must not be empty`,
        });
        break;
      default:
        out.push({ path: where, message: issue.message });
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Loading

/** Parse 'a.b[2].c' or 'a.b.2.c' into ['a', 'b', 2, 'c']. */
function parseOverrideKey(key: string): PathKey[] {
  const out: PathKey[] = [];
  for (const part of key.split('.')) {
    const m = /^([^[\]]*)((?:\[\d+\])*)$/.exec(part);
    if (!m || (m[1] === '' && m[2] === '')) throw new ConfigError(`override '${key}': not a key path like 'calibration.nsamples' or 'prune[0].sparsity'`);
    if (m[1] !== '') out.push(/^\d+$/.test(m[1]!) ? Number(m[1]) : m[1]!);
    for (const idx of m[2]!.matchAll(/\[(\d+)\]/g)) out.push(Number(idx[1]));
  }
  return out;
}

/** Command-line values arrive as strings: read them as YAML scalars/flow lists ('8' -> 8, '[0.5,0.6]' -> list). */
function overrideValue(v: unknown): unknown {
  if (typeof v !== 'string') return v;
  try {
    return YAML.parse(v) as unknown;
  } catch {
    return v;
  }
}

/** Keys whose values are paths: overrides of these are resolved against the current working directory. */
const PATH_KEYS = new Set(['model', 'calibration.source', 'eval.dataDir', 'finetune.data', 'output', 'output.dir']);

function applyOverrides(raw: Record<string, unknown>, overrides: Record<string, unknown>): Record<string, unknown> {
  const root = structuredClone(raw);
  for (const [key, given] of Object.entries(overrides)) {
    const path = parseOverrideKey(key);
    let value = overrideValue(given);
    const dotted = formatPath(path);
    if (PATH_KEYS.has(dotted) && typeof value === 'string') {
      const local = dotted !== 'model' || looksLocal(value) || existsSync(resolve(value));
      if (local) value = resolve(value);
    }
    let node: unknown = root;
    for (let i = 0; i < path.length - 1; i++) {
      const k = path[i]!;
      const container = node as Record<PathKey, unknown>;
      if (i === 0 && k === 'output' && typeof container[k] === 'string') container[k] = { dir: container[k] }; // output.format=...
      if (container[k] === undefined) container[k] = typeof path[i + 1] === 'number' ? [] : {};
      node = container[k];
      if (node === null || typeof node !== 'object') {
        throw new ConfigError(`override '${key}': '${formatPath(path.slice(0, i + 1))}' is ${describe(node)}, not an object or list`);
      }
    }
    (node as Record<PathKey, unknown>)[path[path.length - 1]!] = value;
  }
  return root;
}

/** Read a .yaml/.yml/.json file into a plain object. */
function readConfigFile(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new ConfigError(`${file}: cannot read experiment file (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  const ext = extname(file).toLowerCase();
  let value: unknown;
  if (ext === '.json') {
    try {
      value = JSON.parse(text);
    } catch (e) {
      throw new ConfigError(`${file}: invalid JSON (${(e as Error).message})`);
    }
  } else if (ext === '.yaml' || ext === '.yml') {
    const doc = YAML.parseDocument(text, { prettyErrors: true });
    const first = doc.errors[0];
    if (first) {
      const pos = first.linePos?.[0];
      const at = pos ? `:${pos.line}:${pos.col}` : '';
      throw new ConfigError(`${file}${at}: invalid YAML (${first.message.split('\n')[0]})`);
    }
    value = doc.toJS();
  } else {
    throw new ConfigError(`${file}: experiment files must end in .yaml, .yml or .json, got '${ext || '(none)'}'`);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new ConfigError(`${file}: an experiment file must be a mapping of keys (model, calibration, prune, ...), got ${describe(value)}`);
  }
  return value as Record<string, unknown>;
}

/**
 * Validate an already-read experiment object. `file` names it in errors and fixes where relative paths resolve
 * (its folder); `overrides` as in loadExperiment.
 */
export function parseExperiment(raw: Record<string, unknown>, file: string, overrides: Record<string, unknown> = {}, vars: PathVars = {}): Experiment {
  const input = expandVars(applyOverrides(raw, overrides), '', vars) as Record<string, unknown>;
  const ctx: SchemaContext = { baseDir: dirname(resolve(file)), defaultName: basename(file, extname(file)) };
  const result = experimentSchema(ctx).safeParse(input);
  if (!result.success) {
    const overridden = Object.keys(overrides).map((k) => formatPath(parseOverrideKey(k)));
    const fromOverride = (path: string) => overridden.some((o) => path === o || path.startsWith(`${o}.`) || path.startsWith(`${o}[`));
    const issues = issuesOf(result.error, input).map((i) =>
      fromOverride(i.path) ? { ...i, message: `${i.message} (set by a command-line override)` } : i,
    );
    throw new ExperimentConfigError(file, issues);
  }
  const { output, ...rest } = result.data;
  const exp: Experiment = typeof output === 'string' ? { ...rest, output, outputFormat: PRUNE_DEFAULTS.format } : { ...rest, output: output.dir, outputFormat: output.format };
  // Settings must be unique across entries (a duplicate would overwrite another's results).
  const seen = new Map<string, number>();
  const dup: ConfigIssue[] = [];
  const entryPath = (i: number) => (Array.isArray(input['prune']) ? `prune[${i}]` : 'prune');
  exp.prune.forEach((entry, i) => {
    for (const s of expandEntry(entry)) {
      const first = seen.get(s.id);
      if (first !== undefined) dup.push({ path: entryPath(i), message: `setting '${s.id}' appears twice (first in ${entryPath(first)})` });
      else seen.set(s.id, i);
    }
  });
  if (dup.length > 0) throw new ExperimentConfigError(file, dup);
  return exp;
}

/**
 * Load and validate an experiment file (.yaml, .yml or .json).
 * `overrides`: flat key paths from the command line, applied before validation, e.g.
 * `{ 'calibration.nsamples': 8, 'prune[0].sparsity': '[0.5, 0.6]' }` (strings are read as YAML values).
 * Throws ExperimentConfigError (every problem, with key paths) or ConfigError (unreadable file, bad override key).
 */
export function loadExperiment(file: string, overrides: Record<string, unknown> = {}, vars: PathVars = {}): Experiment {
  return parseExperiment(readConfigFile(file), file, overrides, vars);
}

/** `${shared}` and `${cwd}` in every string value (lib/paths.ts), so shipped configs never point into the package. */
function expandVars(node: unknown, path: string, vars: PathVars): unknown {
  if (typeof node === 'string') return expandPathVars(node, path || '(root)', vars);
  if (Array.isArray(node)) return node.map((v, i) => expandVars(v, `${path}[${i}]`, vars));
  if (node !== null && typeof node === 'object') {
    return Object.fromEntries(Object.entries(node).map(([k, v]) => [k, expandVars(v, path ? `${path}.${k}` : k, vars)]));
  }
  return node;
}

// ---------------------------------------------------------------------------------------------------------------
// Settings

/** One concrete pruning run. */
export interface PruneSetting {
  id: string; // stable and unique: 'wanda-unstructured-0.5', 'wanda-2of4', 'wanda-variant-unstructured-0.5'
  method: MethodName;
  structure: Structure;
  sparsity: number; // target zero fraction (n/m for N:M)
  useVariant: boolean;
  methodOptions: Record<string, unknown>; // the method's own options as written (variant: true for useVariant)
  layerwise: { name: LayerwiseName; options: Record<string, unknown> } | null;
  refine: { name: RefinerName; options: Record<string, unknown> } | null;
  targets: string[];
  ignore: string[];
}

/** '-permute', '-alpha0.3': the options written for a method, in key order ('-variant' for Wanda's variant). */
function optionTag(options: Record<string, unknown>): string {
  return Object.keys(options)
    .sort()
    .map((k) => {
      const v = options[k];
      return v === true ? `-${k}` : v === false ? `-no${k}` : `-${k}${String(v)}`;
    })
    .join('');
}

/** A short stable hash of a JSON value (for target/ignore lists in ids). */
function shortHash(v: unknown): string {
  let h = 0x811c9dc5;
  for (const ch of JSON.stringify(v)) h = Math.imul(h ^ ch.charCodeAt(0), 0x01000193) >>> 0;
  return h.toString(16).padStart(8, '0');
}

/** The plan part of an id: method options, '+owl', '+dsnot', and '-sel<hash>' for targets/ignore lists. */
export function planTag(s: Pick<PruneSetting, 'methodOptions' | 'layerwise' | 'refine' | 'targets' | 'ignore'>): string {
  const withOptions = (x: { name: string; options: Record<string, unknown> } | null): string => (x ? `+${x.name}${optionTag(x.options)}` : '');
  const sel = s.targets.length + s.ignore.length > 0 ? `-sel${shortHash([s.targets, s.ignore])}` : '';
  return optionTag(s.methodOptions) + withOptions(s.layerwise) + withOptions(s.refine) + sel;
}

/** The stable id of a setting (also the name of its results and checkpoint folders). */
export function settingId(s: Omit<PruneSetting, 'id'>): string {
  const method = s.method + planTag(s);
  return s.structure.kind === 'unstructured' ? `${method}-unstructured-${s.sparsity}` : `${method}-${s.structure.n}of${s.structure.m}`;
}

/** The options of `owner` that differ from its defaults (so ids and fingerprints name only what was chosen). */
function nonDefault(owner: OptionOwner, options: Record<string, unknown>): Record<string, unknown> {
  const defaults = ownerSchema(owner).parse({});
  return Object.fromEntries(Object.entries(options).filter(([k, v]) => JSON.stringify(v) !== JSON.stringify(defaults[k])));
}

function expandEntry(entry: PruneEntry): PruneSetting[] {
  const out: PruneSetting[] = [];
  for (const method of entry.method) {
    for (const text of entry.structure) {
      const structure = parseStructure(text);
      const sparsities = structure.kind === 'nm' ? [structure.n / structure.m] : (entry.sparsity ?? []);
      for (const sparsity of sparsities) {
        const methodOptions = nonDefault(method, { ...(entry.useVariant ? { variant: true } : {}), ...(entry[method] ?? {}) });
        const s = {
          method,
          structure,
          sparsity,
          useVariant: methodOptions['variant'] === true,
          methodOptions,
          layerwise: entry.layerwise ? { name: entry.layerwise, options: nonDefault(entry.layerwise, entry[entry.layerwise] ?? {}) } : null,
          refine: entry.refine ? { name: entry.refine, options: nonDefault(entry.refine, entry[entry.refine] ?? {}) } : null,
          targets: entry.targets,
          ignore: entry.ignore,
        };
        out.push({ id: settingId(s), ...s });
      }
    }
  }
  return out;
}

/**
 * The concrete pruning settings of an experiment, in file order (entries in order; inside an entry method, then
 * structure, then sparsity, each in the order written). The dense baseline is not included: see `exp.dense`
 * and DENSE_ID.
 */
export function expandSettings(exp: Experiment): PruneSetting[] {
  return exp.prune.flatMap(expandEntry);
}
