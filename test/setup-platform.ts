// Tests import lib/ modules one by one, not through lib/index.ts: install the Node platform layer first.
import '../lib/node/platform.js';
