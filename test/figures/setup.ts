/**
 * Vitest global setup of the integration project: empties `.figures/` before the run and prints the figure
 * lines (see ./record.ts) after it. A suite that recorded nothing prints nothing.
 */
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { FIGURES_DIR, type BadInputCase, type CanaryRun, type FaultCase, type FigureCase } from './record.ts';

function read<T extends FigureCase>(suite: T['suite']): T[] {
  const f = join(FIGURES_DIR, `${suite}.jsonl`);
  if (!existsSync(f)) return [];
  return readFileSync(f, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as T);
}

/** The figure lines for what `.figures/` holds now, in suite order. */
export function figureLines(): string[] {
  const out: string[] = [];
  const bad = read<BadInputCase>('bad-inputs');
  if (bad.length) out.push(`bad inputs: ${bad.length} tried, ${bad.filter((c) => c.clear).length} clear, ${bad.filter((c) => c.changed).length} changed`);
  const canary = read<CanaryRun>('canary');
  if (canary.length) {
    const places = Math.max(...canary.map((c) => c.places));
    out.push(`canary: ${places} places × ${canary.length} runs, ${canary.reduce((n, c) => n + c.found, 0)} found`);
  }
  const faults = read<FaultCase>('faults');
  if (faults.length) out.push(`faults: ${faults.length} tried, ${faults.filter((c) => c.survived).length} survived`);
  return out;
}

export function setup(): void {
  rmSync(FIGURES_DIR, { recursive: true, force: true });
}

export function teardown(): void {
  for (const l of figureLines()) process.stdout.write(`${l}\n`);
}
