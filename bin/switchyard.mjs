#!/usr/bin/env node
// The `switchyard` command. Plain JavaScript so that `npx switchyard` and `node bin/switchyard.mjs`
// work without a build step: it registers tsx, then runs the TypeScript entry point.
import { register } from 'tsx/esm/api';

register();
await import('../src/cli/main.ts');
