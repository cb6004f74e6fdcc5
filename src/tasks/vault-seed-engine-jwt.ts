import { defineTask, change, noChange, laptopFact } from '../core/task.ts';
import { engineJwtKvPath } from '../render/vault-agent.ts';
import { noParams } from './common.ts';

/**
 * vault.seed-engine-jwt — make sure the network's Engine-API JWT exists in KV v2 at
 * `<kv_mount>/krypton/<network>/engine-jwt` as `hex=<64 lowercase hex>`. Mints 32 CSPRNG bytes in memory at
 * apply time and writes them with check-and-set 0 (only if absent), so two operators cannot both seed.
 * Does nothing when a live version exists; never overwrites (rotation is rotate-jwt's job). Runs once per
 * run, not once per host.
 */
export const vaultSeedEngineJwt = defineTask({
  id: 'vault.seed-engine-jwt',
  summary: 'seed the Engine-API JWT in Vault KV v2 (only if absent)',
  appliesTo: 'node',
  backends: ['vault'],
  once: true,
  params: noParams,
  facts: (_p, host, inv) => ({
    meta: laptopFact((env) => env.backends.vault().kvMetadata(inv.vault.kvMount, engineJwtKvPath(inv, host.name))),
  }),
  plan(_p, { meta }, { inventory, host }) {
    const path = engineJwtKvPath(inventory, host.name);
    const where = `${inventory.vault.kvMount}/${path}`;
    const current = meta?.versions[String(meta.currentVersion)];
    if (meta && current && !current.deleted && !current.destroyed) {
      return noChange(`${where} already holds version ${meta.currentVersion}`);
    }
    return change({
      kind: 'vault.seed-engine-jwt',
      mount: inventory.vault.kvMount,
      path,
      field: 'hex',
      cas: meta?.currentVersion ?? 0,
      description: `write a fresh Engine-API JWT (32 random bytes, hex) to ${where}`,
    });
  },
});
