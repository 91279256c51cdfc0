/**
 * SVG charts of experiment results, drawn with Vega-Lite (spec) and Vega (SVG rendering in Node, no canvas, no
 * network: data is inline and text widths are estimated).
 *   - perplexity against sparsity: one colour and one line per method, point shape per structure (N:M settings
 *     are points at N/M), the dense model as a dashed horizontal rule with its own dashed legend entry; one chart
 *     per perplexity set. The x axis spans the sparsities shown with a margin on both sides (so no point sits on
 *     the frame, also with a single sparsity); the y axis is logarithmic only when the perplexities span a factor
 *     of 10 or more. With few points (FEW_POINTS) each point carries its value.
 *   - zero fraction of each decoder block: one row per method, a dot per block and target, one colour per target,
 *     from a sequential palette (viridis) so the method colours of the perplexity chart keep one meaning. The y
 *     axis is fitted around the data, so 50.0% and 50.1% are told apart.
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

/** Up to this many points, each point of a perplexity chart is labelled with its value. */
export const FEW_POINTS = 12;

/**
 * The sparsity axis (in %): the levels shown plus a margin of max(5, 8% of their span) on each side, ends rounded
 * out to multiples of 5, never below 0 nor above 100 unless a level is that close: one level at 50 gives 45-55,
 * levels 10..80 give 0-90.
 */
export function sparsityDomain(levels: readonly number[]): [number, number] {
  const lo = Math.min(...levels);
  const hi = Math.max(...levels);
  const pad = Math.max(5, 0.08 * (hi - lo));
  const from = Math.max(0, Math.floor((lo - pad) / 5) * 5);
  const to = Math.max(Math.min(100, Math.ceil((hi + pad) / 5) * 5), Math.ceil((hi + 2.5) / 5) * 5);
  return [Math.min(from, lo), to];
}

/** One value only (a single point, no dense model): a domain 5% around it, else the scale would have no extent. */
function flat(values: readonly number[]): { domain?: [number, number] } {
  const v = values[0]!;
  return values.every((x) => x === v) ? { domain: [v - Math.max(0.05 * Math.abs(v), 0.01), v + Math.max(0.05 * Math.abs(v), 0.01)] } : {};
}

/** The x (target sparsity) and y (perplexity) encodings. */
function pplAxes(points: readonly PplPoint[], dense: number | null, label: string) {
  const x = {
    field: 'sparsity',
    type: 'quantitative' as const,
    title: 'Sparsity (% of weights removed per pruned layer)',
    scale: { domain: sparsityDomain(points.map((p) => p.sparsity)), nice: false },
  };
  // The data's own range (plus padding), not the enclosing powers of ten: nearby perplexities stay apart. A log
  // scale only where the values span a factor of 10 or more (dense included).
  const all = points.map((p) => p.ppl).concat(dense === null ? [] : [dense]);
  const log = Math.max(...all) / Math.min(...all) >= 10;
  const y = {
    field: 'ppl',
    type: 'quantitative' as const,
    title: `${label} perplexity${log ? ' (log scale)' : ''}`,
    scale: log ? { type: 'log' as const, nice: false, padding: 16 } : { type: 'linear' as const, zero: false, nice: false, padding: 16, ...flat(all) },
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
  // Few points: each labelled with its value, alternately left and right of it (methods at one sparsity apart).
  const labels = (method: string, i: number) =>
    points.length > FEW_POINTS
      ? []
      : [
          {
            data: { values: points.filter((p) => p.method === method).map((p) => ({ ...p, label: pplLabel(p.ppl) })) },
            // the colour as a mark property: an encoded one would join (and could hide) the method legend
            mark: { type: 'text' as const, fontSize: 11, color: range[i], align: i % 2 ? ('left' as const) : ('right' as const), dx: i % 2 ? 9 : -9, xOffset: offset(i) },
            encoding: { x, y, text: { field: 'label', type: 'nominal' as const } },
          },
        ];
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
    ...labels(method, i),
  ]);
}

/** A perplexity as a point label: 2 decimals below 100, 1 up to 10,000, then none. */
export function pplLabel(ppl: number): string {
  return ppl.toFixed(ppl < 100 ? 2 : ppl < 10_000 ? 1 : 0);
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
 * The zero-fraction axis (in %) around the values: a margin of 15% of their span (at least 0.01 points; 0.5 points
 * when all are equal) on each side, kept inside [0, 100]. 50.0 and 50.1 give 49.985-50.115.
 */
export function zerosDomain(values: readonly number[]): [number, number] {
  const lo = Math.min(...values);
  const hi = Math.max(...values);
  const pad = hi > lo ? Math.max(0.15 * (hi - lo), 0.01) : 0.5;
  return [Math.max(0, lo - pad), Math.min(100, hi + pad)];
}

/**
 * Vega-Lite spec of the zero fraction of every decoder block: one panel (row) per method, a dot per block and
 * target, grouped by block, one colour per target (so each setting is one colour in one row, and a 24-setting sweep
 * needs only 8 colours); the y axis around the data. Null when no pruned result has block sparsities.
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
  // With xOffset, a width step sizes one dot's slot; aim for about 600 px per row.
  const slot = Math.max(6, Math.min(24, Math.floor(600 / (blocks * targets.length))));
  // Not the method palette: here colour means the target, not the method.
  const range = { scheme: 'viridis' };
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: {
      text: titled('Zero fraction per decoder block', options),
      subtitle: "zeros in each block's seven linear weight matrices (q, k, v, o, gate, up, down); one row per method; y axis fitted to the values",
    },
    config: CONFIG,
    data: { values },
    facet: {
      row: { field: 'method', type: 'nominal', title: null, sort: methods, header: { labelFontSize: 13, labelFontWeight: 'bold' } },
    },
    spec: {
      width: { step: slot },
      height: 150,
      mark: { type: 'point', filled: true, size: Math.min(80, slot * slot), opacity: 0.95 },
      encoding: {
        x: { field: 'block', type: 'ordinal', title: 'Decoder block (index)', axis: { labelAngle: 0 } },
        xOffset: { field: 'target', type: 'nominal', sort: targets },
        y: {
          field: 'zeros',
          type: 'quantitative',
          title: 'Zero fraction (%)',
          scale: { domain: zerosDomain(values.map((v) => v.zeros)), nice: false, zero: false, padding: 6 },
        },
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
