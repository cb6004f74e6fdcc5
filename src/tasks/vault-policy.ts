import { act } from '../model/action.ts';
import { defineTask, change, noChange, laptopFact } from '../model/task.ts';
import { policyName } from '../model/layout.ts';
import { renderPolicy } from '../render/vault-agent.ts';
import { noParams } from './common.ts';

/**
 * vault.policy — the host's ACL policy `krypton-<node|cosigner>-<network>-<host>`: `read` on the KV v2 data path
 * of each of its own secrets and nothing else, so a node reads only its JWT (and env-secrets) and a cosigner only
 * its own key files, never another's shard. Writes only when the live policy text differs.
 */
export const vaultPolicy = defineTask({
  id: 'vault.policy',
  summary: "write the host's read-only Vault policy",
  appliesTo: 'any',
  delivery: ['agent'],
  params: noParams,
  facts: (_p, host, inv) => ({ policy: laptopFact((env) => env.store.vault!.policyRead(policyName(inv, host))) }),
  plan(_p, { policy }, { inventory, host }) {
    const name = policyName(inventory, host);
    const want = renderPolicy(inventory, host);
    if (policy !== undefined && policy.trim() === want.trim()) return noChange(`policy ${name} already grants read on ${host.name}'s own secrets only`);
    return change(act.accessWrite(`sys/policies/acl/${name}`, { policy: want }, `${policy === undefined ? 'create' : 'update'} policy ${name} (read ${host.name}'s own secrets only)`));
  },
});
