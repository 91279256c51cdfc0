/**
 * Downloads from the Hugging Face hub under their own names, forwarded to the installed platform
 * (lib/platform/index.ts): the Node layer passes lib/hub/download.ts (an on-disk cache in the hub's layout, resumed
 * with Range requests, checked with sha256); the browser layer mounts the file's URL in its file tree
 * (lib/browser/platform.ts). Core modules import these instead of that module.
 */
import { platform } from './index.js';
import type * as Download from '../hub/download.js';

/** The public hub, when HF_ENDPOINT names no other. */
export const DEFAULT_HUB_ENDPOINT = 'https://huggingface.co';

/** A repository on the hub. */
export interface HubRepo {
  type: 'model' | 'dataset';
  name: string; // owner/name
  revision?: string; // branch, tag or commit (default main)
}

/** `{endpoint}/[datasets/]{name}/resolve/{revision}/{path}`. */
export function resolveUrl(repo: HubRepo, path: string, endpoint: string = DEFAULT_HUB_ENDPOINT): string {
  const prefix = repo.type === 'dataset' ? 'datasets/' : '';
  const rev = encodeURIComponent(repo.revision ?? 'main');
  return `${endpoint}/${prefix}${repo.name}/resolve/${rev}/${path.split('/').map(encodeURIComponent).join('/')}`;
}

/** What a platform provides for hub downloads. */
export type HubDownloads = typeof Download.downloadHubFile;

export const downloadHubFile: HubDownloads = (...a) => platform().downloadHubFile(...a);
