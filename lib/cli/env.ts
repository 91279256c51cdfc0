/**
 * The environment variables the package honours. The library reads none of them (it takes values from its caller);
 * the CLI reads them here and passes them on. (lib/bin.ts and lib/interrupt.ts pass the supervisor's log file to
 * the child through the environment; lib/model/webgpu.ts sets EGL_PLATFORM for Mesa before Dawn loads.)
 *   LLM_PRUNE_SHARED  the shared folder with models/ and data/ (--shared overrides it)
 *   LLM_PRUNE_DATA    the evaluation data folder (--data-dir overrides it; see defaultDataDir)
 *   LLM_PRUNE_CACHE   the token cache (else $XDG_CACHE_HOME/llm-prune, else ~/.cache/llm-prune; see tokenCacheDir)
 *   LLM_PRUNE_MODEL   the demo's model
 *   HF_TOKEN, HUGGING_FACE_HUB_TOKEN  the hub token (--hf-token overrides them)
 *   HF_ENDPOINT       the hub's address (default https://huggingface.co; lib/cli/hub.ts)
 *   HF_HUB_CACHE, HF_HOME  the hub cache (default ~/.cache/huggingface/hub; lib/cli/hub.ts)
 */
import { defaultDataDir } from '../eval/datasets.js';
import { tokenCacheDir } from '../eval/token-cache.js';
import { hubToken } from '../model/hub.js';

/** An environment: process.env, or a record a test or an embedding program builds. */
export type Env = Readonly<Record<string, string | undefined>>;

/** The process environment: read by the CLI only. */
export function processEnv(): Env {
  return process.env;
}

/** The shared folder given: --shared, else $LLM_PRUNE_SHARED; undefined lets findSharedDir look at ./shared, ../shared. */
export function sharedFolder(flag: string | undefined, env: Env): string | undefined {
  return flag || env['LLM_PRUNE_SHARED'] || undefined;
}

/** The hub token: --hf-token, else $HF_TOKEN, else $HUGGING_FACE_HUB_TOKEN; undefined if none. Never printed. */
export function hubTokenOf(argv: { hfToken?: string | undefined }, env: Env): string | undefined {
  return argv.hfToken || hubToken(env);
}

/** What the library takes from the environment through the CLI: hub token, token cache, evaluation data folder. */
export function fromEnv(argv: { hfToken?: string | undefined }, env: Env): { hubToken: string | undefined; tokenCacheDir: string; dataDir: string } {
  return { hubToken: hubTokenOf(argv, env), tokenCacheDir: tokenCacheDir(env), dataDir: defaultDataDir(env) };
}
