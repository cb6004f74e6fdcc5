import { KryptonError } from '../core/errors.ts';
import { isEngineJwtHex, mintEngineJwtHex, shortFingerprint, type Secret } from '../core/secret.ts';
import type { Inventory } from '../inventory/model.ts';
import { engineJwtKvPath } from '../render/vault-agent.ts';
import type { VaultBackend } from './backend.ts';
import { createVaultBackend, resolveVaultSettings } from './vault.ts';
import { createKmsJwtStore, kmsBackendFor, type KmsBackend, type KmsJwtStore } from './kms.ts';
import { createSmJwtStore, secretsManagerBackendFor, type SecretsManagerBackend, type SmJwtStore } from './secrets-manager.ts';

/** The Engine-API JWT as the backend holds it now. */
export interface EngineJwtValue {
  secret: Secret;
  /** KV v2 version (Vault), or the blob/secret version for KMS / Secrets Manager. */
  version: number;
  /** Where it came from, for messages: `secret/krypton/473374/engine-jwt` … */
  source: string;
}

/** One live version of the Engine-API JWT: its number and full SHA-256 fingerprint (never the value). */
export interface EngineJwtVersion {
  version: number;
  fingerprint: string;
}

/** The backends a run may use, created lazily from the inventory and the environment. */
export interface Backends {
  vault(): VaultBackend;
  /**
   * The current Engine-API JWT that `node` uses (the network's, or the node's own with `jwt_per_node`);
   * undefined when it was never seeded. Throws E_VAULT…/E_KMS… on backend errors, E_INPUT on a bad value.
   */
  engineJwt(node?: string): Promise<EngineJwtValue | undefined>;
  /** Live versions, newest first, with fingerprints (for reports: which node holds which version). */
  engineJwtVersions(node?: string): Promise<EngineJwtVersion[]>;
  /** Writes a fresh value (32 CSPRNG bytes, hex) as a new version; check-and-set against `expectVersion`. */
  rotateEngineJwt(node: string | undefined, expectVersion: number): Promise<{ version: number }>;
  /** Writes the value of an older `version` as a new version (rollback); returns the new version. */
  restoreEngineJwt(node: string | undefined, version: number): Promise<{ version: number; restoredFrom: number }>;
  /** The scope a JWT is shared by: `*` for the network's, the node's name with `jwt_per_node` (`kms.per_node`). */
  jwtScope(node?: string): string;
  // The AWS getters are optional only so that test doubles of Backends for Vault need not implement them;
  // createBackends always provides them.
  /** AWS KMS (region/endpoint from the inventory's `kms:` block and the environment, as the aws CLI finds them). */
  kms?(): KmsBackend;
  /** AWS Secrets Manager (same settings as `kms`). */
  secretsManager?(): SecretsManagerBackend;
  /** `backend: kms`: the Engine-API JWT as KMS blobs next to the inventory (`blobs/<network>/…`). */
  kmsJwt?(): KmsJwtStore;
  /** `backend: secrets-manager`: the Engine-API JWT as the secret `krypton/<network>/engine-jwt`. */
  smJwt?(): SmJwtStore;
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
  let kms: KmsBackend | undefined;
  let sm: SecretsManagerBackend | undefined;
  let kmsJwt: KmsJwtStore | undefined;
  let smJwt: SmJwtStore | undefined;
  const getKms = (): KmsBackend => (kms ??= kmsBackendFor(inv, env));
  const getSm = (): SecretsManagerBackend => (sm ??= secretsManagerBackendFor(inv, env));
  const getKmsJwt = (): KmsJwtStore => (kmsJwt ??= createKmsJwtStore(inv, getKms));
  const getSmJwt = (): SmJwtStore => (smJwt ??= createSmJwtStore(inv, getSm));
  /** The JWT store of a non-vault backend. */
  const aws = (): KmsJwtStore | SmJwtStore => (inv.backend === 'secrets-manager' ? getSmJwt() : getKmsJwt());
  const mount = inv.vault.kvMount;
  const readVersion = async (node: string | undefined, version?: number): Promise<EngineJwtValue | undefined> => {
    const path = engineJwtKvPath(inv, node);
    const kv = await getVault().kvRead(mount, path, version);
    if (!kv) return undefined;
    const hex = kv.data['hex'];
    const source = `${mount}/${path}`;
    if (!hex || !isEngineJwtHex(hex)) {
      throw new KryptonError('E_INPUT', `${source} version ${kv.version} has no field hex holding 64 lowercase hex characters`, {
        hint: 'write a valid value (krypton-secrets apply playbooks/rotate-jwt.yml) or fix the field name to "hex"',
      });
    }
    return { secret: hex, version: kv.version, source };
  };
  return {
    vault: getVault,
    kms: getKms,
    secretsManager: getSm,
    kmsJwt: getKmsJwt,
    smJwt: getSmJwt,
    jwtScope: (node) => ((inv.backend === 'vault' ? inv.vault.jwtPerNode : inv.kms?.perNode) && node ? node : '*'),
    async engineJwt(node) {
      if (inv.backend !== 'vault') return aws().current(node);
      return readVersion(node);
    },
    async engineJwtVersions(node) {
      if (inv.backend !== 'vault') return aws().versions(node);
      const meta = await getVault().kvMetadata(mount, engineJwtKvPath(inv, node));
      if (!meta) return [];
      const out: EngineJwtVersion[] = [];
      for (let v = meta.currentVersion; v >= 1 && out.length < 10; v--) {
        const st = meta.versions[String(v)];
        if (!st || st.deleted || st.destroyed) continue;
        const val = await readVersion(node, v).catch(() => undefined);
        if (val) out.push({ version: v, fingerprint: val.secret.fingerprint() });
      }
      return out;
    },
    async rotateEngineJwt(node, expectVersion) {
      if (inv.backend !== 'vault') return aws().rotate(node, expectVersion);
      return getVault().kvWrite(mount, engineJwtKvPath(inv, node), { hex: mintEngineJwtHex() }, { cas: expectVersion });
    },
    async restoreEngineJwt(node, version) {
      if (inv.backend !== 'vault') return aws().restore(node, version);
      const old = await readVersion(node, version);
      const cur = await getVault().kvMetadata(mount, engineJwtKvPath(inv, node));
      if (!old || !cur) {
        throw new KryptonError('E_INPUT', `${mount}/${engineJwtKvPath(inv, node)} has no live version ${version} to roll back to`, {
          hint: 'list versions with `bao kv metadata get` and pick one that is not deleted or destroyed',
        });
      }
      const w = await getVault().kvWrite(mount, engineJwtKvPath(inv, node), { hex: old.secret }, { cas: cur.currentVersion });
      return { version: w.version, restoredFrom: version };
    },
  };
}

/** `v3 (sha256:ab12cd34ef56)` for reports. */
export function describeVersion(v: EngineJwtVersion): string {
  return `v${v.version} (${shortFingerprint(v.fingerprint)})`;
}
