/** THE defaults of the evaluation stage: `evaluate()` and the harness apply them, the CLI and the schema read them. */
export const EVAL_DEFAULTS = {
  batchSize: 1, // perplexity windows per forward (speed only)
  taskBatchSize: 16, // zero-shot requests per forward (speed only: batches hold whole items, results identical)
  addBos: false, // the reference does not prepend BOS to task contexts
  meanMetric: 'acc', // what each task adds to the mean (the paper: acc)
  download: false, // fetch a missing perplexity set from the hub (needs the network)
} as const;
