import { KryptonError } from '../core/errors.ts';
import { isEngineJwtHex, type Secret } from '../core/secret.ts';
import type { Inventory } from '../inventory/model.ts';
import { engineJwtKvPath } from '../render/vault-agent.ts';
import type { VaultBackend } from './backend.ts';
import { createVaultBackend, resolveVaultSettings } from './vault.ts';

/** The Engine-API JWT as the backend holds it now. */
export interface EngineJwtValue {
  secret: Secret;
  /** KV v2 version (Vault), or the blob/secret version for KMS / Secrets Manager. */
  version: number;
  /** Where it came from, for messages: `secret/krypton/473374/engine-jwt` … */
  source: string;
}

/** The backends a run may use, created lazily from the inventory and the environment. */
export interface Backends {
  vault(): VaultBackend;
  /** The current Engine-API JWT; undefined when it was never seeded. Throws E_VAULT… on backend errors. */
  engineJwt(): Promise<EngineJwtValue | undefined>;
}

/**
 * Backends for `inv`, reading credentials from `env` the way the vault/bao and aws CLIs do.
 * Nothing connects until a method is called.
 */
export function createBackends(inv: Inventory, env: NodeJS.ProcessEnv = process.env): Backends {
  let vault: VaultBackend | undefined;
  const getVault = (): VaultBackend => {
    vault ??= createVaultBackend(
      resolveVaultSettings(env, { address: inv.vault.address, namespace: inv.vault.namespace, caCert: inv.vault.caCert }),
    );
    return vault;
  };
  return {
    vault: getVault,
    async engineJwt() {
      if (inv.backend !== 'vault') {
        throw new KryptonError('E_INPUT', `backend ${inv.backend} is not available in this build`, { hint: 'use backend: vault' });
      }
      const path = engineJwtKvPath(inv.network);
      const kv = await getVault().kvRead(inv.vault.kvMount, path);
      if (!kv) return undefined;
      const hex = kv.data['hex'];
      const source = `${inv.vault.kvMount}/${path}`;
      if (!hex || !isEngineJwtHex(hex)) {
        throw new KryptonError('E_INPUT', `${source} version ${kv.version} has no field hex holding 64 lowercase hex characters`, {
          hint: `write a valid value (krypton-secrets apply playbooks/rotate-jwt.yml) or fix the field name to "hex"`,
        });
      }
      return { secret: hex, version: kv.version, source };
    },
  };
}
