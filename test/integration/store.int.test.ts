/**
 * The three SecretStores (src/backends/{vault,kms,sm}-store.ts, chosen by openStore) against real services:
 * the sandbox's OpenBao dev server (KV v2 at secret/) and moto with IAM enforced (KMS and Secrets Manager),
 * as the operator (the admin identity `krypton-secrets render` writes the policy of). Each store runs the same
 * contract (test/unit/backends/store/contract.ts: write/current/head/versions/check-and-set/restore/undo for the
 * Engine-API JWT, node env-secrets and Horcrux key files; non-canonical stored values refused with where, which
 * version and what, never the value). Then the host-side fetch for real: the store's argv run inside a sandbox
 * host with Debian's /usr/bin/aws and python3, into that host's tmpfs.
 *
 * The sandbox is brought up in the default dir on slot 0 (CI); on another slot (`KRYPTON_SANDBOX_SLOT=N`) in a
 * dir of its own, so it never tears down the slot-0 sandbox of the same checkout.
 */
import { createHash } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EncryptCommand, KMSClient } from '@aws-sdk/client-kms';
import { CreateSecretCommand, PutSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openStore } from '../../src/backends/index.ts';
import { KryptonError } from '../../src/core/errors.ts';
import { Secret } from '../../src/core/secret.ts';
import { parseInventory } from '../../src/inventory/loader.ts';
import { renderEnvFile } from '../../src/model/formats.ts';
import type { Inventory } from '../../src/model/inventory.ts';
import { blobDirSegments, encryptionContext, hostBlobPath, hostSecrets, kvField, kvPath, smSecretName, smVersionId, type HostSecret, type SecretRef } from '../../src/model/layout.ts';
import type { SecretStore } from '../../src/model/store.ts';
import { hostExec, sandboxDown, sandboxUp, type SandboxInfo } from '../sandbox/index.ts';
import { SLOT } from '../sandbox/layout.ts';
import { expectNoValue, storeContract } from '../unit/backends/store/contract.ts';

const DIR = SLOT === 0 ? undefined : join(tmpdir(), `krypton-store-sandbox-slot${SLOT}`);
const NETWORK = '473374';
const sha256 = (b: string | Buffer) => createHash('sha256').update(b).digest('hex');

process.env['AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED'] ??= 'true';

let info: SandboxInfo;
const inventories: Partial<Record<Inventory['backend'], Inventory>> = {};
const stores: Partial<Record<Inventory['backend'], SecretStore>> = {};
const store = (b: Inventory['backend']) => () => {
  const s = stores[b];
  if (!s) throw new Error(`the ${b} store is not open (did the sandbox come up?)`);
  return s;
};
const saved: Record<string, string | undefined> = {};

function awsOf() {
  if (!info.aws) throw new Error('the sandbox has no AWS');
  return info.aws;
}
const adminCreds = () => ({ accessKeyId: awsOf().admin.accessKeyId, secretAccessKey: awsOf().admin.secretAccessKey });

beforeAll(async () => {
  info = await sandboxUp({ hosts: 1, backend: 'kms', ...(DIR ? { dir: DIR } : {}) });
  // The operator's environment, as `source .sandbox/env` gives it (the SDK's default chain reads process.env).
  for (const [k, v] of Object.entries(info.env)) {
    saved[k] = process.env[k];
    process.env[k] = v;
  }
  const text = readFileSync(info.files.inventory, 'utf8');
  for (const b of ['vault', 'kms', 'secrets-manager'] as const) {
    // One inventory per backend, beside the sandbox's (so KMS blobs go to <sandbox dir>/blobs).
    inventories[b] = parseInventory(join(info.dir, `inventory-${b}.yml`), text.replace(/^backend: .*$/m, `backend: ${b}`));
    stores[b] = await openStore(inventories[b]!, process.env);
  }
}, 240_000);

afterAll(async () => {
  for (const [k, v] of Object.entries(saved)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
  await sandboxDown(DIR);
}, 120_000);

// ------------------------------------------------------------------------------------------------------------
// The contract, three times
// ------------------------------------------------------------------------------------------------------------

storeContract('Vault/OpenBao KV v2 (real OpenBao dev server)', {
  store: store('vault'),
  network: NETWORK,
  undoOfCreate: 'absent',
  async plant(ref, raw) {
    const data = typeof raw === 'string' ? { [kvField(ref.kind)!]: raw } : raw;
    await store('vault')().vault!.write(`secret/data/${kvPath(ref)}`, { data });
  },
});

storeContract('KMS blobs (real moto KMS, operator identity)', {
  store: store('kms'),
  network: NETWORK,
  undoOfCreate: 'absent',
  async plant(ref, raw) {
    const aws = awsOf();
    const text = typeof raw === 'string' ? raw : Object.entries(raw).map(([k, v]) => `${k}='${v}'\n`).join('');
    const kms = new KMSClient({ region: aws.region, endpoint: aws.endpoint, credentials: adminCreds(), maxAttempts: 1 });
    const out = await kms.send(new EncryptCommand({ KeyId: aws.keyAlias, Plaintext: Buffer.from(text), EncryptionContext: encryptionContext(ref) }));
    const dir = join(info.dir, 'blobs', ...blobDirSegments(ref));
    await mkdir(dir, { recursive: true });
    const v = (await store('kms')().head(ref)) + 1;
    await writeFile(join(dir, `v${v}.enc`), out.CiphertextBlob!);
  },
});

storeContract('Secrets Manager (real moto, operator identity)', {
  store: store('secrets-manager'),
  network: NETWORK,
  undoOfCreate: 'throws',
  async plant(ref, raw) {
    const aws = awsOf();
    const sm = new SecretsManagerClient({ region: aws.region, endpoint: aws.endpoint, credentials: adminCreds(), maxAttempts: 1 });
    const value = typeof raw === 'string' ? raw : JSON.stringify(raw);
    const head = await store('secrets-manager')().head(ref);
    const id = smVersionId(head + 1, ref.kind);
    if (head === 0) await sm.send(new CreateSecretCommand({ Name: smSecretName(ref), SecretString: value, KmsKeyId: aws.keyAlias, ClientRequestToken: id }));
    else await sm.send(new PutSecretValueCommand({ SecretId: smSecretName(ref), SecretString: value, ClientRequestToken: id }));
  },
});

// ------------------------------------------------------------------------------------------------------------
// What only real services can show
// ------------------------------------------------------------------------------------------------------------

describe('against the real services', () => {
  it('checkWrite with the operator identity: passes for its network, E_KMS_DENIED for another network (KMS) before anything is written', async () => {
    const kms = store('kms')();
    await kms.checkWrite([{ kind: 'engine-jwt', network: NETWORK, scope: '*' }]);
    const e = await kms.checkWrite([{ kind: 'engine-jwt', network: '999999', scope: '*' }]).catch((x: unknown) => x as KryptonError);
    expect(e).toMatchObject({ code: 'E_KMS_DENIED', message: expect.stringMatching(/kms:Encrypt/) });
    expect(await kms.head({ kind: 'engine-jwt', network: '999999', scope: '*' })).toBe(0);
    await store('secrets-manager')().checkWrite([{ kind: 'node-env', network: NETWORK, scope: '*' }]);
    await store('vault')().checkWrite([{ kind: 'node-env', network: NETWORK, scope: '*' }]);
  });

  it('Secrets Manager keyDrift: a secret under the AWS-managed key is reported, and a write moves it to kms.key_id', async () => {
    const aws = awsOf();
    const s = store('secrets-manager')();
    const ref: SecretRef = { kind: 'engine-jwt', network: NETWORK, scope: 'val-drift' };
    const sm = new SecretsManagerClient({ region: aws.region, endpoint: aws.endpoint, credentials: adminCreds(), maxAttempts: 1 });
    await sm.send(new CreateSecretCommand({ Name: smSecretName(ref), SecretString: 'ab'.repeat(32), ClientRequestToken: smVersionId(1) }));
    expect(await s.keyDrift(ref)).toMatch(/under the AWS-managed key aws\/secretsmanager, not the inventory's kms.key_id alias\/krypton-engine-jwt \(arn:aws:kms:/);
    const cur = (await s.current(ref))!;
    expect(cur.version).toBe(1);
    expect(await s.write(ref, cur.secret, await s.head(ref))).toEqual({ version: 2 });
    expect(await s.keyDrift(ref)).toBeUndefined();
    expect((await s.current(ref))!.secret.revealText()).toBe('ab'.repeat(32));
  });
});

describe('host-side fetch: the store argv run on a sandbox host (Debian /usr/bin/aws, python3, the host tmpfs)', () => {
  const host = 'val-1';
  const hostOf = (b: Inventory['backend']) => inventories[b]!.nodes.find((n) => n.name === host)!;
  /** The operator's identity on the host (for kinds the node's own policy does not name). */
  const asAdmin = () => ({ AWS_ACCESS_KEY_ID: awsOf().admin.accessKeyId, AWS_SECRET_ACCESS_KEY: awsOf().admin.secretAccessKey });
  const onHost = (argv: string[], env?: Record<string, string>) => hostExec(host, argv, { ...(DIR ? { dir: DIR } : {}), ...(env ? { env } : {}) });
  const testSecret = (ref: SecretRef, name: string, format: HostSecret['format']): HostSecret => ({
    ref, name, path: `/run/krypton-secrets/${name}`, dir: '/run/krypton-secrets', mode: '0600', format, readers: [],
  });

  beforeAll(async () => {
    const r = await onHost(['sh', '-c', 'mkdir -p -m 0700 /run/krypton-secrets && stat -f -c %T /run/krypton-secrets']);
    expect(r.stdout.trim()).toBe('tmpfs');
  });

  it("KMS, with the node's own identity: the host copy decrypts under its context into the tmpfs, pinned to the laptop's SHA-256", async () => {
    const s = store('kms')();
    const inv = inventories.kms!;
    const [sj] = hostSecrets(inv, hostOf('kms'));
    const head = await s.head(sj!.ref);
    if (head === 0) await s.mint(sj!.ref, 0);
    const want = (await s.current(sj!.ref))!;
    const copy = (await s.hostFetch!.copy(sj!.ref))!;
    const blobPath = hostBlobPath(inv, hostOf('kms'), sj!);
    const put = await hostExec(host, ['sh', '-c', 'mkdir -p -- "${1%/*}" && cat > "$1"', 'sh', blobPath], { ...(DIR ? { dir: DIR } : {}), input: copy.bytes });
    expect(put.code).toBe(0);
    const target = await s.hostFetch!.target();
    expect(target).toEqual({ region: awsOf().region, endpointUrl: awsOf().endpoint });
    const argv = s.hostFetch!.fetchArgv(inv, hostOf('kms'), sj!, target, want.secret.fingerprint());
    expect(JSON.stringify(argv)).not.toContain(want.secret.revealText());
    const r = await onHost(argv);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const got = await onHost(['sh', '-c', 'stat -c %a /run/krypton-secrets/jwt.hex; sha256sum < /run/krypton-secrets/jwt.hex | cut -d" " -f1']);
    expect(got.stdout.trim().split('\n')).toEqual(['600', want.secret.fingerprint()]);

    // pinned to another value: refused, the file stays
    const pinned = await onHost(s.hostFetch!.fetchArgv(inv, hostOf('kms'), sj!, target, sha256('other')));
    const e = s.hostFetch!.failure(hostOf('kms'), sj!, pinned.code, pinned.stderr, target) as KryptonError;
    expect(e.code).toBe('E_PLAN_CONFLICT');
    expect((await onHost(['sh', '-c', 'sha256sum < /run/krypton-secrets/jwt.hex | cut -d" " -f1'])).stdout.trim()).toBe(want.secret.fingerprint());
  });

  it('KMS: a blob bound to another context fails as E_KMS_CONTEXT naming the expected context', async () => {
    const aws = awsOf();
    const s = store('kms')();
    const inv = inventories.kms!;
    const [sj] = hostSecrets(inv, hostOf('kms'));
    const kms = new KMSClient({ region: aws.region, endpoint: aws.endpoint, credentials: adminCreds(), maxAttempts: 1 });
    const other = await kms.send(new EncryptCommand({ KeyId: aws.keyAlias, Plaintext: Buffer.from('cd'.repeat(32)), EncryptionContext: { purpose: 'krypton-engine-jwt', network: '47337' } }));
    await hostExec(host, ['sh', '-c', 'cat > "$1"', 'sh', hostBlobPath(inv, hostOf('kms'), sj!)], { ...(DIR ? { dir: DIR } : {}), input: Buffer.from(other.CiphertextBlob!) });
    const target = await s.hostFetch!.target();
    const r = await onHost(s.hostFetch!.fetchArgv(inv, hostOf('kms'), sj!, target, ''));
    expect(r.code).not.toBe(0);
    const e = s.hostFetch!.failure(hostOf('kms'), sj!, r.code, r.stderr, target) as KryptonError;
    expect(e.code).toBe('E_KMS_CONTEXT');
    expect(e.message).toMatch(/val-1: .*expected purpose=krypton-engine-jwt, network=473374/);
  });

  it("Secrets Manager, node env-secrets: python3 on the host renders exactly the laptop's canonical env file", async () => {
    const s = store('secrets-manager')();
    const ref: SecretRef = { kind: 'node-env', network: NETWORK, scope: 'val-fetch' };
    const file = renderEnvFile({ API_KEY: "it's-secret", UNICODE: 'pä$$ wörd #1', EMPTY: '' }, 't');
    await s.write(ref, file, await s.head(ref));
    const hsec = testSecret(ref, 'node.env', 'env');
    const target = await s.hostFetch!.target();
    const r = await onHost(s.hostFetch!.fetchArgv(inventories['secrets-manager']!, hostOf('secrets-manager'), hsec, target, file.fingerprint()), asAdmin());
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const got = await onHost(['sh', '-c', 'sha256sum < /run/krypton-secrets/node.env | cut -d" " -f1']);
    expect(got.stdout.trim()).toBe(file.fingerprint());
  });

  it('Secrets Manager, a JSON key file with trailing newlines: byte for byte through the aws CLI text output', async () => {
    const s = store('secrets-manager')();
    const ref: SecretRef = { kind: 'horcrux-ecies', network: NETWORK, scope: 'cosigner-fetch' };
    const value = new Secret('{\n  "eciesKey": "AAAA",\n  "id": 1\n}\n\n');
    await s.write(ref, value, await s.head(ref));
    const target = await s.hostFetch!.target();
    const r = await onHost(s.hostFetch!.fetchArgv(inventories['secrets-manager']!, hostOf('secrets-manager'), testSecret(ref, 'ecies_keys.json', 'json'), target, value.fingerprint()), asAdmin());
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
  });

  it("Secrets Manager with an identity that may not read the secret: E_KMS_DENIED naming the host's identity", async () => {
    const s = store('secrets-manager')();
    const inv = inventories['secrets-manager']!;
    const [sj] = hostSecrets(inv, hostOf('secrets-manager'));
    if ((await s.head(sj!.ref)) === 0) await s.mint(sj!.ref, 0);
    const target = await s.hostFetch!.target();
    // val-1's own identity in a `--backend kms` sandbox carries the KMS node policy only.
    const r = await onHost(s.hostFetch!.fetchArgv(inv, hostOf('secrets-manager'), sj!, target, ''));
    expect(r.code).not.toBe(0);
    const e = s.hostFetch!.failure(hostOf('secrets-manager'), sj!, r.code, r.stderr, target) as KryptonError;
    expect(e.code).toBe('E_KMS_DENIED');
    expect(e.message).toMatch(/secretsmanager:GetSecretValue for val-1's AWS identity/);
    expectNoValue(e, [(await s.current(sj!.ref))!.secret.revealText()]);
  });
});

