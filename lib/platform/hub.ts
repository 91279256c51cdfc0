/**
 * Downloads from the Hugging Face hub under their own names, forwarded to the installed platform
 * (lib/platform/index.ts): the Node layer passes lib/hub/download.ts (an on-disk cache in the hub's layout, resumed
 * with Range requests, checked with sha256). Core modules import these instead of that module.
 */
import { platform } from './index.js';
import type * as Download from '../hub/download.js';

/** The public hub, when HF_ENDPOINT names no other. */
export const DEFAULT_HUB_ENDPOINT = 'https://huggingface.co';

/** What a platform provides for hub downloads. */
export type HubDownloads = typeof Download.downloadHubFile;

export const downloadHubFile: HubDownloads = (...a) => platform().downloadHubFile(...a);
