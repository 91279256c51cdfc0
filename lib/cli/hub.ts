/**
 * The hub as the CLI reaches it: $HF_ENDPOINT, the hub cache ($HF_HUB_CACHE, $HF_HOME/hub, else
 * ~/.cache/huggingface/hub), the token (--hf-token, $HF_TOKEN) and a progress line per downloaded file.
 */
import { hubCacheDir, hubEndpoint, type HubAccess } from '../hub/download.js';
import { looksLikeHubId, resolveModelPath } from '../model/hub.js';
import { hubTokenOf, type Env } from './env.js';
import { progress } from './output.js';

/** A download's progress on the CLI's progress line, in MB. */
export function downloadProgress(label: string, done: number, total: number): void {
  const mb = (n: number): number => Math.round(n / 1e5) / 10;
  progress.update(`${label} (MB)`, mb(done), mb(total));
}

/** How the CLI reaches the hub: endpoint, cache folder and token from the environment and flags. */
export function hubAccessOf(argv: { hfToken?: string | undefined }, env: Env): HubAccess {
  return { endpoint: hubEndpoint(env), cacheDir: hubCacheDir(env), token: hubTokenOf(argv, env), onProgress: downloadProgress };
}

/**
 * A --model value as a local folder: a hub id (owner/name) is downloaded into the hub cache first (resumable, with a
 * progress line) and the snapshot folder is said; a folder is returned as it is.
 */
export async function localModel(model: string, argv: { hfToken?: string | undefined }, env: Env): Promise<string> {
  if (!looksLikeHubId(model)) return model;
  const dir = await resolveModelPath(model, hubAccessOf(argv, env));
  progress.done();
  progress.note(`model ${model}: ${dir}`);
  return dir;
}
