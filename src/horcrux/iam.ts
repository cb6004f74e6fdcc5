/**
 * Least-privilege IAM statements for Horcrux key files with `backend: kms` (pure; no AWS call), to go with
 * src/render/iam-policy.ts:
 *
 * - **cosigner** (its instance role / user): `kms:Decrypt` on the CMK only under its own two contexts
 *   `{purpose: krypton-horcrux-ecies|krypton-horcrux-shard, network, cosigner: <itself>}` — so it cannot decrypt
 *   another cosigner's blob, nor the Engine-API JWT. No Encrypt.
 * - **operator**, added to the admin policy: `kms:Encrypt`/`kms:Decrypt` under the network's Horcrux purposes
 *   (any cosigner), for import-horcrux and for the fingerprint checks of bring-up.
 *
 * The key is named by ARN when known (`keyArn`), else `*` in the account/region limited to the inventory's alias
 * (`kms:ResourceAliases`), as for the JWT policies.
 */
import type { Inventory } from '../inventory/model.ts';
import type { IamPolicyDocument, IamRenderOptions, IamStatement } from '../render/iam-policy.ts';
import { HORCRUX_PURPOSE, horcruxContext } from './kms.ts';

function keyOf(inv: Inventory, o: IamRenderOptions): { resource: string; alias?: Record<string, Record<string, string>> } {
  const keyId = inv.kms?.keyId ?? '';
  if (o.keyArn) return { resource: o.keyArn };
  if (keyId.startsWith('arn:') && keyId.includes(':key/')) return { resource: keyId };
  const region = o.region ?? inv.kms?.region ?? '*';
  const account = o.accountId ?? '*';
  if (keyId.startsWith('alias/')) return { resource: `arn:aws:kms:${region}:${account}:key/*`, alias: { 'ForAnyValue:StringEquals': { 'kms:ResourceAliases': keyId } } };
  return { resource: `arn:aws:kms:${region}:${account}:key/${keyId}` };
}

function ctxCondition(ctx: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(ctx).map(([k, v]) => [`kms:EncryptionContext:${k}`, v]));
}

/** The cosigner's own policy: Decrypt its ECIES and shard blobs, nothing else. */
export function renderCosignerIamPolicy(inv: Inventory, cosigner: string, o: IamRenderOptions = {}): IamPolicyDocument {
  const key = keyOf(inv, o);
  return {
    Version: '2012-10-17',
    Statement: (['ecies', 'shard'] as const).map((kind) => ({
      Sid: kind === 'ecies' ? 'DecryptOwnHorcruxEciesKeys' : 'DecryptOwnHorcruxShard',
      Effect: 'Allow' as const,
      Action: 'kms:Decrypt',
      Resource: key.resource,
      Condition: { StringEquals: ctxCondition(horcruxContext(inv, cosigner, kind)), ...(key.alias ?? {}) },
    })),
  };
}

/** The statement to add to the operator's policy: Encrypt/Decrypt the network's Horcrux key files (any cosigner). */
export function horcruxAdminStatement(inv: Inventory, o: IamRenderOptions = {}): IamStatement {
  const key = keyOf(inv, o);
  return {
    Sid: 'EncryptDecryptNetworkHorcruxKeys',
    Effect: 'Allow',
    Action: ['kms:Encrypt', 'kms:Decrypt'],
    Resource: key.resource,
    // purpose is single-valued: StringEquals with a list means "one of these".
    Condition: { StringEquals: { 'kms:EncryptionContext:purpose': Object.values(HORCRUX_PURPOSE), 'kms:EncryptionContext:network': inv.network }, ...(key.alias ?? {}) },
  };
}
