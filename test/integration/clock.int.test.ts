/**
 * Clock skew between the laptop and the hosts (issue 10 item 2), for real: the CLI runs under libfaketime
 * (Debian's `faketime`, LD_PRELOAD + FAKETIME) with its clock 95 s ahead — the same as every host 95 s behind —
 * against real sshd hosts whose EL stand-in judges `iat` within ±60 s of its own clock
 * (test/sandbox/tools/engine-jwt.cjs). Before the fix, verify called this "refused the token signed with the
 * expected JWT" and `apply -l val-1` restarted el and cl on a healthy node, then failed with E_TIMEOUT.
 */
import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hostExec, sandboxDown, sandboxUp, type SandboxInfo } from '../sandbox/index.ts';
import { cli, engineStatusOnHost, vaultJwt } from './helpers.ts';
import { readWitness } from './witness.ts';

const PROVISION = 'playbooks/provision.yml';
const LIBFAKETIME = ['/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1', '/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1', '/usr/lib/faketime/libfaketime.so.1'].find((p) =>
  existsSync(p),
);

/** The CLI's environment with its clocks (wall and monotonic) shifted by `offset` (libfaketime syntax: "+95s"). */
function skewed(offset: string): Record<string, string> {
  if (!LIBFAKETIME) throw new Error('libfaketime is not installed: apt-get install faketime (.ci/install-deps.sh does)');
  return { LD_PRELOAD: LIBFAKETIME, FAKETIME: offset, FAKETIME_NO_CACHE: '1' };
}

type Row = { host: string; check: string; ok: boolean; detail: string; code?: string };
const rowsOf = (events: Record<string, unknown>[]) => events.filter((e) => e['type'] === 'check') as unknown as Row[];

describe('clock skew: the laptop 95 s ahead of the hosts (libfaketime around the real CLI)', () => {
  let info: SandboxInfo;
  const nodes = ['val-1', 'val-2'];

  beforeAll(async () => {
    info = await sandboxUp({ hosts: 2, env: false });
    const r = await cli(info, ['apply', PROVISION, '-i', info.files.inventory, '--json']);
    expect(r.code, r.stdout + r.stderr).toBe(0);
  }, 300_000);

  afterAll(async () => {
    await sandboxDown();
  }, 60_000);

  it('node runs under libfaketime: the skewed CLI sees a clock 95 s ahead', async () => {
    const { spawnSync } = await import('node:child_process');
    const r = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(Date.now()))'], { env: { ...process.env, ...skewed('+95s') }, encoding: 'utf8' });
    expect(r.status).toBe(0);
    const ahead = (Number(r.stdout) - Date.now()) / 1000;
    expect(ahead).toBeGreaterThan(90);
    expect(ahead).toBeLessThan(100);
  });

  it('without skew, verify passes the clock check on every host', async () => {
    const v = await cli(info, ['verify', '-i', info.files.inventory, '--json']);
    expect(v.code, v.stdout).toBe(0);
    const clock = rowsOf(v.events).filter((r) => r.check === 'clock');
    expect(clock.map((r) => `${r.host} ${r.ok}`).sort()).toEqual(nodes.map((n) => `${n} true`));
  });

  it('verify under skew: a clock row per host fails with E_CLOCK_SKEW and says "clock skew of 95 s"; engine.auth passes (iat from the host\'s clock)', async () => {
    const v = await cli(info, ['verify', '-i', info.files.inventory, '--json'], skewed('+95s'));
    expect(v.code).toBe(1);
    const rows = rowsOf(v.events);
    for (const n of nodes) {
      const clock = rows.find((r) => r.host === n && r.check === 'clock');
      expect(clock, n).toMatchObject({ ok: false, code: 'E_CLOCK_SKEW' });
      // The reading is NTP-style (midpoints of the host's two readings and of the exec's round trip): the true 95 s
      // lies within the uncertainty it states ("± 2.2 s" when the exec waited for a channel on a busy machine).
      const m = /^clock skew of (\d+) s(?: \(± ([\d.]+) s\))? /.exec(clock!.detail);
      expect(m, clock!.detail).not.toBeNull();
      expect(Math.abs(Number(m![1]) - 95), clock!.detail).toBeLessThanOrEqual(Number(m![2] ?? 0) + 1);
      expect(clock!.detail).toContain(`the laptop's clock is`);
      expect(clock!.detail).toContain(`ahead of ${n}'s`);
      const auth = rows.find((r) => r.host === n && r.check === 'engine.auth');
      expect(auth, n).toMatchObject({ ok: true });
      expect(auth!.detail).toMatch(new RegExp(`iat from ${n}'s clock`));
      // Every other check still passes: the skew is the only finding.
      expect(rows.filter((r) => r.host === n && !r.ok).map((r) => r.check), n).toEqual(['clock']);
    }
    expect(v.stdout).not.toMatch(/refused the token signed with the expected JWT/);

    const plain = await cli(info, ['verify', '-i', info.files.inventory, '-l', 'val-1'], skewed('+95s'));
    expect(plain.code).toBe(1);
    expect(plain.stdout).toMatch(/val-1 {2}clock {2}FAIL {2}E_CLOCK_SKEW: clock skew of \d+ s/);
  });

  it('the laptop behind (-95 s) reads as "behind", with the same code', async () => {
    const v = await cli(info, ['verify', '-i', info.files.inventory, '--json', '-l', 'val-2'], skewed('-95s'));
    expect(v.code).toBe(1);
    const clock = rowsOf(v.events).find((r) => r.check === 'clock');
    expect(clock).toMatchObject({ host: 'val-2', ok: false, code: 'E_CLOCK_SKEW' });
    expect(clock!.detail).toContain(`behind val-2's`);
  });

  it('apply -l val-1 under skew restarts nothing, re-delivers nothing, and exits 0 (el and cl are healthy)', async () => {
    const since = Date.now() / 1000;
    const before = await hostExec('val-1', ['stat', '-c', '%Y %s', '/run/krypton-secrets/jwt.hex']);
    const r = await cli(info, ['apply', PROVISION, '-i', info.files.inventory, '-l', 'val-1', '--json'], skewed('+95s'));
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.summary).toMatchObject({ ok: true, changed: 0, failed: 0 });
    const steps = r.events.filter((e) => e['type'] === 'step' && e['host'] === 'val-1');
    expect(steps.filter((s) => s['status'] !== 'ok').map((s) => s['task'])).toEqual([]);
    const restart = steps.find((s) => s['task'] === 'node.restart-lockstep');
    expect(restart?.['reason']).toMatch(/el and cl run on the current JWT \(Engine API accepted/);
    const auth = steps.find((s) => s['task'] === 'engine.verify-auth');
    expect(auth?.['reason']).toMatch(/iat from val-1's clock \(the laptop's clock is \d+ s ahead of val-1's\)/);
    // The witness logs: no restart of el/cl, and the CL kept getting 200s.
    const w = await readWitness('val-1', since);
    expect(w.restarts).toEqual([]);
    expect(w.cl.filter((c) => c.status !== 200)).toEqual([]);
    expect((await hostExec('val-1', ['stat', '-c', '%Y %s', '/run/krypton-secrets/jwt.hex'])).stdout).toBe(before.stdout);
    // The node really is healthy: its EL accepts a token minted on the host with the stored JWT.
    expect(await engineStatusOnHost('val-1', (await vaultJwt(info)).hex)).toBe(200);
  });
});
