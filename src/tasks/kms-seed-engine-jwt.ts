import { defineTask, change, noChange } from '../core/task.ts';
import { blobStore } from '../facts/kms.ts';
import { expectedEngineJwt } from '../facts/inputs.ts';
import { describeContext, engineJwtContext, kmsPerNode } from '../render/kms-host.ts';
import { noParams } from './common.ts';

/**
 * kms.seed-engine-jwt — make sure the Engine-API JWT exists as a KMS blob in the blob store next to the
 * inventory (`blobs/<network>/engine-jwt/v<N>.enc`; per node with `kms.per_node`). When there is none, mints
 * 32 CSPRNG bytes as hex in memory at apply time and KMS-Encrypts them under `kms.key_id` with the encryption
 * context `purpose=krypton-engine-jwt, network=<chain id>` (+ `node=<name>`); only the blob is written.
 * When a blob exists it decrypts it in memory to prove it belongs to this network (and node): a blob for
 * another context fails here with E_KMS_CONTEXT, before anything is sent to a host. Never overwrites
 * (rotation is jwt.rotate's job). Runs for one host at a time (`once`).
 */
export const kmsSeedEngineJwt = defineTask({
  id: 'kms.seed-engine-jwt',
  summary: 'seed the Engine-API JWT as a KMS blob (only if absent)',
  appliesTo: 'node',
  backends: ['kms'],
  once: true,
  params: noParams,
  facts: () => ({ store: blobStore(), jwt: expectedEngineJwt() }),
  plan(_p, { store, jwt }, { inventory, host }) {
    if (store.current && jwt) {
      return noChange(`${store.current.display} holds v${jwt.version} (${jwt.secret.shortFingerprint()}), encrypted for ${describeContext(engineJwtContext(inventory, host.name))}`);
    }
    const ctx = describeContext(engineJwtContext(inventory, host.name));
    return change({
      kind: 'kms.seed-engine-jwt',
      ...(kmsPerNode(inventory) ? { node: host.name } : {}),
      description: `mint a fresh Engine-API JWT in memory, encrypt it with KMS key ${inventory.kms?.keyId} (context ${ctx}) and write the blob ${store.where}/v1.enc`,
    });
  },
});
