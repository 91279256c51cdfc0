/** `node:crypto`'s createHash for the browser build: sha256 (the library's only digest) through @noble/hashes. */
import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex } from '@noble/hashes/utils.js';

interface Hash {
  update(data: string | Uint8Array): Hash;
  digest(): Uint8Array;
  digest(enc: 'hex'): string;
}

export function createHash(algorithm: string): Hash {
  if (algorithm !== 'sha256') throw new Error(`createHash('${algorithm}'): only sha256 is available in the browser build`);
  const h = sha256.create();
  const self = {
    update(data: string | Uint8Array) {
      h.update(typeof data === 'string' ? new TextEncoder().encode(data) : data);
      return self;
    },
    digest(enc?: 'hex') {
      if (enc !== undefined && enc !== 'hex') throw new Error(`digest('${String(enc)}'): only hex or bytes are available in the browser build`);
      const bytes = h.digest();
      return enc === 'hex' ? bytesToHex(bytes) : bytes;
    },
  } as Hash;
  return self;
}

export default { createHash };
