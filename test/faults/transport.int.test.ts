/**
 * Fault matrix, transport half (issue 10): faults of the SSH side and of the run itself, injected for real into a
 * rotation on the sandbox fleet (real sshd, OpenBao, bao agent, el/cl stand-ins). Each case asserts
 *  (a) a clear per-host error where the run failed (an error code, and the host named),
 *  (b) el and cl never on different JWTs — replayed from their own start lines (the fingerprint of the file each
 *      loaded) and the CL's witness log (no 401), and
 *  (c) that a re-run converges: `apply rotate-jwt.yml --resume` exits 0 with every node on the store's current
 *      value, and a third apply changes nothing,
 * and records `survived` = (a) and (b) and (c) in the `faults` figure (test/figures/record.ts).
 * One sandbox of two nodes for the whole file (each case rotates, then re-runs twice). `KRYPTON_FAULTS_TIMING=1`
 * prints each case's durations (fault run, checks, re-runs) to tune the file's share of CI time.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hostExec, sandboxDown, sandboxUp, simulateReboot, type SandboxInfo } from '../sandbox/index.ts';
import { cli, sha256, vaultJwt, type CliResult } from '../integration/helpers.ts';
import { recordFigure } from '../figures/record.ts';
import { cl401s, cliWatched, dropSshSessions, nodeNow, serviceEvents, setMaxSessions, splitMoments, stepDone } from './transport-helpers.ts';

const NODES = ['val-1', 'val-2'];
const ROTATE = 'playbooks/rotate-jwt.yml';
/**
 * The boundaries of rotate-jwt.yml's steps (Vault backend) after which the canary is in a state of its own: the
 * store moved but the host did not; a fresh secret_id delivered, the old agent running; the agent rendered the
 * new jwt.hex while el/cl run on the old one; el/cl restarted, not yet verified. (mount.tmpfs,
 * agent.render-config and node.set-jwt-path change nothing on a provisioned node: the boundary after each is the
 * one before it.)
 */
const BOUNDARIES = ['jwt.rotate', 'vault.deliver-secret-id', 'agent.start', 'node.restart-lockstep'];

let info: SandboxInfo;

/** (a): every failed or skipped host carries an error code; a failed one's message names it. */
function clearErrors(r: CliResult): string[] {
  const bad: string[] = [];
  for (const [h, s] of Object.entries(r.summary?.hosts ?? {})) {
    if (s.status !== 'failed' && s.status !== 'skipped') continue;
    if (!s.error || !/^E_[A-Z_]+$/.test(s.error.code)) bad.push(`${h}: ${s.status} without an error code`);
    else if (s.status === 'failed' && !s.error.message.includes(h)) bad.push(`${h}: "${s.error.message}" does not name the host`);
  }
  if (r.code !== 0 && r.code !== 130 && !r.summary) {
    const err = r.events.find((e) => e['type'] === 'error')?.['error'] as { code?: string } | undefined;
    if (!err?.code) bad.push(`exit ${r.code} without a summary or an error code: ${r.stderr.slice(-300)}`);
  }
  if (/\n\s+at .+:\d+:\d+\)?\n/.test(r.stderr)) bad.push('a stack trace on stderr');
  return bad;
}

/** (b): moments el and cl ran on different JWTs since `sinceMs` on any node, and CL 401s. */
async function splits(sinceMs: number, blackouts: Record<string, number[]> = {}): Promise<string[]> {
  const out: string[] = [];
  for (const n of NODES) {
    for (const m of splitMoments(await serviceEvents(n, sinceMs), blackouts[n] ?? [])) out.push(`${n}: ${m}`);
    for (const t of await cl401s(n, sinceMs)) out.push(`${n}: CL got 401 at ${t}`);
  }
  return out;
}

/** (c): --resume converges (exit 0, every node's jwt.hex, el and cl on the store's current value), then changes nothing. */
async function converges(): Promise<string[]> {
  const out: string[] = [];
  const second = await cli(info, ['apply', ROTATE, '-i', info.files.inventory, '--json', '--resume']);
  if (second.code !== 0) out.push(`re-run exited ${second.code}: ${JSON.stringify(second.summary?.hosts)} ${second.stderr.slice(-300)}`);
  const want = `sha256:${sha256((await vaultJwt(info)).hex).slice(0, 12)}`;
  for (const n of NODES) {
    const now = await nodeNow(n);
    if (now.file !== want || now.el !== want || now.cl !== want) out.push(`${n} after the re-run: jwt.hex ${now.file}, el ${now.el}, cl ${now.cl}; store ${want}`);
  }
  const third = await cli(info, ['apply', ROTATE, '-i', info.files.inventory, '--json', '--resume']);
  if (third.code !== 0 || third.summary?.changed !== 0) out.push(`third apply: exit ${third.code}, changed ${third.summary?.changed}`);
  return out;
}

/** Runs one case: `fault` starts the faulty run and returns it; then (a), (b), (c); records the figure; asserts. */
async function faultCase(id: string, fault: () => Promise<{ run: CliResult; blackouts?: Record<string, number[]>; expect?: (r: CliResult) => string[] }>): Promise<void> {
  const since = Date.now();
  const { run, blackouts, expect: own } = await fault();
  const t1 = Date.now();
  const a = [...clearErrors(run), ...(own?.(run) ?? [])];
  const b = await splits(since, blackouts);
  const t2 = Date.now();
  const c = await converges();
  if (process.env['KRYPTON_FAULTS_TIMING']) console.log(`${id}: fault run ${t1 - since} ms, checks ${t2 - t1} ms, re-runs ${Date.now() - t2} ms`);
  // The re-runs must not have split a pair either.
  b.push(...(await splits(since, blackouts)).filter((x) => !b.includes(x)));
  const survived = a.length === 0 && b.length === 0 && c.length === 0;
  recordFigure({ suite: 'faults', id, survived });
  expect({ errors: a, splits: b, converge: c }, `${id}: ${run.stdout.split('\n').filter((l) => l.includes('"failed"') || l.includes('"summary"')).join('\n').slice(0, 2000)}`).toEqual({ errors: [], splits: [], converge: [] });
}

describe('fault matrix: transport and run faults during a rotation (real sshd, OpenBao, bao agent)', () => {
  beforeAll(async () => {
    info = await sandboxUp({ hosts: NODES.length });
    const r = await cli(info, ['apply', 'playbooks/provision.yml', '-i', info.files.inventory, '--json']);
    expect(r.code, r.stdout + r.stderr).toBe(0);
  }, 180_000);

  afterAll(async () => {
    await sandboxDown();
  }, 60_000);

  it('sshd MaxSessions 1 on one host: the rotation completes (channels are back-pressure, the run lock has a connection of its own)', async () => {
    await setMaxSessions('val-2', 1);
    try {
      await faultCase('ssh-max-sessions-1', async () => ({
        run: await cli(info, ['apply', ROTATE, '-i', info.files.inventory, '--json']),
        expect: (r) => (r.code === 0 && r.summary?.hosts['val-2']?.status === 'changed' ? [] : [`the rotation did not complete on val-2: exit ${r.code}, ${JSON.stringify(r.summary?.hosts['val-2'])}`]),
      }));
    } finally {
      await setMaxSessions('val-2', 10);
    }
  });

  for (const task of BOUNDARIES) {
    it(`SSH connections to the canary dropped right after ${task}`, async () => {
      let dropped = 0;
      await faultCase(`ssh-drop-after-${task}`, async () => ({
        run: await cliWatched(info, ['apply', ROTATE, '-i', info.files.inventory, '--json'], async (e) => {
          if (stepDone(e, 'val-1', task) && dropped === 0) dropped = await dropSshSessions('val-1');
        }),
        expect: () => (dropped > 0 ? [] : ['no SSH session was dropped']),
      }));
    });
  }

  it('SIGINT during the canary wave, after the canary rendered the new JWT: exit 130, the canary completes its restart, nothing else starts', async () => {
    await faultCase('sigint-canary-wave', async () => {
      const run = await cliWatched(info, ['apply', ROTATE, '-i', info.files.inventory, '--json'], (e, child) => {
        if (stepDone(e, 'val-1', 'agent.start')) child.kill('SIGINT');
      });
      return {
        run,
        expect: (r) => {
          const out: string[] = [];
          if (r.code !== 130) out.push(`exit ${r.code}, not 130`);
          for (const h of NODES.slice(1)) if (r.events.some((e) => e['type'] === 'step' && e['host'] === h)) out.push(`${h} took a step after the interrupt`);
          if (!r.events.some((e) => stepDone(e, 'val-1', 'node.restart-lockstep') && e['status'] === 'changed')) out.push('the canary did not complete its restart');
          return out;
        },
      };
    });
  });

  it('a second apply while a rotation runs: refused before any step (E_PLAN_CONFLICT), the first completes', async () => {
    await faultCase('concurrent-second-apply', async () => {
      let second: CliResult | undefined;
      const run = await cliWatched(info, ['apply', ROTATE, '-i', info.files.inventory, '--json'], async (e) => {
        if (e['type'] === 'wave-start' && e['wave'] === 1 && !second) second = await cli(info, ['apply', ROTATE, '-i', info.files.inventory, '--json']);
      });
      return {
        run,
        expect: (r) => {
          const out: string[] = [];
          if (r.code !== 0) out.push(`the first apply exited ${r.code}`);
          const err = second?.events.find((x) => x['type'] === 'error')?.['error'] as { code?: string; message?: string } | undefined;
          if (second?.code !== 40 || err?.code !== 'E_PLAN_CONFLICT' || !/val-\d/.test(err.message ?? '')) out.push(`the second apply: exit ${second?.code}, ${JSON.stringify(err)}`);
          if (second?.events.some((x) => x['type'] === 'step')) out.push('the second apply took a step');
          return out;
        },
      };
    });
  });

  it('the canary reboots mid-rotation (after the agent rendered the new JWT, before el/cl restart)', async () => {
    const blackouts: Record<string, number[]> = { 'val-1': [] };
    await faultCase('reboot-mid-rotation', async () => {
      const run = await cliWatched(info, ['apply', ROTATE, '-i', info.files.inventory, '--json'], async (e) => {
        if (stepDone(e, 'val-1', 'agent.start') && blackouts['val-1']!.length === 0) {
          blackouts['val-1']!.push(Date.now());
          await simulateReboot('val-1');
        }
      });
      return { run, blackouts, expect: () => (blackouts['val-1']!.length ? [] : ['no reboot happened']) };
    });
    // The reboot left no plaintext on persistent disk and the tmpfs came back.
    expect((await hostExec('val-1', ['findmnt', '-n', '-o', 'FSTYPE', '/run/krypton-secrets'])).stdout.trim()).toBe('tmpfs');
  });
});
