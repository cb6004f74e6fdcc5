/**
 * createKmsStore (src/backends/kms-store.ts), the one blob store for every kind, with KMS as an in-process
 * stand-in (fakes.ts: the encryption context bound as AES-GCM associated data): the SecretStore contract, then
 * the on-disk layout (today's JWT and Horcrux blob dirs, sidecars without secrets), exclusive creation, context
 * binding, the host copy and host fetch argv, and the translation of a failed host fetch.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createKmsStore } from '../../../../src/backends/kms-store.ts';
import { KryptonError } from '../../../../src/core/errors.ts';
import { Secret, sha256Hex } from '../../../../src/core/secret.ts';
import { parseInventory } from '../../../../src/inventory/loader.ts';
import { FETCH_EXIT, FETCH_SCRIPT, HOST_AWS_CLI, hostFetchArgv } from '../../../../src/model/host-fetch.ts';
import { encryptionContext, hostSecrets, type SecretRef } from '../../../../src/model/layout.ts';
import { expectNoValue, storeContract } from './contract.ts';
import { KEY_ARN, localKms } from './fakes.ts';

const root = mkdtempSync(join(tmpdir(), 'krypton-kms-store-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

let n = 0;
/** A fresh inventory dir (so a fresh blob root) with this kms block. */
function inventory(kms = '', extra = '') {
  const dir = join(root, `inv-${++n}`);
  mkdirSync(dir);
  return parseInventory(
    join(dir, 'inventory.yml'),
    `network: "473374"\nbackend: kms\nkms:\n  key_id: alias/krypton-engine-jwt\n  region: eu-west-1\n  endpoint_url: http://198.18.0.1:5000\n${kms}nodes:\n  val-1: { role: validator }\n  val-2: { role: validator, jwt: { owner: krypton, mode: "0640" } }\n${extra}`,
  );
}
const COSIGNERS = 'cosigners:\n  cosigner-1: { address: 10.0.0.1, shard_id: 1, key_dir: /opt/horcrux/keys }\nhorcrux:\n  threshold: 1\n';
const HEX = 'ab'.repeat(32);
const jwt: SecretRef = { kind: 'engine-jwt', network: '473374', scope: '*' };

describe('kms store', () => {
  const kms = localKms();
  const inv = inventory();
  storeContract('KMS blobs (local KMS)', {
    store: () => createKmsStore(inv, kms),
    network: '473374',
    undoOfCreate: 'absent',
    async plant(ref, raw) {
      // A blob of bytes the store would never write, encrypted under the right context.
      const text = typeof raw === 'string' ? raw : Object.entries(raw).map(([k, v]) => `${k}='${v}'\n`).join('');
      const { blobDirSegments } = await import('../../../../src/model/layout.ts');
      const dir = join(dirname(inv.file), 'blobs', ...blobDirSegments(ref));
      mkdirSync(dir, { recursive: true });
      const next = (readdirSync(dir).filter((f) => f.endsWith('.enc')).length || 0) + 1;
      writeFileSync(join(dir, `v${next}.enc`), (await kms.encrypt('alias/krypton-engine-jwt', new Secret(text), encryptionContext(ref), 'plant')).blob);
    },
  });

  it('keeps the on-disk layout of the JWT and Horcrux stores: blobs/<network>/engine-jwt, nodes/<node>/engine-jwt, horcrux/<cosigner>/<ecies|shard>', async () => {
    const i = inventory();
    const s = createKmsStore(i, localKms());
    const base = join(dirname(i.file));
    await s.write(jwt, new Secret(HEX), 0);
    await s.write({ ...jwt, scope: 'val-1' }, new Secret(HEX), 0);
    await s.write({ kind: 'horcrux-ecies', network: '473374', scope: 'cosigner-1' }, new Secret('{}'), 0);
    await s.write({ kind: 'horcrux-shard', network: '473374', scope: 'cosigner-1' }, new Secret('{}'), 0);
    await s.write({ kind: 'node-env', network: '473374', scope: '*' }, new Secret("A='1'\n"), 0);
    for (const d of ['473374/engine-jwt', '473374/nodes/val-1/engine-jwt', '473374/horcrux/cosigner-1/ecies', '473374/horcrux/cosigner-1/shard', '473374/env']) {
      expect(readdirSync(join(base, 'blobs', d)).sort(), d).toEqual(['v1.enc', 'v1.json']);
    }
    const meta = JSON.parse(readFileSync(join(base, 'blobs/473374/horcrux/cosigner-1/shard/v1.json'), 'utf8'));
    expect(meta).toEqual({
      version: 1,
      key_arn: KEY_ARN,
      encryption_context: { purpose: 'krypton-horcrux-shard', network: '473374', cosigner: 'cosigner-1' },
      blob_sha256: sha256Hex(readFileSync(join(base, 'blobs/473374/horcrux/cosigner-1/shard/v1.enc'))),
      created: expect.any(String),
    });
    const jwtMeta = readFileSync(join(base, 'blobs/473374/engine-jwt/v1.json'), 'utf8');
    expect(jwtMeta).not.toContain(HEX);
    expect(readFileSync(join(base, 'blobs/473374/engine-jwt/v1.enc')).toString('latin1')).not.toContain(HEX);
    expect(s.describe(jwt)).toBe('blobs/473374/engine-jwt');
    expect((await s.current(jwt))!.source).toBe('blobs/473374/engine-jwt/v1.enc');
  });

  it('reads blobs as the old JWT store (createKmsJwtStore) and Horcrux store (kmsHorcruxStore) wrote them', async () => {
    // Their layout and contexts, spelled out: <inv dir>/blobs/<network>/nodes/<node>/engine-jwt/v<N>.enc under
    // {purpose, network, node}; <inv dir>/blobs/<network>/horcrux/<cosigner>/<ecies|shard>/v<N>.enc under
    // {purpose, network, cosigner}; v<N>.json beside each.
    const i = inventory('  per_node: true\n');
    const k = localKms();
    const base = join(dirname(i.file), 'blobs/473374');
    const put = async (dir: string, value: string, ctx: Record<string, string>, v: number) => {
      mkdirSync(join(base, dir), { recursive: true });
      const { blob, keyArn } = await k.encrypt('alias/krypton-engine-jwt', new Secret(value), ctx, 'old store');
      writeFileSync(join(base, dir, `v${v}.enc`), blob);
      writeFileSync(join(base, dir, `v${v}.json`), JSON.stringify({ version: v, key_arn: keyArn, encryption_context: ctx, blob_sha256: sha256Hex(blob), created: '2025-01-01T00:00:00.000Z' }, null, 2) + '\n');
    };
    await put('nodes/val-2/engine-jwt', HEX, { purpose: 'krypton-engine-jwt', network: '473374', node: 'val-2' }, 1);
    await put('nodes/val-2/engine-jwt', 'cd'.repeat(32), { purpose: 'krypton-engine-jwt', network: '473374', node: 'val-2' }, 2);
    await put('horcrux/cosigner-1/shard', '{"shard":1}', { purpose: 'krypton-horcrux-shard', network: '473374', cosigner: 'cosigner-1' }, 1);
    const s = createKmsStore(i, k);
    const cur = (await s.current({ ...jwt, scope: 'val-2' }))!;
    expect(cur).toMatchObject({ version: 2, source: 'blobs/473374/nodes/val-2/engine-jwt/v2.enc' });
    expect(cur.secret.revealText()).toBe('cd'.repeat(32));
    expect((await s.versions({ ...jwt, scope: 'val-2' })).map((v) => v.version)).toEqual([2, 1]);
    expect((await s.current({ kind: 'horcrux-shard', network: '473374', scope: 'cosigner-1' }))!.secret.revealText()).toBe('{"shard":1}');
    expect(await s.write({ ...jwt, scope: 'val-2' }, new Secret('ef'.repeat(32)), 2)).toEqual({ version: 3 });
  });

  it('two writers of the same version: exactly one wins (link(2)), nothing is overwritten, no temp file is left', async () => {
    const i = inventory();
    const [a, b] = [createKmsStore(i, localKms()), createKmsStore(i, localKms())];
    await a.write(jwt, new Secret(HEX), 0);
    const results = await Promise.allSettled([a.write(jwt, new Secret('cd'.repeat(32)), 1), b.write(jwt, new Secret('ef'.repeat(32)), 1)]);
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    const lost = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
    expect(lost.reason).toMatchObject({ code: 'E_PLAN_CONFLICT', message: expect.stringMatching(/someone else wrote/) });
    const dir = join(dirname(i.file), 'blobs/473374/engine-jwt');
    expect(readdirSync(dir).sort()).toEqual(['v1.enc', 'v1.json', 'v2.enc', 'v2.json']);
  });

  it('a blob copied to another network or node does not open there: E_KMS_CONTEXT naming the expected context', async () => {
    const k = localKms();
    const i = inventory();
    const s = createKmsStore(i, k);
    await s.write({ ...jwt, scope: 'val-1' }, new Secret(HEX), 0);
    const base = join(dirname(i.file), 'blobs/473374');
    mkdirSync(join(base, 'nodes/val-2/engine-jwt'), { recursive: true });
    writeFileSync(join(base, 'nodes/val-2/engine-jwt/v1.enc'), readFileSync(join(base, 'nodes/val-1/engine-jwt/v1.enc')));
    const e = await s.current({ ...jwt, scope: 'val-2' }).catch((x: unknown) => x as KryptonError);
    expect(e).toMatchObject({ code: 'E_KMS_CONTEXT', message: expect.stringMatching(/expected purpose=krypton-engine-jwt, network=473374, node=val-2/) });
    expect(await s.versions({ ...jwt, scope: 'val-2' })).toEqual([]);
  });

  it('delivery: host-fetch by default, operator with kms.decrypt: operator', () => {
    expect(createKmsStore(inventory(), localKms()).delivery).toBe('host-fetch');
    expect(createKmsStore(inventory('  decrypt: operator\n'), localKms()).delivery).toBe('operator');
    const s = createKmsStore(inventory(), localKms());
    expect(s.backend).toBe('kms');
    expect(s.vault).toBeUndefined();
    expect(s.hostFetch?.keepsCopy).toBe(true);
  });

  it('host copy: the current blob, its SHA-256, version and display; target: region and endpoint', async () => {
    const i = inventory();
    const s = createKmsStore(i, localKms());
    expect(await s.hostFetch!.copy(jwt)).toBeUndefined();
    await s.write(jwt, new Secret(HEX), 0);
    await s.write(jwt, new Secret('cd'.repeat(32)), 1);
    const c = (await s.hostFetch!.copy(jwt))!;
    const file = readFileSync(join(dirname(i.file), 'blobs/473374/engine-jwt/v2.enc'));
    expect(c).toEqual({ version: 2, bytes: file, sha256: sha256Hex(file), display: 'blobs/473374/engine-jwt/v2.enc' });
    expect(await s.hostFetch!.target()).toEqual({ region: 'eu-west-1', endpointUrl: 'http://198.18.0.1:5000' });
  });

  it('fetchArgv: the fixed script decrypting the host blob under the context into the tmpfs path, base64, pinned', () => {
    const i = inventory('', COSIGNERS);
    const s = createKmsStore(i, localKms());
    const target = { region: 'eu-west-1', endpointUrl: 'http://198.18.0.1:5000' };
    const node = i.nodes[1]!;
    const [sj] = hostSecrets(i, node);
    const argv = s.hostFetch!.fetchArgv(i, node, sj!, target, 'f'.repeat(64));
    expect(argv.slice(0, 4)).toEqual(['sh', '-c', FETCH_SCRIPT, 'sh']);
    expect(argv.slice(4)).toEqual([
      '/run/krypton-secrets/jwt.hex', '0640', 'krypton', '', 'f'.repeat(64), 'base64', 'hex64', HOST_AWS_CLI,
      'kms', 'decrypt', '--ciphertext-blob', 'fileb:///opt/krypton/secrets/jwt.hex.enc',
      '--encryption-context', '{"purpose":"krypton-engine-jwt","network":"473374"}',
      '--region', 'eu-west-1', '--endpoint-url', 'http://198.18.0.1:5000', '--query', 'Plaintext', '--output', 'text',
    ]);
    expect(argv).toEqual(hostFetchArgv(i, node, sj!, target, 'f'.repeat(64))); // what render's boot script runs
    const cos = i.cosigners[0]!;
    const [ecies, shard] = hostSecrets(i, cos);
    const a2 = s.hostFetch!.fetchArgv(i, cos, shard!, target, '');
    expect(a2.slice(4, 11)).toEqual(['/opt/horcrux/keys/473374_shard.json', '0600', '', '', '', 'base64', 'json']);
    expect(a2).toContain('fileb:///opt/horcrux/blobs/473374_shard.json.enc');
    expect(a2).toContain('{"purpose":"krypton-horcrux-shard","network":"473374","cosigner":"cosigner-1"}');
    expect(s.hostFetch!.fetchArgv(i, cos, ecies!, target, '')).toContain('fileb:///opt/horcrux/blobs/ecies_keys.json.enc');
  });

  it("a failed host fetch in the operator's words: context, denial, not tmpfs, bad value, fingerprint", () => {
    const i = inventory('', COSIGNERS);
    const s = createKmsStore(i, localKms());
    const target = { region: 'eu-west-1', endpointUrl: 'http://198.18.0.1:5000' };
    const cos = i.cosigners[0]!;
    const [, shard] = hostSecrets(i, cos);
    const f = (code: number, stderr: string) => s.hostFetch!.failure(cos, shard!, code, stderr, target) as KryptonError;
    const ctxErr = f(FETCH_EXIT.aws, '\nAn error occurred (InvalidCiphertextException) when calling the Decrypt operation: \n');
    expect(ctxErr.code).toBe('E_KMS_CONTEXT');
    expect(ctxErr.message).toMatch(/cosigner-1: Horcrux key shard blob \/opt\/horcrux\/blobs\/473374_shard.json.enc.*expected purpose=krypton-horcrux-shard, network=473374, cosigner=cosigner-1/);
    const denied = f(FETCH_EXIT.aws, 'An error occurred (AccessDeniedException) when calling the Decrypt operation: User: arn:aws:iam::123456789012:user/krypton-cosigner-473374-cosigner-1 is not authorized to perform: kms:Decrypt on resource: x');
    expect(denied.code).toBe('E_KMS_DENIED');
    expect(denied.message).toMatch(/cosigner-1's AWS identity \(arn:aws:iam::123456789012:user\/krypton-cosigner-473374-cosigner-1\)/);
    expect(f(FETCH_EXIT.notTmpfs, 'krypton-secrets: /opt/horcrux/keys is not a tmpfs (ext2/ext3); nothing written').code).toBe('E_PLAN_CONFLICT');
    expect(f(FETCH_EXIT.badValue, 'krypton-secrets: the value is empty; nothing written').code).toBe('E_INPUT');
    expect(f(FETCH_EXIT.fingerprint, "krypton-secrets: the value's SHA-256 is not the expected x; nothing written")).toMatchObject({ code: 'E_PLAN_CONFLICT', message: expect.stringMatching(/another value than the operator expects/) });
    expect(f(FETCH_EXIT.noPython, '').code).toBe('E_KMS_CONFIG');
    expect(f(FETCH_EXIT.target, 'x is a symlink').code).toBe('E_PLAN_CONFLICT');
    expect(f(127, 'sh: 1: stat: not found').code).toBe('E_SSH_EXEC');
    expect(f(FETCH_EXIT.aws, 'something odd').code).toBe('E_KMS');
    const leaked = f(FETCH_EXIT.aws, `garbage ${HEX}`);
    expectNoValue(leaked, [HEX]);
  });

  it('checkWrite: a disabled key or an Encrypt the identity may not do under a context is refused before anything is written', async () => {
    const k = localKms();
    const i = inventory();
    const s = createKmsStore(i, k);
    const env: SecretRef = { kind: 'node-env', network: '473374', scope: '*' };
    k.denied.add(JSON.stringify(encryptionContext(env)));
    await s.checkWrite([jwt]);
    await expect(s.checkWrite([jwt, env])).rejects.toMatchObject({ code: 'E_KMS_DENIED', message: expect.stringMatching(/kms:Encrypt/) });
    k.enabled = false;
    await expect(s.checkWrite([jwt])).rejects.toMatchObject({ code: 'E_KMS_CONFIG', message: expect.stringMatching(/disabled/) });
    expect(existsSync(join(dirname(i.file), 'blobs'))).toBe(false);
  });

  it('a value over KMS Encrypt\'s 4096 bytes is refused (E_INPUT), nothing written', async () => {
    const i = inventory();
    const s = createKmsStore(i, localKms());
    const big = new Secret(JSON.stringify({ k: 'x'.repeat(5000) }));
    await expect(s.write({ kind: 'horcrux-shard', network: '473374', scope: 'cosigner-1' }, big, 0)).rejects.toMatchObject({ code: 'E_INPUT', message: expect.stringMatching(/over 4096/) });
    expect(existsSync(join(dirname(i.file), 'blobs'))).toBe(false);
  });

  it('an inventory without kms.key_id cannot write (E_INVENTORY)', async () => {
    const i = { ...inventory(), kms: undefined };
    await expect(createKmsStore(i, localKms()).write(jwt, new Secret(HEX), 0)).rejects.toMatchObject({ code: 'E_INVENTORY' });
  });
});
