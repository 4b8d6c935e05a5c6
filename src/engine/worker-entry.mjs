// Entry of the engine's worker thread. Module hooks registered by `--import tsx` in the parent
// do not reach worker threads in every launcher (node --test children, for one), so the worker
// registers tsx itself before loading the TypeScript worker.
import { register } from 'tsx/esm/api';

register();
await import('./worker.ts');
