import { defineTask, change, noChange, refuse } from '../core/task.ts';
import { inventoryKeyArn, secretDescription, secretKeyArn } from '../facts/kms.ts';
import { expectedEngineJwt } from '../facts/inputs.ts';
import { kmsPerNode, smSecretName } from '../render/kms-host.ts';
import { noParams } from './common.ts';

/**
 * sm.seed-engine-jwt — make sure the Secrets Manager secret `krypton/<network>/engine-jwt` (per node with
 * `kms.per_node`: `krypton/<network>/nodes/<node>/engine-jwt`) exists, holds exactly 64 lowercase hex
 * characters, and is encrypted under the inventory's CMK (`kms.key_id`). Creates it with a JWT minted in
 * memory at apply time (version 1); when it is under another key (e.g. the AWS-managed aws/secretsmanager
 * key), writes the same value again as a new version under `kms.key_id`. Never changes the value (rotation
 * is jwt.rotate's job). Refuses a secret scheduled for deletion. Runs for one host at a time (`once`).
 */
export const smSeedEngineJwt = defineTask({
  id: 'sm.seed-engine-jwt',
  summary: 'create the Engine-API JWT secret in Secrets Manager under the CMK',
  appliesTo: 'node',
  backends: ['secrets-manager'],
  once: true,
  params: noParams,
  facts: () => ({ secret: secretDescription(), jwt: expectedEngineJwt(), keyArn: inventoryKeyArn(), secretKey: secretKeyArn() }),
  plan(_p, { secret, jwt, keyArn, secretKey }, { inventory, host }) {
    const name = smSecretName(inventory, host.name);
    const node = kmsPerNode(inventory) ? { node: host.name } : {};
    const keyId = inventory.kms?.keyId ?? '';
    if (!secret) {
      return change({ kind: 'sm.seed-engine-jwt', ...node, description: `create secret ${name} under KMS key ${keyId} with a fresh Engine-API JWT minted in memory (version 1)` });
    }
    if (secret.deletedDate) {
      return refuse('E_PLAN_CONFLICT', `secret ${name} is scheduled for deletion (since ${secret.deletedDate})`, `restore it (aws secretsmanager restore-secret --secret-id ${name}) or delete it for good before seeding again`);
    }
    if (!jwt) return refuse('E_INPUT', `secret ${name} exists but has no current value`, `put a value (aws secretsmanager put-secret-value) or delete the secret, then run again`);
    if (secretKey !== keyArn) {
      return change({
        kind: 'sm.set-key',
        ...node,
        description: `write ${name}'s current value (${jwt.secret.shortFingerprint()}) again as a new version under KMS key ${keyId} (it is under ${secret.kmsKeyId ?? 'the AWS-managed key aws/secretsmanager'})`,
      });
    }
    return noChange(`secret ${name} holds v${jwt.version} (${jwt.secret.shortFingerprint()}) under ${keyId}`);
  },
});
