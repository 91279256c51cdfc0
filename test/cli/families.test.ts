/**
 * The commands on tiny Qwen3, Gemma 3 and Phi-3 checkpoints (built in code, no shared files): inspect, generate,
 * every prune method (with owl, dsnot, N:M and the compressed format among them), eval (perplexity and a task file)
 * and finetune; pruned and merged checkpoints keep the input's tensor layout (Phi-3: qkv_proj, gate_up_proj).
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Checkpoint } from '../../lib/model/checkpoint.js';
import { linearTensorName } from '../../lib/model/architecture.js';
import { runCli } from '../helpers/cli.js';
import { FAMILIES, writeFamilyCheckpoint, type FamilyName } from '../helpers/family-checkpoint.js';

let tmp: string;
let calibration: string;
let dataDir: string;
let task: string;
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'llm-prune-families-cli-'));
  const rows = Array.from({ length: 30 }, (_, i) => JSON.stringify({ text: `Row ${i}: once upon a time a small cat sat on the mat and looked at the sun.` }));
  calibration = join(tmp, 'calibration.jsonl');
  writeFileSync(calibration, rows.join('\n') + '\n');
  dataDir = join(tmp, 'data');
  mkdirSync(join(dataDir, 'wikitext-2-raw-v1'), { recursive: true });
  writeFileSync(join(dataDir, 'wikitext-2-raw-v1', 'test.jsonl'), rows.join('\n') + '\n');
  task = join(tmp, 'task.jsonl');
  writeFileSync(task, [{ query: 'The cat sat on the', choices: [' mat', ' sky'], gold: 0 }, { query: 'Once upon a', choices: [' time', ' chair'], gold: 1 }].map((r) => JSON.stringify(r)).join('\n') + '\n');
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** Tensor names in the header of a checkpoint folder's single safetensors file. */
function storedNames(dir: string): string[] {
  const buf = readFileSync(join(dir, 'model.safetensors'));
  const n = Number(buf.readBigUInt64LE(0));
  return Object.keys(JSON.parse(buf.subarray(8, 8 + n).toString('utf8')) as object).filter((k) => k !== '__metadata__').sort();
}

async function ok(args: string[]): Promise<string> {
  const r = await runCli(args);
  expect({ args: args.slice(0, 2), code: r.code, stderr: r.code === 0 ? '' : r.stderr.slice(-2000) }).toEqual({ args: args.slice(0, 2), code: 0, stderr: '' });
  return r.stdout;
}

/** The zero fraction of layer 1's q_proj and gate_proj as the checkpoint shows them (split from fused tensors). */
function zeroFraction(dir: string): number {
  const ckpt = Checkpoint.open(dir);
  try {
    const w = [...ckpt.read(linearTensorName(1, 'q_proj')), ...ckpt.read(linearTensorName(1, 'gate_proj'))];
    return w.filter((x) => x === 0).length / w.length;
  } finally {
    ckpt.close();
  }
}

const PRUNE_RUNS: { name: string; flags: string[]; compressed?: boolean }[] = [
  { name: 'magnitude', flags: ['--method', 'magnitude', '--format', 'compressed'], compressed: true },
  { name: 'wanda-owl-dsnot', flags: ['--method', 'wanda', '--layerwise', 'owl', '--refine', 'dsnot'] },
  { name: 'sparsegpt', flags: ['--method', 'sparsegpt'] },
  { name: 'ria-2of4', flags: ['--method', 'ria', '--structure', '2:4'] },
];

describe.each(FAMILIES.map((f) => [f] as const))('%s', (family: FamilyName) => {
  let model: string;
  let stored: string[];
  let layers: number;
  beforeAll(() => {
    model = join(tmp, family);
    layers = writeFamilyCheckpoint(model, family, { seed: 3 }).raw['num_hidden_layers'] as number;
    stored = storedNames(model);
  });

  test('inspect and generate', async () => {
    const info = JSON.parse(await ok(['inspect', '--model', model])) as { architecture: string; family: { fusedLinears: boolean } };
    expect(info).toMatchObject({ architecture: family, family: { fusedLinears: family === 'Phi3ForCausalLM' } });
    const gen = JSON.parse(await ok(['generate', '--model', model, '--prompt', 'Once upon', '--max-new-tokens', '4'])) as { ids: number[] };
    expect(gen.ids.length).toBeGreaterThan(4);
  });

  test.each(PRUNE_RUNS.map((r) => [r.name, r] as const))('prune %s: 50%% zeros, the input tensor layout, reloadable', async (name, run) => {
    const out = join(tmp, `${family}-${name}`);
    await ok(['prune', '--model', model, ...run.flags, '--sparsity', '0.5', '--calibration', calibration, '--nsamples', '4', '--seqlen', '16', '--out', out]);
    if (!run.compressed) expect(storedNames(out)).toEqual(stored);
    else expect(storedNames(out).filter((n) => n.endsWith('.bitmask')).length).toBe(layers * (family === 'Phi3ForCausalLM' ? 4 : 7));
    expect(Math.abs(zeroFraction(out) - 0.5)).toBeLessThan(0.1);
  });

  test('eval (perplexity, a task file) and finetune (merged checkpoint in the input layout)', async () => {
    const res = JSON.parse(await ok(['eval', '--model', model, '--ppl', 'wikitext2', '--seqlen', '16', '--max-windows', '2', '--data-dir', dataDir, '--tasks', task])) as Record<string, unknown>;
    expect(JSON.stringify(res)).toMatch(/wikitext2/);
    const ft = join(tmp, `${family}-ft`);
    await ok(['finetune', '--model', join(tmp, `${family}-wanda-owl-dsnot`), '--data', calibration, '--seqlen', '16', '--max-steps', '2', '--out', ft]);
    expect(storedNames(join(ft, 'merged'))).toEqual(stored);
    expect(Math.abs(zeroFraction(join(ft, 'merged')) - 0.5)).toBeLessThan(0.1); // the masked merge keeps the zeros
  });
});
