/**
 * createSmStore (src/backends/sm-store.ts) over an in-memory Secrets Manager and KMS (fakes.ts): the
 * SecretStore contract, then what is specific to Secrets Manager — VersionIds (today's engine-jwt ids still
 * parse), creation under the inventory's CMK with tags, env as a JSON SecretString, a foreign current version,
 * key drift and its repair by a write, concurrent writers, and the host fetch.
 */
import { describe, expect, it } from 'vitest';
import { createSmStore } from '../../../../src/backends/sm-store.ts';
import { KryptonError } from '../../../../src/core/errors.ts';
import { Secret } from '../../../../src/core/secret.ts';
import { parseInventory } from '../../../../src/inventory/loader.ts';
import { renderEnvFile } from '../../../../src/model/formats.ts';
import { FETCH_EXIT, FETCH_SCRIPT, HOST_AWS_CLI, hostFetchArgv } from '../../../../src/model/host-fetch.ts';
import { hostSecrets, smSecretName, smVersionId, type HostSecret, type SecretRef } from '../../../../src/model/layout.ts';
import { storeContract } from './contract.ts';
import { KEY_ARN, OTHER_KEY_ARN, fakeSm, localKms } from './fakes.ts';

const inv = parseInventory(
  '/fixtures/sm.yml',
  'network: "473374"\nbackend: secrets-manager\nkms:\n  key_id: alias/krypton-engine-jwt\n  region: eu-west-1\n  endpoint_url: http://198.18.0.1:5000\nnodes:\n  val-1: { role: validator }\n  val-2: { role: validator, jwt: { mode: "0640" } }\n',
);
const HEX = 'ab'.repeat(32);
const jwt: SecretRef = { kind: 'engine-jwt', network: '473374', scope: '*' };
const env: SecretRef = { kind: 'node-env', network: '473374', scope: '*' };

describe('secrets manager store', () => {
  const sm = fakeSm();
  const kms = localKms();
  storeContract('Secrets Manager (in memory)', {
    store: () => createSmStore(inv, sm, kms),
    network: '473374',
    undoOfCreate: 'throws',
    async plant(ref, raw) {
      const name = smSecretName(ref);
      const n = (await sm.listVersions(name)).length + 1;
      sm.plant(name, typeof raw === 'string' ? raw : JSON.stringify(raw), smVersionId(n, ref.kind), 'alias/krypton-engine-jwt');
    },
  });

  it("VersionIds: today's engine-jwt ids, krypton-secret-<leaf> for the other kinds; created under the CMK with tags", async () => {
    const s = createSmStore(inv, fakeSm(), localKms());
    const sm2 = fakeSm();
    const s2 = createSmStore(inv, sm2, localKms());
    expect(s.backend).toBe('secrets-manager');
    expect(s.delivery).toBe('host-fetch');
    await s2.write({ ...jwt, scope: 'val-1' }, new Secret(HEX), 0);
    await s2.write({ ...jwt, scope: 'val-1' }, new Secret('cd'.repeat(32)), 1);
    const sec = sm2.secrets.get('krypton/473374/nodes/val-1/engine-jwt')!;
    expect(sec.versions.map((v) => v.id)).toEqual(['krypton-engine-jwt-v0000000000001', 'krypton-engine-jwt-v0000000000002']);
    expect(sec.kmsKeyId).toBe('alias/krypton-engine-jwt');
    expect(sec.tags).toEqual({ 'krypton:purpose': 'krypton-engine-jwt', 'krypton:network': '473374', 'krypton:node': 'val-1' });
    expect(sec.description).toMatch(/Engine-API JWT \(64 hex\) of Krypton network 473374, node val-1; managed by krypton-secrets/);
    await s2.write({ kind: 'horcrux-ecies', network: '473374', scope: 'cosigner-1' }, new Secret('{}'), 0);
    const h = sm2.secrets.get('krypton/473374/horcrux/cosigner-1/ecies')!;
    expect(h.versions[0]!.id).toBe('krypton-secret-ecies-v0000000000001');
    expect(h.tags).toEqual({ 'krypton:purpose': 'krypton-horcrux-ecies', 'krypton:network': '473374', 'krypton:cosigner': 'cosigner-1' });
    expect(s.describe(env)).toBe('secretsmanager:krypton/473374/env');
  });

  it('env-secrets are a compact JSON object of strings, names sorted; read back as the canonical env file', async () => {
    const sm2 = fakeSm();
    const s = createSmStore(inv, sm2, localKms());
    const file = renderEnvFile({ ZED: 'z', API_KEY: "it's" }, 't');
    await s.write(env, file, 0);
    expect(sm2.secrets.get('krypton/473374/env')!.versions[0]!).toMatchObject({ id: 'krypton-secret-env-v0000000000001', value: '{"API_KEY":"it\'s","ZED":"z"}' });
    expect((await s.current(env))!.secret.reveal()).toEqual(file.reveal());
  });

  it('a current version written by someone else (UUID VersionId) counts as version 0; the next write is max+1', async () => {
    const sm2 = fakeSm();
    const s = createSmStore(inv, sm2, localKms());
    sm2.plant('krypton/473374/engine-jwt', HEX, smVersionId(1));
    sm2.plant('krypton/473374/engine-jwt', 'cd'.repeat(32), '0b9f5c3e-7d2a-4c1e-9a8b-2f6d4e3c1a0b', 'alias/krypton-engine-jwt');
    const cur = (await s.current(jwt))!;
    expect(cur.version).toBe(0);
    expect(cur.secret.revealText()).toBe('cd'.repeat(32));
    expect(await s.head(jwt)).toBe(0);
    await expect(s.write(jwt, new Secret('ef'.repeat(32)), 1)).rejects.toMatchObject({ code: 'E_PLAN_CONFLICT', message: expect.stringMatching(/at version 0, not 1/) });
    expect(await s.write(jwt, new Secret('ef'.repeat(32)), 0)).toEqual({ version: 2 });
    expect((await s.versions(jwt)).map((v) => v.version)).toEqual([2, 1]);
  });

  it('a bad foreign value names the VersionId it came from', async () => {
    const sm2 = fakeSm();
    sm2.plant('krypton/473374/engine-jwt', `${HEX}\n`, 'uuid-1234');
    const e = await createSmStore(inv, sm2, localKms()).current(jwt).catch((x: unknown) => x as KryptonError);
    expect(e).toMatchObject({ code: 'E_INPUT', message: expect.stringMatching(/secretsmanager:krypton\/473374\/engine-jwt version uuid-1234 \(not written by krypton-secrets\): trailing LF/) });
  });

  it('two writers that both passed the version check: Secrets Manager takes one, the other is E_PLAN_CONFLICT', async () => {
    const sm2 = fakeSm();
    const s = createSmStore(inv, sm2, localKms());
    await s.write(jwt, new Secret(HEX), 0);
    const results = await Promise.allSettled([s.write(jwt, new Secret('cd'.repeat(32)), 1), s.write(jwt, new Secret('ef'.repeat(32)), 1)]);
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    expect((results.find((r) => r.status === 'rejected') as PromiseRejectedResult).reason).toMatchObject({ code: 'E_PLAN_CONFLICT' });
    // and two creators of the same secret
    const both = await Promise.allSettled([s.write(env, new Secret("A='1'\n"), 0), s.write(env, new Secret("A='2'\n"), 0)]);
    expect(both.map((r) => r.status).sort()).toEqual(['fulfilled', 'rejected']);
  });

  it('keyDrift: under the AWS-managed key or another CMK; a write of the current value moves it to kms.key_id', async () => {
    const sm2 = fakeSm();
    const kms2 = localKms();
    const s = createSmStore(inv, sm2, kms2);
    expect(await s.keyDrift(jwt)).toBeUndefined(); // absent
    sm2.plant('krypton/473374/engine-jwt', HEX, smVersionId(1));
    expect(await s.keyDrift(jwt)).toBe(`secretsmanager:krypton/473374/engine-jwt is under the AWS-managed key aws/secretsmanager, not the inventory's kms.key_id alias/krypton-engine-jwt (${KEY_ARN})`);
    sm2.secrets.get('krypton/473374/engine-jwt')!.kmsKeyId = 'alias/other';
    expect(await s.keyDrift(jwt)).toMatch(new RegExp(`under KMS key alias/other \\(${OTHER_KEY_ARN}\\), not the inventory's kms.key_id`));
    sm2.secrets.get('krypton/473374/engine-jwt')!.kmsKeyId = KEY_ARN; // the same key, named by its ARN: no drift
    expect(await s.keyDrift(jwt)).toBeUndefined();
    sm2.secrets.get('krypton/473374/engine-jwt')!.kmsKeyId = undefined;
    const cur = (await s.current(jwt))!;
    expect(await s.write(jwt, cur.secret, await s.head(jwt))).toEqual({ version: 2 });
    expect(sm2.secrets.get('krypton/473374/engine-jwt')!.kmsKeyId).toBe('alias/krypton-engine-jwt');
    expect(await s.keyDrift(jwt)).toBeUndefined();
    expect((await s.current(jwt))!.secret.revealText()).toBe(HEX);
  });

  it('a secret scheduled for deletion is not written (E_PLAN_CONFLICT, with the restore command)', async () => {
    const sm2 = fakeSm();
    const s = createSmStore(inv, sm2, localKms());
    await s.write(jwt, new Secret(HEX), 0);
    sm2.secrets.get('krypton/473374/engine-jwt')!.deletedDate = '2025-01-01T00:00:00.000Z';
    await expect(s.write(jwt, new Secret('cd'.repeat(32)), 1)).rejects.toMatchObject({ code: 'E_PLAN_CONFLICT', hint: expect.stringMatching(/restore-secret --secret-id krypton\/473374\/engine-jwt/) });
    await expect(s.checkWrite([jwt])).rejects.toMatchObject({ code: 'E_PLAN_CONFLICT' });
  });

  it('host fetch: no copy; get-secret-value into the tmpfs path, text for hex64/json, env-json for env', async () => {
    const s = createSmStore(inv, fakeSm(), localKms());
    const hf = s.hostFetch!;
    expect(hf.keepsCopy).toBe(false);
    expect(await hf.copy(jwt)).toBeUndefined();
    const target = await hf.target();
    expect(target).toEqual({ region: 'eu-west-1', endpointUrl: 'http://198.18.0.1:5000' });
    const node = inv.nodes[1]!;
    const [sj] = hostSecrets(inv, node);
    const argv = hf.fetchArgv(inv, node, sj!, target, 'f'.repeat(64));
    expect(argv.slice(0, 4)).toEqual(['sh', '-c', FETCH_SCRIPT, 'sh']);
    expect(argv.slice(4)).toEqual([
      '/run/krypton-secrets/jwt.hex', '0640', '', '', 'f'.repeat(64), 'text', 'hex64', HOST_AWS_CLI,
      'secretsmanager', 'get-secret-value', '--secret-id', 'krypton/473374/engine-jwt',
      '--region', 'eu-west-1', '--endpoint-url', 'http://198.18.0.1:5000', '--query', 'SecretString', '--output', 'text',
    ]);
    expect(argv).toEqual(hostFetchArgv(inv, node, sj!, target, 'f'.repeat(64))); // what render's boot script runs
    expect(() => hostFetchArgv({ ...inv, backend: 'vault' }, node, sj!, target, '')).toThrow(/no host-side fetch/);
    const envSecret: HostSecret = { ref: { ...env, scope: 'val-2' }, name: 'node-env', path: '/run/krypton-secrets/node.env', dir: '/run/krypton-secrets', mode: '0600', format: 'env', readers: ['el'] };
    const a2 = hf.fetchArgv(inv, node, envSecret, target, '');
    expect(a2.slice(4, 11)).toEqual(['/run/krypton-secrets/node.env', '0600', '', '', '', 'env-json', 'env']);
    expect(a2).toContain('krypton/473374/nodes/val-2/env');
  });

  it("a failed host fetch in the operator's words", () => {
    const s = createSmStore(inv, fakeSm(), localKms());
    const node = inv.nodes[0]!;
    const [sj] = hostSecrets(inv, node);
    const target = { region: 'eu-west-1' };
    const f = (code: number, stderr: string) => s.hostFetch!.failure(node, sj!, code, stderr, target) as KryptonError;
    const denied = f(FETCH_EXIT.aws, 'An error occurred (AccessDeniedException) when calling the GetSecretValue operation: User: arn:aws:iam::123456789012:user/krypton-node-473374-val-1 is not authorized to perform: secretsmanager:GetSecretValue on resource: krypton/473374/engine-jwt');
    expect(denied).toMatchObject({ code: 'E_KMS_DENIED', message: expect.stringMatching(/secretsmanager:GetSecretValue for val-1's AWS identity/) });
    expect(f(FETCH_EXIT.aws, "An error occurred (ResourceNotFoundException) when calling the GetSecretValue operation: Secrets Manager can't find the specified secret.").code).toBe('E_KMS_CONFIG');
    expect(f(FETCH_EXIT.noPython, 'krypton-secrets: python3 is missing on this host').code).toBe('E_KMS_CONFIG');
    expect(f(FETCH_EXIT.badValue, 'krypton-secrets: the secret is not a JSON object of variables; nothing written').code).toBe('E_INPUT');
  });
});
