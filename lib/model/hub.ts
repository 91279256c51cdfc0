/**
 * `--model` may be a local folder or a Hugging Face hub id. Hub ids are fetched with @huggingface/hub into its cache
 * (HF_HUB_CACHE or ~/.cache/huggingface/hub, or `cacheDir`) when the network allows; offline, the error says which
 * files to put in a folder instead. Gated models (Llama) need a token: $HF_TOKEN (the CLI's --hf-token sets it),
 * sent to the hub only and never written into a message, log or report.
 */
import { existsSync } from 'node:fs';
import { dirname } from 'node:path';
import { CheckpointError } from '../errors.js';

const HUB_ID = /^[A-Za-z0-9][\w.-]*\/[\w.-]+$/;
const REQUIRED = ['config.json', 'tokenizer.json'];
const OPTIONAL = ['tokenizer_config.json', 'special_tokens_map.json', 'generation_config.json'];

export function looksLikeHubId(model: string): boolean {
  return HUB_ID.test(model) && !model.startsWith('.') && !existsSync(model);
}

/** The hub access token: $HF_TOKEN, else $HUGGING_FACE_HUB_TOKEN (huggingface_hub's older name); undefined if none. */
export function hubToken(): string | undefined {
  return process.env['HF_TOKEN'] || process.env['HUGGING_FACE_HUB_TOKEN'] || undefined;
}

/** `text` with the token (if any) masked: hub errors may echo request details. */
export function redactToken(text: string): string {
  const t = hubToken();
  return t && t.length >= 4 ? text.split(t).join('hf_***') : text;
}

function offlineMessage(id: string, why: string): string {
  why = redactToken(why);
  return (
    `--model ${id}: not a local folder, and fetching it from the Hugging Face hub failed (${why}). ` +
    `Offline, download config.json, tokenizer.json, tokenizer_config.json and model.safetensors ` +
    `(or model.safetensors.index.json with its model-0000x-of-0000y.safetensors shards) from https://huggingface.co/${id} ` +
    `into one folder and pass --model FOLDER` +
    (hubToken() === undefined ? ' (gated models such as Llama also need a token: set HF_TOKEN or pass --hf-token)' : '')
  );
}

/** Local folder for `model`: the folder itself, or the hub snapshot folder after fetching the needed files. */
export async function resolveModelPath(
  model: string,
  cacheDir?: string,
  fetchImpl?: typeof fetch,
): Promise<string> {
  if (existsSync(model)) return model;
  if (!looksLikeHubId(model)) {
    throw new CheckpointError(`--model ${model}: folder does not exist (and it is not a hub id of the form owner/name)`);
  }
  let hub: typeof import('@huggingface/hub');
  try {
    hub = await import('@huggingface/hub');
  } catch (e) {
    throw new CheckpointError(offlineMessage(model, `@huggingface/hub could not be loaded: ${(e as Error).message}`));
  }
  const get = async (path: string): Promise<string> =>
    hub.downloadFileToCacheDir({
      repo: { type: 'model', name: model },
      path,
      ...(cacheDir !== undefined ? { cacheDir } : {}),
      ...(fetchImpl !== undefined ? { fetch: fetchImpl } : {}),
      ...(hubToken() !== undefined ? { accessToken: hubToken()! } : {}),
    });
  try {
    let first = '';
    for (const f of REQUIRED) first = first || (await get(f));
    for (const f of OPTIONAL) await get(f).catch(() => undefined);
    const index = await get('model.safetensors.index.json').catch(() => null);
    if (index) {
      const { readFileSync } = await import('node:fs');
      const map = (JSON.parse(readFileSync(index, 'utf8')) as { weight_map: Record<string, string> }).weight_map;
      for (const shard of new Set(Object.values(map))) await get(shard);
    } else {
      await get('model.safetensors');
    }
    return dirname(first);
  } catch (e) {
    throw new CheckpointError(offlineMessage(model, (e as Error).message));
  }
}
