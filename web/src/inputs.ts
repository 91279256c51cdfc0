/**
 * The run's inputs placed in the worker's in-memory file tree (lib/browser/memory-fs.ts): the model under /model, the
 * calibration and evaluation files under /data/calibration and /data/eval, each by its own file name (the library
 * picks the reader from the extension). Nothing is downloaded here: URLs and local files are byte sources read by
 * ranges when the library asks.
 */
import type { MemoryFileSystem } from '../../lib/browser/memory-fs.js';
import { fileSource, urlSource } from '../../lib/browser/sources.js';
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

async function mountUrl(fs: MemoryFileSystem, path: string, url: string): Promise<boolean> {
  const src = await urlSource(url);
  if (!src) return false;
  fs.mount(path, src);
  return true;
}

/** A model folder behind a URL (a Hugging Face `.../resolve/main/` URL works): the known files, then the shards. */
async function mountModelUrl(fs: MemoryFileSystem, folder: string): Promise<void> {
  const base = absolute(folder.endsWith('/') ? folder : `${folder}/`);
  if (!(await mountUrl(fs, `${MODEL_DIR}/config.json`, `${base}config.json`))) throw new Error(`model: ${base}config.json not found (HTTP 404)`);
  for (const f of MODEL_FILES.slice(1)) await mountUrl(fs, `${MODEL_DIR}/${f}`, `${base}${f}`);
  if (await mountUrl(fs, `${MODEL_DIR}/${INDEX}`, `${base}${INDEX}`)) {
    const index = JSON.parse(fs.readFileSync(`${MODEL_DIR}/${INDEX}`, 'utf8')) as { weight_map?: Record<string, string> };
    for (const shard of new Set(Object.values(index.weight_map ?? {}))) {
      if (!(await mountUrl(fs, `${MODEL_DIR}/${shard}`, `${base}${shard}`))) throw new Error(`model: shard ${base}${shard} not found (HTTP 404)`);
    }
  } else if (!(await mountUrl(fs, `${MODEL_DIR}/model.safetensors`, `${base}model.safetensors`))) {
    throw new Error(`model: neither ${base}model.safetensors nor ${base}${INDEX} found`);
  }
}

function mountFiles(fs: MemoryFileSystem, dir: string, files: File[]): void {
  for (const f of files) fs.mount(`${dir}/${f.name}`, fileSource(f, f.name));
}

/** One data file (calibration or evaluation) under `dir`; returns its path. */
async function mountData(fs: MemoryFileSystem, dir: string, src: InputSource, what: string): Promise<string> {
  if (src.kind === 'url') {
    const path = `${dir}/${urlFileName(src.url)}`;
    if (!(await mountUrl(fs, path, absolute(src.url)))) throw new Error(`${what}: ${src.url} not found (HTTP 404)`);
    return path;
  }
  const f = src.files[0];
  if (!f) throw new Error(`${what}: no file chosen`);
  mountFiles(fs, dir, [f]);
  return `${dir}/${f.name}`;
}

/** Mount every input in `fs` (replacing an earlier run's); returns the data files' paths. */
export async function mountInputs(fs: MemoryFileSystem, inputs: RunInputs): Promise<{ calibration: string | null; eval: string }> {
  fs.unmount('/');
  if (inputs.model.kind === 'url') await mountModelUrl(fs, inputs.model.url);
  else mountFiles(fs, MODEL_DIR, inputs.model.files);
  return {
    calibration: inputs.calibration ? await mountData(fs, '/data/calibration', inputs.calibration, 'calibration') : null,
    eval: await mountData(fs, '/data/eval', inputs.eval, 'eval'),
  };
}
