import { act } from '../core/action.ts';
import { defineTask, change, noChange, laptopFact } from '../core/task.ts';
import type { Inventory } from '../inventory/model.ts';
import { nodeRoleName } from '../render/vault-agent.ts';
import { noParams } from './common.ts';

/** The AppRole role settings krypton-secrets wants for a node (Vault API auth/approle/role/:name). */
export function desiredRole(inv: Inventory, policy: string): Record<string, unknown> {
  const v = inv.vault;
  const common = {
    token_policies: [policy],
    bind_secret_id: true,
    secret_id_num_uses: 1,
    secret_id_ttl: v.secretIdTtlSeconds,
    token_num_uses: 0,
  };
  return v.agentMode === 'daemon'
    ? { ...common, token_period: v.tokenPeriodSeconds, token_ttl: 0, token_max_ttl: 0 }
    : { ...common, token_period: 0, token_ttl: 300, token_max_ttl: 600 };
}

/**
 * vault.node-approle — the node's AppRole role `krypton-node-<network>-<node>`, bound to its policy:
 * single-use secret_ids with a short `secret_id_ttl`; daemon mode issues periodic tokens (`token_period`) so
 * a running agent renews forever, oneshot mode short-lived ones. Writes only the fields that differ.
 */
export const vaultNodeApprole = defineTask({
  id: 'vault.node-approle',
  summary: "write the node's AppRole role",
  appliesTo: 'node',
  backends: ['vault'],
  params: noParams,
  facts: (_p, host, inv) => ({
    role: laptopFact((env) => env.backends.vault().read(`auth/${inv.vault.approleMount}/role/${nodeRoleName(inv.network, host.name)}`)),
  }),
  plan(_p, { role }, { inventory, host }) {
    const name = nodeRoleName(inventory.network, host.name);
    const want = desiredRole(inventory, name);
    const differs = role === undefined ? Object.keys(want) : Object.keys(want).filter((k) => !same(role[k], want[k]));
    if (differs.length === 0) return noChange(`role ${name} already issues single-use secret_ids for policy ${name}`);
    return change(
      act.vaultWrite(`auth/${inventory.vault.approleMount}/role/${name}`, want, role === undefined ? `create AppRole role ${name}` : `update AppRole role ${name} (${differs.join(', ')})`),
    );
  },
});

function same(a: unknown, b: unknown): boolean {
  if (Array.isArray(b)) return Array.isArray(a) && a.length === b.length && b.every((x, i) => a[i] === x);
  return a === b;
}
