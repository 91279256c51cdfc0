/**
 * Error hierarchy. Every message names its subject (file, tensor, key path, flag), what was found and what was
 * expected. The library throws these; only the CLI turns them into a message and a non-zero exit.
 */
export class LlmPruneError extends Error {
  override name = 'LlmPruneError';
}

/** A checkpoint folder, config.json, safetensors file or index is missing or malformed. */
export class CheckpointError extends LlmPruneError {
  override name = 'CheckpointError';
}

/** A model configuration asks for something this package does not implement. */
export class UnsupportedError extends LlmPruneError {
  override name = 'UnsupportedError';
}

/** A data file (calibration text, evaluation set, task file) is missing or malformed. */
export class DataError extends LlmPruneError {
  override name = 'DataError';
}

/** An option, flag or experiment config key has a value outside what is allowed. */
export class ConfigError extends LlmPruneError {
  override name = 'ConfigError';
}

/**
 * How the caller names an option in messages: the CLI by its flag (`--max-steps`), an experiment file by its key
 * path (`finetune.maxSteps`). Library functions that validate options take one (default `cliFlag`), so a message
 * names what the user wrote.
 */
export type OptionName = (option: string) => string;

/** `maxSteps` -> `--max-steps`. */
export const cliFlag: OptionName = (option) => `--${option.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;

/** Key paths of one section of an experiment file: `keyPath('finetune')('maxSteps')` -> `finetune.maxSteps`. */
export function keyPath(section: string, renamed: Record<string, string> = {}): OptionName {
  return (option) => renamed[option] ?? `${section}.${option}`;
}

/** An output is being written by another process (see lib/output-lock.ts). */
export class OutputLockedError extends LlmPruneError {
  override name = 'OutputLockedError';
}
