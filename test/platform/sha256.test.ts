/** The injected hashing: the portable SHA-256 and the Node platform's give node:crypto's digests; fingerprints use them. */
import { createHash, randomBytes } from 'node:crypto';
import { installPlatform, platform, sha256Hex } from '../../lib/platform/index.js';
import { portableSha256 } from '../../lib/platform/sha256.js';
import { windowsHash } from '../../lib/data/calibration.js';
import { shardOf } from '../../lib/experiment/shard.js';

const node = (parts: (Uint8Array | string)[]): string => {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest('hex');
};
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

test('portable SHA-256 equals node:crypto at every length around the block boundaries and across split parts', () => {
  for (const n of [0, 1, 3, 55, 56, 57, 63, 64, 65, 119, 120, 127, 128, 129, 1000, 4097]) {
    const data = new Uint8Array(randomBytes(n));
    expect([n, hex(portableSha256([data]))]).toEqual([n, node([data])]);
    const cut = Math.floor(n / 3);
    expect([n, hex(portableSha256([data.subarray(0, cut), 'é€', data.subarray(cut)]))]).toEqual([n, node([data.subarray(0, cut), 'é€', data.subarray(cut)])]);
  }
  expect(hex(portableSha256(['abc']))).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
});

test('fingerprints are the same digests through the portable function as through node:crypto', () => {
  const windows = [{ ids: [1, 2, 3, -5, 70000] }, { ids: [9] }];
  const viaNode = windowsHash(windows);
  const shards = ['a', 'setting-17', 'ü'].map((id) => shardOf(id, 7));
  const nodePlatform = platform();
  installPlatform({ ...nodePlatform, sha256: portableSha256 });
  try {
    expect(windowsHash(windows)).toBe(viaNode);
    expect(['a', 'setting-17', 'ü'].map((id) => shardOf(id, 7))).toEqual(shards);
    expect(sha256Hex('x', Uint8Array.of(1, 2))).toBe(node(['x', Uint8Array.of(1, 2)]));
  } finally {
    installPlatform(nodePlatform);
  }
  // the pinned definitions: little-endian int32 ids; the first 4 bytes of sha256(id), big-endian, mod N
  const bytes = Buffer.alloc(24);
  [1, 2, 3, -5, 70000, 9].forEach((v, i) => bytes.writeInt32LE(v, i * 4));
  expect(viaNode).toBe(node([bytes]));
  expect(shards).toEqual(['a', 'setting-17', 'ü'].map((id) => createHash('sha256').update(id).digest().readUInt32BE(0) % 7));
});
