#!/usr/bin/env node
// Entry point of the package: runs the compiled JavaScript in dist/ (`npm run build`; npm ci/npm pack build it
// through `prepare`). In a checkout, `bin/dev.js` runs the TypeScript sources through tsx instead.
import { readFileSync } from 'node:fs';

const argv = process.argv.slice(2);
if (argv.length === 1 && (argv[0] === '--version' || argv[0] === '-V')) {
  // Answered before any module is loaded: `--version` costs about what `node -e 0` costs (bench/startup.ts).
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
  process.stdout.write(`${pkg.version}\n`);
} else {
  let main;
  try {
    ({ main } = await import('../dist/cli/main.js'));
  } catch (e) {
    if (e?.code !== 'ERR_MODULE_NOT_FOUND' || !String(e.message).includes('/dist/')) throw e;
    process.stderr.write('krypton-secrets: dist/ is not built: run `npm run build` in the checkout (or use bin/dev.js)\n');
    process.exit(70);
  }
  const code = await main(argv);
  process.exitCode = code;
  // Everything is reported by now. A connection that a frozen host never lets close must not keep the
  // process alive: exit once pending output had a moment to flush (the timer does not itself hold the loop).
  setTimeout(() => process.exit(code), 1500).unref();
}
