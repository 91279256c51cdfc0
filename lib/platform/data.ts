/**
 * Data files and the token cache under their own names, forwarded to the installed platform (lib/platform/index.ts):
 * the Node layer passes lib/data/sources.ts (file streams, decompression, parquet) and lib/eval/token-cache.ts (an
 * on-disk cache, tokenizing in a worker thread); a browser layer passes readers of the files it holds. Core modules
 * import these instead of those two modules.
 */
import { platform } from './index.js';
import type * as Sources from '../data/sources.js';
import type * as TokenCache from '../eval/token-cache.js';

/** What a platform provides for data files and tokenized data sets. */
export interface DataFiles {
  readRows: typeof Sources.readRows;
  readTexts: typeof Sources.readTexts;
  detectFormat: typeof Sources.detectFormat;
  cachedTextIds: typeof TokenCache.cachedTextIds;
  cachedTokenCount: typeof TokenCache.cachedTokenCount;
}

const data = (): DataFiles => platform().data;

export const readRows: DataFiles['readRows'] = (...a) => data().readRows(...a);
export const readTexts: DataFiles['readTexts'] = (...a) => data().readTexts(...a);
export const detectFormat: DataFiles['detectFormat'] = (...a) => data().detectFormat(...a);
export const cachedTextIds: DataFiles['cachedTextIds'] = (...a) => data().cachedTextIds(...a);
export const cachedTokenCount: DataFiles['cachedTokenCount'] = (...a) => data().cachedTokenCount(...a);
