/** Structures as users write them: 'unstructured' or 'N:M' (parsed once here for the CLI and experiment files). */
import { ConfigError } from '../errors.js';
import { describeStructure } from './mask.js';
import type { Structure } from './method.js';

/**
 * 'unstructured' or 'N:M' with 1 <= N < M. Messages start with `name`, how the caller names the option
 * (`--structure` for the CLI, `structure` in an experiment file).
 */
export function parseStructure(text: string, name = 'structure'): Structure {
  if (text === 'unstructured') return { kind: 'unstructured' };
  const m = /^(\d+):(\d+)$/.exec(text);
  if (!m) throw new ConfigError(`${name}: must be 'unstructured' or 'N:M' like '2:4', got '${text}'`);
  const n = Number(m[1]);
  const mm = Number(m[2]);
  if (n < 1) throw new ConfigError(`${name}: N:M needs N >= 1, got ${text}`);
  if (n >= mm) throw new ConfigError(`${name}: N:M needs N < M, got ${text}`);
  return { kind: 'nm', n, m: mm };
}

/** The spelling of a structure: 'unstructured' or 'N:M' (the inverse of parseStructure). */
export const structureLabel: (s: Structure) => string = describeStructure;
