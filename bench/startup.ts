/**
 * `node --import tsx bench/startup.ts [--runs N]`: start-up cost of the packaged CLI next to bare Node.
 * Interleaves `node -e 0`, `node bin/krypton-secrets.js --version` and `… --help` (the compiled dist/; run
 * `npm run build` first) N times each (default 30) and prints their medians in ms and the ratios to `node -e 0`
 * (issue 11's target: `--version` within 1.5×). A benchmark, not a test: no pass/fail.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from '../test/sandbox/layout.ts';

const args = process.argv.slice(2);
const runsArg = args.indexOf('--runs');
const runs = runsArg >= 0 ? Number(args[runsArg + 1]) : 30;
const bin = join(REPO_ROOT, 'bin/krypton-secrets.js');
if (!existsSync(join(REPO_ROOT, 'dist/cli/main.js'))) {
  process.stderr.write('bench/startup: dist/ is not built: run `npm run build` first\n');
  process.exit(2);
}

const cases: Record<string, string[]> = { 'node -e 0': ['-e', '0'], '--version': [bin, '--version'], '--help': [bin, '--help'] };
const times: Record<string, number[]> = Object.fromEntries(Object.keys(cases).map((k) => [k, []]));
for (let i = 0; i < runs; i++) {
  for (const [name, argv] of Object.entries(cases)) {
    const t0 = performance.now();
    const r = spawnSync(process.execPath, argv, { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`${name} exited ${r.status}: ${r.stderr}`);
    times[name]!.push(performance.now() - t0);
  }
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const base = median(times['node -e 0']!);
const result = Object.fromEntries(Object.entries(times).map(([k, v]) => [k, { medianMs: Math.round(median(v) * 10) / 10, ratio: Math.round((median(v) / base) * 100) / 100 }]));
process.stdout.write(`${JSON.stringify({ runs, node: process.version, result }, null, 2)}\n`);
