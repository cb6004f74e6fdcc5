/**
 * Horcrux key files with `backend: kms`, through the one KMS blob store (src/backends/kms-store.ts) and the one
 * import (src/ops/import-horcrux.ts): one blob per key file, bound by its encryption context to its purpose,
 * network and cosigner; the host-side fetch of a cosigner's own files; the cosigner's IAM policy. KMS is an
 * in-process stand-in (AES-256-GCM with the encryption context as associated data, as KMS binds it). The fetch
 * script itself runs for real in test/unit/model/host-fetch.test.ts; the real KMS path in test/integration.
 */
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { KmsBackend } from '../../../src/backends/kms.ts';
import { createKmsStore } from '../../../src/backends/kms-store.ts';
import { KryptonError } from '../../../src/core/errors.ts';
import { Secret } from '../../../src/core/secret.ts';
import { parseInventory } from '../../../src/inventory/loader.ts';
import { encryptionContext, hostSecrets, refFor } from '../../../src/model/layout.ts';
import { importHorcrux } from '../../../src/ops/import-horcrux.ts';
import { renderAdminIamPolicy, renderCosignerIamPolicy, renderHostIamPolicy } from '../../../src/render/iam-policy.ts';
import { generateHorcruxKeys, writeHorcruxKeys } from '../../sandbox/horcrux-keys.ts';

const root = mkdtempSync(join(tmpdir(), 'ks-kms-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const FIXTURE = join(import.meta.dirname, '..', 'fixtures', 'horcrux-kms.yml');
// The inventory "lives" in root, so its blob store is <root>/blobs.
const inv = parseInventory(join(root, 'inventory.yml'), readFileSync(FIXTURE, 'utf8'));
const ARN = 'arn:aws:kms:eu-west-1:123456789012:key/00000000-0000-4000-8000-000000000000';

/** KMS in memory: AES-256-GCM with the encryption context as AAD, so Decrypt needs the identical context. */
function fakeKms(): KmsBackend & { encrypts: string[] } {
  const key = randomBytes(32);
  const aad = (ctx: Record<string, string>) => Buffer.from(JSON.stringify(Object.entries(ctx).sort()));
  const f = {
    encrypts: [] as string[],
    async region() {
      return { region: 'eu-west-1', source: 'test' };
    },
    async encrypt(_keyId: string, plaintext: Secret, context: Record<string, string>, subject: string) {
      f.encrypts.push(subject);
      const iv = randomBytes(12);
      const c = createCipheriv('aes-256-gcm', key, iv).setAAD(aad(context));
      const body = Buffer.concat([c.update(plaintext.reveal()), c.final()]);
      return { blob: Buffer.concat([iv, c.getAuthTag(), body]), keyArn: ARN };
    },
    async decrypt(blob: Uint8Array, context: Record<string, string>, subject: string) {
      const b = Buffer.from(blob);
      try {
        const d = createDecipheriv('aes-256-gcm', key, b.subarray(0, 12)).setAAD(aad(context));
        d.setAuthTag(b.subarray(12, 28));
        return { plaintext: new Secret(Buffer.concat([d.update(b.subarray(28)), d.final()])), keyArn: ARN };
      } catch {
        throw new KryptonError('E_KMS_CONTEXT', `KMS refused to decrypt ${subject}: InvalidCiphertextException under ${JSON.stringify(context)}`, { hint: 'h' });
      }
    },
    async describeKey() {
      return { arn: ARN, enabled: true };
    },
  };
  return f;
}

describe('Horcrux key files as KMS blobs', () => {
  const kms = fakeKms();
  const store = createKmsStore(inv, kms);
  const set = generateHorcruxKeys({ shards: 3, threshold: 2, chainId: '473374' });
  const keys = join(root, 'keys');
  writeHorcruxKeys(keys, set, '473374');
  const blobDir = (c: string, kind: 'ecies' | 'shard') => join(root, 'blobs', '473374', 'horcrux', c, kind);

  it('import writes one blob per file under <inventory dir>/blobs/<network>/horcrux/<cosigner>/<kind> (the layout of earlier releases), with a sidecar naming the context', async () => {
    const r = await importHorcrux({ dir: keys, inventory: inv, store });
    expect(r.files.every((f) => f.status === 'written' && f.version === 1)).toBe(true);
    expect(r.files.find((f) => f.cosigner === 'cosigner-2' && f.kind === 'shard')!.source).toBe('blobs/473374/horcrux/cosigner-2/shard/v1.enc');
    const dir = blobDir('cosigner-2', 'shard');
    expect(readdirSync(dir).sort()).toEqual(['v1.enc', 'v1.json']);
    const meta = JSON.parse(readFileSync(join(dir, 'v1.json'), 'utf8')) as { encryption_context: Record<string, string>; blob_sha256: string; key_arn: string };
    expect(meta.encryption_context).toEqual({ purpose: 'krypton-horcrux-shard', network: '473374', cosigner: 'cosigner-2' });
    expect(meta.key_arn).toBe(ARN);
    expect(meta.blob_sha256).toBe(createHash('sha256').update(readFileSync(join(dir, 'v1.enc'))).digest('hex'));
    for (const c of set.cosigners) {
      expect(readFileSync(join(dir, 'v1.enc')).includes(Buffer.from(c.shard))).toBe(false);
      expect(readFileSync(join(dir, 'v1.json'), 'utf8')).not.toContain((JSON.parse(c.shard) as { privateShard: string }).privateShard);
    }
    const again = await importHorcrux({ dir: keys, inventory: inv, store });
    expect(again.files.every((f) => f.status === 'unchanged')).toBe(true);
    // the store reads back what was imported
    expect((await store.current(refFor(inv, 'horcrux-ecies', 'cosigner-3')))!.secret.revealText()).toBe(set.cosigners[2]!.ecies);
  });

  it("cosigner-2's blob does not decrypt under cosigner-1's context, nor an ECIES blob as a shard", async () => {
    const blob2 = (await store.hostFetch!.copy(refFor(inv, 'horcrux-shard', 'cosigner-2')))!;
    await expect(kms.decrypt(blob2.bytes, encryptionContext(refFor(inv, 'horcrux-shard', 'cosigner-1')), 'x')).rejects.toMatchObject({ code: 'E_KMS_CONTEXT' });
    const ecies1 = (await store.hostFetch!.copy(refFor(inv, 'horcrux-ecies', 'cosigner-1')))!;
    await expect(kms.decrypt(ecies1.bytes, encryptionContext(refFor(inv, 'horcrux-shard', 'cosigner-1')), 'x')).rejects.toMatchObject({ code: 'E_KMS_CONTEXT' });
    const ok = await kms.decrypt(blob2.bytes, encryptionContext(refFor(inv, 'horcrux-shard', 'cosigner-2')), 'x');
    expect(ok.plaintext.revealText()).toBe(set.cosigners[1]!.shard);
  });

  it('a half-failed import removes the versions it wrote (the previous stay current)', async () => {
    const other = generateHorcruxKeys({ shards: 3, threshold: 2, chainId: '473374' });
    const keys2 = join(root, 'keys2');
    writeHorcruxKeys(keys2, other, '473374');
    let writes = 0;
    // checkWrite's test encryptions pass; the third real write (cosigner-2's ECIES file) is throttled.
    const flaky: KmsBackend = {
      ...kms,
      encrypt: async (...a: Parameters<KmsBackend['encrypt']>) => (!a[3].startsWith('a test encryption') && ++writes === 3 ? Promise.reject(new KryptonError('E_KMS', 'throttled', { hint: 'h' })) : kms.encrypt(...a)),
    };
    await expect(importHorcrux({ dir: keys2, inventory: inv, store: createKmsStore(inv, flaky), replace: true })).rejects.toThrow(
      /throttled — the import stopped; undone: blobs\/473374\/horcrux\/cosigner-1\/shard v2, blobs\/473374\/horcrux\/cosigner-1\/ecies v2$/,
    );
    expect(readdirSync(blobDir('cosigner-1', 'ecies'))).toEqual(['v1.enc', 'v1.json']);
    expect((await store.current(refFor(inv, 'horcrux-ecies', 'cosigner-1')))?.secret.revealText()).toBe(set.cosigners[0]!.ecies);
  });

  it("a cosigner's host-side fetch: its own blob path, context and the expected SHA-256, into its key dir (no secret in the argv)", async () => {
    const c1 = inv.cosigners.find((c) => c.name === 'cosigner-1')!;
    const [ecies] = hostSecrets(inv, c1);
    const want = (await store.current(ecies!.ref))!;
    const target = await store.hostFetch!.target();
    expect(target).toEqual({ region: 'eu-west-1', endpointUrl: 'http://198.18.0.1:5000' });
    const argv = store.hostFetch!.fetchArgv(inv, c1, ecies!, target, want.secret.fingerprint());
    expect(argv.slice(0, 2)).toEqual(['sh', '-c']);
    expect(argv).toContain('/opt/horcrux/keys/ecies_keys.json');
    expect(argv).toContain(want.secret.fingerprint());
    expect(argv).toContain('/usr/bin/aws');
    expect(argv).toContain('fileb:///opt/horcrux/blobs/ecies_keys.json.enc');
    expect(argv).toContain('{"purpose":"krypton-horcrux-ecies","network":"473374","cosigner":"cosigner-1"}');
    expect(argv.slice(argv.indexOf('--endpoint-url'), argv.indexOf('--endpoint-url') + 2)).toEqual(['--endpoint-url', 'http://198.18.0.1:5000']);
    const text = JSON.stringify(argv);
    for (const c of set.cosigners) expect(text).not.toContain((JSON.parse(c.ecies) as { eciesKey: string }).eciesKey);
  });
});

describe('IAM for Horcrux KMS blobs', () => {
  it("a cosigner may Decrypt under its own two contexts only (the one host renderer); the operator's statement covers every kind of this network", () => {
    const doc = renderCosignerIamPolicy(inv, 'cosigner-2', { keyArn: 'arn:aws:kms:eu-west-1:123456789012:key/k' });
    expect(doc).toEqual(renderHostIamPolicy(inv, inv.cosigners.find((c) => c.name === 'cosigner-2')!, { keyArn: 'arn:aws:kms:eu-west-1:123456789012:key/k' }));
    expect(doc.Statement.map((s) => [s.Sid, s.Action, s.Resource, s.Condition])).toEqual([
      ['DecryptOwnHorcruxEciesBlob', 'kms:Decrypt', 'arn:aws:kms:eu-west-1:123456789012:key/k', { StringEquals: { 'kms:EncryptionContext:purpose': 'krypton-horcrux-ecies', 'kms:EncryptionContext:network': '473374', 'kms:EncryptionContext:cosigner': 'cosigner-2' } }],
      ['DecryptOwnHorcruxShardBlob', 'kms:Decrypt', 'arn:aws:kms:eu-west-1:123456789012:key/k', { StringEquals: { 'kms:EncryptionContext:purpose': 'krypton-horcrux-shard', 'kms:EncryptionContext:network': '473374', 'kms:EncryptionContext:cosigner': 'cosigner-2' } }],
    ]);
    expect(JSON.stringify(doc)).not.toMatch(/Encrypt"|cosigner-1|engine-jwt/);
    const admin = renderAdminIamPolicy(inv, { accountId: '123456789012' });
    const enc = admin.Statement.find((s) => Array.isArray(s.Action) && s.Action.includes('kms:Encrypt'))!;
    expect(enc.Resource).toBe('arn:aws:kms:eu-west-1:123456789012:key/*');
    expect(enc.Condition).toEqual({
      StringEquals: { 'kms:EncryptionContext:purpose': ['krypton-engine-jwt', 'krypton-node-env', 'krypton-horcrux-ecies', 'krypton-horcrux-shard'], 'kms:EncryptionContext:network': '473374' },
      'ForAnyValue:StringEquals': { 'kms:ResourceAliases': 'alias/krypton-engine-jwt' },
    });
  });
});
