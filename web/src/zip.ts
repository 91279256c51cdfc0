/**
 * A store-only (no compression) ZIP writer: safetensors weights barely compress, and storing keeps the writer to
 * a CRC-32 and three record layouts (PKWARE APPNOTE 6.3: local header, central directory, end record). Sizes and
 * offsets are 32-bit: an archive past 4 GiB is refused (no ZIP64).
 */

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** CRC-32 (IEEE, as zip and gzip use it). */
export function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

const LIMIT = 0xffffffff;
const DOS_DATE_1980 = (0 << 9) | (1 << 5) | 1; // 1980-01-01: fixed, so the archive depends on its content only

function header(size: number, fields: [number, 2 | 4][]): Uint8Array {
  const out = new Uint8Array(size);
  const v = new DataView(out.buffer);
  let at = 0;
  for (const [value, width] of fields) {
    if (width === 2) v.setUint16(at, value, true);
    else v.setUint32(at, value, true);
    at += width;
  }
  return out;
}

/** One ZIP archive of the given files (paths with `/`, in the order given), as parts of a Blob or one array. */
export function zipStore(files: [string, Uint8Array][]): Uint8Array[] {
  const parts: Uint8Array[] = [];
  const central: Uint8Array[] = [];
  let offset = 0;
  for (const [path, data] of files) {
    const name = new TextEncoder().encode(path);
    if (data.length > LIMIT || offset > LIMIT) throw new Error(`zip: ${path} lies past 4 GiB; download the files into a folder instead`);
    const crc = crc32(data);
    // version 2.0, flag bit 11 (UTF-8 names), method 0 (stored), time 0, date, crc, sizes, name length, no extra
    const common: [number, 2 | 4][] = [[20, 2], [0x0800, 2], [0, 2], [0, 2], [DOS_DATE_1980, 2], [crc, 4], [data.length, 4], [data.length, 4], [name.length, 2]];
    const local = header(30, [[0x04034b50, 4], ...common, [0, 2]]);
    parts.push(local, name, data);
    central.push(header(46, [[0x02014b50, 4], [20, 2], ...common, [0, 2], [0, 2], [0, 2], [0, 2], [0, 4], [offset, 4]]), name);
    offset += local.length + name.length + data.length;
  }
  const size = central.reduce((a, c) => a + c.length, 0);
  if (offset > LIMIT) throw new Error('zip: the archive exceeds 4 GiB; download the files into a folder instead');
  const end = header(22, [[0x06054b50, 4], [0, 2], [0, 2], [files.length, 2], [files.length, 2], [size, 4], [offset, 4], [0, 2]]);
  return [...parts, ...central, end];
}

/** The parts joined into one array. */
export function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
