/**
 * Output locks under their own names, forwarded to the installed platform (lib/platform/index.ts): the Node layer
 * passes lib/output-lock.ts (lock files naming their process, a heartbeat thread, release on exit); a browser layer,
 * with one writer per tab, can pass a lock that only records the output. Core modules import this instead.
 */
import { platform } from './index.js';
import type * as Locks from '../output-lock.js';

export type { OutputLock, LockOptions } from '../output-lock.js';

export const acquireOutputLock: typeof Locks.acquireOutputLock = (...a) => platform().acquireOutputLock(...a);
