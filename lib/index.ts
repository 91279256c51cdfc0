/**
 * tfjs-llm-prune public API. Named exports only; everything a user or notebook needs to load, prune, evaluate and
 * fine-tune LLaMA-family checkpoints.
 */
// errors
export { LlmPruneError, CheckpointError, UnsupportedError, DataError, ConfigError, OutputLockedError, cliFlag, keyPath, type OptionName } from './errors.js';
// backend
export { initBackend, activeBackend, defaultThreads, BACKEND_NAMES, type BackendName, type BackendInfo, type BackendOptions } from './model/backend.js';
export { kernels, kernelsFor, type Kernels } from './model/backend.js';
export { adapterLine, type AdapterInfo } from './model/webgpu.js';
// model: config, checkpoints, weights I/O, decoder, tokenizer
export { parseConfig, readConfig, parameterCount, SUPPORTED_ARCHITECTURES, type LlamaConfig, type RopeScaling } from './model/config.js';
export {
  SafetensorsFile,
  SafetensorsWriter,
  DTYPES,
  decodeToFloat32,
  encodeFromFloat32,
  type DType,
  type TensorEntry,
  type PlannedTensor,
} from './model/safetensors.js';
export {
  Checkpoint,
  CheckpointWriter,
  expectedTensors,
  blockTensors,
  linearShape,
  linearTensorName,
  compressOptions,
  sparsityStructureOf,
  type WriteOptions,
  type CompressOptions,
  type StorageReport,
} from './model/checkpoint.js';
export {
  CHECKPOINT_FORMATS,
  readSparsityInfo,
  compressWeight,
  decompressWeight,
  quantizationConfigBlock,
  type CheckpointFormat,
  type SparseFormat,
  type SparsityInfo,
} from './model/compressed-tensors.js';
export {
  ARCHITECTURES,
  LINEARS,
  INPUT_GROUP,
  NORM_KEYS,
  FUSED_MODULES,
  blockNorms,
  fusedTensors,
  storedTensors,
  EMBED_TOKENS,
  FINAL_NORM,
  LM_HEAD,
  architectureSpec,
  hasBias,
  normTensorName,
  type ArchitectureSpec,
  type LinearSpec,
  type InputGroup,
  type NormKey,
  type NormSpec,
  type FusedTensor,
  type TensorSpec,
} from './model/architecture.js';
export {
  LlamaModel,
  linearWeight,
  setLinearWeight,
  applyLinear,
  loadBlockWeights,
  blockWeightsToArrays,
  disposeBlock,
  ropeInvFreq,
  type BlockWeights,
  type Linear,
  type Tap,
  type ForwardOptions,
} from './model/llama.js';
export { HfTokenizer, type TextTokenizer, type TokenizerInfo } from './model/tokenizer.js';
export { loadModel, type LoadedModel } from './model/load.js';
export { resolveModelPath, looksLikeHubId, hubToken, type HubOptions, type HubTokenEnv } from './model/hub.js';
export { StagedFolder, writeModelFiles, writeJsonAtomic, saveCheckpoint, type SaveOptions } from './model/save.js';
export { generate, generateIds, inspectModel, type GenerateResult, type ModelInfo } from './generate.js';
// data
export { PythonRandom } from './data/random.js';
export { readRows, readTexts, readTextFile, detectFormat, type Row, type ReadRowsOptions, type ReadTextsOptions } from './data/sources.js';
export {
  sampleWindows,
  sampleWindowsFromText,
  calibrationFromFile,
  windowsHash,
  type CalibrationSet,
  type CalibrationWindow,
} from './data/calibration.js';
// pruning
export {
  LINEAR_NAMES,
  type LinearName,
  type Structure,
  type PruneMethod,
  type PruneOptions,
  type PruneResult,
  type LayerStats,
  type LinearRef,
  type MaskRefiner,
  type LayerwiseAllocator,
} from './prune/method.js';
export {
  getMethod,
  getLayerwise,
  getRefiner,
  optionFlags,
  METHOD_NAMES,
  LAYERWISE_NAMES,
  REFINER_NAMES,
  type MethodName,
  type LayerwiseName,
  type RefinerName,
  type OptionFlag,
} from './prune/registry.js';
export { ActivationStats, createStats, type StatName } from './prune/stats.js';
export { buildPlan, selectLinears, matchesLinear, type PrunePlan, type BlockPlan, type LinearPlan, type PlanSpec } from './prune/plan.js';
export { ria, riaMetric, riaPermutation } from './prune/ria.js';
export { linearSumAssignment } from './prune/lsa.js';
export { owl, owlAllocate, owlSparsities, outlierRatio, type OwlAllocation } from './prune/owl.js';
export { dsnot, dsnotCycle } from './prune/dsnot.js';
export { smallestPerRowMask, nmMask, structureMask, applyMask, validateOptions, describeStructure } from './prune/mask.js';
export { magnitude, magnitudeMask } from './prune/magnitude.js';
export { wanda, WandaStats, wandaMetric, wandaVariantMask } from './prune/wanda.js';
export { sparsegpt, SparseGptStats } from './prune/sparsegpt.js';
export {
  runLayerLoop,
  type LayerLoopOptions,
  type LayerLoopResult,
  type BlockSparsity,
  type PhaseTimes,
  type PruneProgress,
} from './prune/pipeline.js';
export { prune, parseStructure, type PruneConfig, type PruneReport } from './prune/prune.js';
export { memoryEstimate, activationBytes, ResumeMismatchError, type ActivationStorage } from './prune/resume.js';
// evaluation
export {
  perplexityOfIds,
  windowLosses,
  makeWindows,
  evaluationIds,
  PERPLEXITY_SETS,
  type PerplexitySet,
  type PerplexityOptions,
} from './eval/perplexity.js';
export { TASKS, PAPER_TASKS, loadTask, customTask, type TaskItem, type LoadedTask } from './eval/tasks.js';
export { evaluateTasks, encodePair, meanStderr, type Request, type Score, type Scorer } from './eval/harness.js';
export { modelScorer } from './eval/scorer.js';
export { resultsTable, type TaskResult, type ZeroShotResults, type PerplexityResult, type WindowPerplexity, type EvaluationRow } from './eval/results.js';
export { evaluate, EvaluationIdsCache, evaluationIdsCache, type EvaluateConfig, type EvaluateResult } from './eval/evaluate.js';
export { defaultDataDir, perplexitySetFile, type DataDirEnv } from './eval/datasets.js';
export { tokenCacheDir, type TokenCacheEnv } from './eval/token-cache.js';
// experiments
export { loadExperiment, parseExperiment, expandSettings, pruneOptionName, type Experiment, type PruneSetting } from './experiment/schema.js';
export { mergeResults, parseShard, shardOf, type Shard, type MergeResult } from './experiment/shard.js';
export { writeReport, markdownTable, type SettingResult, type ResultsInput, type FinetuneResult } from './experiment/report.js';
// progress
export { createProgress, type ProgressReporter } from './progress.js';
export { runExperiment, type RunOptions, type RunResult } from './experiment/run.js';
// fine-tuning (LoRA, sparsity kept)
export { finetune, type FinetuneOptions, type FinetuneReport, type FinetuneProgress } from './finetune/train.js';
export { resolveFinetuneOptions, type FinetuneEvalOptions, type ResolvedFinetuneOptions } from './finetune/options.js';
export { ensureGradients, causalLmLoss } from './finetune/loss.js';
export { LoraTrainer, type TrainerOptions } from './finetune/trainer.js';
export { LoraAdapters, DEFAULT_LORA, type LoraConfig } from './finetune/lora.js';
export { FINETUNE_DEFAULTS } from './finetune/defaults.js';
export { PRUNE_DEFAULTS } from './prune/defaults.js';
export { EVAL_DEFAULTS } from './eval/defaults.js';
export { loadAdapters, saveAdapters, writeMergedCheckpoint, type LoadedAdapters, type MergeReport } from './finetune/peft.js';
