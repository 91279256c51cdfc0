/**
 * SVG charts of experiment results, drawn with Vega-Lite (spec) and Vega (SVG rendering in Node, no canvas, no
 * network: data is inline and text widths are estimated).
 *   - perplexity against sparsity: one colour and one line per method, point shape per structure (N:M settings
 *     are points at N/M), the dense model as a dashed horizontal rule with its own dashed legend entry; one chart
 *     per perplexity set. The x axis ends at the largest sparsity shown; the y axis is logarithmic only when the
 *     perplexities span a factor of 10 or more.
 *   - zero fraction of each decoder block: one row per method, bars grouped by block, one colour per target, from
 *     a sequential palette (viridis) so the method colours of the perplexity chart keep one meaning.
 */
import * as vega from 'vega';
import * as vl from 'vega-lite';
import type { TopLevelSpec } from 'vega-lite';
import type { SettingResult } from './report.js';

/** Display names of perplexity sets and methods. */
export const PPL_SET_LABELS: Readonly<Record<string, string>> = { wikitext2: 'WikiText-2', c4: 'C4' };
const METHOD_LABELS: Readonly<Record<string, string>> = { magnitude: 'Magnitude', wanda: 'Wanda', sparsegpt: 'SparseGPT', ria: 'RIA', dense: 'Dense' };

export function pplSetLabel(set: string): string {
  return PPL_SET_LABELS[set] ?? set;
}

/** 'owl' -> 'OWL', 'dsnot' -> 'DSnoT', 'permute' as is; parts joined by spaces. */
function planLabel(plan: string): string {
  const names: Record<string, string> = { owl: 'OWL', dsnot: 'DSnoT' };
  return plan
    .split(/[-+]/)
    .map((p) => names[p] ?? p)
    .join(' + ');
}

/** 'Wanda', 'Wanda (variant)', and with a structure other than unstructured 'Wanda 2:4'. */
export function seriesLabel(r: Pick<SettingResult, 'method' | 'structure' | 'useVariant'> & { plan?: string | undefined }): string {
  const base = (METHOD_LABELS[r.method] ?? r.method) + (r.useVariant ? ' (variant)' : '') + (r.plan ? ` + ${planLabel(r.plan)}` : '');
  return r.structure === null || r.structure === 'unstructured' ? base : `${base} ${r.structure}`;
}

/** Tableau-10 colours for series; the dense reference is grey. */
const PALETTE = ['#4c78a8', '#f58518', '#54a24b', '#e45756', '#72b7b2', '#b279a2', '#eeca3b', '#ff9da6', '#9d755d', '#bab0ac'];
const DENSE_COLOUR = '#555555';

const CONFIG = {
  background: 'white',
  font: 'Helvetica, Arial, sans-serif',
  title: { fontSize: 16, subtitleFontSize: 12, anchor: 'start' as const, offset: 12 },
  axis: { labelFontSize: 12, titleFontSize: 13, titlePadding: 8, grid: true, gridColor: '#e6e6e6' },
  legend: { labelFontSize: 12, titleFontSize: 13, labelLimit: 260 },
  view: { stroke: '#cccccc' },
};

export interface ChartOptions {
  title?: string; // prefix of every chart title, e.g. the experiment name
}

function titled(text: string, options: ChartOptions): string {
  return options.title ? `${options.title}: ${text}` : text;
}

/** One pruned setting's point of a perplexity chart. */
interface PplPoint {
  method: string; // series label (method, variant, plan; not the structure)
  structure: string;
  setting: string;
  sparsity: number; // target, in %
  ppl: number;
}

/** The pruned settings with a finite perplexity for `set`, as chart points. */
function pplPoints(results: readonly SettingResult[], set: string): PplPoint[] {
  return results
    .filter((r) => r.method !== 'dense')
    .flatMap((r) => {
      const p = r.perplexity[set];
      if (!p || p.ppl === null) return [];
      const method = seriesLabel({ method: r.method, structure: null, useVariant: r.useVariant, plan: r.plan });
      return [{ method, structure: r.structure ?? 'unstructured', setting: r.id, sparsity: 100 * r.sparsity, ppl: p.ppl }];
    });
}

/** The x (target sparsity) and y (perplexity) encodings. */
function pplAxes(points: readonly PplPoint[], dense: number | null, label: string) {
  const x = {
    field: 'sparsity',
    type: 'quantitative' as const,
    title: 'Sparsity (% of weights removed per pruned layer)',
    scale: { domain: [0, Math.max(...points.map((p) => p.sparsity))], nice: false },
  };
  // The data's own range (plus padding), not the enclosing powers of ten: nearby perplexities stay apart. A log
  // scale only where the values span a factor of 10 or more (dense included).
  const all = points.map((p) => p.ppl).concat(dense === null ? [] : [dense]);
  const log = Math.max(...all) / Math.min(...all) >= 10;
  const y = {
    field: 'ppl',
    type: 'quantitative' as const,
    title: `${label} perplexity${log ? ' (log scale)' : ''}`,
    scale: log ? { type: 'log' as const, nice: false, padding: 16 } : { type: 'linear' as const, zero: false, nice: false, padding: 16 },
  };
  return { x, y };
}

/** Per method: a line through its unstructured settings and a point per setting (shape = structure when several). */
function methodLayers(points: readonly PplPoint[], methods: readonly string[], axes: ReturnType<typeof pplAxes>) {
  const { x, y } = axes;
  const structures = [...new Set(points.map((p) => p.structure))].sort(
    (a, b) => Number(a !== 'unstructured') - Number(b !== 'unstructured'),
  );
  const range = methods.map((_, i) => PALETTE[i % PALETTE.length]!);
  const color = { field: 'method', type: 'nominal' as const, title: 'Method', scale: { domain: methods, range } };
  // Methods side by side (a few pixels apart, one layer pair per method) where they share a sparsity, as every
  // method does in a grid at 50%: otherwise their points hide each other.
  const step = methods.length > 1 ? Math.min(8, 24 / (methods.length - 1)) : 0;
  const offset = (i: number): number => (i - (methods.length - 1) / 2) * step;
  const shape =
    structures.length > 1
      ? { shape: { field: 'structure', type: 'nominal' as const, title: 'Structure', scale: { domain: structures } } }
      : {};
  return methods.flatMap((method, i) => [
    {
      data: { values: points.filter((p) => p.method === method && p.structure === 'unstructured') },
      mark: { type: 'line' as const, strokeWidth: 2, xOffset: offset(i) },
      encoding: { x, y, color, order: { field: 'sparsity' } },
    },
    {
      data: { values: points.filter((p) => p.method === method) },
      mark: { type: 'point' as const, filled: true, size: 90, opacity: 0.9, xOffset: offset(i) },
      encoding: { x, y, color, ...shape },
    },
  ]);
}

/** The dense model's perplexity as a dashed rule with its own legend (a dashed stroke), apart from the methods'. */
function denseRuleLayer(dense: number) {
  return {
    data: { values: [{ line: `Dense (${dense.toFixed(2)})`, ppl: dense }] },
    mark: { type: 'rule', strokeWidth: 2, color: DENSE_COLOUR },
    encoding: {
      y: { field: 'ppl', type: 'quantitative' },
      strokeDash: {
        field: 'line',
        type: 'nominal',
        title: 'Reference',
        scale: { range: [[6, 4]] },
        legend: { symbolType: 'stroke', symbolStrokeColor: DENSE_COLOUR, symbolStrokeWidth: 2, symbolSize: 400 },
      },
    },
  };
}

/**
 * Vega-Lite spec of perplexity against target sparsity for one perplexity set: colour = method, one line per
 * method through its unstructured settings, point shape = structure (when N:M settings are present), the dense
 * model as a dashed rule. Null when no pruned result has a finite perplexity for `set`.
 */
export function pplVsSparsitySpec(results: readonly SettingResult[], set: string, options: ChartOptions = {}): TopLevelSpec | null {
  const points = pplPoints(results, set);
  if (points.length === 0) return null;
  const dense = results.find((r) => r.method === 'dense')?.perplexity[set]?.ppl ?? null;
  const methods = [...new Set(points.map((p) => p.method))];
  const label = pplSetLabel(set);
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: {
      text: titled(`${label} perplexity vs sparsity`, options),
      subtitle:
        (dense === null ? 'lower is better' : `lower is better; dashed line: dense model (${dense.toFixed(2)})`) +
        (methods.length > 1 ? '; methods drawn a few pixels apart at equal sparsity' : ''),
    },
    width: 560,
    height: 340,
    config: CONFIG,
    layer: [...methodLayers(points, methods, pplAxes(points, dense, label)), ...(dense === null ? [] : [denseRuleLayer(dense)])],
  } as TopLevelSpec;
}

/** 'unstructured 50%' or '2:4': what a setting asks for, without its method. */
export function targetLabel(r: Pick<SettingResult, 'structure' | 'sparsity'>): string {
  return r.structure === null || r.structure === 'unstructured' ? `unstructured ${+(100 * r.sparsity).toFixed(2)}%` : r.structure;
}

/**
 * Vega-Lite spec of the zero fraction of every decoder block: one panel (row) per method, bars grouped by block,
 * one colour per target (so each setting is one colour in one row, and a 24-setting sweep needs only 8 colours).
 * Null when no pruned result has block sparsities.
 */
export function blockSparsitySpec(results: readonly SettingResult[], options: ChartOptions = {}): TopLevelSpec | null {
  const pruned = results.filter((r) => r.method !== 'dense' && r.blockSparsity.length > 0);
  if (pruned.length === 0) return null;
  const methodOf = (r: SettingResult): string => seriesLabel({ method: r.method, structure: null, useVariant: r.useVariant, plan: r.plan });
  const values = pruned.flatMap((r) =>
    r.blockSparsity.map((z, block) => ({ method: methodOf(r), target: targetLabel(r), setting: r.id, block, zeros: 100 * z })),
  );
  const methods = [...new Set(pruned.map(methodOf))];
  // Unstructured targets by sparsity, then N:M patterns by their ratio.
  const targets = [...new Map(pruned.map((r) => [targetLabel(r), r])).values()]
    .sort((a, b) => Number(a.structure !== 'unstructured') - Number(b.structure !== 'unstructured') || a.sparsity - b.sparsity)
    .map(targetLabel);
  const blocks = Math.max(...pruned.map((r) => r.blockSparsity.length));
  // With xOffset, a width step sizes one bar; aim for about 600 px of bars per row.
  const barWidth = Math.max(4, Math.min(24, Math.floor(600 / (blocks * targets.length))));
  // Not the method palette: here colour means the target, not the method.
  const range = { scheme: 'viridis' };
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: {
      text: titled('Zero fraction per decoder block', options),
      subtitle: "zeros in each block's seven linear weight matrices (q, k, v, o, gate, up, down); one row per method",
    },
    config: CONFIG,
    data: { values },
    facet: {
      row: { field: 'method', type: 'nominal', title: null, sort: methods, header: { labelFontSize: 13, labelFontWeight: 'bold' } },
    },
    spec: {
      width: { step: barWidth },
      height: 150,
      mark: { type: 'bar' },
      encoding: {
        x: { field: 'block', type: 'ordinal', title: 'Decoder block (index)', axis: { labelAngle: 0 } },
        xOffset: { field: 'target', type: 'nominal', sort: targets },
        y: { field: 'zeros', type: 'quantitative', title: 'Zero fraction (%)', scale: { domain: [0, 100] } },
        color: { field: 'target', type: 'ordinal', title: 'Target sparsity', sort: targets, scale: { domain: targets, ...range } },
      },
    },
  } as TopLevelSpec;
}

/** Render a Vega-Lite spec to an SVG document (headless: no canvas, no network). */
export async function renderSvg(spec: TopLevelSpec): Promise<string> {
  const runtime = vega.parse(vl.compile(spec).spec);
  const view = new vega.View(runtime, { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/** One chart: a file name (inside the report folder), what it shows, its SVG. */
export interface Chart {
  file: string;
  caption: string;
  svg: string;
}

/** Every chart the results support: one perplexity chart per set (in `sets` order), then block sparsity. */
export async function buildCharts(results: readonly SettingResult[], sets: readonly string[], options: ChartOptions = {}): Promise<Chart[]> {
  const charts: Chart[] = [];
  for (const set of sets) {
    const spec = pplVsSparsitySpec(results, set, options);
    if (spec) charts.push({ file: `ppl-vs-sparsity-${set}.svg`, caption: `${pplSetLabel(set)} perplexity vs sparsity`, svg: await renderSvg(spec) });
  }
  const blocks = blockSparsitySpec(results, options);
  if (blocks) charts.push({ file: 'block-sparsity.svg', caption: 'Zero fraction per decoder block', svg: await renderSvg(blocks) });
  return charts;
}
