import { execFileSync, spawnSync } from 'node:child_process';
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { KmsBackend } from '../../../src/backends/kms.ts';
import type { Backends } from '../../../src/backends/registry.ts';
import { KryptonError } from '../../../src/core/errors.ts';
import { Secret } from '../../../src/core/secret.ts';
import { importHorcrux } from '../../../src/horcrux/import.ts';
import { HORCRUX_FETCH_EXIT, HORCRUX_FETCH_SCRIPT, horcruxBlobDir, horcruxContext, horcruxFetchArgv, kmsHorcruxStore } from '../../../src/horcrux/kms.ts';
import { parseInventory } from '../../../src/inventory/loader.ts';
import { generateHorcruxKeys, writeHorcruxKeys } from '../../sandbox/horcrux-keys.ts';

const root = mkdtempSync(join(tmpdir(), 'ks-kms-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const FIXTURE = join(import.meta.dirname, '..', 'fixtures', 'horcrux-kms.yml');
// The inventory "lives" in root, so its blob store is <root>/blobs.
const inv = parseInventory(join(root, 'inventory.yml'), readFileSync(FIXTURE, 'utf8'));

/** KMS in memory: AES-256-GCM with the encryption context as AAD, so Decrypt needs the identical context. */
function fakeKms(): KmsBackend & { decrypts: number } {
  const key = randomBytes(32);
  const aad = (ctx: Record<string, string>) => Buffer.from(JSON.stringify(Object.entries(ctx).sort()));
  const f = {
    decrypts: 0,
    async region() {
      return { region: 'eu-west-1', source: 'test' };
    },
    async encrypt(_keyId: string, plaintext: Secret, context: Record<string, string>) {
      const iv = randomBytes(12);
      const c = createCipheriv('aes-256-gcm', key, iv).setAAD(aad(context));
      const body = Buffer.concat([c.update(plaintext.reveal()), c.final()]);
      return { blob: Buffer.concat([iv, c.getAuthTag(), body]), keyArn: 'arn:aws:kms:eu-west-1:123456789012:key/test' };
    },
    async decrypt(blob: Uint8Array, context: Record<string, string>, subject: string) {
      f.decrypts++;
      const b = Buffer.from(blob);
      try {
        const d = createDecipheriv('aes-256-gcm', key, b.subarray(0, 12)).setAAD(aad(context));
        d.setAuthTag(b.subarray(12, 28));
        return { plaintext: new Secret(Buffer.concat([d.update(b.subarray(28)), d.final()])), keyArn: 'arn:aws:kms:eu-west-1:123456789012:key/test' };
      } catch {
        throw new KryptonError('E_KMS_CONTEXT', `KMS refused to decrypt ${subject}: InvalidCiphertextException under ${JSON.stringify(context)}`);
      }
    },
    async describeKey() {
      return { arn: 'arn:aws:kms:eu-west-1:123456789012:key/test', enabled: true };
    },
  };
  return f;
}

describe('Horcrux key files as KMS blobs', () => {
  const kms = fakeKms();
  const backends = { kms: () => kms } as unknown as Backends;
  const set = generateHorcruxKeys({ shards: 3, threshold: 2, chainId: '473374' });
  const keys = join(root, 'keys');
  writeHorcruxKeys(keys, set, '473374');

  it('import writes one blob per file under <inventory dir>/blobs/<network>/horcrux/<cosigner>/<kind>, with a sidecar naming the context', async () => {
    const r = await importHorcrux({ dir: keys, inventory: inv, backends });
    expect(r.files.every((f) => f.status === 'written' && f.version === 1)).toBe(true);
    const dir = horcruxBlobDir(inv, 'cosigner-2', 'shard');
    expect(dir).toBe(join(root, 'blobs', '473374', 'horcrux', 'cosigner-2', 'shard'));
    expect(readdirSync(dir).sort()).toEqual(['v1.enc', 'v1.json']);
    const meta = JSON.parse(readFileSync(join(dir, 'v1.json'), 'utf8')) as { encryption_context: Record<string, string>; blob_sha256: string };
    expect(meta.encryption_context).toEqual({ purpose: 'krypton-horcrux-shard', network: '473374', cosigner: 'cosigner-2' });
    expect(meta.blob_sha256).toBe(createHash('sha256').update(readFileSync(join(dir, 'v1.enc'))).digest('hex'));
    for (const c of set.cosigners) expect(readFileSync(join(dir, 'v1.enc')).includes(Buffer.from(c.shard))).toBe(false);
    const again = await importHorcrux({ dir: keys, inventory: inv, backends });
    expect(again.files.every((f) => f.status === 'unchanged')).toBe(true);
  });

  it("cosigner-2's blob does not decrypt under cosigner-1's context, nor an ECIES blob as a shard", async () => {
    const store = kmsHorcruxStore(inv, () => kms);
    const blob2 = (await store.currentBlob('cosigner-2', 'shard'))!;
    await expect(kms.decrypt(blob2.bytes, horcruxContext(inv, 'cosigner-1', 'shard'), 'x')).rejects.toMatchObject({ code: 'E_KMS_CONTEXT' });
    const ecies1 = (await store.currentBlob('cosigner-1', 'ecies'))!;
    await expect(kms.decrypt(ecies1.bytes, horcruxContext(inv, 'cosigner-1', 'shard'), 'x')).rejects.toMatchObject({ code: 'E_KMS_CONTEXT' });
    const ok = await kms.decrypt(blob2.bytes, horcruxContext(inv, 'cosigner-2', 'shard'), 'x');
    expect(ok.plaintext.revealText()).toBe(set.cosigners[1]!.shard);
  });

  it('a half-failed import removes the versions it wrote (the previous stay current)', async () => {
    const other = generateHorcruxKeys({ shards: 3, threshold: 2, chainId: '473374' });
    const keys2 = join(root, 'keys2');
    writeHorcruxKeys(keys2, other, '473374');
    let n = 0;
    const flaky = { ...kms, encrypt: async (...a: Parameters<KmsBackend['encrypt']>) => (++n === 3 ? Promise.reject(new KryptonError('E_KMS', 'throttled')) : kms.encrypt(...a)) };
    await expect(importHorcrux({ dir: keys2, inventory: inv, backends: { kms: () => flaky } as unknown as Backends, replace: true })).rejects.toThrow(/throttled — the import stopped; undone: .*cosigner-1\/shard v2, .*cosigner-1\/ecies v2/);
    expect(readdirSync(horcruxBlobDir(inv, 'cosigner-1', 'ecies'))).toEqual(['v1.enc', 'v1.json']);
    const cur = await kmsHorcruxStore(inv, () => kms).read('cosigner-1', 'ecies');
    expect(cur.current?.secret.revealText()).toBe(set.cosigners[0]!.ecies);
  });
});

describe('the host-side decrypt script', () => {
  const shm = statSync('/dev/shm', { throwIfNoEntry: false }) && execFileSync('stat', ['-f', '-c', '%T', '/dev/shm'], { encoding: 'utf8' }).trim() === 'tmpfs';
  const run = (out: string, sha: string, cmd: string[]) => spawnSync('sh', ['-c', HORCRUX_FETCH_SCRIPT, 'sh', out, sha, '', '', ...cmd], { encoding: 'utf8' });
  const text = '{"eciesKey":"secret","id":1}';
  const b64 = Buffer.from(text).toString('base64');
  const sha = createHash('sha256').update(text).digest('hex');

  it.skipIf(!shm)('writes the decoded file 0600 into a tmpfs only when its SHA-256 is the expected one', () => {
    const dir = mkdtempSync('/dev/shm/ks-fetch-');
    try {
      const out = join(dir, 'ecies_keys.json');
      const ok = run(out, sha, ['printf', '%s', b64]);
      expect(ok.status).toBe(0);
      expect(readFileSync(out, 'utf8')).toBe(text);
      expect((statSync(out).mode & 0o777).toString(8)).toBe('600');
      const wrong = run(join(dir, 'other.json'), 'f'.repeat(64), ['printf', '%s', b64]);
      expect(wrong.status).toBe(HORCRUX_FETCH_EXIT.fingerprint);
      expect(wrong.stderr).not.toContain(text);
      expect(existsSync(join(dir, 'other.json'))).toBe(false);
      expect(run(join(dir, 'x.json'), sha, ['false']).status).toBe(HORCRUX_FETCH_EXIT.aws);
      expect(readdirSync(dir)).toEqual(['ecies_keys.json']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses a directory that is not a tmpfs, writing nothing', () => {
    const dir = mkdtempSync(join(root, 'disk-'));
    const r = run(join(dir, 'ecies_keys.json'), sha, ['printf', '%s', b64]);
    expect(r.status).toBe(HORCRUX_FETCH_EXIT.notTmpfs);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('builds an argv with paths, context and digest only (no secret), the aws CLI by absolute path', () => {
    const argv = horcruxFetchArgv({ out: '/opt/horcrux/keys/ecies_keys.json', sha256: sha, blobPath: '/opt/horcrux/blobs/ecies_keys.json.enc', context: horcruxContext(inv, 'cosigner-1', 'ecies'), target: { region: 'eu-west-1', endpointUrl: 'http://198.18.0.1:5000' } });
    expect(argv.slice(0, 2)).toEqual(['sh', '-c']);
    expect(argv.slice(3, 9)).toEqual(['sh', '/opt/horcrux/keys/ecies_keys.json', sha, '', '', '/usr/bin/aws']);
    expect(argv).toContain('{"purpose":"krypton-horcrux-ecies","network":"473374","cosigner":"cosigner-1"}');
    expect(argv).toContain('fileb:///opt/horcrux/blobs/ecies_keys.json.enc');
    expect(argv.slice(argv.indexOf('--endpoint-url'), argv.indexOf('--endpoint-url') + 2)).toEqual(['--endpoint-url', 'http://198.18.0.1:5000']);
  });
});

describe('IAM for Horcrux KMS blobs', () => {
  it('a cosigner may Decrypt under its own two contexts only; the operator statement covers the network\'s Horcrux purposes', async () => {
    const { renderCosignerIamPolicy, horcruxAdminStatement } = await import('../../../src/horcrux/iam.ts');
    const doc = renderCosignerIamPolicy(inv, 'cosigner-2', { keyArn: 'arn:aws:kms:eu-west-1:123456789012:key/k' });
    expect(doc.Statement.map((s) => [s.Action, s.Resource, s.Condition])).toEqual([
      ['kms:Decrypt', 'arn:aws:kms:eu-west-1:123456789012:key/k', { StringEquals: { 'kms:EncryptionContext:purpose': 'krypton-horcrux-ecies', 'kms:EncryptionContext:network': '473374', 'kms:EncryptionContext:cosigner': 'cosigner-2' } }],
      ['kms:Decrypt', 'arn:aws:kms:eu-west-1:123456789012:key/k', { StringEquals: { 'kms:EncryptionContext:purpose': 'krypton-horcrux-shard', 'kms:EncryptionContext:network': '473374', 'kms:EncryptionContext:cosigner': 'cosigner-2' } }],
    ]);
    expect(JSON.stringify(doc)).not.toMatch(/Encrypt"|cosigner-1|engine-jwt/);
    const admin = horcruxAdminStatement(inv, { accountId: '123456789012' });
    expect(admin.Resource).toBe('arn:aws:kms:eu-west-1:123456789012:key/*');
    expect(admin.Condition).toEqual({
      StringEquals: { 'kms:EncryptionContext:purpose': ['krypton-horcrux-ecies', 'krypton-horcrux-shard'], 'kms:EncryptionContext:network': '473374' },
      'ForAnyValue:StringEquals': { 'kms:ResourceAliases': 'alias/krypton-engine-jwt' },
    });
  });
});
