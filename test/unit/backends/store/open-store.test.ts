/**
 * openStore (src/backends/index.ts): the one place the backend is chosen, loading only that backend's modules.
 * Checked two ways: the file has no static (value) import of a backend module (read with the TypeScript API),
 * and a real Node process that imports it has loaded neither the AWS SDK nor node-vault until openStore runs —
 * and then only the chosen backend's library (both ship CommonJS builds, so they show in the shared
 * CommonJS module cache; the positive cases prove the probe can see a load).
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { openStore } from '../../../../src/backends/index.ts';
import { parseInventory } from '../../../../src/inventory/loader.ts';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../../../..');
const INDEX = join(REPO, 'src/backends/index.ts');

const inventoryText = (backend: string) =>
  `network: "473374"\nbackend: ${backend}\n${backend === 'vault' ? '' : 'kms:\n  key_id: alias/krypton-engine-jwt\n  region: eu-west-1\n'}nodes:\n  val-1: { role: validator }\n`;

describe('openStore', () => {
  it('src/backends/index.ts has no static value import of a backend module (only `import type`)', () => {
    const sf = ts.createSourceFile(INDEX, readFileSync(INDEX, 'utf8'), ts.ScriptTarget.ES2022, true);
    const staticValueImports = sf.statements
      .filter((s): s is ts.ImportDeclaration => ts.isImportDeclaration(s))
      .filter((s) => !s.importClause?.isTypeOnly && !(s.importClause?.namedBindings && ts.isNamedImports(s.importClause.namedBindings) && s.importClause.namedBindings.elements.every((e) => e.isTypeOnly)))
      .map((s) => (s.moduleSpecifier as ts.StringLiteral).text);
    expect(staticValueImports).toEqual([]);
    const reExports = sf.statements.filter((s) => ts.isExportDeclaration(s) && s.moduleSpecifier && !s.isTypeOnly);
    expect(reExports).toHaveLength(0);
  });

  /** Runs a Node process that imports index.ts, then (optionally) opens a store; reports which libraries were loaded when. */
  function probe(backend?: 'vault' | 'kms' | 'secrets-manager') {
    const code = `
      import { createRequire } from 'node:module';
      const cache = createRequire(import.meta.url).cache;
      const libs = () => [...new Set(Object.keys(cache).map((k) => /node_modules\\/(@aws-sdk\\/[^/]+|node-vault)\\//.exec(k)?.[1]).filter(Boolean))].sort();
      const { openStore } = await import(${JSON.stringify(pathToFileURL(INDEX).href)});
      const before = libs();
      let after = before, store;
      if (${JSON.stringify(backend ?? '')}) {
        const { parseInventory } = await import(${JSON.stringify(pathToFileURL(join(REPO, 'src/inventory/loader.ts')).href)});
        const inv = parseInventory('/probe/inventory.yml', ${JSON.stringify(inventoryText(backend ?? 'vault'))});
        const s = await openStore(inv, { VAULT_ADDR: 'http://127.0.0.1:1', VAULT_TOKEN: 'probe-token-0000000000', AWS_REGION: 'eu-west-1' });
        store = { backend: s.backend, delivery: s.delivery };
        after = libs();
      }
      console.log(JSON.stringify({ before, after, store }));
    `;
    const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], { cwd: REPO, encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: '' }, timeout: 60_000 });
    expect(r.stderr.split('\n').filter((l) => l && !/ExperimentalWarning|--trace-warnings/.test(l))).toEqual([]);
    expect(r.status).toBe(0);
    return JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { before: string[]; after: string[]; store?: { backend: string; delivery: string } };
  }

  it('importing it loads neither the AWS SDK nor node-vault', () => {
    expect(probe().before).toEqual([]);
  });

  it('vault: loads node-vault only, no AWS SDK', () => {
    const p = probe('vault');
    expect(p.before).toEqual([]);
    expect(p.store).toEqual({ backend: 'vault', delivery: 'agent' });
    expect(p.after).toContain('node-vault');
    expect(p.after.filter((l) => l.startsWith('@aws-sdk/'))).toEqual([]);
  });

  it('kms: loads @aws-sdk/client-kms, not Secrets Manager, not node-vault', () => {
    const p = probe('kms');
    expect(p.before).toEqual([]);
    expect(p.store).toEqual({ backend: 'kms', delivery: 'host-fetch' });
    expect(p.after).toContain('@aws-sdk/client-kms');
    expect(p.after).not.toContain('@aws-sdk/client-secrets-manager');
    expect(p.after).not.toContain('node-vault');
  });

  it('secrets-manager: loads the Secrets Manager client (and KMS for DescribeKey), not node-vault', () => {
    const p = probe('secrets-manager');
    expect(p.before).toEqual([]);
    expect(p.store).toEqual({ backend: 'secrets-manager', delivery: 'host-fetch' });
    expect(p.after).toContain('@aws-sdk/client-secrets-manager');
    expect(p.after).not.toContain('node-vault');
  });

  it('chooses the store from inv.backend, and reports a missing Vault token as E_VAULT_CONFIG', async () => {
    const kmsStore = await openStore(parseInventory('/x/inv.yml', inventoryText('kms')), { AWS_REGION: 'eu-west-1' });
    expect(kmsStore.backend).toBe('kms');
    expect(kmsStore.hostFetch?.keepsCopy).toBe(true);
    const sm = await openStore(parseInventory('/x/inv.yml', inventoryText('secrets-manager')), { AWS_REGION: 'eu-west-1' });
    expect(sm.backend).toBe('secrets-manager');
    expect(sm.hostFetch?.keepsCopy).toBe(false);
    await expect(openStore(parseInventory('/x/inv.yml', inventoryText('vault')), { VAULT_ADDR: 'http://127.0.0.1:1', HOME: '/nonexistent-home' })).rejects.toMatchObject({ code: 'E_VAULT_CONFIG' });
  });
});
