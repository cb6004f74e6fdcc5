#!/usr/bin/env node
// Entry point in a checkout: runs the TypeScript sources through tsx (a devDependency), so what runs is exactly
// what is being edited; the tests run the CLI through this file. The package's entry is bin/krypton-secrets.js.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../src/cli/main.ts');
const code = await main(process.argv.slice(2));
process.exitCode = code;
// Everything is reported by now. A connection that a frozen host never lets close must not keep the
// process alive: exit once pending output had a moment to flush (the timer does not itself hold the loop).
setTimeout(() => process.exit(code), 1500).unref();
