/**
 * The KMS blob store (src/backends/kms-store.ts `createKmsStore`, the one SecretStore of `backend: kms`) for the
 * Engine-API JWT: versioned blob files next to the inventory in the layout of earlier releases, exclusive creation
 * (check-and-set), rollback as a new version, and the context binding. KMS itself is an in-process stand-in here
 * (AES-256-GCM with the encryption context as associated data, as KMS binds it); every kind and the host side are
 * in test/unit/backends/store/kms-store.test.ts, the real KMS path (moto with IAM, /usr/bin/aws on hosts) in
 * test/integration/kms.int.test.ts.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { awsError } from '../../../src/backends/aws.ts';
import { KMS_MAX_PLAINTEXT_BYTES, type KmsBackend } from '../../../src/backends/kms.ts';
import { createKmsStore } from '../../../src/backends/kms-store.ts';
import { KryptonError } from '../../../src/core/errors.ts';
import { Secret } from '../../../src/core/secret.ts';
import { parseInventory } from '../../../src/inventory/loader.ts';
import { refFor } from '../../../src/model/layout.ts';

const KEY = randomBytes(32);
const KEY_ARN = 'arn:aws:kms:eu-west-1:123456789012:key/00000000-0000-4000-8000-000000000000';
const aad = (ctx: Record<string, string>) => Buffer.from(JSON.stringify(Object.entries(ctx).sort(([a], [b]) => a.localeCompare(b))));

/** KMS as far as the store can tell: encrypt/decrypt bound to the encryption context. */
function localKms(): KmsBackend & { calls: string[] } {
  const calls: string[] = [];
  return {
    calls,
    region: async () => ({ region: 'eu-west-1', source: 'test' }),
    async encrypt(_keyId, plaintext, context, subject) {
      if (plaintext.length > KMS_MAX_PLAINTEXT_BYTES) throw new KryptonError('E_INPUT', `${subject}: too large`, { hint: 'h' });
      calls.push(`encrypt ${JSON.stringify(context)}`);
      const iv = randomBytes(12);
      const c = createCipheriv('aes-256-gcm', KEY, iv).setAAD(aad(context));
      const ct = Buffer.concat([c.update(plaintext.reveal()), c.final()]);
      return { blob: Buffer.concat([iv, c.getAuthTag(), ct]), keyArn: KEY_ARN };
    },
    async decrypt(blob, context, subject) {
      calls.push(`decrypt ${JSON.stringify(context)}`);
      const b = Buffer.from(blob);
      try {
        const d = createDecipheriv('aes-256-gcm', KEY, b.subarray(0, 12)).setAAD(aad(context));
        d.setAuthTag(b.subarray(12, 28));
        return { plaintext: new Secret(Buffer.concat([d.update(b.subarray(28)), d.final()])), keyArn: KEY_ARN };
      } catch {
        throw awsError({ code: 'InvalidCiphertextException', message: '' }, { action: 'kms:Decrypt', subject, context: Object.entries(context).map(([k, v]) => `${k}=${v}`).join(', '), identity: 'the operator' });
      }
    },
    async describeKey() {
      return { arn: KEY_ARN, enabled: true };
    },
  };
}

describe('KMS blob store: the Engine-API JWT', () => {
  const root = mkdtempSync(join(tmpdir(), 'krypton-blobs-'));
  afterAll(() => rmSync(root, { recursive: true, force: true }));
  const inv = (network: string, extra = '') =>
    parseInventory(join(root, `${network}${extra ? '-pn' : ''}.yml`), `network: "${network}"\nbackend: kms\nkms:\n  key_id: alias/krypton-engine-jwt\n${extra}nodes:\n  val-1: { role: validator }\n  val-2: { role: validator }\n`);
  const jwt = (i: ReturnType<typeof inv>, node = 'val-1') => refFor(i, 'engine-jwt', node);

  it('seeds v1 next to the inventory (blob + non-secret sidecar), decrypts it in memory, refuses a second seed', async () => {
    const kms = localKms();
    const i = inv('473374');
    const store = createKmsStore(i, () => kms);
    expect(await store.current(jwt(i))).toBeUndefined();
    expect(await store.head(jwt(i))).toBe(0);
    expect(await store.mint(jwt(i), 0)).toEqual({ version: 1 });
    expect(readdirSync(join(root, 'blobs/473374/engine-jwt')).sort()).toEqual(['v1.enc', 'v1.json']);
    const cur = await store.current(jwt(i));
    expect(cur?.version).toBe(1);
    expect(cur?.source).toBe('blobs/473374/engine-jwt/v1.enc');
    expect(cur?.secret.revealText()).toMatch(/^[0-9a-f]{64}$/);
    const blob = readFileSync(join(root, 'blobs/473374/engine-jwt/v1.enc'));
    const meta = readFileSync(join(root, 'blobs/473374/engine-jwt/v1.json'), 'utf8');
    for (const text of [blob.toString('latin1'), meta]) expect(text).not.toContain(cur!.secret.revealText());
    expect(JSON.parse(meta)).toMatchObject({ version: 1, key_arn: KEY_ARN, encryption_context: { purpose: 'krypton-engine-jwt', network: '473374' } });
    await expect(store.mint(jwt(i), 0)).rejects.toMatchObject({ code: 'E_PLAN_CONFLICT' });
    expect(kms.calls.filter((c) => c.startsWith('encrypt'))).toEqual(['encrypt {"purpose":"krypton-engine-jwt","network":"473374"}']);
  });

  it('rotates with check-and-set on the version, keeps old versions, and rolls back as a new version', async () => {
    const i = inv('473374');
    const store = createKmsStore(i, localKms);
    const v1 = (await store.current(jwt(i)))!;
    await expect(store.mint(jwt(i), 7)).rejects.toMatchObject({ code: 'E_PLAN_CONFLICT', message: expect.stringMatching(/at version 1, not 7/) });
    expect(await store.mint(jwt(i), 1)).toEqual({ version: 2 });
    const v2 = (await store.current(jwt(i)))!;
    expect(v2.version).toBe(2);
    expect(v2.secret.equals(v1.secret)).toBe(false);
    expect((await store.versions(jwt(i))).map((v) => v.version)).toEqual([2, 1]);
    expect((await store.versions(jwt(i)))[1]!.fingerprint).toBe(v1.secret.fingerprint());
    expect(await store.restore(jwt(i), 1)).toEqual({ version: 3, restoredFrom: 1 });
    expect((await store.current(jwt(i)))!.secret.equals(v1.secret)).toBe(true);
    await expect(store.restore(jwt(i), 9)).rejects.toMatchObject({ code: 'E_INPUT' });
  });

  it('two writers of the same version: the second is refused and nothing is overwritten', async () => {
    const i = inv('999');
    const a = createKmsStore(i, localKms);
    const b = createKmsStore(i, localKms);
    await a.mint(jwt(i), 0);
    await a.mint(jwt(i), 1);
    const before = readFileSync(join(root, 'blobs/999/engine-jwt/v2.enc'));
    // b planned against v1 too: its rotation must not replace v2.
    await expect(b.mint(jwt(i), 1)).rejects.toMatchObject({ code: 'E_PLAN_CONFLICT' });
    expect(readFileSync(join(root, 'blobs/999/engine-jwt/v2.enc'))).toEqual(before);
    expect(readdirSync(join(root, 'blobs/999/engine-jwt')).filter((n) => n.endsWith('.tmp'))).toEqual([]);
  });

  it('a blob copied from network 473374 to 47337 does not decrypt there: E_KMS_CONTEXT naming the expected context', async () => {
    const src = join(root, 'blobs/473374/engine-jwt/v1.enc');
    const dst = join(root, 'blobs/47337/engine-jwt');
    mkdirSync(dst, { recursive: true });
    writeFileSync(join(dst, 'v1.enc'), readFileSync(src));
    const i = inv('47337');
    const err = await createKmsStore(i, localKms).current(jwt(i)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KryptonError);
    expect((err as KryptonError).code).toBe('E_KMS_CONTEXT');
    expect((err as KryptonError).message).toMatch(/expected purpose=krypton-engine-jwt, network=47337/);
  });

  it("per node: each node has its own blob under nodes/<node>/, bound to node=<name>; val-1's blob does not open as val-2", async () => {
    const i = inv('555', '  per_node: true\n');
    const store = createKmsStore(i, localKms);
    await store.mint(jwt(i, 'val-1'), 0);
    await store.mint(jwt(i, 'val-2'), 0);
    expect(readdirSync(join(root, 'blobs/555/nodes/val-1/engine-jwt')).sort()).toEqual(['v1.enc', 'v1.json']);
    const [a, b] = [await store.current(jwt(i, 'val-1')), await store.current(jwt(i, 'val-2'))];
    expect(a!.secret.equals(b!.secret)).toBe(false);
    writeFileSync(join(root, 'blobs/555/nodes/val-2/engine-jwt/v2.enc'), readFileSync(join(root, 'blobs/555/nodes/val-1/engine-jwt/v1.enc')));
    await expect(store.current(jwt(i, 'val-2'))).rejects.toMatchObject({ code: 'E_KMS_CONTEXT', message: expect.stringMatching(/node=val-2/) });
  });

  it('a blob that decrypts to something other than 64 lowercase hex is refused, saying what is wrong without the value', async () => {
    const i = inv('777');
    const kms = localKms();
    const { blob } = await kms.encrypt('k', new Secret(`0x${'ab'.repeat(32)}`), { purpose: 'krypton-engine-jwt', network: '777' }, 's');
    mkdirSync(join(root, 'blobs/777/engine-jwt'), { recursive: true });
    writeFileSync(join(root, 'blobs/777/engine-jwt/v1.enc'), blob);
    const err = (await createKmsStore(i, () => kms).current(jwt(i)).catch((e: unknown) => e)) as KryptonError;
    expect(err).toMatchObject({ code: 'E_INPUT', message: "the blob blobs/777/engine-jwt/v1.enc (version 1) decrypts to a value that is not valid: byte 0: `0x` prefix" });
    expect(err.message).not.toContain('ab'.repeat(32));
  });
});
