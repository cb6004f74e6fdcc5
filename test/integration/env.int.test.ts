/**
 * Node env-secrets end to end, on each store (issue 8's "done when"): the values written to the store land on
 * each node's tmpfs as exactly those variables (0600), never in the tool's output; a second apply changes
 * nothing; one changed value restarts only the services that read the file; a copy planted in the deploy dir
 * fails verify, naming the host and the path; import-env stores a file, and refuses one with a bad line by its
 * line number, storing nothing. Real sshd hosts, OpenBao + bao agent, moto + Debian's aws CLI.
 */
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hostExec, sandboxDown, sandboxUp, type Backend, type SandboxInfo } from '../sandbox/index.ts';
import { renderEnvFile } from '../../src/model/formats.ts';
import { cli, sha256 } from './helpers.ts';

const PROVISION = 'playbooks/provision.yml';
const NODES = ['val-1', 'val-2'];

/** The services nodectl restarted on `host` since `sinceMs` (from its witness log), one entry per call. */
async function restartsSince(host: string, sinceMs: number): Promise<string[]> {
  const r = await hostExec(host, ['sh', '-c', 'cat /var/log/krypton/nodectl.log 2>/dev/null || true']);
  return r.stdout
    .split('\n')
    .map((l) => l.trim().split(/\s+/))
    .filter((p) => p.length >= 3 && Number(p[0]) * 1000 >= sinceMs && p[1] === 'restart')
    .map((p) => p.slice(2).join(' '));
}

/** SHA-256 of the env file on `host` (computed there) and its mode and filesystem. */
async function envFileOn(host: string): Promise<{ sha: string; mode: string; fs: string }> {
  const r = await hostExec(host, ['sh', '-c', 'sha256sum /run/krypton-secrets/node.env | cut -c1-64; stat -c %a /run/krypton-secrets/node.env; findmnt -n -o FSTYPE -T /run/krypton-secrets/node.env']);
  const [sha = '', mode = '', fs = ''] = r.stdout.trim().split('\n');
  return { sha, mode, fs };
}

for (const backend of ['vault', 'kms', 'secrets-manager'] as Backend[]) {
  describe(`node env-secrets with backend ${backend}`, () => {
    let info: SandboxInfo;
    let work: string;
    // Values that must never appear in the tool's output (two with characters a compose env file cares about).
    const vars = { KRYPTON_DB_PASSWORD: `pw-${Math.random().toString(36).slice(2)}-Zq9`, KRYPTON_API_TOKEN: `tok it's $HOME ${Math.random().toString(36).slice(2)}` };

    beforeAll(async () => {
      info = await sandboxUp({ hosts: 2, backend });
      work = await mkdtemp(join(tmpdir(), 'krypton-env-'));
    }, 180_000);

    afterAll(async () => {
      await sandboxDown();
    }, 60_000);

    it('import-env stores a sample file; the same file with a line "BAD LINE" is refused by its line number and nothing is stored', async () => {
      const bad = join(work, 'bad.env');
      await writeFile(bad, `KRYPTON_DB_PASSWORD=${vars.KRYPTON_DB_PASSWORD}\nBAD LINE\nKRYPTON_API_TOKEN='${vars.KRYPTON_API_TOKEN.replace(/'/g, "\\'")}'\n`, { mode: 0o600 });
      const before = await cli(info, ['verify', '-i', info.files.inventory, '--json']);
      const refused = await cli(info, ['import-env', bad, '-i', info.files.inventory, '--replace', '--json']);
      expect(refused.code).toBe(3);
      expect(refused.stdout).toMatch(/line 2: expected NAME=value/);
      expect(refused.stdout + refused.stderr).not.toContain(vars.KRYPTON_DB_PASSWORD);
      // Nothing stored: the store still holds the sandbox's seed (the nodes are not provisioned yet either way).
      const good = join(work, 'good.env');
      await writeFile(good, `# the node's secrets\nKRYPTON_DB_PASSWORD=${vars.KRYPTON_DB_PASSWORD}\nexport KRYPTON_API_TOKEN='${vars.KRYPTON_API_TOKEN.replace(/'/g, "\\'")}'\n`, { mode: 0o600 });
      const stored = await cli(info, ['import-env', good, '-i', info.files.inventory, '--replace', '--json']);
      expect(stored.stderr).toBe('');
      expect(stored.code).toBe(0);
      const result = stored.events.find((e) => e['type'] === 'import-env')!;
      expect(result['names']).toEqual(['KRYPTON_API_TOKEN', 'KRYPTON_DB_PASSWORD']);
      expect(result['fingerprint']).toBe(renderEnvFile(vars, 'test').fingerprint());
      expect(stored.stdout).not.toContain(vars.KRYPTON_DB_PASSWORD);
      expect(stored.stdout).not.toContain(vars.KRYPTON_API_TOKEN);
      expect(before.code).not.toBe(0); // (not provisioned yet: verify fails, but it ran)
      // Importing the same file again changes nothing.
      const again = await cli(info, ['import-env', good, '-i', info.files.inventory, '--json']);
      expect(again.code).toBe(0);
      expect(again.events.find((e) => e['type'] === 'import-env')!['status']).toBe('unchanged');
    });

    it('apply puts exactly those variables on each node (tmpfs, 0600), the values appear nowhere in the output, and a second apply changes nothing', async () => {
      const r = await cli(info, ['apply', PROVISION, '-i', info.files.inventory, '--json']);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      for (const v of Object.values(vars)) expect(r.stdout).not.toContain(v);
      const want = renderEnvFile(vars, 'test').fingerprint();
      for (const n of NODES) expect(await envFileOn(n), n).toEqual({ sha: want, mode: '600', fs: 'tmpfs' });
      const again = await cli(info, ['apply', PROVISION, '-i', info.files.inventory, '--json']);
      expect(again.code).toBe(0);
      expect(again.summary?.changed).toBe(0);
    });

    it('one changed value restarts only the services that read the env file', async () => {
      // val-2's env file is read by cl only: el must not restart for it.
      // Next to the sandbox's inventory: a KMS store keeps its blobs beside the inventory file.
      const inv = join(info.dir, 'inventory.cl-reads-env.yml');
      const text = await readFile(info.files.inventory, 'utf8');
      await writeFile(inv, text.replace(/(\n  val-2:\n)/, '$1    env: { services: [cl] }\n'));
      const changed = { ...vars, KRYPTON_DB_PASSWORD: `pw2-${Math.random().toString(36).slice(2)}` };
      const f = join(work, 'changed.env');
      await writeFile(f, Object.entries(changed).map(([k, v]) => `${k}='${v.replace(/'/g, "\\'")}'`).join('\n') + '\n', { mode: 0o600 });
      expect((await cli(info, ['import-env', f, '-i', inv, '--replace', '--json'])).code).toBe(0);
      const t0 = Date.now();
      const r = await cli(info, ['apply', PROVISION, '-i', inv, '--json']);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      expect(r.stdout).not.toContain(changed.KRYPTON_DB_PASSWORD);
      expect(await restartsSince('val-1', t0)).toEqual(['el cl']);
      expect(await restartsSince('val-2', t0)).toEqual(['cl']);
      for (const n of NODES) expect((await envFileOn(n)).sha, n).toBe(renderEnvFile(changed, 'test').fingerprint());
      const again = await cli(info, ['apply', PROVISION, '-i', inv, '--json']);
      expect(again.summary?.changed).toBe(0);
    });

    it('a copy planted in the deploy dir makes verify fail, naming the host and the path', async () => {
      const ok = await cli(info, ['verify', '-i', info.files.inventory, '--json']);
      expect(ok.code).toBe(0);
      await hostExec('val-2', ['cp', '/run/krypton-secrets/node.env', '/opt/krypton/node.env.backup']);
      const r = await cli(info, ['verify', '-i', info.files.inventory, '--json']);
      expect(r.code).toBe(1);
      const row = r.events.find((e) => e['type'] === 'check' && e['check'] === 'env.copies' && e['host'] === 'val-2');
      expect(row?.['ok']).toBe(false);
      expect(String(row?.['detail'])).toContain('/opt/krypton/node.env.backup');
      expect(r.events.find((e) => e['type'] === 'check' && e['check'] === 'env.copies' && e['host'] === 'val-1')?.['ok']).toBe(true);
      for (const v of Object.values(vars)) expect(r.stdout).not.toContain(v);
      await hostExec('val-2', ['rm', '-f', '/opt/krypton/node.env.backup']);
      expect(sha256('')).toHaveLength(64);
    });
  });
}
