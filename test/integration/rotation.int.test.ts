import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hostExec, sandboxDown, sandboxUp, simulateReboot, type SandboxInfo } from '../sandbox/index.ts';
import { cli, engineStatusOnHost, sha256, vaultJwt } from './helpers.ts';
import { failuresOutsideRestarts, overlaps, readWitness } from './witness.ts';

const nodes = ['val-1', 'val-2', 'val-3'];

/** Waits until a running apply holds the host's run lock (read from /proc/locks: the check takes no lock itself). */
async function lockHeld(host: string): Promise<void> {
  // /proc/locks lists every lock on the machine (by inode, and tmpfs inode numbers repeat across the hosts of other
  // sandboxes on it): count only a lock whose holder is in this host's network namespace.
  const held =
    'i=$(stat -c %i /run/lock/krypton-secrets.lock 2>/dev/null) || exit 1; me=$(readlink /proc/self/ns/net); ' +
    'for p in $(grep ":$i " /proc/locks | awk \'{print $5}\'); do [ "$(readlink /proc/$p/ns/net 2>/dev/null)" = "$me" ] && exit 0; done; exit 1';
  const deadline = Date.now() + 60_000; // a bound for a loaded machine, not a target
  while (Date.now() < deadline) {
    if ((await hostExec(host, ['sh', '-c', held])).code === 0) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`no run lock on ${host} within 60 s`);
}

async function jwtFingerprint(host: string): Promise<string> {
  return sha256((await hostExec(host, ['cat', '/run/krypton-secrets/jwt.hex'])).stdout);
}

describe('rotation, rollback and verify on a live fleet (real sshd, OpenBao, bao agent, witness logs)', () => {
  let info: SandboxInfo;
  let serial1: string;

  beforeAll(async () => {
    info = await sandboxUp({ hosts: 3 });
    const r = await cli(info, ['apply', 'playbooks/provision.yml', '-i', info.files.inventory, '--json']);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    serial1 = join(info.dir, 'rotate-serial-1.yml');
    await writeFile(serial1, (await readFile('playbooks/rotate-jwt.yml', 'utf8')).replace('serial: [1, "50%", "100%"]', 'serial: 1'));
  }, 180_000);

  afterAll(async () => {
    await sandboxDown();
  }, 60_000);

  it('verify passes on a freshly provisioned fleet', async () => {
    const r = await cli(info, ['verify', '-i', info.files.inventory, '--json']);
    expect(r.code, r.stdout).toBe(0);
    const checks = r.events.filter((e) => e['type'] === 'check');
    expect(checks.length).toBeGreaterThanOrEqual(nodes.length * 8);
    expect(checks.every((c) => c['ok'] === true)).toBe(true);
  });

  it('rotates in waves: every node on the new version, one validator down at a time, no auth failure outside its own restart', async () => {
    const before = await vaultJwt(info);
    const since = Date.now() / 1000;
    const r = await cli(info, ['apply', 'playbooks/rotate-jwt.yml', '-i', info.files.inventory, '--json']);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const after = await vaultJwt(info);
    expect(after.version).toBe(before.version + 1);
    expect(after.hex).not.toBe(before.hex);
    expect(r.stdout).not.toContain(after.hex);
    expect(r.stdout).not.toContain(before.hex);
    const waves = r.events.filter((e) => e['type'] === 'wave-start').map((e) => e['hosts']);
    expect(waves).toEqual([['val-1'], ['val-2', 'val-3']]);
    const versions = (r.summary as unknown as { notes: { jwt_versions: Record<string, { version: number }> } }).notes.jwt_versions;
    for (const n of nodes) {
      expect(await jwtFingerprint(n), n).toBe(sha256(after.hex));
      expect(versions[n]?.version, n).toBe(after.version);
      expect(await engineStatusOnHost(n, after.hex), n).toBe(200);
    }
    // Let each CL log a few calls on the new value, then read the witness logs.
    await new Promise((res) => setTimeout(res, 2500));
    const ws = await Promise.all(nodes.map((n) => readWitness(n, since)));
    for (const w of ws) {
      expect(w.restarts.length, `${w.host} restarted once`).toBe(1);
      expect(failuresOutsideRestarts(w), `${w.host}: auth failures outside its restart`).toEqual([]);
      expect(w.cl.at(-1)?.status, w.host).toBe(200);
    }
    expect(overlaps(ws), 'validators down at the same time').toEqual([]);
  });

  it('a node failing mid-rotation halts the later waves; --resume completes it; rollback-jwt restores the previous value', async () => {
    const old = await vaultJwt(info);
    // Break val-2: its compose env file disappears, so node.set-jwt-path refuses.
    await hostExec('val-2', ['mv', '/opt/krypton/.env', '/opt/krypton/.env.away']);
    const r = await cli(info, ['apply', serial1, '-i', info.files.inventory, '--json']);
    expect(r.code).toBe(1);
    expect(r.summary?.hosts['val-1']?.status).toBe('changed');
    expect(r.summary?.hosts['val-2']?.status).toBe('failed');
    expect(r.summary?.hosts['val-3']?.status).toBe('skipped');
    const rotated = await vaultJwt(info);
    expect(rotated.version).toBe(old.version + 1);
    expect(await jwtFingerprint('val-1')).toBe(sha256(rotated.hex));
    expect(await engineStatusOnHost('val-3', old.hex)).toBe(200); // untouched
    const notes = (r.summary as unknown as { notes: { jwt_versions: Record<string, { version: number | null }> } }).notes.jwt_versions;
    expect(notes['val-1']?.version).toBe(rotated.version);
    expect(notes['val-3']?.version).toBe(old.version);

    await hostExec('val-2', ['mv', '/opt/krypton/.env.away', '/opt/krypton/.env']);
    const resumed = await cli(info, ['apply', serial1, '-i', info.files.inventory, '--json', '--resume']);
    expect(resumed.code, resumed.stdout).toBe(0);
    expect((await vaultJwt(info)).version).toBe(rotated.version); // --resume wrote no new version
    expect(resumed.summary?.hosts['val-1']?.status).toBe('unchanged');
    for (const n of nodes) {
      expect(await jwtFingerprint(n), n).toBe(sha256(rotated.hex));
      expect(await engineStatusOnHost(n, rotated.hex), n).toBe(200);
    }

    const rb = await cli(info, ['rollback-jwt', '-i', info.files.inventory, '--json']);
    expect(rb.code, rb.stdout + rb.stderr).toBe(0);
    const restored = await vaultJwt(info);
    expect(restored.version).toBe(rotated.version + 1);
    expect(restored.hex).toBe(old.hex);
    for (const n of nodes) {
      expect(await jwtFingerprint(n), n).toBe(sha256(old.hex));
      expect(await engineStatusOnHost(n, old.hex), n).toBe(200);
    }
  });

  it('verify fails, naming host and check, after a planted copy, a 644 mode, a reboot and a stopped agent; apply recovers', async () => {
    const jwt = await vaultJwt(info);
    await hostExec('val-1', ['sh', '-c', 'cp /run/krypton-secrets/jwt.hex /opt/krypton/jwt.backup']);
    await hostExec('val-2', ['chmod', '644', '/run/krypton-secrets/jwt.hex']);
    await simulateReboot('val-3');
    const r = await cli(info, ['verify', '-i', info.files.inventory, '--json']);
    expect(r.code).toBe(1);
    const failed = r.events.filter((e) => e['type'] === 'check' && e['ok'] === false).map((e) => `${e['host']} ${e['check']}`);
    expect(failed).toContain('val-1 jwt.copies');
    expect(failed).toContain('val-2 jwt.file');
    expect(failed).toContain('val-3 tmpfs');
    expect(failed).toContain('val-3 agent');
    const copy = r.events.find((e) => e['host'] === 'val-1' && e['check'] === 'jwt.copies');
    expect(String(copy?.['detail'])).toContain('/opt/krypton/jwt.backup');
    const reboot = r.events.find((e) => e['host'] === 'val-3' && e['check'] === 'agent');
    expect(String(reboot?.['detail'])).toMatch(/re-provision/);
    expect(r.stdout).not.toContain(jwt.hex);

    await hostExec('val-1', ['rm', '/opt/krypton/jwt.backup']);
    const fix = await cli(info, ['apply', 'playbooks/provision.yml', '-i', info.files.inventory, '--json', '--limit', 'val-2,val-3']);
    expect(fix.code, fix.stdout).toBe(0);
    expect(Object.keys(fix.summary?.hosts ?? {})).toEqual(['val-2', 'val-3']);
    expect((await cli(info, ['verify', '-i', info.files.inventory])).code).toBe(0);

    await hostExec('val-2', ['agentctl', 'stop']);
    const stopped = await cli(info, ['verify', '-i', info.files.inventory, '--json']);
    expect(stopped.code).toBe(1);
    const failedNow = stopped.events.filter((e) => e['type'] === 'check' && e['ok'] === false).map((e) => `${e['host']} ${e['check']}`);
    expect(failedNow).toEqual(['val-2 agent']);
  });

  it('a second apply started while one runs is refused before it takes any step (run lock on every host up front), so the JWT is rotated once', async () => {
    const before = await vaultJwt(info);
    const first = cli(info, ['apply', 'playbooks/rotate-jwt.yml', '-i', info.files.inventory, '--json']);
    // Every host is locked before the canary wave starts: val-3 (the last wave) too.
    await lockHeld('val-3');
    const second = await cli(info, ['apply', 'playbooks/provision.yml', '-i', info.files.inventory, '--json']);
    const a = await first;
    expect(a.code, a.stdout).toBe(0);
    expect(second.code).toBe(40);
    expect(second.summary).toBeUndefined();
    expect(second.events.find((e) => e['type'] === 'error')?.['error']).toMatchObject({ code: 'E_PLAN_CONFLICT', message: expect.stringMatching(/another krypton-secrets run .* took no step on any host/) });
    expect(second.events.some((e) => e['type'] === 'step')).toBe(false);
    expect((await vaultJwt(info)).version).toBe(before.version + 1);
    // The lock went with the first run: the next apply runs normally.
    const again = await cli(info, ['apply', 'playbooks/provision.yml', '-i', info.files.inventory, '--json']);
    expect(again.code, again.stdout).toBe(0);
    expect(again.summary?.changed).toBe(0);
  });

  it('rollback-jwt during a running apply is refused before it writes any version', async () => {
    const before = await vaultJwt(info);
    const first = cli(info, ['apply', 'playbooks/rotate-jwt.yml', '-i', info.files.inventory, '--json']);
    await lockHeld('val-1');
    const rb = await cli(info, ['rollback-jwt', '-i', info.files.inventory, '--json']);
    expect(rb.code).not.toBe(0);
    expect(rb.stdout + rb.stderr).toMatch(/E_PLAN_CONFLICT/);
    const a = await first;
    expect(a.code, a.stdout).toBe(0);
    // Only the running rotation wrote a version; the refused rollback wrote none.
    expect((await vaultJwt(info)).version).toBe(before.version + 1);
  });
});
