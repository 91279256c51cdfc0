/**
 * tfjs-llm-prune public API: what a program calls to load, prune, evaluate and fine-tune LLaMA-family checkpoints,
 * run experiment files, and build its own masks from the same metrics: the core's API (lib/api.ts) with the Node layer
 * installed, plus the names that only Node has. Every name is documented, one line each, in docs/api.md; everything
 * else is internal (a test or a notebook may import internal modules by path).
 */
import './node/platform.js'; // the Node platform layer (files, workers, backends, hashing): installed on import
export * from './api.js'; // the core's API (lib/api.ts)
// Node only: the token cache folder, shipped configs, progress on stderr, local files as byte sources and sinks
export { tokenCacheDir } from './eval/token-cache.js';
export { experimentFile, shippedConfigs } from './experiment/configs.js';
export { createProgress, type ProgressReporter } from './progress.js';
export { fileSource, fileFolder } from './node/index.js';
