/** Shipped experiment files by name (lib/experiment/configs.ts): what `llm-prune run demo` and `run paper-grid` open. */
import { readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ConfigError } from '../../lib/errors.js';
import { experimentFile, shippedConfigDir, shippedConfigs } from '../../lib/experiment/configs.js';

test('the shipped configs are the configs/ folder of the package', () => {
  expect(shippedConfigDir()).toBe(resolve('configs'));
  expect(shippedConfigs()).toEqual(readdirSync('configs').map((f) => f.replace(/\.(yaml|yml|json)$/, '')).sort());
  expect(shippedConfigs()).toEqual(expect.arrayContaining(['demo', 'paper-grid-c4-llama-7m']));
});

test('a name is a file name without extension, or the one file name that starts with <name>-', () => {
  expect(experimentFile('demo')).toBe(join(resolve('configs'), 'demo.yaml'));
  expect(experimentFile('paper-grid')).toBe(join(resolve('configs'), 'paper-grid-c4-llama-7m.yaml'));
  expect(experimentFile('paper-grid-c4-llama-7m')).toBe(join(resolve('configs'), 'paper-grid-c4-llama-7m.yaml'));
});

test('an existing file or any path is taken as it is (reading it says what is wrong)', () => {
  expect(experimentFile('configs/demo.yaml')).toBe('configs/demo.yaml');
  expect(experimentFile('missing/grid.yaml')).toBe('missing/grid.yaml');
  expect(experimentFile('grid.yaml')).toBe('grid.yaml');
});

test('an unknown name is a ConfigError naming the option and listing the shipped configs', () => {
  expect(() => experimentFile('grid')).toThrow(ConfigError);
  expect(() => experimentFile('grid', '--config')).toThrow(
    new ConfigError(`--config: 'grid' is neither a file nor a shipped config; shipped configs: ${shippedConfigs().join(', ')}`),
  );
  expect(() => experimentFile('grid')).toThrow(/^config: 'grid' is neither a file nor a shipped config/);
});
