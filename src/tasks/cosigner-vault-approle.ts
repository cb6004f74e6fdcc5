import { act } from '../core/action.ts';
import { defineTask, change, noChange, laptopFact } from '../core/task.ts';
import { cosignerRoleName } from '../horcrux/agent.ts';
import { noParams } from './common.ts';
import { desiredRole } from './vault-node-approle.ts';

function same(a: unknown, b: unknown): boolean {
  if (Array.isArray(b)) return Array.isArray(a) && a.length === b.length && b.every((x, i) => a[i] === x);
  return a === b;
}

/**
 * cosigner.vault-approle — the cosigner's AppRole role `krypton-cosigner-<network>-<cosigner>`, bound to its
 * policy only, with the same settings as a node's (single-use secret_ids with a short TTL; periodic tokens in
 * daemon mode, short-lived ones in oneshot mode). Writes only the fields that differ.
 */
export const cosignerVaultApprole = defineTask({
  id: 'cosigner.vault-approle',
  summary: "write the cosigner's AppRole role",
  appliesTo: 'cosigner',
  backends: ['vault'],
  params: noParams,
  facts: (_p, host, inv) => ({
    role: laptopFact((env) => env.backends.vault().read(`auth/${inv.vault.approleMount}/role/${cosignerRoleName(inv, host.name)}`)),
  }),
  plan(_p, { role }, { inventory, host }) {
    const name = cosignerRoleName(inventory, host.name);
    const want = desiredRole(inventory, name);
    const differs = role === undefined ? Object.keys(want) : Object.keys(want).filter((k) => !same(role[k], want[k]));
    if (differs.length === 0) return noChange(`role ${name} already issues single-use secret_ids for policy ${name} only`);
    return change(
      act.vaultWrite(`auth/${inventory.vault.approleMount}/role/${name}`, want, role === undefined ? `create AppRole role ${name}` : `update AppRole role ${name} (${differs.join(', ')})`),
    );
  },
});
