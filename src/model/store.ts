/**
 * The one interface every secret backend implements (src/backends/: KV v2 on Vault/OpenBao, KMS blobs, Secrets
 * Manager), chosen once from the inventory (src/backends/index.ts `openStore`). Tasks never see it: laptop
 * facts read through it and the executor writes through it, so a plan carries references ({@link SecretRef}) and
 * versions, never values.
 *
 * Every method throws KryptonError (E_VAULT…, E_KMS…, E_INPUT for an invalid stored value, E_PLAN_CONFLICT for a
 * lost check-and-set); none ever puts a value, a token or a raw library error in a message.
 */
import type { Secret } from '../core/secret.ts';
import type { Host, Inventory } from './inventory.ts';
import type { HostSecret, SecretRef } from './layout.ts';

/** The current value of a reference. `secret` holds the canonical bytes (as the host's file must hold them). */
export interface StoredValue {
  ref: SecretRef;
  secret: Secret;
  /** KV v2 version, blob version, or Secrets Manager version number (1, 2, …). */
  version: number;
  /** Where it lives, for messages: `secret/krypton/473374/engine-jwt`, `blobs/473374/engine-jwt/v2.enc`, `secretsmanager:krypton/…`. */
  source: string;
}

/**
 * The current version's bytes exactly as stored, NOT checked against the kind's format: only for `--fix-format`
 * (a JWT stored as `0x…`, in uppercase or with a CR LF, whose canonical form is then written as a new version).
 */
export interface RawValue {
  ref: SecretRef;
  /** The stored bytes (KV field, blob plaintext, SecretString) as they are. */
  secret: Secret;
  /** The version a check-and-set write over it must name (as {@link SecretStore.head} would say). */
  version: number;
  /** Where it lives, for messages (as {@link StoredValue.source}). */
  source: string;
}

/** One live version: its number and the full SHA-256 of its canonical bytes (never the value). */
export interface StoredVersion {
  version: number;
  fingerprint: string;
}

/** How host secrets reach the hosts with this store. */
export type Delivery =
  /** The host's Vault Agent renders them (AppRole, response-wrapped secret_id delivered by the laptop). */
  | 'agent'
  /** The host fetches them with its own AWS identity (`kms.decrypt: host`). */
  | 'host-fetch'
  /** The laptop reads them and writes them over SFTP (`kms.decrypt: operator`). */
  | 'operator';

/** A non-secret copy the host keeps for its own fetch (a KMS blob): version, bytes, SHA-256 of the bytes. */
export interface HostCopy {
  version: number;
  bytes: Buffer;
  sha256: string;
  /** For messages: `blobs/473374/engine-jwt/v2.enc`. */
  display: string;
}

/** Where a host's aws CLI sends requests (the region the operator resolved, and an endpoint override). */
export interface AwsTarget {
  region: string;
  endpointUrl?: string;
}

/** The host side of a store whose hosts fetch values themselves (KMS, Secrets Manager). */
export interface HostFetch {
  /** True when hosts keep a copy ({@link HostCopy}) to fetch from (KMS blobs); false for Secrets Manager. */
  readonly keepsCopy: boolean;
  /** The current copy of `ref` the hosts must hold, or undefined when none exists. */
  copy(ref: SecretRef): Promise<HostCopy | undefined>;
  /** Where the hosts' aws CLI sends requests. */
  target(): Promise<AwsTarget>;
  /**
   * argv of the fixed host-side fetch of `s` into its tmpfs path (no secret in it: paths, context, digests).
   * `sha256` pins the value the laptop expects ('' at boot: any valid value).
   */
  fetchArgv(inv: Inventory, host: Host, s: HostSecret, target: AwsTarget, sha256: string): string[];
  /** The error for a failed fetch (exit code, stderr of the host), in the operator's words. */
  failure(host: Host, s: HostSecret, code: number, stderr: string, target: AwsTarget): Error;
}

/** Why the value is stored under another key than the inventory names (Secrets Manager), or undefined. */
export type KeyDrift = string | undefined;

export interface SecretStore {
  readonly backend: Inventory['backend'];
  readonly delivery: Delivery;
  /** Where `ref` lives, for messages (no I/O). */
  describe(ref: SecretRef): string;
  /** The current value, validated and in canonical form; undefined when never written (or deleted). */
  current(ref: SecretRef): Promise<StoredValue | undefined>;
  /**
   * The current version of a single-field kind (the Engine-API JWT, a Horcrux key file) as stored, without the
   * format check {@link current} makes; undefined when absent. Only `--fix-format` reads it. Throws as `current`
   * does for backend faults (never E_INPUT for the value's form).
   */
  raw?(ref: SecretRef): Promise<RawValue | undefined>;
  /**
   * The version a check-and-set write must name now (0: never written; Secrets Manager: also when the current
   * version was not written by krypton-secrets, which `current` then reports as version 0 too).
   */
  head(ref: SecretRef): Promise<number>;
  /** Live versions, newest first (at most `limit`, default 10), with fingerprints. */
  versions(ref: SecretRef, limit?: number): Promise<StoredVersion[]>;
  /**
   * Writes `value` (canonical bytes of the ref's kind; checked again here) as a new version, only if the current
   * version is still `expectVersion` (0: only if absent, or see {@link head}). Returns the new version.
   * @throws KryptonError E_PLAN_CONFLICT when someone else wrote meanwhile; E_INPUT for an invalid value.
   */
  write(ref: SecretRef, value: Secret, expectVersion: number): Promise<{ version: number }>;
  /**
   * The one place a fresh value is made: 32 CSPRNG bytes as 64 lowercase hex (Engine-API JWT), written as
   * {@link write} does. @throws KryptonError E_INPUT for a kind that is imported, not minted.
   */
  mint(ref: SecretRef, expectVersion: number): Promise<{ version: number }>;
  /** Writes the value of an earlier `version` again as the newest version (rollback). */
  restore(ref: SecretRef, version: number): Promise<{ version: number; restoredFrom: number }>;
  /** Undoes a write of this process (import all-or-nothing): best effort, restores `previous` when given. */
  undo(ref: SecretRef, version: number, previous: StoredValue | undefined): Promise<void>;
  /** Throws (before anything is written) when the operator's credentials may not write every ref. */
  checkWrite(refs: readonly SecretRef[]): Promise<void>;
  /** Secrets Manager: why the value must be re-written under the inventory's key. Others: undefined. */
  keyDrift(ref: SecretRef): Promise<KeyDrift>;
  /** Vault/OpenBao (`delivery: agent`): the API for policies, AppRole and response wrapping. */
  readonly vault?: VaultApi;
  /** KMS / Secrets Manager: the host-side fetch. */
  readonly hostFetch?: HostFetch;
}

/** A response-wrapped secret_id, as the laptop holds it before delivery. */
export interface WrappedSecretId {
  /** The single-use wrapping token (the thing delivered to the host). */
  wrappingToken: Secret;
  /** Wrapping token accessor (not secret; safe to log). */
  accessor: string;
  /** The path that created the wrapped response, as Vault reports it (`auth/approle/role/<role>/secret-id`). */
  creationPath: string;
  /** Wrap TTL in seconds. */
  ttlSeconds: number;
}

/** The Vault/OpenBao calls the agent side needs (HTTP API v1; see src/backends/vault.ts). */
export interface VaultApi {
  /** Where requests go, e.g. `http://127.0.0.1:8200` (for messages). */
  readonly address: string;
  /** Raw `GET /v1/<path>`; the response's `data`, or undefined on 404. */
  read(path: string): Promise<Record<string, unknown> | undefined>;
  /** Raw `PUT /v1/<path>` with a JSON body. */
  write(path: string, body: Record<string, unknown>): Promise<Record<string, unknown> | undefined>;
  /** ACL policy text, or undefined. */
  policyRead(name: string): Promise<string | undefined>;
  /** The role's role_id (treated as a secret). */
  roleId(approleMount: string, role: string): Promise<Secret>;
  /** A new secret_id for the role, response-wrapped for `wrapTtlSeconds` seconds. */
  wrappedSecretId(approleMount: string, role: string, wrapTtlSeconds: number): Promise<WrappedSecretId>;
  /** `sys/wrapping/lookup` of a wrapping token: its creation path, TTL (seconds) and creation time. */
  wrapLookup(token: Secret): Promise<{ creationPath: string; creationTtl: number; creationTime: string }>;
  /** `auth/token/lookup-self` of the operator's token (or of `token`): renewable, remaining TTL (seconds), policies. */
  tokenLookupSelf(token?: Secret): Promise<{ renewable: boolean; ttlSeconds: number; policies: string[] }>;
  /** An orphan token with exactly `policies` (no `default` policy), TTL `ttlSeconds` (verify uses it to ask `sys/capabilities`). */
  createToken(opts: { policies: string[]; ttlSeconds: number; displayName?: string }): Promise<Secret>;
  /** `sys/capabilities`: what `token` may do on each of `paths` (`["deny"]` when nothing). */
  capabilities(token: Secret, paths: string[]): Promise<Record<string, string[]>>;
}
