// Entry of the engine's tokenizer worker thread (see worker-entry.mjs for why it registers tsx).
import { register } from 'tsx/esm/api';

register();
await import('./tokenizer-worker.ts');
