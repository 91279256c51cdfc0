/**
 * Data files in the browser layer: the rows of lib/data/rows.ts over the byte sources of the installed platform's
 * files (`openFile`), gzip through the runtime's DecompressionStream, Parquet read by ranges (its GZIP and BROTLI
 * pages are refused: no synchronous codec here; UNCOMPRESSED and SNAPPY work). Tokenized data sets are not cached
 * (there is no disk): the text is tokenized in-process each time.
 */
import type { ByteSource } from '../platform/bytes.js';
import type { DataFiles } from '../platform/data.js';
import { platform } from '../platform/index.js';
import { dataReaders, detectFormat, type DataAccess, type TextStream } from '../data/rows.js';

const CHUNK = 1 << 20;

interface StreamPair {
  writable: { getWriter(): { write(c: Uint8Array): Promise<void>; close(): Promise<void>; abort(e: unknown): Promise<void> } };
  readable: { getReader(): { read(): Promise<{ done: boolean; value?: Uint8Array }>; cancel(): Promise<void> } };
}

/** The source's bytes in chunks, read as they are consumed; stops when `stopped()`. */
async function* byteChunks(src: ByteSource, stopped: () => boolean): AsyncGenerator<Uint8Array> {
  for (let at = 0; at < src.size && !stopped(); at += CHUNK) yield await src.read(at, Math.min(CHUNK, src.size - at));
}

/** `chunks` gunzipped (DecompressionStream: browsers, Node >= 18). */
async function* gunzip(chunks: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  const Decompression = (globalThis as unknown as { DecompressionStream?: new (format: 'gzip') => StreamPair }).DecompressionStream;
  if (!Decompression) throw new Error('gzip decompression is not available here (no DecompressionStream); decompress the file first');
  const ds = new Decompression('gzip');
  const writer = ds.writable.getWriter();
  const reader = ds.readable.getReader();
  const pump = (async () => {
    try {
      for await (const c of chunks) await writer.write(c);
      await writer.close();
    } catch (e) {
      await writer.abort(e).catch(() => {});
    }
  })();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      if (value) yield value;
    }
    await pump;
  } finally {
    await reader.cancel().catch(() => {});
  }
}

/** The text of a file of the installed platform, UTF-8 decoded as it is read. */
function openText(path: string, gzip: boolean): TextStream {
  let closed = false;
  const src = platform().openFile(path);
  async function* text(): AsyncGenerator<string> {
    const decoder = new TextDecoder();
    const bytes = byteChunks(src, () => closed);
    for await (const chunk of gzip ? gunzip(bytes) : bytes) yield decoder.decode(chunk, { stream: true });
    const rest = decoder.decode();
    if (rest) yield rest;
  }
  return {
    chunks: text(),
    close: () => {
      closed = true;
      src.close?.();
    },
  };
}

/** How the browser layer reads data files. */
export const browserDataAccess: DataAccess = {
  openText,
  parquetFile: async (path) => {
    const src = platform().openFile(path);
    return {
      byteLength: src.size,
      slice: async (start, end) => {
        const b = await src.read(start, (end ?? src.size) - start);
        return b.buffer.slice(b.byteOffset, b.byteOffset + b.length) as ArrayBuffer;
      },
    };
  },
  parquetCompressors: {},
};

const readers = dataReaders(browserDataAccess);

/** The browser layer's data files: the readers above; no token cache (tokenized in-process, every time). */
export const browserDataFiles: DataFiles = {
  readRows: readers.readRows,
  readTexts: readers.readTexts,
  detectFormat,
  cachedTextIds: async (set, _file, tokenizer, text, onProgress) => {
    const t = await text();
    const label = `${set}: tokenizing ${(t.length / 1e6).toFixed(2)} M characters`;
    onProgress?.(label, 0, 0);
    const ids = tokenizer.encode(t, { addSpecialTokens: true });
    onProgress?.(label, 1, 1, `${ids.length} tokens`);
    return ids;
  },
  cachedTokenCount: () => null,
};
