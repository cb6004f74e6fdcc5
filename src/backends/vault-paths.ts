/**
 * Pure helpers naming krypton-secrets' things in Vault/OpenBao: KV v2 paths, ACL policy names and AppRole
 * role names. No I/O. Every name component is checked (letters, digits, `_`, `.`, `-`; not `.`/`..`), so an
 * inventory name can never climb out of its path (`../sys/…`) or inject a glob into a policy.
 *
 * Sources: Vault HTTP API docs, secret/kv/kv-v2 (`<mount>/data/<path>`, `<mount>/metadata/<path>`);
 * auth/approle (role names are case-insensitive: Vault stores them lowercased) and system/policies (ACL policy
 * names are lowercased by Vault). Policy and role names are therefore produced in lowercase here, so that what
 * we write is exactly what Vault reports back.
 */
import { KryptonError } from '../core/errors.ts';

const SEGMENT = /^[A-Za-z0-9_.-]+$/;

/**
 * Checks one name component (a network, node or cosigner name, one path segment).
 * @throws KryptonError E_INPUT when it is empty, `.`/`..`, or holds anything but `[A-Za-z0-9_.-]`.
 */
export function assertVaultSegment(label: string, value: string): string {
  if (!SEGMENT.test(value) || value === '.' || value === '..')
    throw new KryptonError('E_INPUT', `invalid ${label} ${JSON.stringify(value)} for a Vault path or name`, {
      hint: `use letters, digits, "_", "." and "-" only (not "." or "..")`,
    });
  return value;
}

/**
 * Normalises a Vault path (mount or secret path): strips leading/trailing `/` and checks every segment with
 * {@link assertVaultSegment}. `label` names the thing in the error ("KV mount", "secret path", …).
 * @throws KryptonError E_INPUT for an empty path or a bad segment (`..`, empty `a//b`, spaces, `*`, `?`, …).
 */
export function normaliseVaultPath(label: string, path: string): string {
  const trimmed = path.replace(/^\/+|\/+$/g, '');
  if (trimmed === '') throw new KryptonError('E_INPUT', `empty ${label}`, { hint: `give a ${label} such as "secret"` });
  for (const seg of trimmed.split('/')) assertVaultSegment(`${label} segment in ${JSON.stringify(path)}`, seg);
  return trimmed;
}

/** KV v2 data path, `<mount>/data/<path>` (e.g. `secret/data/krypton/473374/engine-jwt`), for API calls and ACL policies. */
export function kvDataPath(mount: string, path: string): string {
  return `${normaliseVaultPath('KV mount', mount)}/data/${normaliseVaultPath('secret path', path)}`;
}

/** KV v2 metadata path, `<mount>/metadata/<path>`. */
export function kvMetadataPath(mount: string, path: string): string {
  return `${normaliseVaultPath('KV mount', mount)}/metadata/${normaliseVaultPath('secret path', path)}`;
}

/** The KV v2 secret path (under the KV mount) of a network's Engine-API JWT: `krypton/<network>/engine-jwt`. */
export function engineJwtPath(network: string): string {
  return `krypton/${assertVaultSegment('network', network)}/engine-jwt`;
}

/** ACL policy name of a node: `krypton-node-<network>-<node>` (lowercase, as Vault stores policy names). */
export function nodePolicyName(network: string, node: string): string {
  return `krypton-node-${assertVaultSegment('network', network)}-${assertVaultSegment('node', node)}`.toLowerCase();
}

/** AppRole role name of a node: the same string as {@link nodePolicyName} (one role, one policy per node). */
export function nodeRoleName(network: string, node: string): string {
  return nodePolicyName(network, node);
}

/** ACL policy name of a Horcrux cosigner: `krypton-cosigner-<network>-<cosigner>` (lowercase). */
export function cosignerPolicyName(network: string, cosigner: string): string {
  return `krypton-cosigner-${assertVaultSegment('network', network)}-${assertVaultSegment('cosigner', cosigner)}`.toLowerCase();
}

/** Which Horcrux key file a KV secret holds: `ecies` (`ecies_keys.json`) or `shard` (`{chain-id}_shard.json`). */
export type HorcruxKind = 'ecies' | 'shard';

/**
 * The KV v2 secret path (under the KV mount) of one cosigner's Horcrux key file:
 * `krypton/<network>/horcrux/<cosigner>/<ecies|shard>`. One subtree per cosigner, so a cosigner's policy can
 * grant `read` on its own subtree only (a cosigner never reads another's shard).
 */
export function horcruxPath(network: string, cosigner: string, kind: HorcruxKind): string {
  if (kind !== 'ecies' && kind !== 'shard')
    throw new KryptonError('E_INPUT', `invalid Horcrux key kind ${JSON.stringify(kind)}`, { hint: 'use "ecies" or "shard"' });
  return `krypton/${assertVaultSegment('network', network)}/horcrux/${assertVaultSegment('cosigner', cosigner)}/${kind}`;
}
