/**
 * The environment variables the package honours. The library reads none of them (it takes values from its caller);
 * the CLI reads them here and passes them on. (lib/bin.ts and lib/interrupt.ts pass the supervisor's log file to
 * the child through the environment; lib/model/webgpu.ts sets EGL_PLATFORM for Mesa before Dawn loads.)
 *   LLM_PRUNE_SHARED  the shared folder with models/ and data/ (--shared overrides it)
 *   LLM_PRUNE_DATA    the evaluation data folder (--data-dir overrides it; see defaultDataDir)
 *   LLM_PRUNE_CACHE   the token cache (else $XDG_CACHE_HOME/llm-prune, else ~/.cache/llm-prune; see tokenCacheDir)
 *   LLM_PRUNE_MODEL   the demo's model
 *   HF_TOKEN, HUGGING_FACE_HUB_TOKEN  the hub token (--hf-token overrides them)
 */

/** An environment: process.env, or a record a test or an embedding program builds. */
export type Env = Readonly<Record<string, string | undefined>>;

/** The process environment: read by the CLI only. */
export function processEnv(): Env {
  return process.env;
}
