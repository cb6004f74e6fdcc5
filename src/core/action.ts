import type { Secret } from './secret.ts';

/**
 * What a task's plan asks the executor to do. Plans are data: the executor applies them through a
 * transport (remote actions) or a backend (laptop-side actions). Every argv element is quoted by the
 * transport; tasks never build shell strings. Secret values travel only as {@link Secret}: on stdin, in
 * an SFTP write, or in a backend request body; they serialise as `[secret sha256:…]`.
 */
export type Action =
  | ExecAction
  | PutAction
  | RemoveAction
  | VaultWriteAction
  | VaultSeedAction
  | DeliverSecretIdAction
  | RotateJwtAction
  | KmsSeedAction
  | KmsPutBlobAction
  | FetchOnHostAction
  | SmSeedAction
  | SmSetKeyAction;

/**
 * `backend: kms`: mint an Engine-API JWT in memory at apply time, KMS-Encrypt it under the node's encryption
 * context and write the blob as version 1 of the laptop's blob store (exclusive create). The plaintext never
 * touches a disk.
 */
export interface KmsSeedAction {
  kind: 'kms.seed-engine-jwt';
  /** The node, with `kms.per_node`; undefined for the network's JWT. */
  node?: string;
  description: string;
}

/**
 * Copy the laptop's current blob (`version`, whose SHA-256 must still be `sha256`) to the host's `path` over
 * SFTP (atomic, `mode`). Blobs are not secret; the digest check catches a blob changed between plan and apply.
 */
export interface KmsPutBlobAction {
  kind: 'kms.put-blob';
  node?: string;
  version: number;
  sha256: string;
  path: string;
  mode: string;
  description: string;
}

/**
 * Run the host-side fetch (`sh -c FETCH_SCRIPT sh <args…>`, see render/kms-host.ts): the host's aws CLI
 * decrypts the blob (KMS) or reads the secret (Secrets Manager) with its own identity into the tmpfs. No secret
 * in `argv`. A failure is translated from the aws CLI's stderr (E_KMS_CONTEXT, E_KMS_DENIED, …).
 */
export interface FetchOnHostAction {
  kind: 'kms.fetch-on-host';
  backend: 'kms' | 'secrets-manager';
  argv: string[];
  /** For messages: what is fetched (`the blob /opt/krypton/secrets/jwt.hex.enc`, `secret krypton/…`). */
  subject: string;
  keyId?: string;
  /** For messages: the encryption context expected (`purpose=…, network=…`). */
  context?: string;
  region: string;
  endpointUrl?: string;
  description: string;
}

/** `backend: secrets-manager`: create the secret under the inventory's CMK with a JWT minted at apply time (version 1). */
export interface SmSeedAction {
  kind: 'sm.seed-engine-jwt';
  node?: string;
  description: string;
}

/** `backend: secrets-manager`: write the current value again as a new version under the inventory's CMK. */
export interface SmSetKeyAction {
  kind: 'sm.set-key';
  node?: string;
  description: string;
}

/**
 * Write a fresh Engine-API JWT as a new backend version (new KV v2 version, KMS blob or Secrets Manager
 * version), check-and-set against `expectVersion` so a concurrent rotation is refused, and record it in the
 * run so later waves do not rotate again.
 */
export interface RotateJwtAction {
  kind: 'jwt.rotate';
  /** The node whose JWT it is, with `jwt_per_node`; undefined for the network's. */
  node?: string;
  expectVersion: number;
  description: string;
}

/** Run `argv` on the host (no shell unless argv[0] is one), optionally with `stdin`, in `cwd`. Non-zero exit fails. */
export interface ExecAction {
  kind: 'exec';
  argv: string[];
  stdin?: Secret | string;
  cwd?: string;
  /** One line for people: what this does and why. */
  description: string;
}

/**
 * Write `content` to `path` over SFTP: created with `mode` (octal string, e.g. "0600") in a temp name in the
 * same directory, fsynced, then renamed over `path` (posix-rename@openssh.com), so no reader ever sees a
 * partial file or a wider mode. `owner`/`group` are names or numeric ids (chown after the write, before rename).
 */
export interface PutAction {
  kind: 'put';
  path: string;
  content: Secret | string;
  mode: string;
  owner?: string;
  group?: string;
  description: string;
}

/** Remove `path` on the host; with `shred`, overwrite it first (`shred -u` where present). */
export interface RemoveAction {
  kind: 'remove';
  path: string;
  shred?: boolean;
  description: string;
}

/** A raw Vault API write on the laptop (`PUT /v1/<path>`), e.g. a policy or an AppRole role. */
export interface VaultWriteAction {
  kind: 'vault.write';
  /** API path without `/v1/`, e.g. `sys/policies/acl/krypton-node-473374-val-1`. */
  path: string;
  body: Record<string, unknown>;
  description: string;
}

/**
 * Mint a fresh Engine-API JWT (32 CSPRNG bytes as 64 lowercase hex) at apply time and write it to KV v2
 * `<mount>/data/<path>` as `{<field>: hex}` with check-and-set `cas` (0 = only if absent).
 */
export interface VaultSeedAction {
  kind: 'vault.seed-engine-jwt';
  mount: string;
  path: string;
  field: string;
  cas: number;
  description: string;
}

/**
 * Trusted-orchestrator delivery: the laptop reads the role's role_id and generates a response-wrapped
 * secret_id (wrap TTL `wrapTtlSeconds`), looks the wrapping token up and checks its creation path is
 * `auth/<mount>/role/<role>/secret-id`, then writes role_id and the wrapping token to the host (0600, SFTP).
 */
export interface DeliverSecretIdAction {
  kind: 'vault.deliver-secret-id';
  approleMount: string;
  role: string;
  roleIdPath: string;
  secretIdPath: string;
  wrapTtlSeconds: number;
  owner?: string;
  description: string;
}

/** Helpers that build actions with a description. */
export const act = {
  exec(argv: string[], description: string, opts: { stdin?: Secret | string; cwd?: string } = {}): ExecAction {
    return { kind: 'exec', argv, description, ...opts };
  },
  put(path: string, content: Secret | string, mode: string, description: string, opts: { owner?: string; group?: string } = {}): PutAction {
    return { kind: 'put', path, content, mode, description, ...opts };
  },
  remove(path: string, description: string, shred = false): RemoveAction {
    return { kind: 'remove', path, shred, description };
  },
  vaultWrite(path: string, body: Record<string, unknown>, description: string): VaultWriteAction {
    return { kind: 'vault.write', path, body, description };
  },
};
