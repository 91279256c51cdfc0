/** The per-block sparsity chart: one bar per block, the block's target as a tick (OWL gives each block its own). */
import type { BlockBar } from './protocol.js';

const NS = 'http://www.w3.org/2000/svg';

function el(name: string, attrs: Record<string, string | number>, text?: string): SVGElement {
  const e = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

export function sparsityChart(blocks: BlockBar[], width = 640, height = 200): SVGElement {
  const pad = { l: 40, r: 10, t: 20, b: 30 };
  const svg = el('svg', { width, height, viewBox: `0 0 ${width} ${height}`, role: 'img' });
  const w = (width - pad.l - pad.r) / Math.max(1, blocks.length);
  const y = (v: number): number => pad.t + (1 - v) * (height - pad.t - pad.b);
  svg.append(el('text', { x: pad.l, y: 14, 'font-size': 12, fill: '#1d2330' }, 'sparsity per block (bar) and its target (tick)'));
  for (const v of [0, 0.25, 0.5, 0.75, 1]) {
    svg.append(el('line', { x1: pad.l, x2: width - pad.r, y1: y(v), y2: y(v), stroke: '#e3e6eb' }));
    svg.append(el('text', { x: pad.l - 6, y: y(v) + 4, 'font-size': 10, 'text-anchor': 'end', fill: '#5b6372' }, v.toFixed(2)));
  }
  for (const [i, b] of blocks.entries()) {
    const x = pad.l + i * w;
    const bar = el('rect', { x: x + w * 0.15, y: y(b.sparsity), width: w * 0.7, height: y(0) - y(b.sparsity), fill: '#2656d9' });
    bar.append(el('title', {}, `block ${b.layer}: ${(100 * b.sparsity).toFixed(2)}% zeros (target ${(100 * b.allocated).toFixed(2)}%)`));
    svg.append(bar, el('line', { x1: x + w * 0.1, x2: x + w * 0.9, y1: y(b.allocated), y2: y(b.allocated), stroke: '#d9822b', 'stroke-width': 2 }));
    if (blocks.length <= 40 || i % Math.ceil(blocks.length / 40) === 0) {
      svg.append(el('text', { x: x + w / 2, y: height - pad.b + 14, 'font-size': 10, 'text-anchor': 'middle', fill: '#5b6372' }, String(b.layer)));
    }
  }
  svg.append(el('text', { x: width / 2, y: height - 4, 'font-size': 11, 'text-anchor': 'middle', fill: '#5b6372' }, 'block'));
  return svg;
}
