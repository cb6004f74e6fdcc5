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
import type { CosignerHost, Host, Inventory, NodeHost } from '../model/inventory.ts';
import { KIND_SPECS, SECRET_KINDS, encryptionContext, hostSecrets, smSecretName, tmpfsDirs } from '../model/layout.ts';
import { hostFetchArgv } from '../model/host-fetch.ts';
import { BOOT_FILES, renderBootScript, renderBootUnit } from './boot.ts';

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

/** How a statement names the CMK: the Resource, plus the alias condition when the key is named by alias. */
export interface KmsKeyResource {
  /** Always a key ARN form: `arn:<partition>:kms:<region|*>:<account|*>:key/<key id|*>`. */
  resource: string;
  /** For an alias-named key: `{'ForAnyValue:StringEquals': {'kms:ResourceAliases': 'alias/…'}}`. */
  aliasCondition?: Record<string, Record<string, string>>;
}

function regionOf(inv: Inventory, o: IamRenderOptions): string {
  return o.region ?? inv.kms?.region ?? '*';
}

const byAlias = (alias: string) => ({ 'ForAnyValue:StringEquals': { 'kms:ResourceAliases': alias } });

/**
 * The one resolver of `kms.key_id` for IAM statements (node, cosigner and admin policies all use it), for the four
 * ways an operator may name the key: a known key ARN (`o.keyArn`) wins; a key ARN is used as is; an alias ARN
 * keeps its partition, region and account and becomes `…:key/*` with its alias in `kms:ResourceAliases`; an alias
 * name does the same in the inventory's region/account (else `*`); a key id becomes its key ARN.
 */
export function kmsKeyResource(inv: Inventory, o: IamRenderOptions = {}): KmsKeyResource {
  const keyId = inv.kms?.keyId ?? '';
  if (o.keyArn) return { resource: o.keyArn };
  const arn = /^arn:([^:]+):kms:([^:]*):([^:]*):(key|alias)\/(.+)$/.exec(keyId);
  if (arn) {
    const [, partition, r, a, type, name] = arn;
    if (type === 'key') return { resource: keyId };
    return { resource: `arn:${partition}:kms:${r || '*'}:${a || '*'}:key/*`, aliasCondition: byAlias(`alias/${name}`) };
  }
  const region = regionOf(inv, o);
  const account = o.accountId ?? '*';
  if (keyId.startsWith('alias/')) return { resource: `arn:aws:kms:${region}:${account}:key/*`, aliasCondition: byAlias(keyId) };
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
 * A host's own policy (node or cosigner): with `backend: kms`, `kms:Decrypt` under the exact encryption context of
 * each of its own secrets' blobs (a node: its JWT, and env-secrets when it has them; a cosigner: its ECIES keys and
 * shard) — so it cannot decrypt another host's blob, nor a blob of another kind; with `secrets-manager`,
 * `GetSecretValue` on its own secrets plus `kms:Decrypt` via Secrets Manager for them. No Encrypt.
 */
export function renderHostIamPolicy(inv: Inventory, host: Host, o: IamRenderOptions = {}): IamPolicyDocument {
  const key = kmsKeyResource(inv, o);
  const secrets = hostSecrets(inv, host);
  const sid = (kind: string) => kind.split('-').map((w) => w[0]!.toUpperCase() + w.slice(1)).join('');
  if (inv.backend === 'secrets-manager') {
    const arns = secrets.map((s) => secretArnPattern(inv, o, smSecretName(s.ref)));
    return {
      Version: '2012-10-17',
      Statement: [
        { Sid: 'ReadOwnSecrets', Effect: 'Allow', Action: 'secretsmanager:GetSecretValue', Resource: arns.length === 1 ? arns[0]! : arns },
        {
          Sid: 'DecryptOwnSecretsViaSecretsManager',
          Effect: 'Allow',
          Action: 'kms:Decrypt',
          Resource: key.resource,
          Condition: mergeConditions(viaSecretsManager(inv, o), { StringLike: { 'kms:EncryptionContext:SecretARN': arns.length === 1 ? arns[0]! : arns } }, key.aliasCondition),
        },
      ],
    };
  }
  return {
    Version: '2012-10-17',
    Statement: secrets.map((s) => ({
      Sid: `DecryptOwn${sid(s.ref.kind)}Blob`,
      Effect: 'Allow' as const,
      Action: 'kms:Decrypt',
      Resource: key.resource,
      Condition: mergeConditions({ StringEquals: contextCondition(encryptionContext(s.ref)) }, key.aliasCondition),
    })),
  };
}

/** A node's policy ({@link renderHostIamPolicy}). */
export function renderNodeIamPolicy(inv: Inventory, node: string, o: IamRenderOptions = {}): IamPolicyDocument {
  const host = inv.nodes.find((n) => n.name === node);
  if (!host) throw new Error(`internal: ${node} is not a node of the inventory`);
  return renderHostIamPolicy(inv, host, o);
}

/** A cosigner's policy ({@link renderHostIamPolicy}): Decrypt its ECIES and shard blobs, nothing else. */
export function renderCosignerIamPolicy(inv: Inventory, cosigner: string, o: IamRenderOptions = {}): IamPolicyDocument {
  const host = inv.cosigners.find((c) => c.name === cosigner);
  if (!host) throw new Error(`internal: ${cosigner} is not a cosigner of the inventory`);
  return renderHostIamPolicy(inv, host, o);
}

/**
 * The operator's policy for this network: encrypt/decrypt this network's values of every kind (Engine-API JWT,
 * env-secrets, Horcrux key files: every blob's context carries `purpose` and `network`; a host's own adds `node`
 * or `cosigner`) and describe the key; with Secrets Manager, manage `krypton/<network>/…` secrets and let Secrets
 * Manager use the key on the operator's behalf.
 */
export function renderAdminIamPolicy(inv: Inventory, o: IamRenderOptions = {}): IamPolicyDocument {
  const key = kmsKeyResource(inv, o);
  const statements: IamStatement[] = [{ Sid: 'DescribeKryptonKey', Effect: 'Allow', Action: 'kms:DescribeKey', Resource: key.resource, ...(key.aliasCondition ? { Condition: key.aliasCondition } : {}) }];
  if (inv.backend === 'secrets-manager') {
    const secrets = `arn:aws:secretsmanager:${regionOf(inv, o)}:${o.accountId ?? '*'}:secret:krypton/${inv.network}/*`;
    statements.push(
      {
        Sid: 'ManageNetworkSecrets',
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
      Sid: 'EncryptDecryptNetworkSecrets',
      Effect: 'Allow',
      Action: ['kms:Encrypt', 'kms:Decrypt'],
      Resource: key.resource,
      // purpose is single-valued: StringEquals with a list means "one of these".
      Condition: mergeConditions({ StringEquals: { 'kms:EncryptionContext:purpose': SECRET_KINDS.map((k) => KIND_SPECS[k].purpose), 'kms:EncryptionContext:network': inv.network } }, key.aliasCondition),
    });
  }
  return { Version: '2012-10-17', Statement: statements };
}

function mergeConditions(...blocks: (Record<string, Record<string, string | string[]>> | undefined)[]): Record<string, Record<string, string | string[]>> {
  const out: Record<string, Record<string, string | string[]>> = {};
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
 * kms.install-boot-step installs them with its default params; with `backend: kms`, per cosigner its IAM policy
 * ({@link renderCosignerIamPolicy}); once, the operator's IAM policy.
 */
export function renderAwsReviewFiles(
  inv: Inventory,
  nodes: NodeHost[],
  cosigners: CosignerHost[] = [],
): { admin: [string, string]; perNode: Map<string, [string, string][]>; perCosigner: Map<string, [string, string][]> } {
  const perNode = new Map<string, [string, string][]>();
  for (const node of nodes) perNode.set(node.name, hostReviewFiles(inv, node));
  // Horcrux key files are KMS blobs only with backend kms (with Vault a cosigner's access is its Vault policy).
  const perCosigner = new Map<string, [string, string][]>();
  if (inv.backend === 'kms') for (const c of cosigners) perCosigner.set(c.name, hostReviewFiles(inv, c));
  return { admin: ['iam-admin-policy.json', policyJson(renderAdminIamPolicy(inv))], perNode, perCosigner };
}

/**
 * A host's review files: its IAM policy and, for a node when `kms.region` is known and hosts fetch, the boot step as
 * kms.install-boot-step installs it with default params (cosigner-bringup.yml installs no boot step: after a
 * reboot, apply brings a cosigner's key files back).
 */
function hostReviewFiles(inv: Inventory, host: NodeHost | CosignerHost): [string, string][] {
  const files: [string, string][] = [['iam-policy.json', policyJson(renderHostIamPolicy(inv, host))]];
  if (host.kind === 'node' && inv.kms?.region && inv.kms.decrypt !== 'operator') {
    const o = { tmpfsSizeBytes: 1 << 20, attempts: 5, before: ['docker.service'] };
    const target = { region: inv.kms.region, ...(inv.kms.endpointUrl ? { endpointUrl: inv.kms.endpointUrl } : {}) };
    const fetches = hostSecrets(inv, host).map((s) => ({ path: s.path, argv: hostFetchArgv(inv, host, s, target, '') }));
    files.push([BOOT_FILES.script.split('/').pop()!, renderBootScript(inv, host, tmpfsDirs(inv, host), fetches, o)], [BOOT_FILES.unitName, renderBootUnit(inv, host, o)]);
  }
  return files;
}
