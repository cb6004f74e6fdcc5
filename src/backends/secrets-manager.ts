/**
 * The AWS Secrets Manager backend (@aws-sdk/client-secrets-manager v3): the Engine-API JWT as the secret
 * `krypton/<network>/engine-jwt` (or `krypton/<network>/nodes/<node>/engine-jwt` with `kms.per_node`), its
 * SecretString exactly the 64 lowercase hex characters, encrypted by Secrets Manager under the inventory's CMK
 * (`KmsKeyId`). Nodes read it with their own identity (`secretsmanager:GetSecretValue` on their secret only).
 *
 * **Versions.** krypton-secrets writes every version with the ClientRequestToken (= VersionId)
 * `krypton-engine-jwt-v<13 digits>`, so versions are numbered like KV v2 / blob versions; writing version N
 * twice with different values is refused by Secrets Manager (ResourceExistsException), which is our
 * check-and-set. AWSCURRENT is the current version. A version written by someone else (a UUID VersionId)
 * counts as version 0 until krypton-secrets writes the next one.
 */
import {
  CreateSecretCommand,
  DescribeSecretCommand,
  GetSecretValueCommand,
  ListSecretVersionIdsCommand,
  PutSecretValueCommand,
  SecretsManagerClient,
  UpdateSecretCommand,
} from '@aws-sdk/client-secrets-manager';
import { KryptonError } from '../core/errors.ts';
import { Secret, isEngineJwtHex, mintEngineJwtHex } from '../core/secret.ts';
import type { Inventory } from '../inventory/model.ts';
import { parseSmVersionId, smSecretName, smVersionId } from '../render/kms-host.ts';
import { resolveAwsSettings, sdkClientOptions, translateSdkError, type AwsCallContext, type AwsSettings } from './aws.ts';
import type { EngineJwtValue, EngineJwtVersion } from './registry.ts';

/** What DescribeSecret says, reduced to what the tasks need. */
export interface SecretDescription {
  arn: string;
  name: string;
  /** As stored (alias, key id or ARN); undefined = the AWS-managed `aws/secretsmanager` key. */
  kmsKeyId?: string;
  /** Set when the secret is scheduled for deletion. */
  deletedDate?: string;
  /** VersionId -> staging labels. */
  versions: Record<string, string[]>;
}

/** The Secrets Manager operations krypton-secrets uses. Every method throws KryptonError, never an SDK error. */
export interface SecretsManagerBackend {
  region(): Promise<{ region: string; source: string }>;
  readonly endpoint?: string;
  describe(name: string): Promise<SecretDescription | undefined>;
  /** AWSCURRENT (or the given VersionId): value and VersionId; undefined when the secret does not exist. */
  get(name: string, versionId?: string): Promise<{ value: Secret; versionId: string; arn: string } | undefined>;
  create(name: string, value: Secret, opts: { kmsKeyId: string; versionId: string; description: string; tags: Record<string, string> }): Promise<{ arn: string; versionId: string }>;
  put(name: string, value: Secret, versionId: string): Promise<{ versionId: string }>;
  /** UpdateSecret: a new version `versionId` with `value`, under `kmsKeyId`. */
  update(name: string, value: Secret, opts: { kmsKeyId: string; versionId: string }): Promise<{ versionId: string }>;
  /** VersionIds (including deprecated ones still kept) with their staging labels. */
  listVersions(name: string): Promise<{ versionId: string; stages: string[] }[]>;
}

export function createSecretsManagerBackend(settings: AwsSettings, client?: SecretsManagerClient): SecretsManagerBackend {
  const sm = client ?? new SecretsManagerClient(sdkClientOptions(settings));
  let resolved: Promise<{ region: string; source: string }> | undefined;
  const region = (): Promise<{ region: string; source: string }> => {
    resolved ??= (async () => {
      try {
        return { region: await sm.config.region(), source: settings.regionSource };
      } catch {
        throw new KryptonError('E_KMS_CONFIG', 'no AWS region: none in the inventory (kms.region), AWS_REGION, AWS_DEFAULT_REGION or the profile', {
          hint: 'set kms.region in the inventory (the region the secret and its CMK live in)',
        });
      }
    })();
    return resolved;
  };
  const ctx = async (action: string, name: string, keyId?: string): Promise<AwsCallContext> => {
    const r = await region().catch(() => undefined);
    return {
      action,
      subject: `secret ${name}`,
      keyId,
      region: r?.region,
      regionSource: r?.source,
      endpoint: settings.endpoint,
      identity: "the operator's AWS identity",
      policyHint: `allow ${action} on krypton/* secrets for the operator's identity (krypton-secrets render writes iam-admin-policy.json), and check the region`,
    };
  };
  const notFound = (err: unknown): boolean => (err as { name?: string })?.name === 'ResourceNotFoundException';
  return {
    region,
    endpoint: settings.endpoint,
    async describe(name) {
      try {
        const out = await sm.send(new DescribeSecretCommand({ SecretId: name }));
        return {
          arn: out.ARN ?? name,
          name: out.Name ?? name,
          kmsKeyId: out.KmsKeyId,
          deletedDate: out.DeletedDate?.toISOString(),
          versions: Object.fromEntries(Object.entries(out.VersionIdsToStages ?? {}).map(([k, v]) => [k, v ?? []])),
        };
      } catch (err) {
        if (notFound(err)) return undefined;
        throw translateSdkError(err, await ctx('secretsmanager:DescribeSecret', name));
      }
    },
    async get(name, versionId) {
      try {
        const out = await sm.send(new GetSecretValueCommand({ SecretId: name, ...(versionId ? { VersionId: versionId } : {}) }));
        if (out.SecretString === undefined) {
          throw new KryptonError('E_INPUT', `secret ${name} holds a binary value, not the 64 hex characters of an Engine-API JWT`, { hint: 'write the JWT as SecretString' });
        }
        return { value: new Secret(out.SecretString), versionId: out.VersionId ?? '', arn: out.ARN ?? name };
      } catch (err) {
        if (notFound(err)) return undefined;
        throw translateSdkError(err, await ctx('secretsmanager:GetSecretValue', name));
      }
    },
    async create(name, value, o) {
      try {
        const out = await sm.send(
          new CreateSecretCommand({
            Name: name,
            SecretString: value.revealText(),
            KmsKeyId: o.kmsKeyId,
            ClientRequestToken: o.versionId,
            Description: o.description,
            Tags: Object.entries(o.tags).map(([Key, Value]) => ({ Key, Value })),
          }),
        );
        return { arn: out.ARN ?? name, versionId: out.VersionId ?? o.versionId };
      } catch (err) {
        throw translateSdkError(err, await ctx('secretsmanager:CreateSecret', name, o.kmsKeyId));
      }
    },
    async put(name, value, versionId) {
      try {
        const out = await sm.send(new PutSecretValueCommand({ SecretId: name, SecretString: value.revealText(), ClientRequestToken: versionId }));
        return { versionId: out.VersionId ?? versionId };
      } catch (err) {
        throw translateSdkError(err, await ctx('secretsmanager:PutSecretValue', name));
      }
    },
    async update(name, value, o) {
      try {
        const out = await sm.send(new UpdateSecretCommand({ SecretId: name, SecretString: value.revealText(), KmsKeyId: o.kmsKeyId, ClientRequestToken: o.versionId }));
        return { versionId: out.VersionId ?? o.versionId };
      } catch (err) {
        throw translateSdkError(err, await ctx('secretsmanager:UpdateSecret', name, o.kmsKeyId));
      }
    },
    async listVersions(name) {
      const out: { versionId: string; stages: string[] }[] = [];
      let token: string | undefined;
      try {
        do {
          const page = await sm.send(new ListSecretVersionIdsCommand({ SecretId: name, IncludeDeprecated: true, NextToken: token }));
          for (const v of page.Versions ?? []) if (v.VersionId) out.push({ versionId: v.VersionId, stages: v.VersionStages ?? [] });
          token = page.NextToken;
        } while (token);
      } catch (err) {
        if (notFound(err)) return [];
        throw translateSdkError(err, await ctx('secretsmanager:ListSecretVersionIds', name));
      }
      return out;
    },
  };
}

export function secretsManagerBackendFor(inv: Inventory, env: NodeJS.ProcessEnv): SecretsManagerBackend {
  return createSecretsManagerBackend(resolveAwsSettings(inv.kms, env));
}

/** The Engine-API JWT in Secrets Manager (see the file comment). */
export interface SmJwtStore {
  /** The secret's name for `node`. */
  name(node?: string): string;
  current(node?: string): Promise<EngineJwtValue | undefined>;
  versions(node?: string): Promise<EngineJwtVersion[]>;
  /** Creates the secret under the inventory's CMK with a fresh JWT as version 1; refuses when it exists. */
  seed(node?: string): Promise<{ version: number }>;
  /** Re-writes the current value as a new version under the inventory's CMK (after the key changed). */
  setKey(node?: string): Promise<{ version: number }>;
  rotate(node: string | undefined, expectVersion: number): Promise<{ version: number }>;
  restore(node: string | undefined, version: number): Promise<{ version: number; restoredFrom: number }>;
}

export function createSmJwtStore(inv: Inventory, sm: () => SecretsManagerBackend): SmJwtStore {
  const keyId = (): string => {
    if (!inv.kms) throw new KryptonError('E_INVENTORY', `backend ${inv.backend} needs a kms: block with key_id`, { hint: 'add kms: { key_id: alias/krypton-engine-jwt }' });
    return inv.kms.keyId;
  };
  const name = (node?: string): string => smSecretName(inv, node);
  const checked = (n: string, value: Secret, versionId: string): Secret => {
    if (!isEngineJwtHex(value)) {
      throw new KryptonError('E_INPUT', `secret ${n} (version ${versionId}) is not exactly 64 lowercase hex characters`, {
        hint: 'write a valid value (krypton-secrets apply playbooks/rotate-jwt.yml) — no 0x, no newline',
      });
    }
    return value;
  };
  const maxVersion = async (n: string): Promise<number> => Math.max(0, ...(await sm().listVersions(n)).map((v) => parseSmVersionId(v.versionId) ?? 0));
  const store: SmJwtStore = {
    name,
    async current(node) {
      const n = name(node);
      const got = await sm().get(n);
      if (!got) return undefined;
      return { secret: checked(n, got.value, got.versionId), version: parseSmVersionId(got.versionId) ?? 0, source: `secretsmanager:${n}` };
    },
    async versions(node) {
      const n = name(node);
      const ours = (await sm().listVersions(n))
        .map((v) => ({ id: v.versionId, n: parseSmVersionId(v.versionId) }))
        .filter((v): v is { id: string; n: number } => v.n !== undefined)
        .sort((a, b) => b.n - a.n)
        .slice(0, 10);
      const out: EngineJwtVersion[] = [];
      for (const v of ours) {
        const got = await sm().get(n, v.id).catch(() => undefined);
        if (got && isEngineJwtHex(got.value)) out.push({ version: v.n, fingerprint: got.value.fingerprint() });
      }
      return out;
    },
    async seed(node) {
      const n = name(node);
      const out = await sm().create(n, mintEngineJwtHex(), {
        kmsKeyId: keyId(),
        versionId: smVersionId(1),
        description: `Engine-API JWT (64 hex) of Krypton network ${inv.network}${node && inv.kms?.perNode ? `, node ${node}` : ''}; managed by krypton-secrets`,
        tags: { 'krypton:purpose': 'krypton-engine-jwt', 'krypton:network': inv.network, ...(node && inv.kms?.perNode ? { 'krypton:node': node } : {}) },
      });
      return { version: parseSmVersionId(out.versionId) ?? 1 };
    },
    async setKey(node) {
      const n = name(node);
      const cur = await sm().get(n);
      if (!cur) throw new KryptonError('E_INPUT', `secret ${n} does not exist yet`, { hint: 'run sm.seed-engine-jwt first' });
      const next = (await maxVersion(n)) + 1;
      await sm().update(n, checked(n, cur.value, cur.versionId), { kmsKeyId: keyId(), versionId: smVersionId(next) });
      return { version: next };
    },
    async rotate(node, expectVersion) {
      const n = name(node);
      const cur = await sm().get(n);
      const curVersion = cur ? (parseSmVersionId(cur.versionId) ?? 0) : 0;
      if (curVersion !== expectVersion) {
        throw new KryptonError('E_PLAN_CONFLICT', `secret ${n} is at version ${curVersion}, not ${expectVersion}: someone else rotated meanwhile`, {
          hint: 'run again (or --resume to continue towards the current version)',
        });
      }
      const next = (await maxVersion(n)) + 1;
      await sm().put(n, mintEngineJwtHex(), smVersionId(next));
      return { version: next };
    },
    async restore(node, version) {
      const n = name(node);
      const old = await sm().get(n, smVersionId(version));
      if (!old) throw new KryptonError('E_INPUT', `secret ${n} has no version ${version} to roll back to`, { hint: 'list versions with aws secretsmanager list-secret-version-ids --include-deprecated' });
      const next = (await maxVersion(n)) + 1;
      await sm().put(n, checked(n, old.value, old.versionId), smVersionId(next));
      return { version: next, restoredFrom: version };
    },
  };
  return store;
}
