import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hostExec, sandboxDown, sandboxUp, type SandboxInfo } from '../sandbox/index.ts';
import { cli, engineStatusOnHost, sha256, vaultJwt } from './helpers.ts';

describe('migration from the plaintext jwt.hex (real sshd, OpenBao, bao agent)', () => {
  let info: SandboxInfo;
  const oldHex: Record<string, string> = {};

  beforeAll(async () => {
    info = await sandboxUp({ hosts: 2, plaintextJwt: true });
    for (const n of info.nodes) oldHex[n] = (await hostExec(n, ['cat', '/opt/krypton/jwt.hex'])).stdout.trim();
    // val-1's deploy dir is a git work tree that once committed the plaintext file.
    const git = ['git', '-C', '/opt/krypton', '-c', 'user.email=ops@example.invalid', '-c', 'user.name=ops'];
    await hostExec('val-1', [...git, 'init', '-q']);
    await hostExec('val-1', [...git, 'add', 'jwt.hex', 'bootstrap.sh']);
    await hostExec('val-1', [...git, 'commit', '-qm', 'bootstrap']);
  }, 120_000);

  afterAll(async () => {
    await sandboxDown();
  }, 60_000);

  it('moves each node to tmpfs, shreds the plaintext file, reports git, and the EL accepts the new value', async () => {
    for (const n of info.nodes) expect(await engineStatusOnHost(n, oldHex[n]!), n).toBe(200);
    const bootstrapBefore = (await hostExec('val-1', ['sha256sum', '/opt/krypton/bootstrap.sh'])).stdout;

    const r = await cli(info, ['apply', 'playbooks/migrate-plaintext.yml', '-i', info.files.inventory, '--json']);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const jwt = await vaultJwt(info);
    for (const n of info.nodes) {
      expect(jwt.hex).not.toBe(oldHex[n]);
      expect((await hostExec(n, ['test', '-e', '/opt/krypton/jwt.hex'])).code, `${n}: plaintext gone`).not.toBe(0);
      expect((await hostExec(n, ['grep', '^JWT_PATH=', '/opt/krypton/.env'])).stdout.trim()).toBe('JWT_PATH=/run/krypton-secrets/jwt.hex');
      expect(sha256((await hostExec(n, ['cat', '/run/krypton-secrets/jwt.hex'])).stdout)).toBe(sha256(jwt.hex));
      expect(await engineStatusOnHost(n, jwt.hex), n).toBe(200);
      expect(await engineStatusOnHost(n, oldHex[n]!), n).toBe(401);
    }
    const shred = r.events.find((e) => e['type'] === 'step' && e['host'] === 'val-1' && e['task'] === 'node.remove-plaintext-jwt');
    expect(JSON.stringify(shred)).toMatch(/tracked by the git work tree \/opt\/krypton/);
    expect(JSON.stringify(shred)).toMatch(/present in 1 commit\(s\)/);
    expect((await hostExec('val-1', ['sha256sum', '/opt/krypton/bootstrap.sh'])).stdout).toBe(bootstrapBefore);
    // History is reported, never rewritten.
    expect((await hostExec('val-1', ['git', '-C', '/opt/krypton', 'log', '--all', '--oneline'])).stdout.trim().split('\n')).toHaveLength(1);

    const again = await cli(info, ['apply', 'playbooks/migrate-plaintext.yml', '-i', info.files.inventory, '--json']);
    expect(again.code).toBe(0);
    expect(again.summary?.changed).toBe(0);
  });
});
