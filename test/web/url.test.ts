import { DEFAULTS, parseRunUrl, runUrl } from '../../web/src/url.js';

const CONTRACT = '?model=https://h/m/&calibration=c.jsonl&eval=w.jsonl&method=wanda&sparsity=0.5&structure=unstructured&nsamples=8&seqlen=128&windows=4&seed=0&backend=wasm&run=1';

test('the URL contract: every key read, run=1 starts', () => {
  const u = parseRunUrl(CONTRACT);
  expect(u).toEqual({
    params: { ...DEFAULTS, method: 'wanda', sparsity: 0.5, structure: 'unstructured', nsamples: 8, seqlen: 128, windows: 4, seed: 0, backend: 'wasm' },
    model: 'https://h/m/',
    calibration: 'c.jsonl',
    eval: 'w.jsonl',
    run: true,
  });
  expect(parseRunUrl('').run).toBe(false);
  expect(parseRunUrl('').params).toEqual(DEFAULTS);
});

test('method options, layerwise, refine and format', () => {
  const u = parseRunUrl('?method=sparsegpt&options={"damp":0.1}&layerwise=owl&refine=dsnot&format=compressed');
  expect(u.params).toMatchObject({ method: 'sparsegpt', methodOptions: { damp: 0.1 }, layerwise: 'owl', refine: 'dsnot', format: 'compressed' });
});

test('a malformed value is refused naming the parameter and what was expected', () => {
  expect(() => parseRunUrl('?sparsity=half')).toThrow('URL parameter sparsity=half: expected a number');
  expect(() => parseRunUrl('?nsamples=1.5')).toThrow('URL parameter nsamples=1.5: expected an integer');
  expect(() => parseRunUrl('?backend=cuda')).toThrow('URL parameter backend=cuda: expected one of auto, webgpu, wasm');
  expect(() => parseRunUrl('?options=[1]')).toThrow('URL parameter options: expected a JSON object');
  expect(() => parseRunUrl('?options={')).toThrow(/URL parameter options: not JSON/);
});

test('runUrl is the inverse of parseRunUrl for URL inputs', () => {
  const u = parseRunUrl(CONTRACT);
  const back = parseRunUrl(runUrl(u.params, { model: u.model!, calibration: u.calibration, eval: u.eval! }));
  expect(back).toEqual(u);
});
