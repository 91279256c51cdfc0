/** `node:crypto`'s createHash for the browser build: sha256 (the library's only digest) through @noble/hashes, same hex. */
import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex } from '@noble/hashes/utils.js';

export function createHash(algorithm: string): { update(data: string | Uint8Array): ReturnType<typeof createHash>; digest(enc: 'hex'): string } {
  if (algorithm !== 'sha256') throw new Error(`createHash('${algorithm}'): only sha256 is available in the browser build`);
  const h = sha256.create();
  const self = {
    update(data: string | Uint8Array) {
      h.update(typeof data === 'string' ? new TextEncoder().encode(data) : data);
      return self;
    },
    digest(enc: 'hex') {
      if (enc !== 'hex') throw new Error(`digest('${String(enc)}'): only hex is available in the browser build`);
      return bytesToHex(h.digest());
    },
  };
  return self;
}

export default { createHash };
