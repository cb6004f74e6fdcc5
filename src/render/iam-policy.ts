/**
 * Least-privilege IAM policy documents for the KMS and Secrets Manager backends (pure; no AWS call):
 *
 * - **node** (the host's instance role / user): `kms:Decrypt` on the CMK only with the encryption context of
 *   its own blob (`kms:EncryptionContext:purpose` / `network` / `node`); with Secrets Manager,
 *   `secretsmanager:GetSecretValue` on its own secret and `kms:Decrypt` only through Secrets Manager for it.
 *   Nothing else: in particular no `kms:Encrypt`, so a host cannot mint a blob another host would accept.
 * - **admin** (the operator running krypton-secrets): `kms:Encrypt`/`kms:Decrypt` for this network's
 *   Engine-API JWT context and `kms:DescribeKey`; with Secrets Manager, create/read/write of the network's
 *   `krypton/<network>/…` secrets and the data-key calls Secrets Manager makes on the operator's behalf.
 *
 * The key: when `kms.key_id` is a key ARN it is the Resource; a bare key id becomes an ARN with the region and
 * account known (else `*`); an alias (`alias/…`) cannot authorize cryptographic calls by itself, so the
 * Resource is any key in the region/account *that carries that alias* (`kms:ResourceAliases`). Secret ARNs end
 * in `-??????` (Secrets Manager appends six random characters). Sources: AWS KMS developer guide
 * "Condition keys for AWS KMS" (kms:EncryptionContext:, kms:ResourceAliases, kms:ViaService) and
 * Secrets Manager "Authentication and access control" (resource ARN with `-??????`).
 */
import type { Inventory, NodeHost } from '../inventory/model.ts';
import { BOOT_FILES, ENGINE_JWT_PURPOSE, engineJwtContext, renderBootScript, renderBootUnit, smSecretName } from './kms-host.ts';
import { horcruxAdminStatement } from '../horcrux/iam.ts';

/** What render may know beyond the inventory (the sandbox knows all of it; an operator may pass it). */
export interface IamRenderOptions {
  /** The CMK's key ARN, when known (wins over an alias in `kms.key_id`). */
  keyArn?: string;
  /** 12-digit AWS account id; `*` when unknown. */
  accountId?: string;
  /** Region; default `kms.region`, else `*`. */
  region?: string;
}

export interface IamPolicyDocument {
  Version: '2012-10-17';
  Statement: IamStatement[];
}

export interface IamStatement {
  Sid: string;
  Effect: 'Allow' | 'Deny';
  Action: string | string[];
  Resource: string | string[];
  Condition?: Record<string, Record<string, string | string[]>>;
}

interface KeyRef {
  resource: string;
  /** Extra condition for an alias-named key. */
  aliasCondition?: Record<string, Record<string, string>>;
}

function regionOf(inv: Inventory, o: IamRenderOptions): string {
  return o.region ?? inv.kms?.region ?? '*';
}

function keyRef(inv: Inventory, o: IamRenderOptions): KeyRef {
  const keyId = inv.kms?.keyId ?? '';
  if (o.keyArn) return { resource: o.keyArn };
  if (keyId.startsWith('arn:') && keyId.includes(':key/')) return { resource: keyId };
  const region = regionOf(inv, o);
  const account = o.accountId ?? '*';
  if (keyId.startsWith('arn:') && keyId.includes(':alias/')) {
    const [, , , r, a, alias] = keyId.split(':');
    return { resource: `arn:aws:kms:${r}:${a}:key/*`, aliasCondition: { 'ForAnyValue:StringEquals': { 'kms:ResourceAliases': alias ?? '' } } };
  }
  if (keyId.startsWith('alias/')) {
    return { resource: `arn:aws:kms:${region}:${account}:key/*`, aliasCondition: { 'ForAnyValue:StringEquals': { 'kms:ResourceAliases': keyId } } };
  }
  return { resource: `arn:aws:kms:${region}:${account}:key/${keyId}` };
}

function secretArnPattern(inv: Inventory, o: IamRenderOptions, name: string): string {
  return `arn:aws:secretsmanager:${regionOf(inv, o)}:${o.accountId ?? '*'}:secret:${name}-??????`;
}

function viaSecretsManager(inv: Inventory, o: IamRenderOptions): Record<string, Record<string, string>> {
  const region = regionOf(inv, o);
  return region === '*' ? { StringLike: { 'kms:ViaService': 'secretsmanager.*.amazonaws.com' } } : { StringEquals: { 'kms:ViaService': `secretsmanager.${region}.amazonaws.com` } };
}

function contextCondition(ctx: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(ctx).map(([k, v]) => [`kms:EncryptionContext:${k}`, v]));
}

/**
 * The node's policy: with `backend: kms`, `kms:Decrypt` under its blob's exact context; with
 * `secrets-manager`, `GetSecretValue` on its own secret plus `kms:Decrypt` via Secrets Manager for that secret.
 */
export function renderNodeIamPolicy(inv: Inventory, node: string, o: IamRenderOptions = {}): IamPolicyDocument {
  const key = keyRef(inv, o);
  if (inv.backend === 'secrets-manager') {
    const secret = secretArnPattern(inv, o, smSecretName(inv, node));
    return {
      Version: '2012-10-17',
      Statement: [
        { Sid: 'ReadOwnEngineJwtSecret', Effect: 'Allow', Action: 'secretsmanager:GetSecretValue', Resource: secret },
        {
          Sid: 'DecryptOwnSecretViaSecretsManager',
          Effect: 'Allow',
          Action: 'kms:Decrypt',
          Resource: key.resource,
          Condition: mergeConditions(viaSecretsManager(inv, o), { StringLike: { 'kms:EncryptionContext:SecretARN': secret } }, key.aliasCondition),
        },
      ],
    };
  }
  return {
    Version: '2012-10-17',
    Statement: [
      {
        Sid: 'DecryptOwnEngineJwtBlob',
        Effect: 'Allow',
        Action: 'kms:Decrypt',
        Resource: key.resource,
        Condition: mergeConditions({ StringEquals: contextCondition(engineJwtContext(inv, node)) }, key.aliasCondition),
      },
    ],
  };
}

/**
 * The operator's policy for this network: encrypt/decrypt the network's Engine-API JWT context (every node's
 * blob carries purpose and network; per-node blobs add `node`) and describe the key; with Secrets Manager,
 * manage `krypton/<network>/…` secrets and let Secrets Manager use the key on the operator's behalf.
 */
export function renderAdminIamPolicy(inv: Inventory, o: IamRenderOptions = {}): IamPolicyDocument {
  const key = keyRef(inv, o);
  const statements: IamStatement[] = [{ Sid: 'DescribeKryptonKey', Effect: 'Allow', Action: 'kms:DescribeKey', Resource: key.resource, ...(key.aliasCondition ? { Condition: key.aliasCondition } : {}) }];
  if (inv.backend === 'secrets-manager') {
    const secrets = `arn:aws:secretsmanager:${regionOf(inv, o)}:${o.accountId ?? '*'}:secret:krypton/${inv.network}/*`;
    statements.push(
      {
        Sid: 'ManageNetworkEngineJwtSecrets',
        Effect: 'Allow',
        Action: [
          'secretsmanager:CreateSecret',
          'secretsmanager:DescribeSecret',
          'secretsmanager:GetSecretValue',
          'secretsmanager:PutSecretValue',
          'secretsmanager:UpdateSecret',
          'secretsmanager:ListSecretVersionIds',
          'secretsmanager:TagResource',
        ],
        Resource: secrets,
      },
      {
        Sid: 'UseKeyViaSecretsManager',
        Effect: 'Allow',
        Action: ['kms:GenerateDataKey', 'kms:Decrypt'],
        Resource: key.resource,
        Condition: mergeConditions(viaSecretsManager(inv, o), key.aliasCondition),
      },
    );
  } else {
    statements.push({
      Sid: 'EncryptDecryptNetworkEngineJwt',
      Effect: 'Allow',
      Action: ['kms:Encrypt', 'kms:Decrypt'],
      Resource: key.resource,
      Condition: mergeConditions({ StringEquals: { 'kms:EncryptionContext:purpose': ENGINE_JWT_PURPOSE, 'kms:EncryptionContext:network': inv.network } }, key.aliasCondition),
    });
    // Horcrux key files are KMS blobs too (import-horcrux encrypts, bring-up checks fingerprints).
    statements.push(horcruxAdminStatement(inv, o));
  }
  return { Version: '2012-10-17', Statement: statements };
}

function mergeConditions(...blocks: (Record<string, Record<string, string>> | undefined)[]): Record<string, Record<string, string>> {
  const out: Record<string, Record<string, string>> = {};
  for (const b of blocks) {
    if (!b) continue;
    for (const [op, kv] of Object.entries(b)) out[op] = { ...(out[op] ?? {}), ...kv };
  }
  return out;
}

/** A policy document as the file `render` writes (2-space JSON, trailing newline). */
export function policyJson(doc: IamPolicyDocument): string {
  return `${JSON.stringify(doc, null, 2)}\n`;
}

/**
 * The AWS files `krypton-secrets render` writes for review (no AWS call; none holds a secret): per node its
 * IAM policy and, when `kms.region` is known, the boot-time script and systemd unit exactly as
 * kms.install-boot-step installs them with its default params; once, the operator's IAM policy.
 */
export function renderAwsReviewFiles(inv: Inventory, nodes: NodeHost[]): { admin: [string, string]; perNode: Map<string, [string, string][]> } {
  const perNode = new Map<string, [string, string][]>();
  for (const node of nodes) {
    const files: [string, string][] = [['iam-policy.json', policyJson(renderNodeIamPolicy(inv, node.name))]];
    if (inv.kms?.region && inv.kms.decrypt !== 'operator') {
      const o = { tmpfsSizeBytes: 1 << 20, attempts: 5, before: ['docker.service'] };
      const target = { region: inv.kms.region, ...(inv.kms.endpointUrl ? { endpointUrl: inv.kms.endpointUrl } : {}) };
      files.push([BOOT_FILES.script.split('/').pop()!, renderBootScript(inv, node, target, o)], [BOOT_FILES.unitName, renderBootUnit(inv, node, o)]);
    }
    perNode.set(node.name, files);
  }
  return { admin: ['iam-admin-policy.json', policyJson(renderAdminIamPolicy(inv))], perNode };
}
