/**
 * createVaultStore (src/backends/vault-store.ts) over the real createVaultBackend with an in-memory KV v2 HTTP
 * API (fakes.ts): the SecretStore contract, then what is specific to KV v2 — field layout, Vault's
 * check-and-set refusal as E_PLAN_CONFLICT, a deleted current version, undo's destroy, capabilities-self.
 */
import { describe, expect, it } from 'vitest';
import { createVaultStore } from '../../../../src/backends/vault-store.ts';
import { KryptonError } from '../../../../src/core/errors.ts';
import { Secret } from '../../../../src/core/secret.ts';
import { parseInventory } from '../../../../src/inventory/loader.ts';
import { renderEnvFile } from '../../../../src/model/formats.ts';
import type { SecretRef } from '../../../../src/model/layout.ts';
import { expectNoValue, storeContract } from './contract.ts';
import { fakeVault } from './fakes.ts';

const inv = parseInventory('/fixtures/vault.yml', 'network: "473374"\nbackend: vault\nvault:\n  address: http://vault.test:8200\nnodes:\n  val-1: { role: validator }\n');
const HEX = 'ab'.repeat(32);

describe('vault store', () => {
  let fv = fakeVault();
  storeContract('KV v2 (fake HTTP)', {
    store: () => createVaultStore(inv, fv.backend),
    network: '473374',
    undoOfCreate: 'absent',
    async plant(ref, raw) {
      const { kvPath, kvField } = await import('../../../../src/model/layout.ts');
      const data = typeof raw === 'string' ? { [kvField(ref.kind)!]: raw } : raw;
      await fv.backend.kvWrite('secret', kvPath(ref), data);
    },
  });

  const jwt: SecretRef = { kind: 'engine-jwt', network: '473374', scope: '*' };
  const env: SecretRef = { kind: 'node-env', network: '473374', scope: '*' };

  it('is the agent-delivered store: vault is the backend, no host fetch, no key drift', async () => {
    fv = fakeVault();
    const s = createVaultStore(inv, fv.backend);
    expect(s.backend).toBe('vault');
    expect(s.delivery).toBe('agent');
    expect(s.vault).toBe(fv.backend);
    expect(s.hostFetch).toBeUndefined();
    expect(s.describe(jwt)).toBe('secret/krypton/473374/engine-jwt');
    expect(s.describe({ ...jwt, scope: 'val-1' })).toBe('secret/krypton/473374/nodes/val-1/engine-jwt');
    expect(s.describe({ kind: 'horcrux-shard', network: '473374', scope: 'cosigner-2' })).toBe('secret/krypton/473374/horcrux/cosigner-2/shard');
    expect(await s.keyDrift(jwt)).toBeUndefined();
  });

  it('writes the JWT as field hex, a key file as field json, env-secrets one field per variable', async () => {
    fv = fakeVault();
    const s = createVaultStore(inv, fv.backend);
    await s.write(jwt, new Secret(HEX), 0);
    expect(fv.kv.get('krypton/473374/engine-jwt')![0]!.data).toEqual({ hex: HEX });
    const vars = { B: "x'y", A: '1' };
    await s.write(env, renderEnvFile(vars, 't'), 0);
    expect(fv.kv.get('krypton/473374/env')![0]!.data).toEqual({ A: '1', B: "x'y" });
    expect((await s.current(env))!.secret.revealText()).toBe("A='1'\nB='x\\'y'\n");
    const json = '{"a":1}\n';
    await s.write({ kind: 'horcrux-ecies', network: '473374', scope: 'cosigner-1' }, new Secret(json), 0);
    expect(fv.kv.get('krypton/473374/horcrux/cosigner-1/ecies')![0]!.data).toEqual({ json });
    const post = fv.requests.find((r) => r.method === 'POST' && r.uri.endsWith('/v1/secret/data/krypton/473374/engine-jwt'))!;
    expect(post.json).toEqual({ data: { hex: HEX }, options: { cas: 0 } });
  });

  it("Vault's check-and-set refusal becomes E_PLAN_CONFLICT 'someone else wrote meanwhile'", async () => {
    fv = fakeVault();
    const s = createVaultStore(inv, fv.backend);
    await s.write(jwt, new Secret(HEX), 0);
    const e1 = await s.write(jwt, new Secret('cd'.repeat(32)), 0).catch((e: unknown) => e as KryptonError);
    expect(e1).toMatchObject({ code: 'E_PLAN_CONFLICT', message: expect.stringMatching(/already exists.*someone else wrote meanwhile/) });
    const e2 = await s.write(jwt, new Secret('cd'.repeat(32)), 7).catch((e: unknown) => e as KryptonError);
    expect(e2).toMatchObject({ code: 'E_PLAN_CONFLICT', message: expect.stringMatching(/no longer at version 7: someone else wrote meanwhile/) });
    expectNoValue(e2, [HEX, 'cd'.repeat(32)]);
    expect((e2 as KryptonError).cause).toBeInstanceOf(KryptonError); // Vault's own refusal, kept as the cause
  });

  it('a deleted current version is absent for current() but still the check-and-set version', async () => {
    fv = fakeVault();
    const s = createVaultStore(inv, fv.backend);
    await s.write(jwt, new Secret(HEX), 0);
    await s.write(jwt, new Secret('cd'.repeat(32)), 1);
    fv.kv.get('krypton/473374/engine-jwt')![1]!.deleted = true;
    expect(await s.current(jwt)).toBeUndefined();
    expect(await s.head(jwt)).toBe(2);
    expect((await s.versions(jwt)).map((v) => v.version)).toEqual([1]);
    await expect(s.write(jwt, new Secret('ef'.repeat(32)), 0)).rejects.toMatchObject({ code: 'E_PLAN_CONFLICT' });
    expect(await s.write(jwt, new Secret('ef'.repeat(32)), 2)).toEqual({ version: 3 });
    await expect(s.restore(jwt, 2)).rejects.toMatchObject({ code: 'E_INPUT', message: expect.stringMatching(/no live version 2/) });
  });

  it('undo writes the previous value back with check-and-set, then destroys the undone version', async () => {
    fv = fakeVault();
    const s = createVaultStore(inv, fv.backend);
    await s.write(jwt, new Secret(HEX), 0);
    const prev = (await s.current(jwt))!;
    await s.write(jwt, new Secret('cd'.repeat(32)), 1);
    await s.undo(jwt, 2, prev);
    const destroy = fv.requests.find((r) => r.uri.endsWith('/v1/secret/destroy/krypton/473374/engine-jwt'))!;
    expect(destroy.method).toBe('PUT');
    expect(destroy.json).toEqual({ versions: [2] });
    expect(fv.kv.get('krypton/473374/engine-jwt')![1]!.destroyed).toBe(true);
    expect((await s.current(jwt))!).toMatchObject({ version: 3 });
    expect((await s.current(jwt))!.secret.revealText()).toBe(HEX);
    // someone wrote after us: their value stays, ours is still destroyed
    await s.write(jwt, new Secret('11'.repeat(32)), 3);
    await s.write(jwt, new Secret('22'.repeat(32)), 4);
    await s.undo(jwt, 4, prev);
    expect((await s.current(jwt))!.secret.revealText()).toBe('22'.repeat(32));
    expect(fv.kv.get('krypton/473374/engine-jwt')![3]!.destroyed).toBe(true);
  });

  it('checkWrite: sys/capabilities-self without create+update on a data path is E_VAULT_DENIED naming it', async () => {
    fv = fakeVault();
    const s = createVaultStore(inv, fv.backend);
    fv.caps['secret/data/krypton/473374/env'] = ['read'];
    fv.caps['secret/data/krypton/473374/engine-jwt'] = ['create', 'update', 'read'];
    const e = await s.checkWrite([jwt, env]).catch((x: unknown) => x as KryptonError);
    expect(e).toMatchObject({ code: 'E_VAULT_DENIED', message: expect.stringMatching(/may not write secret\/data\/krypton\/473374\/env; nothing was written/) });
    expect((e as KryptonError).message).not.toContain('engine-jwt');
    await s.checkWrite([jwt]);
    const req = fv.requests.filter((r) => r.uri.endsWith('/v1/sys/capabilities-self')).at(-1)!;
    expect(req.json).toEqual({ paths: ['secret/data/krypton/473374/engine-jwt'] });
  });
});
