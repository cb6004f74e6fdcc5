import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { resolvePlaybookPath, shippedPlaybooks } from '../../src/playbook/shipped.ts';

const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const PKG = '/opt/pkg';

describe('shipped playbooks found by name', () => {
  const files = new Set([join(PKG, 'playbooks/provision.yml'), join(PKG, 'playbooks/rotate-jwt.yml'), 'mine.yml', 'playbooks/provision.yml.bak']);
  const exists = (p: string) => files.has(p);

  it('takes a path that exists as it is, even when a shipped playbook has that name', () => {
    expect(resolvePlaybookPath('mine.yml', PKG, exists)).toBe('mine.yml');
    files.add('provision');
    expect(resolvePlaybookPath('provision', PKG, exists)).toBe('provision');
    files.delete('provision');
  });

  it('finds a bare name, a name with .yml and a playbooks/ path in the package', () => {
    expect(resolvePlaybookPath('provision', PKG, exists)).toBe(join(PKG, 'playbooks/provision.yml'));
    expect(resolvePlaybookPath('rotate-jwt.yml', PKG, exists)).toBe(join(PKG, 'playbooks/rotate-jwt.yml'));
    expect(resolvePlaybookPath('playbooks/provision.yml', PKG, exists)).toBe(join(PKG, 'playbooks/provision.yml'));
  });

  it('leaves anything else unchanged, so the loader names the missing file as the operator wrote it', () => {
    expect(resolvePlaybookPath('nosuch', PKG, exists)).toBe('nosuch');
    expect(resolvePlaybookPath('other/provision.yml', PKG, exists)).toBe('other/provision.yml');
    expect(resolvePlaybookPath('/abs/provision.yml', PKG, exists)).toBe('/abs/provision.yml');
  });

  it('lists the checkout\'s playbooks with the first line of their comment', () => {
    const list = shippedPlaybooks(ROOT);
    expect(list.map((p) => p.name)).toEqual(['cosigner-bringup', 'migrate-plaintext', 'provision', 'rotate-jwt']);
    expect(list.find((p) => p.name === 'provision')?.summary).toMatch(/^Provision every node/);
    expect(list.every((p) => p.summary.length > 0)).toBe(true);
  });
});

describe('shell completion scripts', () => {
  it('bash: a script bash accepts, naming every command and the flags of apply', async () => {
    const { spawnSync } = await import('node:child_process');
    const r = spawnSync(process.execPath, [join(ROOT, 'bin/dev.js'), 'completion', 'bash'], { encoding: 'utf8' });
    expect(r.status).toBe(0);
    for (const c of ['plan', 'apply', 'verify', 'rollback-jwt', 'hosts', 'playbooks', 'render', 'import-env']) expect(r.stdout).toContain(c);
    expect(r.stdout).toMatch(/apply\)[\s\S]*--detailed-exitcode/);
    const syntax = spawnSync('bash', ['-n'], { input: r.stdout, encoding: 'utf8' });
    expect(syntax.status, syntax.stderr).toBe(0);
    const bad = spawnSync(process.execPath, [join(ROOT, 'bin/dev.js'), 'completion', 'tcsh'], { encoding: 'utf8' });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/no completion for shell tcsh/);
  }, 60_000);
});

describe('init: starter inventories', () => {
  it('loads as written for every backend, with the backend and network asked for', async () => {
    const { starterInventory, INIT_BACKENDS } = await import('../../src/cli/init.ts');
    const { parseInventory } = await import('../../src/inventory/loader.ts');
    for (const b of INIT_BACKENDS) {
      const inv = parseInventory(`starter-${b}.yml`, starterInventory(b, '47337'));
      expect(inv.backend).toBe(b);
      expect(inv.network).toBe('47337');
      expect(inv.nodes.map((n) => n.name)).toEqual(['val-1', 'val-2', 'rpc-1']);
      expect(inv.groups).toEqual({ canary: ['val-1'] });
    }
  });

  it('never overwrites a file', async () => {
    const { writeStarterInventory } = await import('../../src/cli/init.ts');
    const { mkdtempSync, readFileSync, writeFileSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const dir = mkdtempSync(join(tmpdir(), 'krypton-init-'));
    const f = join(dir, 'inv.yml');
    writeFileSync(f, 'mine\n');
    expect(() => writeStarterInventory(f, 'vault', '473374')).toThrow(/exists: init never overwrites/);
    expect(readFileSync(f, 'utf8')).toBe('mine\n');
    writeStarterInventory(join(dir, 'new.yml'), 'kms', '473374');
    expect(readFileSync(join(dir, 'new.yml'), 'utf8')).toMatch(/^backend: kms$/m);
  });
});
