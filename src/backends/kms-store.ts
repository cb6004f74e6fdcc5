/**
 * The {@link SecretStore} of `backend: kms`: every secret kind as AWS KMS blobs next to the inventory (the one
 * blob store; it replaces the Engine-API-JWT-only `createKmsJwtStore` of kms.ts and the Horcrux-only
 * `kmsHorcruxStore` of horcrux/kms.ts, and keeps their on-disk layout, so existing blob dirs keep working).
 *
 * **Where blobs live.** A blob is not secret (only the CMK, under its encryption context, turns it back into
 * the value), so the canonical copy is a file meant to be committed with the inventory:
 * `<inventory dir>/blobs/<blobDirSegments(ref)>/v<N>.enc` — `blobs/<network>/engine-jwt/`,
 * `blobs/<network>/nodes/<node>/engine-jwt/`, `blobs/<network>/env/`, `blobs/<network>/horcrux/<cosigner>/ecies/`
 * … — plus `v<N>.json` beside it (key ARN, encryption context, blob SHA-256, created; never a secret). The
 * highest N is current. A new version is created exclusively with link(2), so of two writers of the same N only
 * one wins (our check-and-set). Blobs are bound by `encryptionContext(ref)` (purpose, network, node/cosigner).
 *
 * **Reading** decrypts in memory only (the plaintext never touches the laptop's disk) and checks the bytes with
 * `fromBlobPlaintext`. KMS Encrypt's 4096-byte limit is enforced by the KMS client.
 *
 * **Hosts** (`kms.decrypt: host`) keep a copy of the current blob ({@link HostFetch.copy}, put at
 * `hostBlobPath`) and decrypt it with their own identity through the fixed fetch script (model/host-fetch.ts);
 * with `kms.decrypt: operator` the laptop decrypts and writes the value over SFTP (`delivery: operator`).
 */
import { randomBytes } from 'node:crypto';
import { link, mkdir, readFile, readdir, unlink, writeFile } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { KryptonError, scrubText } from '../core/errors.ts';
import { Secret, mintEngineJwtHex, sha256Hex } from '../core/secret.ts';
import { fromBlobPlaintext } from '../model/formats.ts';
import { FETCH_EXIT, fetchArgv, kmsFetchSpec } from '../model/host-fetch.ts';
import type { Host, Inventory } from '../model/inventory.ts';
import { KIND_SPECS, blobDirSegments, describeContext, encryptionContext, hostBlobPath, type HostSecret, type SecretRef } from '../model/layout.ts';
import type { AwsTarget, HostCopy, HostFetch, SecretStore, StoredValue, StoredVersion } from '../model/store.ts';
import { awsError, faultFromCliStderr } from './aws.ts';
import type { BlobMeta, KmsBackend } from './kms.ts';
import { assertMintable, assertWritable } from './vault-store.ts';

/** The blob store's root: `<inventory dir>/blobs` (as kms.ts `blobRoot`). */
export function blobRootOf(inv: Inventory): string {
  return join(dirname(inv.file), 'blobs');
}

/** A stored blob. */
export interface Blob {
  version: number;
  /** Absolute path of `v<N>.enc`. */
  path: string;
  /** Relative to the inventory dir, for messages: `blobs/473374/engine-jwt/v2.enc`. */
  display: string;
  bytes: Buffer;
  sha256: string;
  meta?: BlobMeta;
}

export interface KmsStoreOptions {
  /** Blob root (default `<inventory dir>/blobs`). */
  root?: string;
}

/** The inventory's `kms.key_id`, or E_INVENTORY. */
export function inventoryKeyId(inv: Inventory): string {
  if (!inv.kms?.keyId) throw new KryptonError('E_INVENTORY', `backend ${inv.backend} needs a kms: block with key_id`, { hint: 'add kms: { key_id: alias/krypton-engine-jwt }' });
  return inv.kms.keyId;
}

/**
 * The error for a failed host-side fetch (KMS or Secrets Manager), from the script's exit code and the host's
 * stderr: the aws CLI's error in the operator's words (as the laptop side gives it: E_KMS_CONTEXT naming the
 * expected context, E_KMS_DENIED naming the host's identity, …) or the script's own refusal.
 */
export function awsFetchFailure(
  o: { backend: 'kms' | 'secrets-manager'; host: string; subject: string; keyId?: string; context?: Record<string, string>; target: AwsTarget },
  code: number,
  stderr: string,
): KryptonError {
  const tail = scrubText(stderr.trim().split('\n').slice(-2).join(' | ')).slice(0, 400);
  const action = o.backend === 'kms' ? 'kms:Decrypt' : 'secretsmanager:GetSecretValue';
  const subject = `${o.host}: ${o.subject}`;
  switch (code) {
    case FETCH_EXIT.aws: {
      const fault = faultFromCliStderr(stderr);
      if (fault) {
        return awsError(fault, {
          action,
          subject,
          ...(o.keyId ? { keyId: o.keyId } : {}),
          ...(o.context ? { context: describeContext(o.context) } : {}),
          region: o.target.region,
          regionSource: 'the region the operator resolved',
          ...(o.target.endpointUrl ? { endpoint: o.target.endpointUrl } : {}),
          identity: `${o.host}'s AWS identity`,
          policyHint: `allow ${action} for ${o.host}'s identity on its own ${o.backend === 'kms' ? 'encryption context' : 'secret'} only (krypton-secrets render writes ${o.host}/iam-policy.json), and check the region`,
        });
      }
      return new KryptonError('E_KMS', `${subject}: the aws CLI failed: ${tail || 'no error output'}`, { hint: 'run the same aws command on the host to see why' });
    }
    case FETCH_EXIT.notTmpfs:
      return new KryptonError('E_PLAN_CONFLICT', `${subject}: ${tail}`, { hint: 'run mount.tmpfs first; secrets are never written to persistent disk' });
    case FETCH_EXIT.badValue:
      return new KryptonError('E_INPUT', `${subject}: the fetched value is not valid: ${tail}`, { hint: 'the stored value is not valid for its kind: for the Engine-API JWT in the wrong form (0x, uppercase, CR LF), apply playbooks/provision.yml --fix-format writes the canonical form; otherwise write a valid value as a new version (import again)' });
    case FETCH_EXIT.fingerprint:
      return new KryptonError('E_PLAN_CONFLICT', `${subject} holds another value than the operator expects: ${tail}`, { hint: 'the store changed between plan and apply (a rotation?): run apply again' });
    case FETCH_EXIT.noPython:
      return new KryptonError('E_KMS_CONFIG', `${subject}: ${tail || 'python3 is missing on the host'}`, { hint: "install python3 on the host (Debian's awscli depends on it), or use kms/vault for env-secrets" });
    case FETCH_EXIT.target:
      return new KryptonError('E_PLAN_CONFLICT', `${subject}: ${tail}`, { hint: 'remove what is at that path (a symlink or directory) and apply again' });
    default:
      return new KryptonError('E_SSH_EXEC', `${subject}: the fetch exited with code ${code}${tail ? `: ${tail}` : ''}`, { hint: 'check the host (POSIX sh, coreutils, /usr/bin/aws, a writable tmpfs)' });
  }
}

/** The host's aws CLI target: the region the laptop's client resolved and the inventory's endpoint override. */
export async function awsTargetOf(inv: Inventory, region: () => Promise<{ region: string }>): Promise<AwsTarget> {
  const r = (await region()).region;
  return { region: r, ...(inv.kms?.endpointUrl ? { endpointUrl: inv.kms.endpointUrl } : {}) };
}

export function createKmsStore(inv: Inventory, kmsClient: KmsBackend | (() => KmsBackend), o: KmsStoreOptions = {}): SecretStore {
  const kms = typeof kmsClient === 'function' ? kmsClient : () => kmsClient;
  const root = o.root ?? blobRootOf(inv);
  const dirOf = (ref: SecretRef): string => join(root, ...blobDirSegments(ref));
  const display = (p: string): string => relative(dirname(inv.file), p) || p;
  const describe = (ref: SecretRef): string => display(dirOf(ref));

  const listVersions = async (ref: SecretRef): Promise<number[]> => {
    let names: string[];
    try {
      names = await readdir(dirOf(ref));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw new KryptonError('E_KMS_CONFIG', `cannot read the blob directory ${describe(ref)}: ${(err as NodeJS.ErrnoException).code}`, { hint: 'check its permissions' });
    }
    return names
      .map((n) => /^v([1-9][0-9]*)\.enc$/.exec(n)?.[1])
      .filter((v): v is string => v !== undefined)
      .map(Number)
      .sort((a, b) => b - a);
  };
  const latest = async (ref: SecretRef): Promise<number> => (await listVersions(ref))[0] ?? 0;

  const readBlob = async (ref: SecretRef, version: number): Promise<Blob | undefined> => {
    const path = join(dirOf(ref), `v${version}.enc`);
    let bytes: Buffer;
    try {
      bytes = await readFile(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new KryptonError('E_KMS_CONFIG', `cannot read ${display(path)}: ${(err as NodeJS.ErrnoException).code}`, { hint: 'check the file and its permissions' });
    }
    let meta: BlobMeta | undefined;
    try {
      meta = JSON.parse(await readFile(join(dirOf(ref), `v${version}.json`), 'utf8')) as BlobMeta;
    } catch {
      meta = undefined;
    }
    return { version, path, display: display(path), bytes, sha256: sha256Hex(bytes), ...(meta ? { meta } : {}) };
  };

  const open = async (ref: SecretRef, b: Blob): Promise<StoredValue> => {
    const { plaintext } = await kms().decrypt(b.bytes, encryptionContext(ref), `the blob ${b.display}`, b.meta?.key_arn || undefined);
    const secret = fromBlobPlaintext(KIND_SPECS[ref.kind].format, plaintext, `the blob ${b.display} (version ${b.version})`);
    return { ref, secret, version: b.version, source: b.display };
  };

  /** Encrypts `value` under the ref's context and creates `v<version>` exclusively (link(2) refuses an existing name). */
  const create = async (ref: SecretRef, version: number, value: Secret): Promise<{ version: number }> => {
    const ctx = encryptionContext(ref);
    const d = dirOf(ref);
    const path = join(d, `v${version}.enc`);
    const { blob, keyArn } = await kms().encrypt(inventoryKeyId(inv), value, ctx, display(path));
    await mkdir(d, { recursive: true, mode: 0o755 });
    const tmp = join(d, `.v${version}.${randomBytes(6).toString('hex')}.tmp`);
    await writeFile(tmp, blob, { mode: 0o644, flag: 'wx' });
    try {
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

  const write = async (ref: SecretRef, value: Secret, expectVersion: number): Promise<{ version: number }> => {
    assertWritable(ref, value, describe(ref));
    const now = await latest(ref);
    if (now !== expectVersion) {
      throw new KryptonError('E_PLAN_CONFLICT', `${describe(ref)} is at version ${now}, not ${expectVersion}: someone else wrote meanwhile`, {
        hint: 'pull the blobs (git pull) and run again; nothing was overwritten',
      });
    }
    return create(ref, now + 1, value);
  };

  const hostFetch: HostFetch = {
    keepsCopy: true,
    async copy(ref): Promise<HostCopy | undefined> {
      const v = await latest(ref);
      const b = v ? await readBlob(ref, v) : undefined;
      return b ? { version: b.version, bytes: b.bytes, sha256: b.sha256, display: b.display } : undefined;
    },
    target: () => awsTargetOf(inv, () => kms().region()),
    fetchArgv(i: Inventory, host: Host, s: HostSecret, target: AwsTarget, sha256: string): string[] {
      return fetchArgv(kmsFetchSpec(i, host, s, target, sha256));
    },
    failure(host, s, code, stderr, target) {
      return awsFetchFailure(
        { backend: 'kms', host: host.name, subject: `${KIND_SPECS[s.ref.kind].label} blob ${hostBlobPath(inv, host, s)}`, keyId: inventoryKeyId(inv), context: encryptionContext(s.ref), target },
        code,
        stderr,
      );
    },
  };

  const store: SecretStore = {
    backend: 'kms',
    delivery: inv.kms?.decrypt === 'operator' ? 'operator' : 'host-fetch',
    hostFetch,
    describe,

    async current(ref) {
      const v = await latest(ref);
      const b = v ? await readBlob(ref, v) : undefined;
      return b ? open(ref, b) : undefined;
    },

    head: latest,

    async raw(ref) {
      const v = await latest(ref);
      const b = v ? await readBlob(ref, v) : undefined;
      if (!b) return undefined;
      const { plaintext } = await kms().decrypt(b.bytes, encryptionContext(ref), `the blob ${b.display}`, b.meta?.key_arn || undefined);
      return { ref, secret: plaintext, version: b.version, source: dirname(b.display) };
    },

    async versions(ref, limit = 10) {
      const out: StoredVersion[] = [];
      for (const v of await listVersions(ref)) {
        if (out.length >= limit) break;
        const b = await readBlob(ref, v);
        if (!b) continue;
        try {
          out.push({ version: v, fingerprint: (await open(ref, b)).secret.fingerprint() });
        } catch (err) {
          // not a valid value of this ref (bad bytes, or a blob bound to another context): not a version to offer
          if (err instanceof KryptonError && (err.code === 'E_INPUT' || err.code === 'E_KMS_CONTEXT')) continue;
          throw err;
        }
      }
      return out;
    },

    write,

    async mint(ref, expectVersion) {
      assertMintable(ref);
      return write(ref, mintEngineJwtHex(), expectVersion);
    },

    async restore(ref, version) {
      const b = await readBlob(ref, version);
      if (!b) {
        throw new KryptonError('E_INPUT', `${describe(ref)} has no version ${version} to roll back to`, { hint: `versions present: ${(await listVersions(ref)).join(', ') || 'none'}` });
      }
      const old = await open(ref, b);
      const w = await write(ref, old.secret, await latest(ref));
      return { version: w.version, restoredFrom: version };
    },

    async undo(ref, version) {
      // The previous version (if any) is current again once this run's blob is gone.
      const d = dirOf(ref);
      await unlink(join(d, `v${version}.enc`)).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'ENOENT') throw new KryptonError('E_KMS_CONFIG', `cannot remove ${display(join(d, `v${version}.enc`))}: ${err.code}`, { hint: 'remove it by hand' });
      });
      await unlink(join(d, `v${version}.json`)).catch(() => {});
    },

    async checkWrite(refs) {
      const keyId = inventoryKeyId(inv);
      const key = await kms().describeKey(keyId);
      if (!key.enabled) throw new KryptonError('E_KMS_CONFIG', `KMS key ${keyId} (${key.arn}) is disabled; nothing was written`, { hint: 'enable the key (or cancel its deletion) in KMS' });
      // Encrypt is what a write needs, and IAM grants it per encryption context: try each context once with a
      // throwaway byte (nothing is stored), so a missing grant is reported before anything is written.
      const seen = new Set<string>();
      for (const ref of refs) {
        const ctx = encryptionContext(ref);
        const k = JSON.stringify(ctx);
        if (seen.has(k)) continue;
        seen.add(k);
        await kms().encrypt(keyId, new Secret('.'), ctx, `a test encryption for ${describe(ref)} (nothing is stored)`);
      }
    },

    async keyDrift() {
      return undefined;
    },
  };
  return store;
}
