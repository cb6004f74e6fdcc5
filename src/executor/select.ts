import { KryptonError } from '../core/errors.ts';
import { BUILTIN_SELECTIONS, type Host, type Inventory } from '../model/inventory.ts';

/** The hosts a built-in selection (`all`, `nodes`, `validators`, `rpc`, `cosigners`) or a `groups:` entry names, or undefined. */
function named(inv: Inventory, name: string): Host[] | undefined {
  switch (name) {
    case 'all':
      return [...inv.nodes, ...inv.cosigners];
    case 'nodes':
      return [...inv.nodes];
    case 'validators':
      return inv.nodes.filter((n) => n.role === 'validator');
    case 'rpc':
      return inv.nodes.filter((n) => n.role === 'rpc');
    case 'cosigners':
      return [...inv.cosigners];
  }
  const g = inv.groups?.[name];
  if (!g) return undefined;
  const members = new Set(g);
  return [...inv.nodes, ...inv.cosigners].filter((h) => members.has(h.name));
}

/**
 * The inventory hosts a play's `hosts:` names: a built-in selection or a group name (inventory order), or a list of
 * host and group names (in the order listed). Throws E_PLAYBOOK for a name that is neither, at its `file:line:col`
 * when `at` (the play's `hostsAt`) gives the names' positions.
 */
export function selectHosts(inv: Inventory, hosts: string | string[], at?: readonly string[]): Host[] {
  const all = [...inv.nodes, ...inv.cosigners];
  if (!Array.isArray(hosts)) {
    const sel = named(inv, hosts);
    if (!sel) throw new KryptonError('E_PLAYBOOK', `play names hosts: ${hosts}, which is no selection of the inventory ${inv.file}`, { hint: `use ${BUILTIN_SELECTIONS.join(', ')}, a group from groups:, or a list of host names` });
    return sel;
  }
  const byName = new Map(all.map((h) => [h.name, h]));
  // A host named twice (or through two groups) is one host: its steps must never run twice at once.
  const picked = new Set<string>();
  for (const n of hosts) {
    const one = byName.get(n);
    const sel = one ? [one] : inv.groups?.[n] ? named(inv, n) : undefined;
    if (!sel) {
      const where = at?.[hosts.indexOf(n)];
      throw new KryptonError('E_PLAYBOOK', `${where ? `${where}: ` : ''}play names host ${n}, which is not in the inventory ${inv.file}`, {
        hint: `fix hosts: in the playbook (the inventory has ${[...byName.keys()].join(', ')}${Object.keys(inv.groups ?? {}).length ? `; groups ${Object.keys(inv.groups ?? {}).join(', ')}` : ''})`,
      });
    }
    for (const h of sel) picked.add(h.name);
  }
  // In the order the play lists them (hosts first named first), as before groups existed.
  return [...picked].map((n) => byName.get(n)!);
}

/** `*` any run of characters, `?` one character, `[…]` a class; the rest literal. The whole name must match. */
function globToRegExp(glob: string): RegExp {
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === '*') re += '.*';
    else if (c === '?') re += '.';
    else if (c === '[') {
      const end = glob.indexOf(']', i + 1);
      if (end < 0) re += '\\[';
      else {
        const body = glob.slice(i + 1, end).replace(/\\/g, '\\\\');
        re += `[${body.startsWith('!') ? `^${body.slice(1)}` : body}]`;
        i = end;
      }
    } else re += c.replace(/[.+^${}()|\\/]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

/**
 * Resolves `--limit` patterns (every `-l` given, each already split at commas) to host names. A pattern is a host
 * name, a glob (`val-*`, `val-?`, `val-[12]`), a built-in selection (`validators`, `rpc`, `cosigners`, `nodes`,
 * `all`) or a group from `groups:`; `!pattern` removes what it matches. The selection is the union of the positive
 * patterns (every host when there are only negative ones) minus the negative ones. Returns undefined without
 * `--limit`. Throws E_USAGE for an empty limit, a pattern that matches no host, or a selection left empty.
 * (`@file` is read by the CLI, which passes its patterns on.)
 */
export function checkLimit(inv: Inventory, limit: string[] | undefined): Set<string> | undefined {
  if (!limit) return undefined;
  const patterns = limit.map((p) => p.trim()).filter(Boolean);
  if (patterns.length === 0) throw new KryptonError('E_USAGE', '--limit names no host', { hint: 'give host names, globs, groups or roles separated by commas, e.g. --limit val-1,val-2 or --limit "val-*,!val-2"' });
  const all = [...inv.nodes, ...inv.cosigners];
  const match = (p: string): string[] => {
    const sel = named(inv, p);
    if (sel) return sel.map((h) => h.name);
    if (/[*?[]/.test(p)) {
      const re = globToRegExp(p);
      return all.filter((h) => re.test(h.name)).map((h) => h.name);
    }
    return all.some((h) => h.name === p) ? [p] : [];
  };
  const unknown: string[] = [];
  const plus = new Set<string>();
  const minus = new Set<string>();
  let positives = 0;
  for (const raw of patterns) {
    const neg = raw.startsWith('!');
    const p = neg ? raw.slice(1) : raw;
    const hits = match(p);
    if (!hits.length) unknown.push(raw);
    if (!neg) positives++;
    for (const h of hits) (neg ? minus : plus).add(h);
  }
  if (unknown.length) {
    const groups = Object.keys(inv.groups ?? {});
    throw new KryptonError('E_USAGE', `--limit ${unknown.join(', ')} ${unknown.length === 1 ? 'matches' : 'match'} no host of the inventory ${inv.file}`, {
      hint: `hosts: ${all.map((h) => h.name).join(', ')}; selections: ${[...BUILTIN_SELECTIONS, ...groups].join(', ')}`,
    });
  }
  const base = positives ? plus : new Set(all.map((h) => h.name));
  const out = new Set([...base].filter((h) => !minus.has(h)));
  if (!out.size) throw new KryptonError('E_USAGE', `--limit ${patterns.join(',')} leaves no host`, { hint: 'a negation (!…) removed every host the other patterns matched' });
  return out;
}
