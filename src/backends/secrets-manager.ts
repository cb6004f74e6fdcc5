/**
 * The AWS Secrets Manager client krypton-secrets uses (@aws-sdk/client-secrets-manager v3), with errors translated
 * at this boundary (see `aws.ts`). The store built on it (names, versions, codecs) is `sm-store.ts`.
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
import { Secret } from '../core/secret.ts';
import type { Inventory } from '../model/inventory.ts';
import { resolveAwsSettings, sdkClientOptions, translateSdkError, type AwsCallContext, type AwsSettings } from './aws.ts';

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
          throw new KryptonError('E_INPUT', `secret ${name} holds a binary value (SecretBinary); krypton-secrets stores every value as SecretString`, { hint: 'write the value again as SecretString (aws secretsmanager put-secret-value --secret-string …, or import again): a rotation reads the current value first and refuses the same way' });
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
