import { act } from '../model/action.ts';
import { defineTask, change, noChange, laptopFact } from '../model/task.ts';
import type { Inventory } from '../model/inventory.ts';
import { roleName } from '../model/layout.ts';
import { noParams } from './common.ts';

/** The AppRole role settings krypton-secrets wants for a host (Vault API auth/approle/role/:name). */
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

function same(a: unknown, b: unknown): boolean {
  if (Array.isArray(b)) return Array.isArray(a) && a.length === b.length && b.every((x, i) => a[i] === x);
  return a === b;
}

/**
 * vault.approle — the host's AppRole role (same name as its policy), bound to that policy only: single-use
 * secret_ids with a short `secret_id_ttl`; daemon mode issues periodic tokens (`token_period`) so a running agent
 * renews forever, oneshot mode short-lived ones. Writes only the fields that differ.
 */
export const vaultApprole = defineTask({
  id: 'vault.approle',
  summary: "write the host's AppRole role",
  appliesTo: 'any',
  delivery: ['agent'],
  params: noParams,
  facts: (_p, host, inv) => ({ role: laptopFact((env) => env.store.vault!.read(`auth/${inv.vault.approleMount}/role/${roleName(inv, host)}`)) }),
  plan(_p, { role }, { inventory, host }) {
    const name = roleName(inventory, host);
    const want = desiredRole(inventory, name);
    const differs = role === undefined ? Object.keys(want) : Object.keys(want).filter((k) => !same(role[k], want[k]));
    if (differs.length === 0) return noChange(`role ${name} already issues single-use secret_ids for policy ${name} only`);
    return change(act.accessWrite(`auth/${inventory.vault.approleMount}/role/${name}`, want, role === undefined ? `create AppRole role ${name}` : `update AppRole role ${name} (${differs.join(', ')})`));
  },
});
