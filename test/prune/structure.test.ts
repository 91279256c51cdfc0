/** Structures as users write them (lib/prune/structure.ts): one parser and one printer for the CLI and experiment files. */
import { ConfigError } from '../../lib/errors.js';
import { parseStructure as parseFromCli } from '../../lib/prune/prune.js';
import { parseStructure, structureLabel } from '../../lib/prune/structure.js';

test('parses unstructured and N:M; the label is the inverse', () => {
  for (const text of ['unstructured', '2:4', '4:8', '16:32']) expect(structureLabel(parseStructure(text))).toBe(text);
  expect(parseStructure('2:4')).toEqual({ kind: 'nm', n: 2, m: 4 });
});

test('one set of messages, prefixed with the name the caller gives the option', () => {
  expect(() => parseStructure('4:4')).toThrow(new ConfigError('structure: N:M needs N < M, got 4:4'));
  expect(() => parseStructure('0:4', 'prune[0].structure')).toThrow(new ConfigError('prune[0].structure: N:M needs N >= 1, got 0:4'));
  expect(() => parseStructure('half')).toThrow(new ConfigError("structure: must be 'unstructured' or 'N:M' like '2:4', got 'half'"));
  expect(() => parseFromCli('4:4')).toThrow(new ConfigError('--structure: N:M needs N < M, got 4:4'));
});
