/** The Node layer: importing it installs the Node platform (lib/node/platform.ts) and gives its file sources and sinks. */
export { nodePlatform } from './platform.js';
export { fileFolder, fileSink, fileSource } from './files.js';
