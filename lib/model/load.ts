import { Checkpoint } from './checkpoint.js';
import { LlamaModel } from './llama.js';
import { HfTokenizer } from './tokenizer.js';
import { resolveModelPath } from './hub.js';
import type { Kernels } from './backend.js';

/** A loaded checkpoint: model weights, tokenizer, and the open checkpoint files (for lazy block reads). */
export interface LoadedModel {
  dir: string;
  checkpoint: Checkpoint;
  model: LlamaModel;
  tokenizer: HfTokenizer;
  /** Free tensors and close files. */
  dispose(): void;
}

/**
 * Load a checkpoint folder (or a hub id, fetched into the cache when online). `blocks: false` loads only
 * embeddings, final norm and lm_head; the pruning pipeline then streams blocks itself. `hubToken`: for gated hub models.
 * `kernels`: the model's kernel choices (lib/model/backend.ts; default: those of the backend active at each forward).
 */
export async function loadModel(
  model: string,
  options: { blocks?: boolean; cacheDir?: string; hubToken?: string | undefined; kernels?: Kernels } = {},
): Promise<LoadedModel> {
  const dir = await resolveModelPath(model, { cacheDir: options.cacheDir, token: options.hubToken });
  const checkpoint = Checkpoint.open(dir);
  try {
    const tokenizer = await HfTokenizer.fromFolder(dir);
    const m = LlamaModel.fromCheckpoint(checkpoint, {
      ...(options.blocks === false ? { blocks: false } : {}),
      ...(options.kernels ? { kernels: options.kernels } : {}),
    });
    return {
      dir,
      checkpoint,
      model: m,
      tokenizer,
      dispose() {
        m.dispose();
        checkpoint.close();
      },
    };
  } catch (e) {
    checkpoint.close();
    throw e;
  }
}

