#!/usr/bin/env node
// Commands that run networks here start again in a child with the tensor allocator settings (src/cli/tensor-process.js),
// decided before the TypeScript loader loads, so the process that waits for the child stays a bare Node start.
import { relaunchForTensors } from '../src/cli/tensor-process.js';

if (!(await relaunchForTensors(process.argv))) {
  // Runs the TypeScript sources directly through tsx, so the bin works right after `npm ci`.
  const { register } = await import('tsx/esm/api');
  register();
  await import('../src/cli.ts');
}
