/**
 * Data files and the token cache under their own names, forwarded to the installed platform (lib/platform/index.ts):
 * the Node layer passes the readers of lib/data/sources.ts (file streams, zlib) and lib/eval/token-cache.ts (an
 * on-disk cache, tokenizing in a worker thread); the browser layer passes lib/browser/data.ts (byte sources of its
 * file tree, tokenizing in-process). Both read rows with lib/data/rows.ts. Core modules import these instead.
 */
import { platform } from './index.js';
import type * as Rows from '../data/rows.js';
import type * as TokenCache from '../eval/token-cache.js';

/** What a platform provides for data files and tokenized data sets. */
export interface DataFiles {
  readRows: Rows.DataReaders['readRows'];
  readTexts: Rows.DataReaders['readTexts'];
  detectFormat: typeof Rows.detectFormat;
  cachedTextIds: typeof TokenCache.cachedTextIds;
  cachedTokenCount: typeof TokenCache.cachedTokenCount;
}

const data = (): DataFiles => platform().data;

export const readRows: DataFiles['readRows'] = (...a) => data().readRows(...a);
export const readTexts: DataFiles['readTexts'] = (...a) => data().readTexts(...a);
export const detectFormat: DataFiles['detectFormat'] = (...a) => data().detectFormat(...a);
export const cachedTextIds: DataFiles['cachedTextIds'] = (...a) => data().cachedTextIds(...a);
export const cachedTokenCount: DataFiles['cachedTokenCount'] = (...a) => data().cachedTokenCount(...a);
