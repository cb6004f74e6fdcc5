#!/usr/bin/env node
// Entry point: runs the TypeScript sources through tsx (no build step, so what runs is what is reviewed).
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../src/cli/main.ts');
process.exitCode = await main(process.argv.slice(2));
