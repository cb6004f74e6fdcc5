import { copyFile, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hostExec, sandboxDown, sandboxUp, startHostSshd, stopHostSshd, type SandboxInfo } from '../sandbox/index.ts';
import { cli, engineStatusOnHost, persistentText, sha256, vaultJwt } from './helpers.ts';

const PROVISION = 'playbooks/provision.yml';


describe('provision the Engine-API JWT through Vault (real sshd, OpenBao, bao agent)', () => {
  let info: SandboxInfo;
  const nodes = ['val-1', 'val-2', 'val-3'];

  beforeAll(async () => {
    info = await sandboxUp({ hosts: 3 });
  }, 120_000);

  afterAll(async () => {
    await sandboxDown();
  }, 60_000);

  it('refuses a host whose key is unknown before sending it anything, and provisions the others', async () => {
    const knownHosts = join(info.dir, 'known_hosts.partial');
    const lines = (await readFile(info.files.knownHosts, 'utf8')).split('\n').filter((l) => !l.startsWith(`${info.hosts['val-3']!.address} `));
    await writeFile(knownHosts, lines.join('\n'));
    const inv = join(info.dir, 'inventory.partial.yml');
    await writeFile(inv, (await readFile(info.files.inventory, 'utf8')).replace(info.files.knownHosts, knownHosts));

    const r = await cli(info, ['apply', PROVISION, '-i', inv, '--json']);
    expect(r.code).toBe(1);
    expect(r.summary?.hosts['val-3']?.status).toBe('failed');
    expect(r.summary?.hosts['val-3']?.error?.code).toBe('E_SSH_HOSTKEY');
    expect(r.summary?.hosts['val-1']?.status).toBe('changed');
    expect(r.summary?.hosts['val-2']?.status).toBe('changed');
    // val-3 received nothing: no tmpfs, no agent files, and its sshd saw no authentication.
    const mounts = await hostExec('val-3', ['findmnt', '-n', '/run/krypton-secrets']);
    expect(mounts.stdout.trim()).toBe('');
    const sshdLog = await readFile(join(info.hosts['val-3']!.hostDir, 'sshd.log'), 'utf8').catch(() => '');
    expect(sshdLog).not.toMatch(/Accepted publickey/);
  });

  it('apply provisions every node: tmpfs 700, jwt.hex 600 = Vault value, no secret_id left, EL accepts it', async () => {
    const r = await cli(info, ['apply', PROVISION, '-i', info.files.inventory, '--json']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.summary?.ok).toBe(true);
    expect(r.summary?.failed).toBe(0);
    expect(r.summary?.hosts['val-3']?.status).toBe('changed');

    const jwt = await vaultJwt(info);
    expect(jwt.hex).toMatch(/^[0-9a-f]{64}$/);
    expect(r.stdout).not.toContain(jwt.hex);
    for (const n of nodes) {
      const fs = await hostExec(n, ['findmnt', '-n', '-o', 'FSTYPE', '--mountpoint', '/run/krypton-secrets']);
      expect(fs.stdout.trim(), n).toBe('tmpfs');
      const dirMode = await hostExec(n, ['stat', '-c', '%a', '/run/krypton-secrets']);
      expect(dirMode.stdout.trim(), n).toBe('700');
      const st = await hostExec(n, ['stat', '-c', '%a %s', '/run/krypton-secrets/jwt.hex']);
      expect(st.stdout.trim(), n).toBe('600 64');
      const content = await hostExec(n, ['cat', '/run/krypton-secrets/jwt.hex']);
      expect(sha256(content.stdout), n).toBe(sha256(jwt.hex));
      const sid = await hostExec(n, ['test', '-e', '/run/krypton-secrets/secret_id']);
      expect(sid.code, `${n}: secret_id must be consumed`).not.toBe(0);
      const env = await hostExec(n, ['grep', '^JWT_PATH=', '/opt/krypton/.env']);
      expect(env.stdout.trim()).toBe('JWT_PATH=/run/krypton-secrets/jwt.hex');
      expect(await engineStatusOnHost(n, jwt.hex), n).toBe(200);
      expect(await engineStatusOnHost(n, 'ab'.repeat(32)), n).toBe(401);
      expect(await persistentText(info, n), `${n}: JWT on persistent disk`).not.toContain(jwt.hex);
    }
    // Restarts of validators never overlapped (max_validators_down: 1).
    const restarts: { host: string; t: number }[] = [];
    for (const n of nodes) {
      const log = await hostExec(n, ['cat', '/var/log/krypton/nodectl.log']);
      for (const line of log.stdout.split('\n').filter((l) => / restart /.test(l))) restarts.push({ host: n, t: Number(line.split(' ')[0]) });
    }
    expect(restarts.length).toBeGreaterThanOrEqual(3);
  });

  it('a second apply changes nothing and says so', async () => {
    const r = await cli(info, ['apply', PROVISION, '-i', info.files.inventory, '--json']);
    expect(r.code).toBe(0);
    expect(r.summary?.changed).toBe(0);
    expect(r.summary?.unchanged).toBe(3);
    const steps = r.events.filter((e) => e['type'] === 'step');
    expect(steps.length).toBeGreaterThan(0);
    for (const s of steps) {
      expect(s['status']).toBe('ok');
      expect(String(s['reason'] ?? '')).not.toBe('');
    }
  });

  it('plan on the converged fleet shows no change and touches nothing', async () => {
    const before = await hostExec('val-1', ['stat', '-c', '%Y', '/run/krypton-secrets/jwt.hex']);
    const r = await cli(info, ['plan', PROVISION, '-i', info.files.inventory, '--json']);
    expect(r.code).toBe(0);
    expect(r.summary?.changed).toBe(0);
    const after = await hostExec('val-1', ['stat', '-c', '%Y', '/run/krypton-secrets/jwt.hex']);
    expect(after.stdout).toBe(before.stdout);
  });

  it('a node whose el/cl run on a wrong JWT fails the Engine API check, and apply repairs it', async () => {
    const verify = join(info.dir, 'verify-auth.yml');
    await writeFile(verify, '- name: verify\n  hosts: nodes\n  tasks:\n    - engine.verify-auth\n');
    // Run val-2's el and cl on another value.
    await hostExec('val-2', ['sh', '-c', 'head -c 32 /dev/urandom | od -An -tx1 | tr -d " \\n" > /run/krypton-secrets/wrong.hex && sed -i "s#^JWT_PATH=.*#JWT_PATH=/run/krypton-secrets/wrong.hex#" /opt/krypton/.env && nodectl restart el cl']);
    const bad = await cli(info, ['apply', verify, '-i', info.files.inventory, '--json']);
    expect(bad.code).toBe(1);
    expect(bad.summary?.hosts['val-2']?.error?.code).toBe('E_ENGINE_AUTH');
    expect(bad.summary?.hosts['val-1']?.status).toBe('unchanged');
    expect(bad.summary?.hosts['val-3']?.status).toBe('unchanged');

    const fix = await cli(info, ['apply', PROVISION, '-i', info.files.inventory, '--json']);
    expect(fix.code).toBe(0);
    expect(fix.summary?.hosts['val-2']?.status).toBe('changed');
    expect(fix.summary?.hosts['val-1']?.status).toBe('unchanged');
    const again = await cli(info, ['apply', verify, '-i', info.files.inventory, '--json']);
    expect(again.code).toBe(0);
  });

  it('a host that is down fails alone; the others still converge', async () => {
    await stopHostSshd('val-1');
    try {
      const r = await cli(info, ['apply', PROVISION, '-i', info.files.inventory, '--json']);
      expect(r.code).toBe(1);
      expect(r.summary?.hosts['val-1']?.status).toBe('failed');
      expect(r.summary?.hosts['val-1']?.error?.code).toBe('E_SSH_CONNECT');
      expect(r.summary?.hosts['val-2']?.status).toBe('unchanged');
      expect(r.summary?.hosts['val-3']?.status).toBe('unchanged');
    } finally {
      await startHostSshd('val-1');
    }
  });

  it('a bad inventory changes nothing and names file, line and column', async () => {
    const inv = join(info.dir, 'inventory.bad.yml');
    await copyFile(info.files.inventory, inv);
    await writeFile(inv, (await readFile(inv, 'utf8')).replace('role: validator', 'role: validator\n    colour: blue'));
    const r = await cli(info, ['apply', PROVISION, '-i', inv]);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/inventory\.bad\.yml:\d+:\d+: nodes\.val-1\.colour: unknown key/);
  });
});
