/**
 * Error hierarchy. Every message names its subject (file, tensor, key path, flag), what was found and what was
 * expected. The library throws these; only the CLI turns them into a message and a non-zero exit.
 */
export class LlmPruneError extends Error {
  override name = 'LlmPruneError';
  /** The library option that the message starts with (`model`, `dataDir`), when it is about one. */
  readonly option: string | undefined;

  constructor(message: string, options: { option?: string; cause?: unknown } = {}) {
    super(message, options.cause !== undefined ? { cause: options.cause } : undefined);
    this.option = options.option;
  }

  /** The message with its leading option named the caller's way: the CLI passes `cliFlag` (`dataDir` -> `--data-dir`). */
  messageAs(name: OptionName): string {
    const o = this.option;
    return o !== undefined && this.message.startsWith(o) ? name(o) + this.message.slice(o.length) : this.message;
  }
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
 * How the caller names an option in messages: the library by its own name (`maxSteps`, the default), the CLI by its
 * flag (`--max-steps`), an experiment file by its key path (`finetune.maxSteps`). Library functions that validate
 * options take one, so a message names what the user wrote.
 */
export type OptionName = (option: string) => string;

/** The library's own option names, unchanged: the default of every function that takes an `OptionName`. */
export const optionKey: OptionName = (option) => option;

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
