/**
 * The public API of the platform-neutral core: every name here works on any installed platform (lib/platform/).
 * Two entries re-export it: lib/index.ts (the package's Node entry, which installs the Node layer and adds the
 * Node-only names) and lib/browser/index.ts (`tfjs-llm-prune/browser`, the browser layer). Every name is documented,
 * one line each, in docs/api.md.
 */
// errors
export { LlmPruneError, CheckpointError, UnsupportedError, DataError, ConfigError, OutputLockedError, cliFlag, type OptionName } from './errors.js';
// backend
export { initBackend, activeBackend, defaultThreads, BACKEND_NAMES, type BackendName, type BackendInfo, type BackendOptions } from './model/backend.js';
// models: load, inspect, generate, save
export { loadModel, type LoadedModel } from './model/load.js';
export { generate, inspectModel, type GenerateResult, type ModelInfo } from './generate.js';
export { resolveModelPath, type HubOptions } from './model/hub.js';
export { readConfig, SUPPORTED_ARCHITECTURES, type LlamaConfig } from './model/config.js';
export { LINEAR_NAMES, parameterCount, type LinearName } from './model/architecture.js';
export type { LlamaModel } from './model/llama.js';
export type { HfTokenizer } from './model/tokenizer.js';
export { Checkpoint } from './model/checkpoint.js';
export { saveCheckpoint, type SaveOptions } from './model/save.js';
export { DTYPES, type DType } from './model/safetensors.js';
export { CHECKPOINT_FORMATS, type CheckpointFormat } from './model/compressed-tensors.js';
// calibration data
export { calibrationFromFile, type CalibrationSet, type CalibrationWindow } from './data/calibration.js';
// pruning
export { prune, type PruneConfig, type PruneReport } from './prune/prune.js';
export { parseStructure } from './prune/structure.js';
export type { Structure } from './prune/method.js';
export { METHOD_NAMES, LAYERWISE_NAMES, REFINER_NAMES, type MethodName, type LayerwiseName, type RefinerName } from './prune/registry.js';
export { PRUNE_DEFAULTS } from './prune/defaults.js';
// building blocks: the metrics and masks the methods use, for masks of your own
export { WandaStats, wandaMetric } from './prune/wanda.js';
export { magnitudeMask } from './prune/magnitude.js';
export { structureMask, applyMask } from './prune/mask.js';
// evaluation
export { evaluate, type EvaluateConfig, type EvaluateResult } from './eval/evaluate.js';
export { perplexityOfIds, PERPLEXITY_SETS, type PerplexitySet, type PerplexityOptions } from './eval/perplexity.js';
export { TASKS, PAPER_TASKS } from './eval/tasks.js';
export { resultsTable, type TaskResult, type ZeroShotResults, type PerplexityResult, type WindowPerplexity, type EvaluationRow } from './eval/results.js';
export { defaultDataDir } from './eval/datasets.js';
export { EVAL_DEFAULTS } from './eval/defaults.js';
// experiments
export { loadExperiment, parseExperiment, type Experiment } from './experiment/schema.js';
export { runExperiment, type RunOptions, type RunResult } from './experiment/run.js';
export { mergeResults, parseShard, type Shard, type MergeResult } from './experiment/shard.js';
export { markdownTable, type SettingResult } from './experiment/report.js';
// fine-tuning (LoRA, sparsity kept)
export { finetune, type FinetuneReport, type FinetuneProgress } from './finetune/train.js';
export type { FinetuneOptions } from './finetune/options.js';
export { FINETUNE_DEFAULTS } from './finetune/defaults.js';
export { DEFAULT_LORA, type LoraConfig } from './finetune/lora.js';
export { loadAdapters, type LoadedAdapters } from './finetune/peft.js';
// platform: the injected runtime layer, byte sources and sinks for checkpoints (docs/architecture.md)
export { installPlatform, platform, type Platform } from './platform/index.js';
export { bytesSource, blobSource, httpSource, MemoryFolder, type ByteSource, type ByteSink, type SinkFolder } from './platform/bytes.js';
