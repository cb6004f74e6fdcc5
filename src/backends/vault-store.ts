/**
 * The {@link SecretStore} on Vault/OpenBao KV v2 (one implementation for every secret kind). Each reference is
 * the KV v2 secret `<kv_mount>/<kvPath(ref)>` (model/layout.ts); a single-field kind is one field (`hex`,
 * `json`), node env-secrets one field per variable (model/formats.ts `fromKvFields`/`toKvFields`).
 *
 * - **Versions** are KV v2's. A deleted or destroyed current version counts as absent for {@link current}, but
 *   its number is still the check-and-set version ({@link head}): Vault's `cas` compares with `current_version`.
 * - **Writes** use KV v2 check-and-set (`options.cas`); Vault's refusal becomes E_PLAN_CONFLICT.
 * - **Undo** writes the previous value back (check-and-set on the version being undone) and destroys that
 *   version (`PUT <mount>/destroy/<path>`), so its value is gone from the store, not just hidden.
 * - **checkWrite** asks `sys/capabilities-self` for create+update on every data path.
 * - Hosts get the values from their own Vault Agent (`delivery: agent`): no host-side fetch here.
 *
 * Every value is read and written as a Secret; messages name the path, version and problem, never the value.
 */
import { KryptonError } from '../core/errors.ts';
import { mintEngineJwtHex, type Secret } from '../core/secret.ts';
import { fromKvFields, toKvFields, valueProblem } from '../model/formats.ts';
import type { Inventory } from '../model/inventory.ts';
import { KIND_SPECS, describeRef, kvDataPath, kvField, kvPath, kvSource, type SecretRef } from '../model/layout.ts';
import type { SecretStore, StoredValue, StoredVersion } from '../model/store.ts';
import type { VaultBackend } from './backend.ts';

/** True for the KryptonError the Vault backend's kvWrite throws when Vault refused a check-and-set write. */
export function isCasRefusal(err: unknown): boolean {
  return err instanceof KryptonError && err.code === 'E_VAULT' && /check-and-set/.test(err.message);
}

/** Throws E_INPUT when `value` is not a canonical value of `ref`'s kind (before anything is written). */
export function assertWritable(ref: SecretRef, value: Secret, where: string): void {
  const p = valueProblem(KIND_SPECS[ref.kind].format, value);
  if (p) {
    throw new KryptonError('E_INPUT', `refusing to write ${describeRef(ref)} to ${where}: ${p}; nothing was written`, {
      hint: KIND_SPECS[ref.kind].format === 'hex64' ? 'write exactly 64 lowercase hex characters, no 0x, no newline' : 'fix the value and write it again',
    });
  }
}

/** Throws E_INPUT for a kind that is imported, not minted. */
export function assertMintable(ref: SecretRef): void {
  const spec = KIND_SPECS[ref.kind];
  if (!spec.mintable) {
    throw new KryptonError('E_INPUT', `${describeRef(ref)} is imported, not minted: krypton-secrets makes fresh values only for the Engine-API JWT`, {
      hint: spec.missingHint,
    });
  }
}

export function createVaultStore(inv: Inventory, vault: VaultBackend): SecretStore {
  const mount = inv.vault.kvMount;
  const src = (ref: SecretRef): string => kvSource(inv, ref);

  const read = async (ref: SecretRef, version?: number): Promise<StoredValue | undefined> => {
    const kv = await vault.kvRead(mount, kvPath(ref), version);
    if (!kv) return undefined;
    const secret = fromKvFields(KIND_SPECS[ref.kind].format, kvField(ref.kind), kv.data, `${src(ref)} version ${kv.version}`);
    return { ref, secret, version: kv.version, source: src(ref) };
  };

  const head = async (ref: SecretRef): Promise<number> => (await vault.kvMetadata(mount, kvPath(ref)))?.currentVersion ?? 0;

  const write = async (ref: SecretRef, value: Secret, expectVersion: number): Promise<{ version: number }> => {
    assertWritable(ref, value, src(ref));
    const fields = toKvFields(KIND_SPECS[ref.kind].format, kvField(ref.kind), value, src(ref));
    try {
      return await vault.kvWrite(mount, kvPath(ref), fields, { cas: expectVersion });
    } catch (err) {
      if (!isCasRefusal(err)) throw err;
      throw new KryptonError(
        'E_PLAN_CONFLICT',
        expectVersion === 0
          ? `${src(ref)} already exists: the write was planned for an absent secret, so Vault refused it (check-and-set 0); someone else wrote meanwhile`
          : `${src(ref)} is no longer at version ${expectVersion}: someone else wrote meanwhile, so Vault refused the write (check-and-set)`,
        { hint: 'run again to plan against the current version; nothing was overwritten', cause: err },
      );
    }
  };

  const store: SecretStore = {
    backend: 'vault',
    delivery: 'agent',
    vault,
    describe: src,
    current: (ref) => read(ref),
    head,

    async raw(ref) {
      const field = kvField(ref.kind);
      const kv = await vault.kvRead(mount, kvPath(ref));
      const v = kv && field ? kv.data[field] : undefined;
      return kv && v ? { ref, secret: v, version: kv.version, source: src(ref) } : undefined;
    },

    async versions(ref, limit = 10) {
      const meta = await vault.kvMetadata(mount, kvPath(ref));
      if (!meta) return [];
      const out: StoredVersion[] = [];
      for (let v = meta.currentVersion; v >= 1 && out.length < limit; v--) {
        const st = meta.versions[String(v)];
        if (!st || st.deleted || st.destroyed) continue;
        let val: StoredValue | undefined;
        try {
          val = await read(ref, v);
        } catch (err) {
          if (err instanceof KryptonError && err.code === 'E_INPUT') continue; // not a valid value of this kind: not a version to offer
          throw err;
        }
        if (val) out.push({ version: v, fingerprint: val.secret.fingerprint() });
      }
      return out;
    },

    write,

    async mint(ref, expectVersion) {
      assertMintable(ref);
      return write(ref, mintEngineJwtHex(), expectVersion);
    },

    async restore(ref, version) {
      const old = await read(ref, version);
      if (!old) {
        throw new KryptonError('E_INPUT', `${src(ref)} has no live version ${version} to roll back to`, {
          hint: `list versions with \`bao kv metadata get -mount=${mount} ${kvPath(ref)}\` and pick one that is not deleted or destroyed`,
        });
      }
      const w = await write(ref, old.secret, await head(ref));
      return { version: w.version, restoredFrom: version };
    },

    async undo(ref, version, previous) {
      const path = kvPath(ref);
      if (previous) {
        try {
          await vault.kvWrite(mount, path, toKvFields(KIND_SPECS[ref.kind].format, kvField(ref.kind), previous.secret, src(ref)), { cas: version });
        } catch (err) {
          // Someone wrote after us: their value stands; ours still goes.
          if (!isCasRefusal(err)) throw err;
        }
      }
      // KV v2 "Destroy secret versions": PUT <mount>/destroy/<path> {versions}
      await vault.write(`${mount}/destroy/${path}`, { versions: [version] });
    },

    async checkWrite(refs) {
      if (refs.length === 0) return;
      const paths = [...new Set(refs.map((r) => kvDataPath(mount, kvPath(r))))];
      let caps: Record<string, unknown> | undefined;
      try {
        // system/capabilities-self: POST {paths} -> {"<path>": [caps], …, "capabilities": [...]}
        caps = await vault.write('sys/capabilities-self', { paths });
      } catch (err) {
        if (err instanceof KryptonError && err.code === 'E_VAULT_CONFIG') throw err;
        return; // no answer to rely on (e.g. a token without the default policy): the writes themselves will tell
      }
      const denied = paths.filter((p) => {
        const c = caps?.[p];
        if (!Array.isArray(c)) return false;
        return !(c.includes('root') || (c.includes('create') && c.includes('update')));
      });
      if (denied.length) {
        throw new KryptonError('E_VAULT_DENIED', `the Vault token may not write ${denied.join(', ')}; nothing was written`, {
          hint: `the token needs create and update on ${denied.length === 1 ? denied[0] : 'each of those paths'} (see the admin policy in README)`,
        });
      }
    },

    async keyDrift() {
      return undefined;
    },
  };
  return store;
}
