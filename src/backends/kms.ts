/**
 * The AWS KMS backend (@aws-sdk/client-kms v3): Encrypt / Decrypt / DescribeKey under an encryption context,
 * with errors translated at this boundary (see `aws.ts`), and the laptop-side store of the Engine-API JWT as
 * KMS blobs.
 *
 * **Where blobs live.** Blobs are not secret (only the CMK, under its encryption context, turns them back into
 * the JWT), so the canonical copy is a file next to the inventory, meant to be committed with it:
 * `<inventory dir>/blobs/<network>/engine-jwt/v<N>.enc` (or `…/<network>/nodes/<node>/engine-jwt/…` with
 * `kms.per_node`), plus `v<N>.json` recording the key ARN, the context and the blob's SHA-256 (no secret).
 * The highest N is the current version; rotation adds `v<N+1>` with an exclusive create (a concurrent rotation
 * by another operator is refused, like a check-and-set). Each node keeps a copy of the current blob at
 * `<kms.blob_dir>/jwt.hex.enc` for its boot-time decrypt. The laptop decrypts the current blob in memory only
 * to know the fingerprint (and to probe the Engine API); the plaintext is never written on the laptop.
 */
import { randomBytes } from 'node:crypto';
import { link, mkdir, readFile, readdir, unlink, writeFile } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { DecryptCommand, DescribeKeyCommand, EncryptCommand, KMSClient } from '@aws-sdk/client-kms';
import { KryptonError } from '../core/errors.ts';
import { Secret, isEngineJwtHex, mintEngineJwtHex, sha256Hex } from '../core/secret.ts';
import type { Inventory } from '../inventory/model.ts';
import { describeContext, engineJwtContext, kmsPerNode } from '../render/kms-host.ts';
import { resolveAwsSettings, sdkClientOptions, translateSdkError, type AwsCallContext, type AwsSettings } from './aws.ts';
import type { EngineJwtValue, EngineJwtVersion } from './registry.ts';

/** KMS Encrypt takes at most 4096 bytes of plaintext. */
export const KMS_MAX_PLAINTEXT_BYTES = 4096;

/** The KMS operations krypton-secrets uses. Every method throws KryptonError (E_KMS_*), never an SDK error. */
export interface KmsBackend {
  /** The region requests go to, and where that came from (resolved once). */
  region(): Promise<{ region: string; source: string }>;
  /** Endpoint override, if any (inventory or the SDK's AWS_ENDPOINT_URL*). */
  readonly endpoint?: string;
  /** KMS Encrypt of `plaintext` (≤ 4096 bytes) under `context`; returns the binary blob and the key ARN. */
  encrypt(keyId: string, plaintext: Secret, context: Record<string, string>, subject: string): Promise<{ blob: Buffer; keyArn: string }>;
  /** KMS Decrypt of `blob` under `context` (optionally pinned to `keyId`); the plaintext as a Secret. */
  decrypt(blob: Uint8Array, context: Record<string, string>, subject: string, keyId?: string): Promise<{ plaintext: Secret; keyArn: string }>;
  /** KMS DescribeKey: ARN, state and usage. */
  describeKey(keyId: string): Promise<{ arn: string; enabled: boolean; keyUsage?: string; keySpec?: string }>;
}

/** The region part of an ARN (`arn:aws:kms:<region>:…`), or undefined. */
export function arnRegion(arn: string | undefined): string | undefined {
  const parts = arn?.startsWith('arn:') ? arn.split(':') : [];
  return parts[3] || undefined;
}

export function createKmsBackend(settings: AwsSettings, client?: KMSClient): KmsBackend {
  const kms = client ?? new KMSClient(sdkClientOptions(settings));
  let resolved: Promise<{ region: string; source: string }> | undefined;
  const region = (): Promise<{ region: string; source: string }> => {
    resolved ??= (async () => {
      try {
        return { region: await kms.config.region(), source: settings.regionSource };
      } catch {
        throw new KryptonError('E_KMS_CONFIG', 'no AWS region: none in the inventory (kms.region), AWS_REGION, AWS_DEFAULT_REGION or the profile', {
          hint: 'set kms.region in the inventory (the region the CMK lives in)',
        });
      }
    })();
    return resolved;
  };
  const ctxOf = async (action: string, subject: string, keyId?: string, context?: Record<string, string>): Promise<AwsCallContext> => {
    const r = await region().catch(() => undefined);
    return {
      action,
      subject,
      keyId,
      context: context ? describeContext(context) : undefined,
      region: r?.region,
      regionSource: r?.source,
      endpoint: settings.endpoint,
      identity: "the operator's AWS identity",
      policyHint: `allow ${action} for the operator's identity (krypton-secrets render writes iam-admin-policy.json), and check the region`,
    };
  };
  const checkArnRegion = async (keyId: string | undefined, subject: string): Promise<void> => {
    const keyRegion = arnRegion(keyId);
    if (!keyRegion) return;
    const r = await region();
    if (keyRegion !== r.region) {
      throw new KryptonError('E_KMS_CONFIG', `region mismatch: ${subject} uses KMS key ${keyId} in ${keyRegion}, but requests go to ${r.region} (from ${r.source})`, {
        hint: `set kms.region: ${keyRegion} in the inventory (or AWS_REGION=${keyRegion})`,
      });
    }
  };
  return {
    region,
    endpoint: settings.endpoint,
    async encrypt(keyId, plaintext, context, subject) {
      if (plaintext.length > KMS_MAX_PLAINTEXT_BYTES) {
        throw new KryptonError('E_INPUT', `${subject}: ${plaintext.length} bytes is over KMS Encrypt's limit of ${KMS_MAX_PLAINTEXT_BYTES} bytes`, {
          hint: 'KMS encrypts at most 4 KiB directly; keep the payload smaller (the JWT is 64 bytes)',
        });
      }
      await checkArnRegion(keyId, subject);
      const bytes = plaintext.reveal();
      try {
        const out = await kms.send(new EncryptCommand({ KeyId: keyId, Plaintext: bytes, EncryptionContext: context }));
        if (!out.CiphertextBlob) throw new KryptonError('E_KMS', `${subject}: KMS Encrypt returned no ciphertext`, { hint: 'retry; report it if it persists' });
        return { blob: Buffer.from(out.CiphertextBlob), keyArn: out.KeyId ?? keyId };
      } catch (err) {
        throw translateSdkError(err, await ctxOf('kms:Encrypt', subject, keyId, context));
      } finally {
        bytes.fill(0);
      }
    },
    async decrypt(blob, context, subject, keyId) {
      await checkArnRegion(keyId, subject);
      try {
        const out = await kms.send(new DecryptCommand({ CiphertextBlob: blob, EncryptionContext: context, ...(keyId ? { KeyId: keyId } : {}) }));
        if (!out.Plaintext) throw new KryptonError('E_KMS', `${subject}: KMS Decrypt returned no plaintext`, { hint: 'retry; report it if it persists' });
        const plaintext = new Secret(out.Plaintext);
        out.Plaintext.fill(0);
        return { plaintext, keyArn: out.KeyId ?? keyId ?? '' };
      } catch (err) {
        throw translateSdkError(err, await ctxOf('kms:Decrypt', subject, keyId, context));
      }
    },
    async describeKey(keyId) {
      await checkArnRegion(keyId, `key ${keyId}`);
      try {
        const out = await kms.send(new DescribeKeyCommand({ KeyId: keyId }));
        const m = out.KeyMetadata;
        return { arn: m?.Arn ?? keyId, enabled: m?.Enabled ?? false, keyUsage: m?.KeyUsage, keySpec: m?.KeySpec };
      } catch (err) {
        throw translateSdkError(err, await ctxOf('kms:DescribeKey', `key ${keyId}`, keyId));
      }
    },
  };
}

/** `createKmsBackend` from the inventory and the environment. */
export function kmsBackendFor(inv: Inventory, env: NodeJS.ProcessEnv): KmsBackend {
  return createKmsBackend(resolveAwsSettings(inv.kms, env));
}

/** A stored blob: version, where, its bytes and SHA-256, and the sidecar's record (if any). */
export interface StoredBlob {
  version: number;
  /** Absolute path of `v<N>.enc`. */
  path: string;
  /** Path relative to the inventory dir, for messages (`blobs/473374/engine-jwt/v2.enc`). */
  display: string;
  bytes: Buffer;
  sha256: string;
  meta?: BlobMeta;
}

/** `v<N>.json` next to each blob (not secret). */
export interface BlobMeta {
  version: number;
  key_arn: string;
  encryption_context: Record<string, string>;
  blob_sha256: string;
  created: string;
}

/** The Engine-API JWT as KMS blobs next to the inventory (see the file comment). */
export interface KmsJwtStore {
  /** `blobs/<network>/engine-jwt` (relative to the inventory dir), for messages. */
  where(node?: string): string;
  /** The current blob (highest version), or undefined when none was made. */
  currentBlob(node?: string): Promise<StoredBlob | undefined>;
  /** The current JWT: the current blob decrypted in memory; undefined when there is no blob. */
  current(node?: string): Promise<EngineJwtValue | undefined>;
  /** Versions newest first (at most 10), with fingerprints. */
  versions(node?: string): Promise<EngineJwtVersion[]>;
  /** Mints a JWT in memory and writes it as v1; refuses when a version exists. */
  seed(node?: string): Promise<{ version: number }>;
  /** Mints a new JWT as version current+1, only if the current version is `expectVersion`. */
  rotate(node: string | undefined, expectVersion: number): Promise<{ version: number }>;
  /** Writes the blob of `version` again as a new version (a rollback). */
  restore(node: string | undefined, version: number): Promise<{ version: number; restoredFrom: number }>;
}

/** The blob store's root: `<inventory dir>/blobs`. */
export function blobRoot(inv: Inventory): string {
  return join(dirname(inv.file), 'blobs');
}

export function createKmsJwtStore(inv: Inventory, kms: () => KmsBackend, root: string = blobRoot(inv)): KmsJwtStore {
  const keyId = (): string => {
    if (!inv.kms) throw new KryptonError('E_INVENTORY', `backend ${inv.backend} needs a kms: block with key_id`, { hint: 'add kms: { key_id: alias/krypton-engine-jwt }' });
    return inv.kms.keyId;
  };
  const scopeNode = (node?: string): string | undefined => (kmsPerNode(inv) ? requireNode(node) : undefined);
  const dir = (node?: string): string => {
    const n = scopeNode(node);
    return n ? join(root, inv.network, 'nodes', n, 'engine-jwt') : join(root, inv.network, 'engine-jwt');
  };
  const display = (p: string): string => relative(dirname(inv.file), p) || p;
  const listVersions = async (node?: string): Promise<number[]> => {
    let names: string[];
    try {
      names = await readdir(dir(node));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw new KryptonError('E_KMS_CONFIG', `cannot read the blob directory ${display(dir(node))}: ${(err as NodeJS.ErrnoException).code}`, { hint: 'check its permissions' });
    }
    return names
      .map((n) => /^v([1-9][0-9]*)\.enc$/.exec(n)?.[1])
      .filter((v): v is string => v !== undefined)
      .map(Number)
      .sort((a, b) => b - a);
  };
  const readBlob = async (node: string | undefined, version: number): Promise<StoredBlob | undefined> => {
    const path = join(dir(node), `v${version}.enc`);
    let bytes: Buffer;
    try {
      bytes = await readFile(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new KryptonError('E_KMS_CONFIG', `cannot read ${display(path)}: ${(err as NodeJS.ErrnoException).code}`, { hint: 'check the file and its permissions' });
    }
    let meta: BlobMeta | undefined;
    try {
      meta = JSON.parse(await readFile(join(dir(node), `v${version}.json`), 'utf8')) as BlobMeta;
    } catch {
      meta = undefined;
    }
    return { version, path, display: display(path), bytes, sha256: sha256Hex(bytes), meta };
  };
  const decryptBlob = async (node: string | undefined, b: StoredBlob): Promise<Secret> => {
    const ctx = engineJwtContext(inv, node);
    const { plaintext } = await kms().decrypt(b.bytes, ctx, `the blob ${b.display}`, b.meta?.key_arn);
    if (!isEngineJwtHex(plaintext)) {
      throw new KryptonError('E_INPUT', `the blob ${b.display} decrypts to something that is not 64 lowercase hex characters`, {
        hint: 'it is not an Engine-API JWT blob: move it away and apply again to create a fresh one',
      });
    }
    return plaintext;
  };
  /** Encrypts `value` (or a fresh JWT) under the node's context and writes it as `version`, exclusively. */
  const write = async (node: string | undefined, version: number, value: Secret): Promise<{ version: number }> => {
    const ctx = engineJwtContext(inv, node);
    const d = dir(node);
    const path = join(d, `v${version}.enc`);
    const { blob, keyArn } = await kms().encrypt(keyId(), value, ctx, display(path));
    await mkdir(d, { recursive: true, mode: 0o755 });
    const tmp = join(d, `.v${version}.${randomBytes(6).toString('hex')}.tmp`);
    await writeFile(tmp, blob, { mode: 0o644, flag: 'wx' });
    try {
      // link() refuses an existing target: two operators writing the same version cannot both win.
      await link(tmp, path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
        throw new KryptonError('E_PLAN_CONFLICT', `${display(path)} already exists: someone else wrote version ${version} meanwhile`, {
          hint: 'pull the blobs (git pull) and run again; nothing was overwritten',
        });
      }
      throw new KryptonError('E_KMS_CONFIG', `cannot write ${display(path)}: ${(err as NodeJS.ErrnoException).code}`, { hint: 'check the blob directory permissions' });
    } finally {
      await unlink(tmp).catch(() => {});
    }
    const meta: BlobMeta = { version, key_arn: keyArn, encryption_context: ctx, blob_sha256: sha256Hex(blob), created: new Date().toISOString() };
    await writeFile(join(d, `v${version}.json`), `${JSON.stringify(meta, null, 2)}\n`, { mode: 0o644 });
    return { version };
  };
  const store: KmsJwtStore = {
    where: (node) => display(dir(node)),
    async currentBlob(node) {
      const [latest] = await listVersions(node);
      return latest === undefined ? undefined : readBlob(node, latest);
    },
    async current(node) {
      const b = await store.currentBlob(node);
      if (!b) return undefined;
      return { secret: await decryptBlob(node, b), version: b.version, source: b.display };
    },
    async versions(node) {
      const out: EngineJwtVersion[] = [];
      for (const v of (await listVersions(node)).slice(0, 10)) {
        const b = await readBlob(node, v);
        if (!b) continue;
        const s = await decryptBlob(node, b).catch(() => undefined);
        if (s) out.push({ version: v, fingerprint: s.fingerprint() });
      }
      return out;
    },
    async seed(node) {
      const [latest] = await listVersions(node);
      if (latest !== undefined) {
        throw new KryptonError('E_PLAN_CONFLICT', `${store.where(node)} already holds version ${latest}; seeding writes only when there is none`, { hint: 'rotate with playbooks/rotate-jwt.yml instead' });
      }
      return write(node, 1, mintEngineJwtHex());
    },
    async rotate(node, expectVersion) {
      const [latest = 0] = await listVersions(node);
      if (latest !== expectVersion) {
        throw new KryptonError('E_PLAN_CONFLICT', `${store.where(node)} is at version ${latest}, not ${expectVersion}: someone else rotated meanwhile`, {
          hint: 'pull the blobs and run again (or --resume to continue towards the current version)',
        });
      }
      return write(node, latest + 1, mintEngineJwtHex());
    },
    async restore(node, version) {
      const old = await readBlob(node, version);
      const [latest] = await listVersions(node);
      if (!old || latest === undefined) {
        throw new KryptonError('E_INPUT', `${store.where(node)} has no version ${version} to roll back to`, { hint: `versions present: ${(await listVersions(node)).join(', ') || 'none'}` });
      }
      const value = await decryptBlob(node, old);
      return { ...(await write(node, latest + 1, value)), restoredFrom: version };
    },
  };
  return store;
}

function requireNode(node: string | undefined): string {
  if (!node) throw new KryptonError('E_INTERNAL', 'kms.per_node is set but no node was named for the Engine-API JWT', { hint: 'report this: a task asked for the network-wide JWT in per-node mode' });
  return node;
}
