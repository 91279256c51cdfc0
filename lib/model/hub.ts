/**
 * `--model` may be a local folder or a Hugging Face hub id. Hub ids are downloaded (lib/hub/download.ts) into the hub
 * cache (`cacheDir`; the CLI passes $HF_HUB_CACHE, else ~/.cache/huggingface/hub) from `endpoint` (the CLI passes
 * $HF_ENDPOINT) when the network allows; offline, the error says which files to put in a folder instead. Gated models (Llama) need a token, given by the caller (the CLI takes --hf-token,
 * else $HF_TOKEN: see hubToken), sent to the hub only and never written into a message, log or report.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { CheckpointError } from '../errors.js';
import { DEFAULT_HUB_ENDPOINT, downloadHubFile, type HubAccess } from '../hub/download.js';

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

/** How to reach the hub (lib/hub/download.ts): endpoint, cache folder, access token, progress, a fetch (tests). */
export type HubOptions = HubAccess;

function offlineMessage(id: string, why: string, options: HubOptions): string {
  why = redactToken(why, options.token);
  const endpoint = options.endpoint ?? DEFAULT_HUB_ENDPOINT;
  return (
    `model '${id}': not a local folder, and fetching it from the Hugging Face hub failed (${why}). ` +
    `Offline, download config.json, tokenizer.json, tokenizer_config.json and model.safetensors ` +
    `(or model.safetensors.index.json with its model-0000x-of-0000y.safetensors shards) from ${endpoint}/${id} ` +
    `into one folder and pass --model FOLDER` +
    (options.token === undefined ? ' (gated models such as Llama also need a token: set HF_TOKEN or pass --hf-token)' : '')
  );
}

/**
 * Local folder for `model`: the folder itself, or the hub snapshot folder (snapshots/{commit}/ of the hub cache)
 * after downloading config.json, the tokenizer files and the safetensors weights (resumable, see downloadHubFile).
 */
export async function resolveModelPath(model: string, options: HubOptions = {}): Promise<string> {
  if (existsSync(model)) return model;
  if (!looksLikeHubId(model)) {
    throw new CheckpointError(`model '${model}': folder does not exist (and it is not a hub id of the form owner/name)`, { option: 'model' });
  }
  const repo = { type: 'model' as const, name: model };
  const get = (path: string): Promise<string> => downloadHubFile(repo, path, options);
  // an optional file the repository lacks, or (offline) one not in the cache, is absent
  const optional = (path: string): Promise<string | null> => get(path).catch(() => null);
  try {
    const first = await get(REQUIRED[0]!);
    for (const f of REQUIRED.slice(1)) await get(f);
    for (const f of OPTIONAL) await optional(f);
    const index = await optional('model.safetensors.index.json');
    if (index) {
      const map = (JSON.parse(readFileSync(index, 'utf8')) as { weight_map: Record<string, string> }).weight_map;
      for (const shard of new Set(Object.values(map))) await get(shard);
    } else {
      await get('model.safetensors');
    }
    return dirname(first);
  } catch (e) {
    throw new CheckpointError(offlineMessage(model, (e as Error).message, options), { cause: e });
  }
}
