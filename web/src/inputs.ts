/**
 * The run's inputs placed in the worker's in-memory file tree (node/vfs.ts): the model under /model, the
 * calibration and evaluation files under /data/calibration and /data/eval, each by its own file name (the library
 * picks the reader from the extension). Nothing is downloaded here: URLs and local files are byte sources read by
 * ranges when the library asks.
 */
import { fileRead, fileSize, lookup, mount, unmount, type VNode } from './node/vfs.js';
import { blobSource, urlSize, urlSource } from './node/sources.js';
import type { InputSource, RunInputs } from './protocol.js';

export const MODEL_DIR = '/model';
export const OUT_DIR = '/out/pruned';

/** Files of a checkpoint folder the library reads when present (config.json and the weights: required). */
const MODEL_FILES = ['config.json', 'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'generation_config.json', 'tokenizer.model'];
const INDEX = 'model.safetensors.index.json';

/** The file name at the end of a URL's path (query and fragment dropped). */
export function urlFileName(url: string): string {
  const path = new URL(url, self.location.href).pathname;
  const name = decodeURIComponent(path.slice(path.lastIndexOf('/') + 1));
  if (!name) throw new Error(`${url}: expected a URL of a file (it ends with '/')`);
  return name;
}

function absolute(url: string): string {
  return new URL(url, self.location.href).href;
}

function mountUrl(path: string, url: string): boolean {
  const size = urlSize(url);
  if (size === null) return false;
  mount(path, urlSource(url, size));
  return true;
}

/** A model folder behind a URL (a Hugging Face `.../resolve/main/` URL works): the known files, then the shards. */
function mountModelUrl(folder: string): void {
  const base = absolute(folder.endsWith('/') ? folder : `${folder}/`);
  if (!mountUrl(`${MODEL_DIR}/config.json`, `${base}config.json`)) throw new Error(`model: ${base}config.json not found (HTTP 404)`);
  for (const f of MODEL_FILES.slice(1)) mountUrl(`${MODEL_DIR}/${f}`, `${base}${f}`);
  if (mountUrl(`${MODEL_DIR}/${INDEX}`, `${base}${INDEX}`)) {
    const node = lookup(`${MODEL_DIR}/${INDEX}`) as VNode & { kind: 'file' };
    const index = JSON.parse(new TextDecoder().decode(fileRead(node, 0, fileSize(node)))) as { weight_map?: Record<string, string> };
    for (const shard of new Set(Object.values(index.weight_map ?? {}))) {
      if (!mountUrl(`${MODEL_DIR}/${shard}`, `${base}${shard}`)) throw new Error(`model: shard ${base}${shard} not found (HTTP 404)`);
    }
  } else if (!mountUrl(`${MODEL_DIR}/model.safetensors`, `${base}model.safetensors`)) {
    throw new Error(`model: neither ${base}model.safetensors nor ${base}${INDEX} found`);
  }
}

function mountFiles(dir: string, files: File[]): void {
  for (const f of files) mount(`${dir}/${f.name}`, blobSource(f, f.name));
}

/** One data file (calibration or evaluation) under `dir`; returns its path. */
function mountData(dir: string, src: InputSource, what: string): string {
  if (src.kind === 'url') {
    const path = `${dir}/${urlFileName(src.url)}`;
    if (!mountUrl(path, absolute(src.url))) throw new Error(`${what}: ${src.url} not found (HTTP 404)`);
    return path;
  }
  const f = src.files[0];
  if (!f) throw new Error(`${what}: no file chosen`);
  mountFiles(dir, [f]);
  return `${dir}/${f.name}`;
}

/** Mount every input (replacing an earlier run's); returns the data files' paths. */
export function mountInputs(inputs: RunInputs): { calibration: string | null; eval: string } {
  unmount('/');
  if (inputs.model.kind === 'url') mountModelUrl(inputs.model.url);
  else mountFiles(MODEL_DIR, inputs.model.files);
  return {
    calibration: inputs.calibration ? mountData('/data/calibration', inputs.calibration, 'calibration') : null,
    eval: mountData('/data/eval', inputs.eval, 'eval'),
  };
}
