/**
 * The project's robustness figures (issue 10): each suite records one line per case it ran, and the
 * integration project's global teardown (./setup.ts) prints one figure line per suite at the end of `npm test`,
 * which `.ci/run` repeats after vitest's own count:
 *   bad inputs: N tried, N clear, 0 changed
 *   canary: N places × M runs, 0 found
 *   faults: N tried, N survived
 * Cases are appended as JSON lines to `<repo>/.figures/<suite>.jsonl` (git-ignored; emptied at the start of each
 * run by ./setup.ts), so a suite may be split over several test files and still print one line.
 */
import { appendFileSync, mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const FIGURES_DIR = join(resolve(dirname(fileURLToPath(import.meta.url)), '../..'), '.figures');

/** One bad input tried: `clear` = the expected code and location were reported; `changed` = a host or the store differed after. */
export interface BadInputCase {
  suite: 'bad-inputs';
  id: string;
  clear: boolean;
  changed: boolean;
}

/** One run searched for canaries: `places` = how many places were searched (streams, files, hosts' dirs, cmdlines); `found` = canary hits. */
export interface CanaryRun {
  suite: 'canary';
  id: string;
  places: number;
  found: number;
}

/** One fault injected: `survived` = a clear per-host error, el/cl never on different values, and a re-run converged. */
export interface FaultCase {
  suite: 'faults';
  id: string;
  survived: boolean;
}

export type FigureCase = BadInputCase | CanaryRun | FaultCase;

/** Appends one case to its suite's file (synchronously, so a crash later in the test keeps it). */
export function recordFigure(c: FigureCase): void {
  mkdirSync(FIGURES_DIR, { recursive: true });
  appendFileSync(join(FIGURES_DIR, `${c.suite}.jsonl`), `${JSON.stringify(c)}\n`);
}
