import type { SecretRef } from './layout.ts';

/**
 * What a task's plan asks the executor to do. Plans are data and carry **references, never values**: a
 * stored value is named by its {@link SecretRef} and version, and the executor reads it from the store at apply
 * time (checking the version still holds). Every argv element is quoted by the transport; tasks never build
 * shell strings. Kinds are backend-neutral; {@link touchesHost} classifies each one exhaustively.
 */
export type Action = ExecAction | PutAction | RemoveAction | DeliverAction | FetchOnHostAction | StoreWriteAction | AccessWriteAction | DeliverCredentialsAction;

/** Run `argv` on the host (no shell unless argv[0] is one), optionally with `stdin`, in `cwd`. Non-zero exit fails. */
export interface ExecAction {
  kind: 'exec';
  argv: string[];
  /** Not secret here: plans never hold values (a secret's bytes reach a host only through deliver / fetch-on-host). */
  stdin?: string;
  cwd?: string;
  /** One line for people: what this does and why. */
  description: string;
}

/**
 * Write non-secret `content` to `path` over SFTP: created with `mode` (octal string, e.g. "0600") in a temp name
 * in the same directory, fsynced, then renamed over `path` (posix-rename@openssh.com), so no reader ever sees a
 * partial file or a wider mode. `owner`/`group` are names or numeric ids (chown before the rename).
 */
export interface PutAction {
  kind: 'put';
  path: string;
  content: string;
  mode: string;
  owner?: string;
  group?: string;
  description: string;
}

/** Remove `path` on the host; with `shred`, overwrite it first (`shred -u` where present; a symlink is only unlinked). */
export interface RemoveAction {
  kind: 'remove';
  path: string;
  shred?: boolean;
  description: string;
}

/**
 * Operator-side delivery: read `ref` from the store at apply time and write it to the host's `path` over SFTP
 * (as {@link PutAction}). `what: 'value'` writes the value itself (only onto a tmpfs: `kms.decrypt: operator`);
 * `what: 'host-copy'` the store's non-secret host copy (a KMS blob). Refused (E_PLAN_CONFLICT) when the store's
 * current version or fingerprint is no longer `version`/`sha256` (someone wrote meanwhile).
 */
export interface DeliverAction {
  kind: 'deliver';
  ref: SecretRef;
  what: 'value' | 'host-copy';
  version: number;
  /** SHA-256 of what is written (the value's fingerprint, or the blob's digest). */
  sha256: string;
  path: string;
  mode: string;
  owner?: string;
  group?: string;
  description: string;
}

/**
 * Run the store's fixed host-side fetch of the host secret `name` (its path, mode, owner and format come from the
 * layout): the host's own identity decrypts or reads `ref` into the tmpfs, checked against `sha256`. No secret
 * in any argv. A failure is translated by the store (E_KMS_CONTEXT, E_KMS_DENIED, …).
 */
export interface FetchOnHostAction {
  kind: 'fetch-on-host';
  ref: SecretRef;
  /** The host secret's name (`engine-jwt`, `node-env`, `ecies`, `shard`). */
  name: string;
  version: number;
  sha256: string;
  description: string;
}

/**
 * A laptop-side write to the secret store, check-and-set against `expectVersion` (0: only if absent):
 * `mint` a fresh value (the one place values are made), `restore` version `from` as the newest, or `rewrite`
 * the current value under the inventory's key (Secrets Manager key drift). Records `rotated:<refKey>` in the run
 * when `op` is `mint` and `rotation` is set, so later waves do not rotate again.
 */
export interface StoreWriteAction {
  kind: 'store-write';
  ref: SecretRef;
  op: 'mint' | 'restore' | 'rewrite';
  expectVersion: number;
  from?: number;
  rotation?: boolean;
  description: string;
}

/** A laptop-side write to the store's access control (Vault: an ACL policy or an AppRole role; `PUT /v1/<path>`). */
export interface AccessWriteAction {
  kind: 'access-write';
  /** API path without `/v1/`, e.g. `sys/policies/acl/krypton-node-473374-val-1`. */
  path: string;
  body: Record<string, unknown>;
  description: string;
}

/**
 * Trusted-orchestrator delivery of the host agent's credentials: the laptop reads the role's role_id and
 * generates a response-wrapped secret_id (wrap TTL `wrapTtlSeconds`), checks the wrapping token's creation path
 * is `auth/<mount>/role/<role>/secret-id`, clears temp files of an interrupted upload, then writes role_id and the
 * wrapping token to the host (0600, SFTP).
 */
export interface DeliverCredentialsAction {
  kind: 'deliver-credentials';
  approleMount: string;
  role: string;
  roleIdPath: string;
  secretIdPath: string;
  wrapTtlSeconds: number;
  owner?: string;
  description: string;
}

/**
 * True when applying `a` changes the host (so facts gathered before it are stale), false for laptop-side writes.
 * Exhaustive: a new action kind that is not classified here does not compile.
 */
export function touchesHost(a: Action): boolean {
  switch (a.kind) {
    case 'exec':
    case 'put':
    case 'remove':
    case 'deliver':
    case 'fetch-on-host':
    case 'deliver-credentials':
      return true;
    case 'store-write':
    case 'access-write':
      return false;
    default: {
      const never: never = a;
      throw new Error(`internal: unclassified action ${JSON.stringify(never)}`);
    }
  }
}

/** True when applying `a` writes to the store (the run's memo of stored values must then be dropped). */
export function writesStore(a: Action): boolean {
  return a.kind === 'store-write' || a.kind === 'access-write';
}

/** Helpers that build actions with a description. */
export const act = {
  exec(argv: string[], description: string, opts: { stdin?: string; cwd?: string } = {}): ExecAction {
    return { kind: 'exec', argv, description, ...opts };
  },
  put(path: string, content: string, mode: string, description: string, opts: { owner?: string; group?: string } = {}): PutAction {
    return { kind: 'put', path, content, mode, description, ...stripUndefined(opts) };
  },
  remove(path: string, description: string, shred = false): RemoveAction {
    return { kind: 'remove', path, shred, description };
  },
  accessWrite(path: string, body: Record<string, unknown>, description: string): AccessWriteAction {
    return { kind: 'access-write', path, body, description };
  },
};

function stripUndefined<T extends Record<string, unknown>>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}
