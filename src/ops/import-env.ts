/**
 * `import-env`: load an existing plaintext env file (`NAME=value` lines, as operators write them for compose)
 * into the store as the node env-secrets — the network's (`secret/krypton/<network>/env`), or one node's own with
 * `node`. Every line is checked first (names `[A-Za-z_][A-Za-z0-9_]*`, one-line values, no `JWT_PATH`, no
 * duplicates): one bad line refuses the whole file with its line number, and nothing is stored. Then the values
 * are stored all or nothing and read back (src/ops/import.ts); only after that, and only with `shredSource`, the
 * source file is shredded. No value ever reaches an argv, a log line or an error message.
 */
import { readFile } from 'node:fs/promises';
import { KryptonError } from '../core/errors.ts';
import type { Inventory } from '../model/inventory.ts';
import { NETWORK_SCOPE, describeRef, refFor, type SecretRef } from '../model/layout.ts';
import { parseEnvText, renderEnvFile } from '../model/formats.ts';
import type { SecretStore } from '../model/store.ts';
import { importValues, shredFile, type ImportedValue } from './import.ts';

export interface ImportEnvOptions {
  file: string;
  inventory: Inventory;
  store: SecretStore;
  /** A node's own env-secrets (its inventory `env.per_node` must say so); default the network's. */
  node?: string;
  replace?: boolean;
  shredSource?: boolean;
  print?: (line: string) => void;
}

export interface ImportEnvResult {
  ref: SecretRef;
  /** Variable names (not secret), sorted. */
  names: string[];
  value: ImportedValue;
  shredded: boolean;
}

/** Largest env file import-env reads (bytes): anything larger is not an env file. */
export const MAX_ENV_FILE_BYTES = 64 * 1024;

export async function importEnv(o: ImportEnvOptions): Promise<ImportEnvResult> {
  const inv = o.inventory;
  const print = o.print ?? (() => {});
  let ref: SecretRef = { kind: 'node-env', network: inv.network, scope: NETWORK_SCOPE };
  if (o.node) {
    const node = inv.nodes.find((n) => n.name === o.node);
    if (!node) throw new KryptonError('E_USAGE', `--node ${o.node} is not a node of ${inv.file}`, { hint: `nodes: ${inv.nodes.map((n) => n.name).join(', ')}` });
    ref = refFor(inv, 'node-env', node.name);
    if (ref.scope === NETWORK_SCOPE) throw new KryptonError('E_USAGE', `${o.node} uses the network's env-secrets (its env.per_node is not set)`, { hint: 'drop --node, or set env: { per_node: true } for that node in the inventory' });
  }
  let bytes: Buffer;
  try {
    bytes = await readFile(o.file);
  } catch (err) {
    throw new KryptonError('E_INPUT', `cannot read ${o.file}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`, { hint: 'give the path of the plaintext env file to import' });
  }
  if (bytes.length > MAX_ENV_FILE_BYTES) throw new KryptonError('E_INPUT', `${o.file} is ${bytes.length} bytes, over ${MAX_ENV_FILE_BYTES}: not an env file`, { hint: 'give the compose env file that holds the secrets' });
  const parsed = parseEnvText(bytes.toString('utf8'));
  bytes.fill(0);
  if (!parsed.ok) {
    throw new KryptonError('E_INPUT', `${o.file}: nothing was stored:\n${parsed.problems.map((p) => `- line ${p.line}: ${p.message}`).join('\n')}`, {
      hint: 'fix those lines (NAME=value, names [A-Za-z_][A-Za-z0-9_]*, one-line values, no JWT_PATH), then import again',
    });
  }
  const names = Object.keys(parsed.vars).sort();
  if (!names.length) throw new KryptonError('E_INPUT', `${o.file} holds no variables; nothing was stored`, { hint: 'give the env file that holds the secrets' });
  const value = renderEnvFile(parsed.vars, o.file);
  print(`checked ${o.file}: ${names.length} variable${names.length === 1 ? '' : 's'} (${names.join(', ')}), ${value.shortFingerprint()}`);
  const [stored] = await importValues(o.store, [{ ref, value, file: o.file }], {
    ...(o.replace ? { replace: true } : {}),
    replaceHint: `to replace ${describeRef(ref)} deliberately, import with --replace; then apply playbooks/provision.yml (the services that read it restart)`,
    print,
  });
  let shredded = false;
  if (o.shredSource) {
    await shredFile(o.file);
    shredded = true;
    print(`shredded ${o.file} (overwritten with random bytes, fsynced, unlinked); note: this does not reach copies kept by SSD wear levelling, copy-on-write filesystems or backups`);
  } else {
    print(`${o.file} is still there: after checking the fingerprint above, run again with --shred-source to shred it (or shred it yourself)`);
  }
  return { ref, names, value: stored!, shredded };
}
