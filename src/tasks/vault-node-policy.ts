import { act } from '../core/action.ts';
import { defineTask, change, noChange, laptopFact } from '../core/task.ts';
import { nodeRoleName, renderNodePolicy } from '../render/vault-agent.ts';
import { noParams } from './common.ts';

/**
 * vault.node-policy — the node's ACL policy `krypton-node-<network>-<node>`: read on its network's
 * engine-jwt KV v2 data path and nothing else. Writes only when the live policy text differs.
 */
export const vaultNodePolicy = defineTask({
  id: 'vault.node-policy',
  summary: "write the node's read-only Vault policy",
  appliesTo: 'node',
  backends: ['vault'],
  params: noParams,
  facts: (_p, host, inv) => ({
    policy: laptopFact((env) => env.backends.vault().policyRead(nodeRoleName(inv.network, host.name))),
  }),
  plan(_p, { policy }, { inventory, host }) {
    const name = nodeRoleName(inventory.network, host.name);
    const want = renderNodePolicy(inventory, host.name);
    if (policy !== undefined && policy.trim() === want.trim()) return noChange(`policy ${name} already grants read on the engine-jwt path only`);
    return change(act.vaultWrite(`sys/policies/acl/${name}`, { policy: want }, `${policy === undefined ? 'create' : 'update'} policy ${name}`));
  },
});
