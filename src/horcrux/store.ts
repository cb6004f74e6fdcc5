/**
 * Where a cosigner's Horcrux key files live in the backend, and reading them back (on the laptop, with the
 * operator's credentials) to compare fingerprints.
 *
 * Vault/OpenBao: KV v2 `<kv_mount>/krypton/<network>/horcrux/<cosigner>/ecies` and `…/shard`, the file's exact
 * text in the field `json` (so the Vault Agent renders it byte for byte and SHA-256 of the rendered file equals
 * SHA-256 of the imported one). KMS: context-bound blobs next to the inventory (src/horcrux/kms.ts).
 */
import type { Backends } from '../backends/registry.ts';
import { horcruxPath, type HorcruxKind } from '../backends/vault-paths.ts';
import { KryptonError } from '../core/errors.ts';
import { Secret } from '../core/secret.ts';
import type { LaptopFact } from '../core/task.ts';
import type { Inventory } from '../inventory/model.ts';
import type { KmsBackend } from '../backends/kms.ts';
import { kmsHorcruxStore } from './kms.ts';

/** The KMS backend of a run (throws when this build's Backends has none). */
export function kmsOf(backends: Backends): () => KmsBackend {
  return () => {
    if (!backends.kms) throw new KryptonError('E_INTERNAL', "this build's backends have no KMS", { hint: 'report this: createBackends provides it' });
    return backends.kms();
  };
}

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
  if (inv.backend === 'kms') return (await kmsHorcruxStore(inv, kmsOf(backends)).read(cosigner, kind)).current;
  if (inv.backend !== 'vault') {
    throw new KryptonError('E_INPUT', `Horcrux keys with backend ${inv.backend} are not supported`, { hint: 'use backend: vault or kms for cosigners' });
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

/** Reading and writing key files, as import-horcrux needs it (one implementation per backend). */
export interface HorcruxStore {
  /** `secret/krypton/…/horcrux/<cosigner>/<kind>` or the blob's name, for messages. */
  source(cosigner: string, kind: HorcruxKind): string;
  /** The stored value and the version a check-and-set write must name (0: never written). */
  read(cosigner: string, kind: HorcruxKind): Promise<{ current?: StoredHorcruxKey; casVersion: number }>;
  /** Writes `value` as a new version; refused when the stored version is no longer `casVersion`. */
  write(cosigner: string, kind: HorcruxKind, value: Secret, casVersion: number): Promise<{ version: number }>;
  /** Undoes a write of this run: restores `previous` (when there was one) and destroys `version`. Best effort. */
  undo(cosigner: string, kind: HorcruxKind, version: number, previous: StoredHorcruxKey | undefined): Promise<void>;
  /** Throws E_VAULT_DENIED (before anything is written) when the token may not write every path. */
  preflight(targets: readonly { cosigner: string; kind: HorcruxKind }[]): Promise<void>;
}

/** The Vault/OpenBao store: KV v2 with check-and-set; undo destroys the version this run wrote. */
export function vaultHorcruxStore(backends: Backends, inv: Inventory): HorcruxStore {
  const mount = inv.vault.kvMount;
  const vault = () => backends.vault();
  return {
    source: (c, k) => horcruxSource(inv, c, k),
    async read(cosigner, kind) {
      const path = horcruxPath(inv.network, cosigner, kind);
      const meta = await vault().kvMetadata(mount, path);
      const current = await readStoredHorcruxKey(backends, inv, cosigner, kind);
      return { ...(current ? { current } : {}), casVersion: meta?.currentVersion ?? 0 };
    },
    async write(cosigner, kind, value, casVersion) {
      return vault().kvWrite(mount, horcruxPath(inv.network, cosigner, kind), { [HORCRUX_KV_FIELD]: value }, { cas: casVersion });
    },
    async undo(cosigner, kind, version, previous) {
      const path = horcruxPath(inv.network, cosigner, kind);
      if (previous) await vault().kvWrite(mount, path, { [HORCRUX_KV_FIELD]: previous.secret }, { cas: version });
      // KV v2 "Destroy secret versions": PUT <mount>/destroy/<path> {versions}
      await vault().write(`${mount}/destroy/${path}`, { versions: [version] });
    },
    async preflight(targets) {
      const paths = targets.map((t) => `${mount}/data/${horcruxPath(inv.network, t.cosigner, t.kind)}`);
      let caps: Record<string, unknown> | undefined;
      try {
        caps = await vault().write('sys/capabilities-self', { paths });
      } catch (err) {
        if (err instanceof KryptonError && err.code === 'E_VAULT_CONFIG') throw err;
        return; // no answer to rely on: the writes themselves will tell (and are undone on failure)
      }
      const denied = paths.filter((p) => {
        const c = caps?.[p];
        if (!Array.isArray(c)) return false;
        return !(c.includes('root') || (c.includes('create') && c.includes('update')));
      });
      if (denied.length) {
        throw new KryptonError('E_VAULT_DENIED', `the Vault token may not write ${denied.length === paths.length ? 'any of the Horcrux key paths' : denied.join(', ')}; nothing was stored`, {
          hint: `the token needs create and update on ${mount}/data/krypton/${inv.network}/horcrux/*`,
        });
      }
    },
  };
}
