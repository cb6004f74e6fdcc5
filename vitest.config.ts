import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

// Two projects, both run by `npm test`; `--project unit` / `--project integration` selects one.
// - unit: pure and fake-fleet tests, test files in parallel.
// - integration: the tests against the sandbox fleet (network namespaces, one OpenBao, moto). They share
//   that fleet, so their files run one at a time, and only after every unit file is done (groupOrder),
//   so the unit run adds no load to them. Timeouts are generous: CI has run at load 12-28.
const UNIT = ['test/unit'];
const INTEGRATION = ['test/integration', 'test/sandbox', 'test/package', 'test/faults', 'test/corpus', 'test/canary'];

// A test file in neither project would silently never run; refuse to start instead.
const root = fileURLToPath(new URL('.', import.meta.url));
const stray = readdirSync(`${root}test`, { recursive: true })
  .map((f) => `test/${String(f).split('\\').join('/')}`)
  .filter((f) => f.endsWith('.test.ts') && ![...UNIT, ...INTEGRATION].some((dir) => f.startsWith(`${dir}/`)));
if (stray.length > 0) throw new Error(`vitest.config.ts: test files in no project (add their folder to one): ${stray.join(', ')}`);

const files = (dirs: string[]) => dirs.map((dir) => `${dir}/**/*.test.ts`);

export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: files(UNIT),
          // Vitest's default is one worker fewer than the CPUs, which is 1 (no parallelism) on 2 cores.
          maxWorkers: '100%',
          sequence: { groupOrder: 0 },
          testTimeout: 60_000,
          hookTimeout: 60_000,
        },
      },
      {
        test: {
          name: 'integration',
          include: files(INTEGRATION),
          fileParallelism: false,
          sequence: { groupOrder: 1 },
          // Empties .figures/ before the run and prints the robustness figure lines after it (test/figures).
          globalSetup: ['test/figures/setup.ts'],
          // Bounds, not targets: one test may run several applies and a reboot on hosts that share 2 cores.
          testTimeout: 240_000,
          hookTimeout: 300_000,
        },
      },
    ],
  },
});
