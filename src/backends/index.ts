/**
 * The one place the secret backend is chosen: {@link openStore} reads `inv.backend` and loads only that
 * backend's modules, with dynamic `import()` — so commands that never open a store (`--help`, `--version`,
 * `render`) load neither the AWS SDK nor node-vault, and a Vault fleet never loads the AWS SDK.
 *
 * Keep it that way: this file has no static import of vault.ts, kms.ts, secrets-manager.ts or the stores
 * (test/unit/backends/store/open-store.test.ts checks both the imports and what a process really loads).
 */
import type { Inventory } from '../model/inventory.ts';
import type { SecretStore } from '../model/store.ts';

/**
 * The {@link SecretStore} of `inv`, with credentials found in `env` the way the bao/vault and aws CLIs find
 * them (Vault: the BAO_… and VAULT_… variables and ~/.vault-token; AWS: the SDK's default chain, region from `kms.region`,
 * AWS_REGION, AWS_DEFAULT_REGION or the profile). Nothing connects until a store method is called.
 * @throws KryptonError E_VAULT_CONFIG when Vault's address or token cannot be found.
 */
export async function openStore(inv: Inventory, env: NodeJS.ProcessEnv = process.env): Promise<SecretStore> {
  const backend = inv.backend;
  switch (backend) {
    case 'vault': {
      const [{ createVaultBackend, resolveVaultSettings }, { createVaultStore }] = await Promise.all([import('./vault.ts'), import('./vault-store.ts')]);
      const settings = resolveVaultSettings(env, {
        ...(inv.vault.address ? { address: inv.vault.address } : {}),
        ...(inv.vault.namespace ? { namespace: inv.vault.namespace } : {}),
        ...(inv.vault.caCert ? { caCert: inv.vault.caCert } : {}),
      });
      return createVaultStore(inv, createVaultBackend(settings));
    }
    case 'kms': {
      const [{ kmsBackendFor }, { createKmsStore }] = await Promise.all([import('./kms.ts'), import('./kms-store.ts')]);
      return createKmsStore(inv, kmsBackendFor(inv, env));
    }
    case 'secrets-manager': {
      const [{ secretsManagerBackendFor }, { kmsBackendFor }, { createSmStore }] = await Promise.all([import('./secrets-manager.ts'), import('./kms.ts'), import('./sm-store.ts')]);
      // KMS only for DescribeKey (which key a secret is under), created when first needed.
      let kms: ReturnType<typeof kmsBackendFor> | undefined;
      return createSmStore(inv, secretsManagerBackendFor(inv, env), () => (kms ??= kmsBackendFor(inv, env)));
    }
    default: {
      const never: never = backend;
      throw new Error(`internal: unknown backend ${String(never)}`);
    }
  }
}
