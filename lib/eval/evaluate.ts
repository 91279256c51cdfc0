/** `evaluate(...)`: perplexity sets and zero-shot tasks on one loaded model, the same graph that pruning uses. */
import type { HubAccess } from '../hub/download.js';
import { statSync } from 'node:fs';
import { ConfigError, optionKey, type OptionName } from '../errors.js';
import type { HfTokenizer } from '../model/tokenizer.js';
import type { ForwardOptions } from '../model/llama.js';
import type { LoadedModel } from '../model/load.js';
import { evaluationCut, evaluationText, perplexityOfIds, PERPLEXITY_SETS, type PerplexitySet } from './perplexity.js';
import { cachedTextIds } from './token-cache.js';
import { perplexitySetFile, defaultDataDir } from './datasets.js';
import { loadTask, TASKS, type LoadedTask } from './tasks.js';
import { evaluateTasks } from './harness.js';
import { modelScorer } from './scorer.js';
import { EVAL_DEFAULTS } from './defaults.js';
import type { AccuracyMetric, PerplexityResult, ZeroShotResults } from './results.js';

export interface EvaluateConfig {
  ppl?: PerplexitySet[]; // perplexity sets (wikitext2, c4)
  pplFiles?: Partial<Record<PerplexitySet, string>>; // explicit files instead of the data folder
  seqlen?: number; // perplexity window (default: the model context, as the reference)
  maxWindows?: number; // score only the first N windows (default all)
  tasks?: string[]; // task names (see TASKS), name=FILE, or paths of custom multiple-choice files
  limit?: number; // first N items per task
  dataDir?: string; // folder laid out like shared/data (default: defaultDataDir(), which reads no environment)
  batchSize?: number; // perplexity windows per forward (default EVAL_DEFAULTS.batchSize)
  taskBatchSize?: number; // scorer requests per forward (default EVAL_DEFAULTS.taskBatchSize)
  addBos?: boolean; // prepend BOS to task contexts (the reference did not)
  meanMetric?: AccuracyMetric;
  download?: boolean; // fetch missing sets from the hub when online (default EVAL_DEFAULTS.download: off)
  hubToken?: string | undefined; // hub token for --download (the CLI: --hf-token, else $HF_TOKEN)
  hub?: HubAccess | undefined; // hub endpoint and cache for --download (the CLI: $HF_ENDPOINT, $HF_HUB_CACHE)
  tokenCacheDir?: string | undefined; // disk cache of tokenized sets (default tokenCacheDir(): no environment read)
  forward?: ForwardOptions; // e.g. LoRA adapters
  idsCache?: EvaluationIdsCache; // token ids of the perplexity sets (default: the process-wide one)
  optionName?: OptionName; // how messages name the options (default the library's names: ppl, seqlen)
  onProgress?: (what: string, done: number, total: number, extra?: string) => void;
}

export interface EvaluateResult {
  perplexity: (PerplexityResult & { seqlen: number; seconds: number; file: string })[];
  zeroShot: ZeroShotResults | null;
  seconds: number;
}

/**
 * Token ids of evaluation sets: tokenizing WikiText-2 test takes close to a minute, so the ids are cached on disk
 * (lib/eval/token-cache.ts: keyed by the file's content and the tokenizer) and kept in memory here, since an
 * experiment evaluates many models with the same tokenizer. Keyed by set, file (path, size, mtime) and the
 * tokenizer's fingerprint (the whole text's ids; c4's cut to 256 x seqlen is applied on return); holds the last
 * `capacity` streams. `evaluate` uses the process-wide `evaluationIdsCache` unless given its own.
 */
export class EvaluationIdsCache {
  private readonly entries = new Map<string, number[]>();

  constructor(readonly capacity = 8) {}

  async get(
    set: PerplexitySet,
    file: string,
    tokenizer: HfTokenizer,
    seqlen: number,
    onProgress?: (what: string, done: number, total: number, extra?: string) => void,
    cacheDir?: string,
  ): Promise<number[]> {
    const st = statSync(file);
    const key = [set, file, st.size, st.mtimeMs, tokenizer.fingerprint].join('|');
    let ids = this.entries.get(key);
    if (!ids) {
      ids = await cachedTextIds(set, file, tokenizer, () => evaluationText(set, file), onProgress, cacheDir);
      if (this.entries.size >= this.capacity) this.entries.delete(this.entries.keys().next().value!);
      this.entries.set(key, ids);
    }
    return evaluationCut(set, ids, seqlen);
  }

  get size(): number {
    return this.entries.size;
  }

  /** Forget every stream (frees their memory). */
  clear(): void {
    this.entries.clear();
  }
}

/** The process-wide cache `evaluate` uses by default; `evaluationIdsCache.clear()` frees it. */
export const evaluationIdsCache = new EvaluationIdsCache();

function looksLikeFile(task: string): boolean {
  return /[\\/]|\.(jsonl|json|parquet|gz)$/.test(task);
}

/** Evaluate a loaded model. Throws ConfigError/DataError for unknown sets, tasks or missing files. */
export async function evaluate(m: LoadedModel, cfg: EvaluateConfig): Promise<EvaluateResult> {
  const t0 = performance.now();
  const optionName = cfg.optionName ?? optionKey;
  const dataDir = cfg.dataDir ?? defaultDataDir();
  const seqlen = cfg.seqlen ?? m.model.config.maxPositions;
  const perplexity: EvaluateResult['perplexity'] = [];
  for (const set of cfg.ppl ?? []) {
    if (!PERPLEXITY_SETS.includes(set)) {
      throw new ConfigError(`${optionName('ppl')}: '${String(set)}' is not one of ${PERPLEXITY_SETS.join(', ')}`);
    }
    const file = cfg.pplFiles?.[set] ?? (await perplexitySetFile(set, dataDir, { download: cfg.download ?? EVAL_DEFAULTS.download, hubToken: cfg.hubToken, hub: cfg.hub }));
    const ids = await (cfg.idsCache ?? evaluationIdsCache).get(set, file, m.tokenizer, seqlen, cfg.onProgress, cfg.tokenCacheDir);
    const r = await perplexityOfIds(m.model, ids, {
      seqlen,
      ...(cfg.batchSize !== undefined ? { batchSize: cfg.batchSize } : {}),
      ...(cfg.maxWindows !== undefined ? { maxWindows: cfg.maxWindows } : {}),
      ...(cfg.forward ? { forward: cfg.forward } : {}),
      optionName,
      onProgress: (d, t) => cfg.onProgress?.(`${set} ppl`, d, t),
    });
    perplexity.push({ dataset: set, ppl: r.ppl, windows: r.windows, tokens: r.tokens, tokensPerSecond: r.tokensPerSecond, seqlen, seconds: r.seconds, file });
  }
  let zeroShot: ZeroShotResults | null = null;
  if (cfg.tasks && cfg.tasks.length > 0) {
    const tasks: LoadedTask[] = [];
    for (const t of cfg.tasks) {
      // `name` (a known task, default file under dataDir), `name=FILE` (a known task from FILE), or `FILE` (a custom
      // multiple-choice file, named after the file).
      const eq = t.indexOf('=');
      const [name, file] =
        eq > 0 ? [t.slice(0, eq), t.slice(eq + 1)] : looksLikeFile(t) ? [t.replace(/^.*[\\/]/, '').replace(/\..*$/, ''), t] : [t, undefined];
      if (file !== undefined && eq < 0 && TASKS[name] !== undefined) {
        throw new ConfigError(`${optionName('tasks')} ${t}: a custom task file may not be named like the built-in task '${name}'; write ${name}=${t} to read it as ${name}`);
      }
      tasks.push(
        await loadTask(name, {
          dataDir,
          ...(file !== undefined ? { file } : {}),
          ...(cfg.limit !== undefined ? { limit: cfg.limit } : {}),
        }),
      );
    }
    zeroShot = await evaluateTasks({
      tasks,
      tokenizer: m.tokenizer,
      scorer: modelScorer(m.model, cfg.forward ?? {}),
      batchSize: cfg.taskBatchSize ?? EVAL_DEFAULTS.taskBatchSize,
      ...(cfg.limit !== undefined ? { limit: cfg.limit } : {}),
      ...(cfg.addBos !== undefined ? { addBos: cfg.addBos } : {}),
      ...(cfg.meanMetric !== undefined ? { meanMetric: cfg.meanMetric } : {}),
      onProgress: (d, t) => cfg.onProgress?.('tasks', d, t),
    });
  }
  return { perplexity, zeroShot, seconds: (performance.now() - t0) / 1000 };
}
