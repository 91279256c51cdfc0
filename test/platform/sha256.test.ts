/**
 * The injected hashing: WebCrypto (the browser layer), the portable SHA-256 (where WebCrypto is missing) and the Node
 * platform's node:crypto give the same digests, and so the same fingerprints.
 */
import { createHash, randomBytes } from 'node:crypto';
import { installPlatform, platform, sha256Hex } from '../../lib/platform/index.js';
import { defaultSha256, portableSha256, webCrypto, webCryptoSha256 } from '../../lib/platform/sha256.js';
import { windowsHash } from '../../lib/data/calibration.js';
import { shardOf } from '../../lib/experiment/shard.js';
import { canonicalSha256 } from '../../lib/canonical.js';

const node = (parts: (Uint8Array | string)[]): string => {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest('hex');
};
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const LENGTHS = [0, 1, 3, 55, 56, 57, 63, 64, 65, 119, 120, 127, 128, 129, 1000, 4097];

test('portable SHA-256 equals node:crypto at every length around the block boundaries and across split parts', () => {
  for (const n of LENGTHS) {
    const data = new Uint8Array(randomBytes(n));
    expect([n, hex(portableSha256([data]))]).toEqual([n, node([data])]);
    const cut = Math.floor(n / 3);
    expect([n, hex(portableSha256([data.subarray(0, cut), 'é€', data.subarray(cut)]))]).toEqual([n, node([data.subarray(0, cut), 'é€', data.subarray(cut)])]);
  }
  expect(hex(portableSha256(['abc']))).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
});

test('WebCrypto (crypto.subtle) equals node:crypto for bytes, strings and multi-part inputs', async () => {
  expect(webCrypto()).not.toBeNull(); // Node >= 20 has it, as browsers in secure contexts do
  for (const n of LENGTHS) {
    const data = new Uint8Array(randomBytes(n));
    expect([n, hex(await webCryptoSha256([data]))]).toEqual([n, node([data])]);
    const cut = Math.floor(n / 3);
    const parts = [data.subarray(0, cut), 'é€ ü', '', data.subarray(cut), 'x'];
    expect([n, hex(await webCryptoSha256(parts))]).toEqual([n, node(parts)]);
    expect([n, hex(await defaultSha256(parts))]).toEqual([n, node(parts)]);
  }
  expect(hex(await webCryptoSha256([]))).toBe(node([]));
  expect(hex(await webCryptoSha256(['a', 'bc']))).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
  expect(await platform().sha256(['é', Uint8Array.of(1, 2)])).toEqual(new Uint8Array(createHash('sha256').update('é').update(Uint8Array.of(1, 2)).digest()));
});

test('without crypto.subtle (not a secure context) the default is the portable function, same digests', async () => {
  const descriptor = Object.getOwnPropertyDescriptor(globalThis, 'crypto');
  Object.defineProperty(globalThis, 'crypto', { value: {}, configurable: true, writable: true });
  try {
    expect(webCrypto()).toBeNull();
    await expect(webCryptoSha256(['x'])).rejects.toThrow(/secure context/);
    expect(hex(await defaultSha256(['x', Uint8Array.of(1, 2)]))).toBe(node(['x', Uint8Array.of(1, 2)]));
  } finally {
    if (descriptor) Object.defineProperty(globalThis, 'crypto', descriptor);
  }
  expect(webCrypto()).not.toBeNull();
});

test('fingerprints are the same digests through node:crypto, WebCrypto and the portable function', async () => {
  const windows = [{ ids: [1, 2, 3, -5, 70000] }, { ids: [9] }];
  const ids = ['a', 'setting-17', 'ü'];
  const value = { b: [1, 'é'], a: { z: null, y: undefined } };
  const all = async (): Promise<unknown[]> => [
    await windowsHash(windows),
    await Promise.all(ids.map((id) => shardOf(id, 7))),
    await sha256Hex('x', Uint8Array.of(1, 2)),
    await canonicalSha256(value),
  ];
  const viaNode = await all();
  const nodePlatform = platform();
  for (const sha256 of [webCryptoSha256, async (parts: readonly (Uint8Array | string)[]) => portableSha256(parts)]) {
    installPlatform({ ...nodePlatform, sha256 });
    try {
      expect(await all()).toEqual(viaNode);
    } finally {
      installPlatform(nodePlatform);
    }
  }
  // the pinned definitions: little-endian int32 ids; the first 4 bytes of sha256(id), big-endian, mod N
  const bytes = Buffer.alloc(24);
  [1, 2, 3, -5, 70000, 9].forEach((v, i) => bytes.writeInt32LE(v, i * 4));
  expect(viaNode[0]).toBe(node([bytes]));
  expect(viaNode[1]).toEqual(ids.map((id) => createHash('sha256').update(id).digest().readUInt32BE(0) % 7));
  expect(viaNode[2]).toBe(node(['x', Uint8Array.of(1, 2)]));
  expect(viaNode[3]).toBe(node(['{"a":{"z":null},"b":[1,"é"]}']));
});
