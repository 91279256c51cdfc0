/**
 * Data files in Node (lib/data/rows.ts reads the rows): files as streams of text, gunzipped on the fly, Parquet files
 * through hyparquet's file reader, and the Parquet codecs of node:zlib.
 */
import { createReadStream } from 'node:fs';
import type { Readable } from 'node:stream';
import { brotliDecompressSync, createGunzip, unzipSync } from 'node:zlib';
import { asyncBufferFromFile, type Compressors } from 'hyparquet';
import { dataReaders, type DataAccess } from './rows.js';

export { detectFormat } from './rows.js';
export type { DetectedFormat, ReadRowsOptions, ReadTextsOptions, Row, SourceFormat } from './rows.js';

/** Open a file as a byte stream, gunzipping on the fly when asked. */
function openStream(path: string, gzip: boolean): { stream: Readable; close: () => void } {
  const raw = createReadStream(path);
  if (!gzip) return { stream: raw, close: () => raw.destroy() };
  const gunzip = createGunzip();
  raw.on('error', (e) => gunzip.destroy(e));
  raw.pipe(gunzip);
  return {
    stream: gunzip,
    close: () => {
      raw.destroy();
      gunzip.destroy();
    },
  };
}

/** Parquet codecs hyparquet lacks that Node's zlib provides (hyparquet has UNCOMPRESSED and SNAPPY itself). */
export const PARQUET_COMPRESSORS: Compressors = {
  GZIP: (input) => new Uint8Array(unzipSync(input)),
  BROTLI: (input) => new Uint8Array(brotliDecompressSync(input)),
};

/** How Node reads data files. */
export const nodeDataAccess: DataAccess = {
  openText(path, gzip) {
    const { stream, close } = openStream(path, gzip);
    stream.setEncoding('utf8');
    return { chunks: stream as AsyncIterable<string>, close };
  },
  parquetFile: (path) => asyncBufferFromFile(path),
  parquetCompressors: PARQUET_COMPRESSORS,
};

export const { readRows, readTexts, readTextFile } = dataReaders(nodeDataAccess);
