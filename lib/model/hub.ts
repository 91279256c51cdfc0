/**
 * `--model` may be a local folder or a Hugging Face hub id. Hub ids are fetched with @huggingface/hub into its cache
 * (HF_HUB_CACHE or ~/.cache/huggingface/hub, or `cacheDir`) when the network allows; offline, the error says which
 * files to put in a folder instead. Gated models (Llama) need a token, given by the caller (the CLI takes --hf-token,
 * else $HF_TOKEN: see hubToken), sent to the hub only and never written into a message, log or report.
 */
import { existsSync, readFileSync } from '../platform/fs.js';
import { dirname } from '../platform/path.js';
import { CheckpointError } from '../errors.js';

const HUB_ID = /^[A-Za-z0-9][\w.-]*\/[\w.-]+$/;
const REQUIRED = ['config.json', 'tokenizer.json'];
const OPTIONAL = ['tokenizer_config.json', 'special_tokens_map.json', 'generation_config.json'];

export function looksLikeHubId(model: string): boolean {
  return HUB_ID.test(model) && !model.startsWith('.') && !existsSync(model);
}

/** The environment variables that hold a hub token (the library reads none itself). */
export interface HubTokenEnv {
  HF_TOKEN?: string | undefined;
  HUGGING_FACE_HUB_TOKEN?: string | undefined;
}

/**
 * The hub access token of an environment: `env.HF_TOKEN`, else `env.HUGGING_FACE_HUB_TOKEN` (huggingface_hub's older
 * name); undefined if none. The library never reads process.env: the CLI passes it (`hubToken(process.env)`).
 */
export function hubToken(env: HubTokenEnv = {}): string | undefined {
  return env.HF_TOKEN || env.HUGGING_FACE_HUB_TOKEN || undefined;
}

/** `text` with `token` (if any) masked: hub errors may echo request details. */
export function redactToken(text: string, token: string | undefined): string {
  return token && token.length >= 4 ? text.split(token).join('hf_***') : text;
}

/** How to reach the hub: the cache folder (default @huggingface/hub's), a fetch (tests), the access token. */
export interface HubOptions {
  cacheDir?: string | undefined;
  fetch?: typeof fetch | undefined;
  token?: string | undefined; // sent to the hub only; masked in every message
}

function offlineMessage(id: string, why: string, token: string | undefined): string {
  why = redactToken(why, token);
  return (
    `--model ${id}: not a local folder, and fetching it from the Hugging Face hub failed (${why}). ` +
    `Offline, download config.json, tokenizer.json, tokenizer_config.json and model.safetensors ` +
    `(or model.safetensors.index.json with its model-0000x-of-0000y.safetensors shards) from https://huggingface.co/${id} ` +
    `into one folder and pass --model FOLDER` +
    (token === undefined ? ' (gated models such as Llama also need a token: set HF_TOKEN or pass --hf-token)' : '')
  );
}

/** Local folder for `model`: the folder itself, or the hub snapshot folder after fetching the needed files. */
export async function resolveModelPath(model: string, options: HubOptions = {}): Promise<string> {
  const { cacheDir, fetch: fetchImpl, token } = options;
  if (existsSync(model)) return model;
  if (!looksLikeHubId(model)) {
    throw new CheckpointError(`--model ${model}: folder does not exist (and it is not a hub id of the form owner/name)`);
  }
  let hub: typeof import('@huggingface/hub');
  try {
    hub = await import('@huggingface/hub');
  } catch (e) {
    throw new CheckpointError(offlineMessage(model, `@huggingface/hub could not be loaded: ${(e as Error).message}`, token));
  }
  const get = async (path: string): Promise<string> =>
    hub.downloadFileToCacheDir({
      repo: { type: 'model', name: model },
      path,
      ...(cacheDir !== undefined ? { cacheDir } : {}),
      ...(fetchImpl !== undefined ? { fetch: fetchImpl } : {}),
      ...(token !== undefined ? { accessToken: token } : {}),
    });
  try {
    let first = '';
    for (const f of REQUIRED) first = first || (await get(f));
    for (const f of OPTIONAL) await get(f).catch(() => undefined);
    const index = await get('model.safetensors.index.json').catch(() => null);
    if (index) {
      const map = (JSON.parse(readFileSync(index, 'utf8')) as { weight_map: Record<string, string> }).weight_map;
      for (const shard of new Set(Object.values(map))) await get(shard);
    } else {
      await get('model.safetensors');
    }
    return dirname(first);
  } catch (e) {
    throw new CheckpointError(offlineMessage(model, (e as Error).message, token));
  }
}
