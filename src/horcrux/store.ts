/**
 * Where a cosigner's Horcrux key files live in the backend, and reading them back (on the laptop, with the
 * operator's credentials) to compare fingerprints.
 *
 * Vault/OpenBao: KV v2 `<kv_mount>/krypton/<network>/horcrux/<cosigner>/ecies` and `…/shard`, the file's exact
 * text in the field `json` (so the Vault Agent renders it byte for byte and SHA-256 of the rendered file equals
 * SHA-256 of the imported one).
 */
import type { Backends } from '../backends/registry.ts';
import { horcruxPath, type HorcruxKind } from '../backends/vault-paths.ts';
import { KryptonError } from '../core/errors.ts';
import type { Secret } from '../core/secret.ts';
import type { LaptopFact } from '../core/task.ts';
import type { Inventory } from '../inventory/model.ts';

/** The KV v2 field holding a key file's text. */
export const HORCRUX_KV_FIELD = 'json';

export const HORCRUX_KINDS: readonly HorcruxKind[] = ['ecies', 'shard'];

/** A stored key file. */
export interface StoredHorcruxKey {
  secret: Secret;
  version: number;
  /** `secret/krypton/473374/horcrux/cosigner-1/ecies` (for messages). */
  source: string;
}

/** What plans compare against: per kind, the stored file's full SHA-256 and version (never the value). */
export interface StoredFingerprint {
  fingerprint: string;
  version: number;
  source: string;
}
export type StoredFingerprints = Partial<Record<HorcruxKind, StoredFingerprint>>;

/** `<kv_mount>/<path>` of a cosigner's key file, for messages. */
export function horcruxSource(inv: Inventory, cosigner: string, kind: HorcruxKind): string {
  return `${inv.vault.kvMount}/${horcruxPath(inv.network, cosigner, kind)}`;
}

/**
 * Reads one stored key file; undefined when it was never imported (or its current version is deleted).
 * Throws E_INPUT when the stored value has no `json` field, E_VAULT… on backend errors.
 */
export async function readStoredHorcruxKey(backends: Backends, inv: Inventory, cosigner: string, kind: HorcruxKind): Promise<StoredHorcruxKey | undefined> {
  if (inv.backend !== 'vault') {
    throw new KryptonError('E_INPUT', `Horcrux keys with backend ${inv.backend} are not supported yet`, { hint: 'use backend: vault for cosigners' });
  }
  const path = horcruxPath(inv.network, cosigner, kind);
  const kv = await backends.vault().kvRead(inv.vault.kvMount, path);
  if (!kv) return undefined;
  const source = `${inv.vault.kvMount}/${path}`;
  const v = kv.data[HORCRUX_KV_FIELD];
  if (!v || v.length === 0) {
    throw new KryptonError('E_INPUT', `${source} version ${kv.version} has no field "${HORCRUX_KV_FIELD}" holding the key file`, {
      hint: 'import the key files with krypton-secrets import-horcrux (it writes the field "json")',
    });
  }
  return { secret: v, version: kv.version, source };
}

/** Both stored key files' fingerprints for `cosigner` (read once per run per cosigner; re-read after a backend write). */
export function storedHorcruxKeys(cosigner: string): LaptopFact<StoredFingerprints> {
  return {
    kind: 'laptop',
    gather: (env) =>
      env.memo(`horcrux-keys:${cosigner}`, async () => {
        const out: StoredFingerprints = {};
        for (const kind of HORCRUX_KINDS) {
          const k = await readStoredHorcruxKey(env.backends, env.inventory, cosigner, kind);
          if (k) out[kind] = { fingerprint: k.secret.fingerprint(), version: k.version, source: k.source };
        }
        return out;
      }),
  };
}
