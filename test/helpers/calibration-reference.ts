/**
 * Independent references for the calibration sampler tests (test/data/calibration*.test.ts): Python 3 replays of the
 * reference's C4 and WikiText-2 loops and of the windows hash, and a tokenizer wrapper that remembers encodings.
 */
import { execFileSync } from 'node:child_process';
import type { TextTokenizer } from '../../lib/model/tokenizer-types.js';

/** Run a Python 3 script with a JSON value on stdin; parse its stdout as JSON. */
export function python(script: string, input: unknown): unknown {
  const out = execFileSync('python3', ['-c', script], {
    input: JSON.stringify(input),
    encoding: 'utf8',
    maxBuffer: 64 << 20,
  });
  return JSON.parse(out);
}

/** The reference's C4 loop (Wanda's get_c4) on document token lengths: prints the (doc, offset) pairs of each run. */
export const PY_REPLAY_DOCS = `
import json, random, sys
cfg = json.load(sys.stdin)
lens = cfg["lens"]  # token count of each document (BOS included); None: never drawn by our sampler
out = []
for run in cfg["runs"]:
    random.seed(int(run["seed"]))  # seeds travel as strings: bigints too
    seqlen = run["seqlen"]
    pairs = []
    for _ in range(run["nsamples"]):
        while True:
            i = random.randint(0, len(lens) - 1)
            n = lens[i]
            if n is None:  # we never drew this document, so the draws already differ
                print(json.dumps({"python drew a document ours did not": i}))
                sys.exit(0)
            if n > seqlen:
                break
        i2 = random.randint(0, n - seqlen - 1)
        pairs.append([i, i2])
    out.append(pairs)
print(json.dumps(out))
`;

/** The reference's WikiText-2 train loop on one text of `ntokens` tokens. */
export const PY_REPLAY_TEXT = `
import json, random, sys
cfg = json.load(sys.stdin)
out = []
for run in cfg["runs"]:
    random.seed(int(run["seed"]))
    out.append([random.randint(0, cfg["ntokens"] - run["seqlen"] - 1) for _ in range(run["nsamples"])])
print(json.dumps(out))
`;

/** sha256 of the windows' ids as little-endian int32, computed by Python. */
export const PY_HASH = `
import hashlib, json, struct, sys
windows = json.load(sys.stdin)
h = hashlib.sha256()
for ids in windows:
    h.update(struct.pack("<%di" % len(ids), *ids))
print(json.dumps(h.hexdigest()))
`;

/** Wraps a tokenizer and remembers every encoding (shared by all tests: the real tokenizer is the slow part). */
export class CachingTokenizer implements TextTokenizer {
  private readonly cache = new Map<string, number[]>();
  constructor(private readonly inner: TextTokenizer) {}
  get bosId(): number | null {
    return this.inner.bosId;
  }
  get eosId(): number | null {
    return this.inner.eosId;
  }
  encode(text: string, options: { addSpecialTokens?: boolean } = {}): number[] {
    const key = `${options.addSpecialTokens ?? true ? 1 : 0}${text}`;
    let ids = this.cache.get(key);
    if (ids === undefined) {
      ids = this.inner.encode(text, options);
      this.cache.set(key, ids);
    }
    return ids;
  }
  decode(ids: number[], options?: { skipSpecialTokens?: boolean }): string {
    return this.inner.decode(ids, options);
  }
  /** Token count of `text` (with special tokens) if it was encoded before, else null. */
  knownLength(text: string): number | null {
    return this.cache.get(`1${text}`)?.length ?? null;
  }
}
