import { KryptonError } from '../core/errors.ts';
import type { Host, Inventory } from '../model/inventory.ts';

/**
 * The inventory hosts a play's `hosts:` names, in inventory order. Throws E_PLAYBOOK for an unknown name, at its
 * `file:line:col` when `at` (the play's `hostsAt`) gives the names' positions.
 */
export function selectHosts(inv: Inventory, hosts: string | string[], at?: readonly string[]): Host[] {
  if (Array.isArray(hosts)) {
    const all = new Map<string, Host>([...inv.nodes, ...inv.cosigners].map((h) => [h.name, h]));
    // A host named twice is one host: its steps must never run twice at once.
    return [...new Set(hosts)].map((n) => {
      const h = all.get(n);
      if (!h) {
        const where = at?.[hosts.indexOf(n)];
        throw new KryptonError('E_PLAYBOOK', `${where ? `${where}: ` : ''}play names host ${n}, which is not in the inventory ${inv.file}`, {
          hint: `fix hosts: in the playbook (the inventory has ${[...all.keys()].join(', ')})`,
        });
      }
      return h;
    });
  }
  switch (hosts) {
    case 'nodes':
      return [...inv.nodes];
    case 'validators':
      return inv.nodes.filter((n) => n.role === 'validator');
    case 'rpc':
      return inv.nodes.filter((n) => n.role === 'rpc');
    case 'cosigners':
      return [...inv.cosigners];
    default:
      return [...inv.nodes, ...inv.cosigners];
  }
}

/** Checks `--limit` names against the inventory; throws E_USAGE naming the unknown ones. */
export function checkLimit(inv: Inventory, limit: string[] | undefined): Set<string> | undefined {
  if (!limit) return undefined;
  if (limit.length === 0) throw new KryptonError('E_USAGE', '--limit names no host', { hint: 'give inventory names separated by commas, e.g. --limit val-1,val-2' });
  const known = new Set([...inv.nodes, ...inv.cosigners].map((h) => h.name));
  const unknown = limit.filter((n) => !known.has(n));
  if (unknown.length) {
    throw new KryptonError('E_USAGE', `--limit names ${unknown.join(', ')}, not in the inventory ${inv.file}`, {
      hint: `known hosts: ${[...known].join(', ')}`,
    });
  }
  return new Set(limit);
}
