/** The acceptance suite (`npm run test:acceptance`): only `test/**\/*.acceptance.test.ts` (see jest.config.js). */
import base from './jest.config.js';

export default {
  ...base,
  testMatch: ['<rootDir>/test/**/*.acceptance.test.ts'],
  testPathIgnorePatterns: ['/node_modules/'],
  testTimeout: 1800000,
};
