import { act } from '../core/action.ts';
import { defineTask, change, noChange, laptopFact } from '../core/task.ts';
import { cosignerRoleName, renderCosignerPolicy } from '../horcrux/agent.ts';
import { noParams } from './common.ts';

/**
 * cosigner.vault-policy — the cosigner's ACL policy `krypton-cosigner-<network>-<cosigner>`: read on its own
 * two Horcrux key files' KV v2 data paths (`…/horcrux/<cosigner>/ecies`, `…/shard`) and nothing else, so no
 * cosigner can read another's shard. Writes only when the live policy text differs.
 */
export const cosignerVaultPolicy = defineTask({
  id: 'cosigner.vault-policy',
  summary: "write the cosigner's read-only Vault policy",
  appliesTo: 'cosigner',
  backends: ['vault'],
  params: noParams,
  facts: (_p, host, inv) => ({
    policy: laptopFact((env) => env.backends.vault().policyRead(cosignerRoleName(inv, host.name))),
  }),
  plan(_p, { policy }, { inventory, host }) {
    const name = cosignerRoleName(inventory, host.name);
    const want = renderCosignerPolicy(inventory, host.name);
    if (policy !== undefined && policy.trim() === want.trim()) return noChange(`policy ${name} already grants read on ${host.name}'s own key files only`);
    return change(act.vaultWrite(`sys/policies/acl/${name}`, { policy: want }, `${policy === undefined ? 'create' : 'update'} policy ${name} (read ${host.name}'s ecies and shard only)`));
  },
});
