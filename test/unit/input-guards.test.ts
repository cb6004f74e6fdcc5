import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { loadPlaybook } from '../../src/playbook/loader.ts';

const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const dir = mkdtempSync(join(tmpdir(), 'krypton-guards-'));

describe('inputs that could break a host or leak a file', () => {
  it('mount.tmpfs refuses a system dir as its path (a 1 MiB noexec tmpfs over /run would break the host), at file:line:col', async () => {
    for (const p of ['/run', '/dev/shm', '/tmp', '/', '/run/']) {
      const f = join(dir, `pb-${p.replace(/\//g, '_')}.yml`);
      writeFileSync(f, `- name: p\n  hosts: nodes\n  tasks:\n    - mount.tmpfs: { path: "${p}" }\n`);
      await expect(loadPlaybook(f), p).rejects.toMatchObject({ code: 'E_PLAYBOOK', message: expect.stringMatching(/:4:\d+: .*not a system dir/) });
    }
    const ok = join(dir, 'pb-ok.yml');
    writeFileSync(ok, `- name: p\n  hosts: nodes\n  tasks:\n    - mount.tmpfs: { path: /run/krypton-other }\n`);
    await expect(loadPlaybook(ok)).resolves.toBeDefined();
  });

  it('--limit @file that is not a host list is refused without echoing its lines; --log into a missing dir is E_USAGE', () => {
    const inv = join(dir, 'inv.yml');
    writeFileSync(inv, 'network: "473374"\nssh: { known_hosts: /dev/null }\nnodes:\n  val-1: { role: validator, address: 10.0.0.1 }\n');
    const env = join(dir, 'x.env');
    writeFileSync(env, 'FOO_TOKEN=s3cr3t-value-abcdef\n');
    const r = spawnSync(process.execPath, [join(ROOT, 'bin/dev.js'), 'hosts', '-i', inv, '-l', `@${env}`, '--json'], { encoding: 'utf8' });
    expect(r.status).toBe(2);
    expect(r.stdout + r.stderr).not.toContain('s3cr3t');
    expect(r.stderr).toMatch(/does not look like a list of hosts/);
    const log = spawnSync(process.execPath, [join(ROOT, 'bin/dev.js'), 'plan', 'provision', '-i', inv, '--log', join(dir, 'nodir/x.log')], { encoding: 'utf8' });
    expect(log.status).toBe(2);
    expect(log.stderr).toMatch(/E_USAGE[\s\S]*cannot write the run log/);
  }, 60_000);
});
