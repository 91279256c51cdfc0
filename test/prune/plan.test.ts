/**
 * The pruning plan (lib/prune/plan.ts): targets / ignore matching, per-block entries, checks; option flags from
 * the registry; the CLI's mapping of flags to their owner.
 */
import { ConfigError } from '../../lib/errors.js';
import { dsnot } from '../../lib/prune/dsnot.js';
import type { PruneOptions } from '../../lib/prune/method.js';
import { buildPlan, matchesLinear, selectLinears } from '../../lib/prune/plan.js';
import { LAYERWISE_NAMES, REFINER_NAMES, getMethod, optionFlags } from '../../lib/prune/registry.js';
import { ria } from '../../lib/prune/ria.js';
import type { LlamaConfig } from '../../lib/model/config.js';
import { ownerOptions } from '../../lib/cli/owner-flags.js';
import { useTestBackend } from '../helpers/backend.js';

beforeAll(async () => {
  await useTestBackend();
});

const UNSTRUCTURED = { kind: 'unstructured' } as const;

describe('plan: targets, ignore, checks', () => {
  const config = { numLayers: 3 } as LlamaConfig;

  it("matches names as llm-compressor: exact, parent module, 're:' from the start, 'Linear'", () => {
    const q0 = 'model.layers.0.self_attn.q_proj';
    const d1 = 'model.layers.1.mlp.down_proj';
    expect(matchesLinear(q0, q0)).toBe(true);
    expect(matchesLinear('model.layers.0', q0)).toBe(true);
    expect(matchesLinear('model.layers.0', 'model.layers.01.self_attn.q_proj')).toBe(false);
    expect(matchesLinear('model.layers.1', 'model.layers.10.mlp.down_proj')).toBe(false);
    expect(matchesLinear('re:.*down_proj', d1)).toBe(true);
    expect(matchesLinear('re:down_proj', d1)).toBe(false); // re.match anchors at the start
    expect(matchesLinear('re:model\\.layers\\.[01]\\.mlp', d1)).toBe(true);
    expect(matchesLinear('Linear', d1)).toBe(true);
  });

  it('selects targets minus ignore; every pattern must match; nothing left is an error', () => {
    const { selected, skipped } = selectLinears(config, [], ['re:.*down_proj', 'model.layers.0']);
    expect(selected.size).toBe(3 * 7 - 7 - 2);
    expect(skipped).toContain('model.layers.0.self_attn.q_proj');
    expect(skipped).toContain('model.layers.2.mlp.down_proj');
    const t = selectLinears(config, ['re:.*self_attn'], ['re:.*o_proj']);
    expect([...t.selected].every((n) => /self_attn\.(q|k|v)_proj$/.test(n))).toBe(true);
    expect(t.selected.size).toBe(9);
    expect(() => selectLinears(config, [], ['model.layer.0'])).toThrow(
      new ConfigError("ignore 'model.layer.0' matches no linear layer (names look like model.layers.0.self_attn.q_proj; use 're:' for a pattern)"),
    );
    expect(() => selectLinears(config, ['re:(('], [])).toThrow(ConfigError);
    expect(() => selectLinears(config, [], ['Linear'])).toThrow(new ConfigError('targets / ignore: no linear layer is left to prune'));
  });

  it('builds per-block entries with the method options, refiner on attention only, and refuses bad combinations', () => {
    const target: PruneOptions = { sparsity: 0.6, structure: UNSTRUCTURED };
    const plan = buildPlan(config, { method: getMethod('wanda'), target, blockSparsities: [0.5, 0.6, 0.7], refiner: dsnot, ignore: ['model.layers.2.mlp.up_proj'] });
    expect(plan.blocks.map((b) => b.sparsity)).toEqual([0.5, 0.6, 0.7]);
    expect(plan.blocks[2]!.linears.up_proj).toBeUndefined();
    expect(plan.blocks[1]!.linears.q_proj!.target.sparsity).toBe(0.6);
    expect(plan.blocks[1]!.linears.q_proj!.refine?.refiner.name).toBe('dsnot');
    expect(plan.blocks[1]!.linears.down_proj!.refine).toBeNull();
    expect(plan.blocks[0]!.linears.k_proj!.options).toEqual({ variant: false });
    expect(plan.skipped).toEqual(['model.layers.2.mlp.up_proj']);
    expect(() => buildPlan(config, { method: getMethod('sparsegpt'), target, refiner: dsnot })).toThrow(/sparsegpt updates the weights/);
    expect(() => buildPlan(config, { method: getMethod('wanda'), target: { sparsity: 0.5, structure: { kind: 'nm', n: 2, m: 4 } }, refiner: dsnot })).toThrow(/unstructured sparsity only/);
    expect(() => buildPlan(config, { method: getMethod('ria'), methodOptions: { permute: true }, target })).toThrow(/--permute applies to N:M/);
    expect(() => buildPlan(config, { method: getMethod('sparsegpt'), methodOptions: { damp: -1 }, target })).toThrow(/method sparsegpt: bad options: damp/);
    expect(() => buildPlan(config, { method: getMethod('wanda'), target, blockSparsities: [0.5] })).toThrow(/1 values for 3 blocks/);
  });

  it('the registry derives every option flag; names are unique', () => {
    const flags = optionFlags();
    expect(flags.map((f) => f.flag)).toEqual(
      expect.arrayContaining(['use-variant', 'damp', 'blocksize', 'ria-alpha', 'permute', 'owl-lambda', 'owl-m', 'dsnot-cycles', 'dsnot-threshold', 'dsnot-skip']),
    );
    expect(new Set(flags.map((f) => f.flag)).size).toBe(flags.length);
    expect(flags.find((f) => f.flag === 'dsnot-skip')?.choices).toEqual(['mlp', 'self_attn', 'no_skip']);
    expect(flags.find((f) => f.flag === 'permute')?.type).toBe('boolean');
    expect(LAYERWISE_NAMES).toEqual(['owl']);
    expect(REFINER_NAMES).toEqual(['dsnot']);
  });

  it('CLI: flags go to their owner; a flag of something the run does not use is refused', () => {
    expect(ownerOptions({ permute: true, 'ria-alpha': 0.3, 'owl-lambda': 0.1 }, { method: 'ria', layerwise: 'owl' })).toEqual({
      method: { permute: true, alpha: 0.3 },
      layerwise: { lambda: 0.1 },
      refine: {},
    });
    expect(ownerOptions({ 'use-variant': true, 'dsnot-cycles': 20 }, { method: 'wanda', refine: 'dsnot' })).toEqual({
      method: { variant: true },
      layerwise: {},
      refine: { cycles: 20 },
    });
    expect(() => ownerOptions({ permute: true }, { method: 'wanda' })).toThrow(new ConfigError('--permute: an option of method ria, which this run does not use'));
    expect(() => ownerOptions({ 'owl-m': 3 }, { method: 'wanda' })).toThrow(new ConfigError('--owl-m: an option of --layerwise owl, which this run does not use'));
  });
});
