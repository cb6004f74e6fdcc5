/**
 * What every backend fault case asserts (issue 10, fault matrix): a clear per-host error (or a run-level one before
 * any host work) with the documented code, el and cl never on different values, and a re-run that converges.
 */
import { expect } from 'vitest';
import { hostExec, type SandboxInfo } from '../sandbox/index.ts';
import { cli, engineStatusOnHost, sha256, type CliResult } from '../integration/helpers.ts';
import { failuresOutsideRestarts, readWitness } from '../integration/witness.ts';
import { recordFigure } from '../figures/record.ts';

/** Runs one case and records it in the `faults` figure: survived only if every assertion in it held. */
export async function faultCase(id: string, body: () => Promise<void>): Promise<void> {
  let survived = false;
  try {
    await body();
    survived = true;
  } finally {
    recordFigure({ suite: 'faults', id, survived });
  }
}

/** No Node stack trace and no raw library error object reached the operator. */
function expectNoCrash(r: CliResult): void {
  expect(r.stderr, 'a stack trace reached stderr').not.toMatch(/\n\s+at \S+ \(|Error: .*\n\s+at /);
  expect(r.stdout + r.stderr).not.toMatch(/\[object Object\]|uncaught/i);
}

/**
 * The run failed `host` (and only hosts it failed itself or halted: `skipped`) with one of `codes`, a message and a
 * hint; every other host is ok. Returns that host's error.
 */
export function expectHostError(r: CliResult, host: string, codes: string[]): { code: string; message: string; hint?: string } {
  expectNoCrash(r);
  expect(r.code, r.stdout + r.stderr).toBe(1);
  const hosts = r.summary?.hosts ?? {};
  const e = hosts[host]?.error as { code: string; message: string; hint?: string } | undefined;
  expect(hosts[host]?.status, JSON.stringify(hosts)).toBe('failed');
  expect(codes, JSON.stringify(e)).toContain(e?.code);
  expect(e?.message.length).toBeGreaterThan(10);
  expect(e?.hint?.length ?? 0, JSON.stringify(e)).toBeGreaterThan(10);
  for (const [n, h] of Object.entries(hosts)) if (n !== host) expect(['changed', 'unchanged', 'skipped'], `${n}: ${JSON.stringify(h)}`).toContain(h.status);
  return e!;
}

/** The run stopped before any host work, with one of `codes` and the exit code documented for it. */
export function expectRunLevelError(r: CliResult, codes: Record<string, number>): { code: string; message: string; hint?: string } {
  expectNoCrash(r);
  const e = r.events.find((x) => x['type'] === 'error')?.['error'] as { code: string; message: string; hint?: string } | undefined;
  expect(Object.keys(codes), r.stdout + r.stderr).toContain(e?.code);
  expect(r.code).toBe(codes[e!.code]);
  expect(r.summary).toBeUndefined();
  expect(r.events.filter((x) => x['type'] === 'step' || x['type'] === 'wave-start'), 'host work before the run-level error').toEqual([]);
  expect(e?.hint?.length ?? 0).toBeGreaterThan(10);
  return e!;
}

/**
 * el and cl on every node never disagreed since `since` (no CL call refused outside a restart of its own node, from
 * the witness logs), and el now accepts the value its jwt.hex holds (what el and cl read at their last start).
 */
export async function expectPairsAgree(nodes: string[], since: number): Promise<Record<string, string>> {
  const fps: Record<string, string> = {};
  for (const n of nodes) {
    const w = await readWitness(n, since);
    expect(failuresOutsideRestarts(w), `${n}: CL refused outside its restarts (el and cl on different values)`).toEqual([]);
    const hex = (await hostExec(n, ['cat', '/run/krypton-secrets/jwt.hex'])).stdout;
    expect(hex, n).toMatch(/^[0-9a-f]{64}$/);
    expect(await engineStatusOnHost(n, hex), `${n}: el does not run on the jwt.hex value`).toBe(200);
    fps[n] = sha256(hex);
  }
  return fps;
}

/** A halted rotation names every node's version and backend version, and the one command that completes it. */
export function completionOf(r: CliResult, nodes: string[]): string[] {
  const notes = (r.summary as unknown as { notes?: { jwt_versions?: Record<string, { fingerprint: string | null }>; complete_with?: string } }).notes;
  for (const n of nodes) expect(notes?.jwt_versions?.[n]?.fingerprint, `${n} in notes.jwt_versions`).toMatch(/^sha256:[0-9a-f]{8,}/);
  expect(notes?.complete_with, 'the command that completes the run').toMatch(/^krypton-secrets apply \S+ -i \S+ --resume$/);
  return notes!.complete_with!.split(' ').slice(1);
}

/**
 * After the fault is gone: `args` (the command the tool named, or the same apply again) exits 0 and leaves every node
 * on one value that el and cl both run on; then `apply playbooks/provision.yml` changes nothing.
 */
export async function expectConverges(info: SandboxInfo, args: string[], env: Record<string, string>, nodes: string[], since: number, inventory: string): Promise<void> {
  const again = await cli(info, [...args, '--json'], env);
  expect(again.code, again.stdout + again.stderr).toBe(0);
  const fps = await expectPairsAgree(nodes, since);
  expect(new Set(Object.values(fps)).size, JSON.stringify(fps)).toBe(1);
  const next = await cli(info, ['apply', 'playbooks/provision.yml', '-i', inventory, '--json'], env);
  expect(next.code, next.stdout + next.stderr).toBe(0);
  expect(next.summary?.changed, next.stdout).toBe(0);
}
