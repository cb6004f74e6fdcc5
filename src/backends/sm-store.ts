/**
 * The {@link SecretStore} of `backend: secrets-manager`: every secret kind as one AWS Secrets Manager secret
 * named `smSecretName(ref)` (`krypton/<network>/engine-jwt`, `krypton/<network>/nodes/<node>/env`,
 * `krypton/<network>/horcrux/<cosigner>/shard`, …), encrypted by Secrets Manager under the inventory's CMK
 * (`kms.key_id`). The SecretString is the value itself (hex64, json) or, for env-secrets, a JSON object of
 * strings (model/formats.ts `toSecretString`/`fromSecretString`). Hosts read their own secret with their own
 * identity (`secretsmanager:GetSecretValue`), through the fixed fetch script; they keep no copy.
 *
 * **Versions.** Every version krypton-secrets writes has the ClientRequestToken (= VersionId)
 * `smVersionId(n, kind)` — for the Engine-API JWT exactly today's `krypton-engine-jwt-v<13 digits>` — so versions
 * are numbered like KV v2 / blob versions. AWSCURRENT is the current version; a current version written by
 * someone else (a UUID VersionId) counts as version 0 until krypton-secrets writes the next one (so for this
 * store `expectVersion` 0 means "absent, or not written by krypton-secrets").
 *
 * **Check-and-set.** A write reads AWSCURRENT's number and refuses unless it is `expectVersion`, then writes
 * version max+1 (over every version id still kept, deprecated ones included). Two writers that both pass the
 * check name the same new VersionId: Secrets Manager accepts only one of them (ResourceExistsException for the
 * other, our E_PLAN_CONFLICT). Every write goes through UpdateSecret with the inventory's `KmsKeyId`, so a
 * secret found under another key ({@link keyDrift}) is moved to it by writing its current value again.
 */
import { KryptonError } from '../core/errors.ts';
import { mintEngineJwtHex, type Secret } from '../core/secret.ts';
import { fromSecretString, toSecretString } from '../model/formats.ts';
import { fetchArgv, smFetchSpec } from '../model/host-fetch.ts';
import type { Inventory } from '../model/inventory.ts';
import { KIND_SPECS, NETWORK_SCOPE, parseSmVersionId, smSecretName, smVersionId, type SecretRef } from '../model/layout.ts';
import type { HostFetch, SecretStore, StoredValue, StoredVersion } from '../model/store.ts';
import type { KmsBackend } from './kms.ts';
import { awsFetchFailure, awsTargetOf, inventoryKeyId } from './kms-store.ts';
import type { SecretDescription, SecretsManagerBackend } from './secrets-manager.ts';
import { assertMintable, assertWritable } from './vault-store.ts';

/** The VersionId that carries AWSCURRENT, if any. */
export function currentVersionId(d: SecretDescription): string | undefined {
  return Object.entries(d.versions).find(([, stages]) => stages.includes('AWSCURRENT'))?.[0];
}

/** Tags of a new secret: `krypton:purpose`, `krypton:network`, and `krypton:node` / `krypton:cosigner` when scoped. */
export function smTags(ref: SecretRef): Record<string, string> {
  const tags: Record<string, string> = { 'krypton:purpose': KIND_SPECS[ref.kind].purpose, 'krypton:network': ref.network };
  if (ref.scope !== NETWORK_SCOPE) tags[ref.kind.startsWith('horcrux-') ? 'krypton:cosigner' : 'krypton:node'] = ref.scope;
  return tags;
}

function smDescription(ref: SecretRef): string {
  const spec = KIND_SPECS[ref.kind];
  const what = spec.format === 'hex64' ? `${spec.label} (64 hex)` : spec.format === 'env' ? `${spec.label} (JSON object of variables)` : spec.label;
  const scope = ref.scope === NETWORK_SCOPE ? '' : `, ${ref.kind.startsWith('horcrux-') ? 'cosigner' : 'node'} ${ref.scope}`;
  return `${what} of Krypton network ${ref.network}${scope}; managed by krypton-secrets`;
}

export function createSmStore(inv: Inventory, smClient: SecretsManagerBackend | (() => SecretsManagerBackend), kmsClient: KmsBackend | (() => KmsBackend)): SecretStore {
  const sm = typeof smClient === 'function' ? smClient : () => smClient;
  const kms = typeof kmsClient === 'function' ? kmsClient : () => kmsClient;
  const describe = (ref: SecretRef): string => `secretsmanager:${smSecretName(ref)}`;
  const format = (ref: SecretRef) => KIND_SPECS[ref.kind].format;

  const decode = (ref: SecretRef, got: { value: Secret; versionId: string }): StoredValue => {
    const version = parseSmVersionId(got.versionId) ?? 0;
    const label = version ? `version ${version}` : `version ${got.versionId || '(unnamed)'} (not written by krypton-secrets)`;
    return { ref, secret: fromSecretString(format(ref), got.value, `${describe(ref)} ${label}`), version, source: describe(ref) };
  };

  const head = async (ref: SecretRef): Promise<number> => {
    const d = await sm().describe(smSecretName(ref));
    return d ? (parseSmVersionId(currentVersionId(d)) ?? 0) : 0;
  };

  const write = async (ref: SecretRef, value: Secret, expectVersion: number): Promise<{ version: number }> => {
    const name = smSecretName(ref);
    assertWritable(ref, value, describe(ref));
    const secretString = toSecretString(format(ref), value, describe(ref));
    const keyId = inventoryKeyId(inv);
    const d = await sm().describe(name);
    if (!d) {
      if (expectVersion !== 0) {
        throw new KryptonError('E_PLAN_CONFLICT', `${describe(ref)} does not exist, but the write expected version ${expectVersion}: someone removed it meanwhile`, { hint: 'run again to plan against the current state' });
      }
      // A concurrent creator makes CreateSecret fail with ResourceExistsException: E_PLAN_CONFLICT.
      const out = await sm().create(name, secretString, { kmsKeyId: keyId, versionId: smVersionId(1, ref.kind), description: smDescription(ref), tags: smTags(ref) });
      return { version: parseSmVersionId(out.versionId) ?? 1 };
    }
    if (d.deletedDate) {
      throw new KryptonError('E_PLAN_CONFLICT', `${describe(ref)} is scheduled for deletion (since ${d.deletedDate}); nothing was written`, {
        hint: `restore it (aws secretsmanager restore-secret --secret-id ${name}) or delete it for good, then run again`,
      });
    }
    const now = parseSmVersionId(currentVersionId(d)) ?? 0;
    if (now !== expectVersion) {
      throw new KryptonError('E_PLAN_CONFLICT', `${describe(ref)} is at version ${now}, not ${expectVersion}: someone else wrote meanwhile`, {
        hint: 'run again to plan against the current version; nothing was overwritten',
      });
    }
    const ids = [...Object.keys(d.versions), ...(await sm().listVersions(name)).map((v) => v.versionId)]; // listVersions includes deprecated ones
    const next = Math.max(0, ...ids.map((id) => parseSmVersionId(id) ?? 0)) + 1;
    const out = await sm().update(name, secretString, { kmsKeyId: keyId, versionId: smVersionId(next, ref.kind) });
    return { version: parseSmVersionId(out.versionId) ?? next };
  };

  const hostFetch: HostFetch = {
    keepsCopy: false,
    async copy() {
      return undefined;
    },
    target: () => awsTargetOf(inv, () => sm().region()),
    fetchArgv(_inv, _host, s, target, sha256) {
      return fetchArgv(smFetchSpec(s, target, sha256));
    },
    failure(host, s, code, stderr, target) {
      return awsFetchFailure({ backend: 'secrets-manager', host: host.name, subject: `secret ${smSecretName(s.ref)}`, ...(inv.kms?.keyId ? { keyId: inv.kms.keyId } : {}), target }, code, stderr);
    },
  };

  const store: SecretStore = {
    backend: 'secrets-manager',
    delivery: 'host-fetch',
    hostFetch,
    describe,

    async current(ref) {
      const got = await sm().get(smSecretName(ref));
      return got ? decode(ref, got) : undefined;
    },

    head,

    async raw(ref) {
      const got = await sm().get(smSecretName(ref));
      if (!got) return undefined;
      const version = parseSmVersionId(got.versionId) ?? 0;
      return { ref, secret: got.value, version, source: describe(ref) };
    },

    async versions(ref, limit = 10) {
      const name = smSecretName(ref);
      // DescribeSecret first: ListSecretVersionIds of a missing secret is ResourceNotFoundException in AWS, but
      // an HTTP 500 in moto 5.2.5 (the sandbox); either way there is nothing to list.
      if (!(await sm().describe(name))) return [];
      const ours = (await sm().listVersions(name))
        .map((v) => ({ id: v.versionId, n: parseSmVersionId(v.versionId) }))
        .filter((v): v is { id: string; n: number } => v.n !== undefined)
        .sort((a, b) => b.n - a.n);
      const out: StoredVersion[] = [];
      for (const v of ours) {
        if (out.length >= limit) break;
        const got = await sm().get(name, v.id);
        if (!got) continue;
        try {
          out.push({ version: v.n, fingerprint: decode(ref, got).secret.fingerprint() });
        } catch (err) {
          if (err instanceof KryptonError && err.code === 'E_INPUT') continue; // not a valid value of this kind
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
      const got = await sm().get(smSecretName(ref), smVersionId(version, ref.kind));
      if (!got) {
        throw new KryptonError('E_INPUT', `${describe(ref)} has no version ${version} to roll back to`, {
          hint: `list versions with aws secretsmanager list-secret-version-ids --include-deprecated --secret-id ${smSecretName(ref)}`,
        });
      }
      const old = decode(ref, got);
      const w = await write(ref, old.secret, await head(ref));
      return { version: w.version, restoredFrom: version };
    },

    async undo(ref, version, previous) {
      // Secrets Manager cannot remove one version: the previous value is written again as the newest.
      if (previous) {
        await write(ref, previous.secret, version);
        return;
      }
      throw new KryptonError('E_KMS', `${describe(ref)} was created by this run (version ${version}) and Secrets Manager cannot remove a single version`, {
        hint: `delete the secret if it should not exist: aws secretsmanager delete-secret --secret-id ${smSecretName(ref)}`,
      });
    },

    async checkWrite(refs) {
      const keyId = inventoryKeyId(inv);
      const key = await kms().describeKey(keyId);
      if (!key.enabled) throw new KryptonError('E_KMS_CONFIG', `KMS key ${keyId} (${key.arn}) is disabled; nothing was written`, { hint: 'enable the key (or cancel its deletion) in KMS' });
      for (const ref of refs) {
        const d = await sm().describe(smSecretName(ref));
        if (d?.deletedDate) {
          throw new KryptonError('E_PLAN_CONFLICT', `${describe(ref)} is scheduled for deletion (since ${d.deletedDate}); nothing was written`, {
            hint: `restore it (aws secretsmanager restore-secret --secret-id ${smSecretName(ref)}) or delete it for good, then run again`,
          });
        }
      }
    },

    async keyDrift(ref) {
      const d = await sm().describe(smSecretName(ref));
      if (!d) return undefined;
      const keyId = inventoryKeyId(inv);
      const want = (await kms().describeKey(keyId)).arn;
      const have = d.kmsKeyId ? (await kms().describeKey(d.kmsKeyId)).arn : undefined;
      if (have === want) return undefined;
      return `${describe(ref)} is under ${d.kmsKeyId ? `KMS key ${d.kmsKeyId}${have && have !== d.kmsKeyId ? ` (${have})` : ''}` : 'the AWS-managed key aws/secretsmanager'}, not the inventory's kms.key_id ${keyId} (${want})`;
    },
  };
  return store;
}
