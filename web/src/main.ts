/**
 * The page: the form, the URL contract (url.ts: `?model=...&run=1` starts at once), and the display of what the
 * worker (worker.ts) reports: stage, progress with ETA, the memory estimate, perplexities, the per-block chart,
 * the download, and the result line in `<pre id="result">`.
 */
import { sparsityChart } from './chart.js';
import type { FromWorker, InputSource, RunInputs, RunParams, RunResult } from './protocol.js';
import { DEFAULTS, parseRunUrl, runUrl, type UrlRun } from './url.js';

const $ = <T extends HTMLElement = HTMLInputElement>(id: string): T => document.getElementById(id) as T;
let droppedModel: File[] = [];
let worker: Worker | null = null;
let ready: Promise<void> = Promise.resolve();

function newWorker(): Worker {
  const w = new Worker(new URL('./worker.js', import.meta.url), { type: 'module' });
  ready = new Promise((resolve) => {
    const first = (e: MessageEvent<FromWorker>): void => {
      if (e.data.type !== 'ready') return;
      w.removeEventListener('message', first);
      fillChoices(e.data.methods, e.data.layerwise, e.data.refiners);
      resolve();
    };
    w.addEventListener('message', first);
  });
  return w;
}

function fillChoices(methods: string[], layerwise: string[], refiners: string[]): void {
  const fill = (id: string, names: string[], keep: string[]): void => {
    const s = $<HTMLSelectElement>(id);
    const chosen = s.value;
    s.replaceChildren(...keep.concat(names).map((n) => new Option(n || 'none', n)));
    if ([...keep, ...names].includes(chosen)) s.value = chosen;
  };
  fill('method', methods, []);
  fill('layerwise', layerwise, ['']);
  fill('refine', refiners, ['']);
}

function setForm(u: UrlRun): void {
  const p = u.params;
  for (const k of ['sparsity', 'structure', 'nsamples', 'seqlen', 'windows', 'seed'] as const) $(k).value = String(p[k]);
  $<HTMLSelectElement>('backend').value = p.backend;
  $<HTMLSelectElement>('format').value = p.format;
  $('options').value = Object.keys(p.methodOptions).length > 0 ? JSON.stringify(p.methodOptions) : '';
  $('model-url').value = u.model ?? '';
  $('calibration-url').value = u.calibration ?? '';
  $('eval-url').value = u.eval ?? '';
  const method = $<HTMLSelectElement>('method');
  if (![...method.options].some((o) => o.value === p.method)) method.append(new Option(p.method, p.method));
  method.value = p.method;
  for (const k of ['layerwise', 'refine'] as const) {
    const s = $<HTMLSelectElement>(k);
    const v = p[k] ?? '';
    if (![...s.options].some((o) => o.value === v)) s.append(new Option(v, v));
    s.value = v;
  }
}

function readForm(): RunParams {
  const n = (id: string): number => Number($(id).value);
  const text = $('options').value.trim();
  const methodOptions = text ? (JSON.parse(text) as Record<string, unknown>) : {};
  return {
    method: $<HTMLSelectElement>('method').value,
    sparsity: n('sparsity'),
    structure: $('structure').value.trim() || DEFAULTS.structure,
    nsamples: n('nsamples'),
    seqlen: n('seqlen'),
    windows: n('windows'),
    seed: n('seed'),
    backend: $<HTMLSelectElement>('backend').value as RunParams['backend'],
    format: $<HTMLSelectElement>('format').value as RunParams['format'],
    methodOptions,
    layerwise: $<HTMLSelectElement>('layerwise').value || null,
    refine: $<HTMLSelectElement>('refine').value || null,
  };
}

function source(urlId: string, files: File[], what: string, required: boolean): InputSource | null {
  const url = $(urlId).value.trim();
  if (url) return { kind: 'url', url };
  if (files.length > 0) return { kind: 'files', files };
  if (required) throw new Error(`${what}: give a URL or choose a file`);
  return null;
}

function readInputs(): RunInputs {
  const picked = [...($('model-files').files ?? [])];
  return {
    model: source('model-url', droppedModel.length > 0 ? droppedModel : picked, 'model', true)!,
    calibration: source('calibration-url', [...($('calibration-file').files ?? [])], 'calibration', false),
    eval: source('eval-url', [...($('eval-file').files ?? [])], 'perplexity text', true)!,
  };
}

function clock(seconds: number): string {
  const s = Math.round(seconds);
  return s >= 3600 ? `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min` : s >= 60 ? `${Math.floor(s / 60)} min ${s % 60} s` : `${s} s`;
}

function finish(result: RunResult): void {
  $('result').textContent = JSON.stringify(result);
  $<HTMLButtonElement>('run').disabled = false;
  document.body.dataset['state'] = 'error' in result ? 'error' : 'done';
}

function show(m: FromWorker): void {
  if (m.type === 'stage') {
    $('stage').textContent = `${m.stage}: ${m.note}`;
    $<HTMLProgressElement>('progress').value = 0;
    $('eta').textContent = '';
  } else if (m.type === 'progress') {
    $<HTMLProgressElement>('progress').value = m.done / m.total;
    $('eta').textContent = `${m.done} / ${m.total}${m.eta !== null ? `, about ${clock(m.eta)} left` : ''}`;
  } else if (m.type === 'estimate') {
    $('estimate').replaceChildren(...m.estimate.lines.map((l) => Object.assign(document.createElement('li'), { textContent: l })));
  } else if (m.type === 'done') {
    shown(m);
  } else if (m.type === 'error') {
    $('error').textContent = m.message;
    $('stage').textContent = 'failed';
    finish({ error: m.message });
  }
}

function shown(m: FromWorker & { type: 'done' }): void {
  const r = m.result as Exclude<RunResult, { error: string }>;
  $('ppl-dense').textContent = r.pplDense.toFixed(4);
  $('ppl-pruned').textContent = r.pplPruned.toFixed(4);
  $('sparsity-out').textContent = r.sparsity.toFixed(4);
  $('table').hidden = false;
  $('chart').replaceChildren(sparsityChart(m.blocks));
  const link = (id: string, blob: Blob, name: string): void => {
    const a = $<HTMLAnchorElement>(id);
    a.href = URL.createObjectURL(blob);
    a.download = name;
    a.hidden = false;
  };
  link('download', new Blob([m.zip as Uint8Array<ArrayBuffer>], { type: 'application/zip' }), m.zipName);
  link('report', new Blob([JSON.stringify(m.report, null, 2)], { type: 'application/json' }), 'report.json');
  $('stage').textContent = `done in ${clock(r.seconds)} on ${r.backend} (${r.adapter})`;
  $<HTMLProgressElement>('progress').value = 1;
  finish(r);
}

async function start(): Promise<void> {
  $('error').textContent = '';
  $('result').textContent = '';
  $('table').hidden = true;
  document.body.dataset['state'] = 'running';
  try {
    const params = readForm();
    const inputs = readInputs();
    if (inputs.model.kind === 'url' && inputs.eval.kind === 'url' && inputs.calibration?.kind !== 'files') {
      const a = $<HTMLAnchorElement>('share');
      a.href = runUrl(params, { model: inputs.model.url, calibration: inputs.calibration?.url ?? null, eval: inputs.eval.url });
      a.textContent = 'link to this run';
    }
    $<HTMLButtonElement>('run').disabled = true;
    worker ??= newWorker(); // a fresh worker per run: tfjs has one backend per worker
    await ready;
    const w = worker;
    worker = null;
    w.onmessage = (e: MessageEvent<FromWorker>) => {
      show(e.data);
      if (e.data.type === 'done' || e.data.type === 'error') w.terminate();
    };
    w.onerror = (e) => show({ type: 'error', message: `worker: ${e.message}` });
    w.postMessage({ type: 'run', params, inputs });
  } catch (e) {
    show({ type: 'error', message: (e as Error).message });
  }
}

/** The files of a drop: dropped files as they are, a dropped folder's files (its top level: a checkpoint folder). */
async function droppedFiles(dt: DataTransfer): Promise<File[]> {
  const entries = [...dt.items].map((i) => i.webkitGetAsEntry()).filter((e): e is FileSystemEntry => e !== null);
  const out: File[] = [];
  for (const e of entries) {
    if (e.isFile) out.push(await new Promise<File>((ok, fail) => (e as FileSystemFileEntry).file(ok, fail)));
    else if (e.isDirectory) out.push(...(await folderFiles(e as FileSystemDirectoryEntry)));
  }
  return out;
}

async function folderFiles(dir: FileSystemDirectoryEntry): Promise<File[]> {
  const reader = dir.createReader();
  const all: FileSystemEntry[] = [];
  for (;;) {
    const batch = await new Promise<FileSystemEntry[]>((ok, fail) => reader.readEntries(ok, fail)); // in pieces of ~100
    if (batch.length === 0) break;
    all.push(...batch);
  }
  const files = all.filter((e): e is FileSystemFileEntry => e.isFile);
  return Promise.all(files.map((f) => new Promise<File>((ok, fail) => f.file(ok, fail))));
}

function wireDrop(): void {
  const drop = $('drop');
  drop.addEventListener('dragover', (e) => {
    e.preventDefault();
    drop.classList.add('over');
  });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (e) => {
    e.preventDefault();
    drop.classList.remove('over');
    if (!e.dataTransfer) return;
    void droppedFiles(e.dataTransfer).then((files) => {
      droppedModel = files;
      drop.textContent = `${files.length} files dropped`;
    });
  });
  $('model-files').addEventListener('change', () => {
    droppedModel = [];
    drop.firstChild!.textContent = `${$('model-files').files?.length ?? 0} files chosen; `;
  });
}

function main(): void {
  worker = newWorker();
  wireDrop();
  $('form').addEventListener('submit', (e) => {
    e.preventDefault();
    void start();
  });
  let u: UrlRun;
  try {
    u = parseRunUrl(location.search);
  } catch (e) {
    show({ type: 'error', message: (e as Error).message });
    return;
  }
  setForm(u);
  if (u.run) void ready.then(start);
}

main();
