/**
 * What a host must hold, as data, and every name krypton-secrets gives its things — in one pure module that
 * backends, renderers, facts and tasks all read (no I/O, no clock, no globals).
 *
 * - A **secret reference** ({@link SecretRef}) names one stored value: its kind and its scope (network-wide,
 *   `*`, or one node's / cosigner's own).
 * - A **host secret** ({@link HostSecret}) is one file a host must hold: the reference, the path on the host's
 *   tmpfs, mode/owner/group, the format, and the services that read it (they restart when it changes).
 *   {@link hostSecrets} lists them for a host; adding a secret kind means adding it here and a renderer.
 * - **Names in every backend**: KV v2 paths and fields (Vault/OpenBao), encryption contexts and blob paths
 *   (KMS), secret names and VersionIds (Secrets Manager), the Vault Agent's files and templates, ACL policy and
 *   AppRole role names.
 *
 * Sources: Vault HTTP API, secret/kv/kv-v2 (`<mount>/data/<path>`, `<mount>/metadata/<path>`); auth/approle and
 * system/policies (role and policy names are lowercased by Vault, so we produce lowercase names); AWS KMS
 * Encrypt/Decrypt (encryption context: exact, case-sensitive string map); AWS Secrets Manager
 * ClientRequestToken (32–64 characters); Docker Compose "Syntax for environment files" (single-quoted values
 * are literal; `\'` escapes a quote).
 */
import { posix } from 'node:path';
import { KryptonError } from '../core/errors.ts';
import { SECRETS_DIR, type CosignerHost, type Host, type Inventory, type NodeHost } from './inventory.ts';

// ------------------------------------------------------------------------------------------------------------
// Name components
// ------------------------------------------------------------------------------------------------------------

const SEGMENT = /^[A-Za-z0-9_.-]+$/;

/**
 * Checks one name component (a network, node or cosigner name, one path segment).
 * @throws KryptonError E_INPUT when it is empty, `.`/`..`, or holds anything but `[A-Za-z0-9_.-]`.
 */
export function assertSegment(label: string, value: string): string {
  if (!SEGMENT.test(value) || value === '.' || value === '..')
    throw new KryptonError('E_INPUT', `invalid ${label} ${JSON.stringify(value)} for a Vault path or name`, {
      hint: `use letters, digits, "_", "." and "-" only (not "." or "..")`,
    });
  return value;
}

/**
 * Normalises a Vault path (mount or secret path): strips leading/trailing `/` and checks every segment with
 * {@link assertSegment}. `label` names the thing in the error ("KV mount", "secret path", …).
 * @throws KryptonError E_INPUT for an empty path or a bad segment (`..`, empty `a//b`, spaces, `*`, `?`, …).
 */
export function normaliseVaultPath(label: string, path: string): string {
  const trimmed = path.replace(/^\/+|\/+$/g, '');
  if (trimmed === '') throw new KryptonError('E_INPUT', `empty ${label}`, { hint: `give a ${label} such as "secret"` });
  for (const seg of trimmed.split('/')) assertSegment(`${label} segment in ${JSON.stringify(path)}`, seg);
  return trimmed;
}

// ------------------------------------------------------------------------------------------------------------
// Secret kinds and references
// ------------------------------------------------------------------------------------------------------------

/** The kinds of value krypton-secrets stores and delivers. */
export type SecretKind = 'engine-jwt' | 'node-env' | 'horcrux-ecies' | 'horcrux-shard';

/** Every kind, in the order hosts list them. */
export const SECRET_KINDS: readonly SecretKind[] = ['engine-jwt', 'node-env', 'horcrux-ecies', 'horcrux-shard'];

/**
 * How the bytes of a kind look: `hex64` exactly 64 lowercase hex characters (no `0x`, no newline);
 * `env` a compose env file in canonical form ({@link renderEnvFile}); `json` a Horcrux key file, verbatim.
 */
export type SecretFormat = 'hex64' | 'env' | 'json';

/** What is fixed per kind. */
export interface SecretKindSpec {
  kind: SecretKind;
  /** For people: "Engine-API JWT". */
  label: string;
  format: SecretFormat;
  /** `purpose` of its KMS encryption context. */
  purpose: string;
  /** Last segment of its KV v2 path, Secrets Manager name and blob dir. */
  leaf: string;
  /** True when krypton-secrets makes fresh values itself (`mint`); others are imported. */
  mintable: boolean;
  /** What to run when the store holds nothing yet. */
  missingHint: string;
}

export const KIND_SPECS: Readonly<Record<SecretKind, SecretKindSpec>> = {
  'engine-jwt': {
    kind: 'engine-jwt',
    label: 'Engine-API JWT',
    format: 'hex64',
    purpose: 'krypton-engine-jwt',
    leaf: 'engine-jwt',
    mintable: true,
    missingHint: 'run secret.seed first (playbooks/provision.yml does)',
  },
  'node-env': {
    kind: 'node-env',
    label: 'node env-secrets',
    format: 'env',
    purpose: 'krypton-node-env',
    leaf: 'env',
    mintable: false,
    missingHint: 'store them first: krypton-secrets import-env <file> -i <inventory>',
  },
  'horcrux-ecies': {
    kind: 'horcrux-ecies',
    label: 'Horcrux ECIES keys',
    format: 'json',
    purpose: 'krypton-horcrux-ecies',
    leaf: 'ecies',
    mintable: false,
    missingHint: 'import the key generation output first: krypton-secrets import-horcrux <dir> -i <inventory>',
  },
  'horcrux-shard': {
    kind: 'horcrux-shard',
    label: 'Horcrux key shard',
    format: 'json',
    purpose: 'krypton-horcrux-shard',
    leaf: 'shard',
    mintable: false,
    missingHint: 'import the key generation output first: krypton-secrets import-horcrux <dir> -i <inventory>',
  },
};

/** One stored value: its kind, its network (chain id) and its scope (`*` network-wide, else a host's name). */
export interface SecretRef {
  kind: SecretKind;
  network: string;
  scope: string;
}

/** Scope of a network-wide value. */
export const NETWORK_SCOPE = '*';

/** `engine-jwt@*`, `node-env@val-1`: a stable key for maps and memos (not for people). */
export function refKey(r: SecretRef): string {
  return `${r.network}/${r.kind}@${r.scope}`;
}

/** True when both name the same stored value. */
export function sameRef(a: SecretRef, b: SecretRef): boolean {
  return refKey(a) === refKey(b);
}

/** "the Engine-API JWT of 473374", "the node env-secrets of val-1", for messages. */
export function describeRef(r: SecretRef): string {
  return `the ${KIND_SPECS[r.kind].label} of ${r.scope === NETWORK_SCOPE ? `network ${r.network}` : r.scope}`;
}

/** True when `inv` gives each node its own Engine-API JWT (`vault.jwt_per_node`, or `kms.per_node`). */
export function jwtPerNode(inv: Inventory): boolean {
  return inv.jwtPerNode === true;
}

/**
 * The reference of `kind` as host `hostName` uses it: per host when the inventory scopes it so (Horcrux key
 * files always are), else the network's.
 */
export function refFor(inv: Inventory, kind: SecretKind, hostName: string): SecretRef {
  let perHost: boolean;
  if (kind === 'engine-jwt') perHost = jwtPerNode(inv);
  else if (kind === 'node-env') perHost = inv.nodes.find((n) => n.name === hostName)?.env?.perNode === true;
  else perHost = true;
  return { kind, network: assertSegment('network', inv.network), scope: perHost ? assertSegment('host', hostName) : NETWORK_SCOPE };
}

// ------------------------------------------------------------------------------------------------------------
// What a host holds
// ------------------------------------------------------------------------------------------------------------

/** One file a host must hold. */
export interface HostSecret {
  ref: SecretRef;
  /** Short name, unique on the host: `engine-jwt`, `node-env`, `ecies`, `shard`. */
  name: string;
  /** Absolute path on the host (always on a tmpfs: {@link HostSecret.dir}). */
  path: string;
  /** The tmpfs directory it lands in (`/run/krypton-secrets`, or a cosigner's key dir). */
  dir: string;
  /** Octal mode string, e.g. "0600". */
  mode: string;
  owner?: string;
  group?: string;
  format: SecretFormat;
  /** Services that read it at start, and restart when it changes (`el`, `cl`; `horcrux`). */
  readers: string[];
}

/** The Engine-API JWT file on every node (ARCHITECTURE.md: exactly 64 lowercase hex, no newline). */
export const JWT_FILE = `${SECRETS_DIR}/jwt.hex`;

/** Default path of a node's env-secrets file on the tmpfs. */
export const NODE_ENV_FILE = `${SECRETS_DIR}/node.env`;

/** Every file `host` must hold, in a fixed order (JWT, env, then a cosigner's ECIES keys and shard). */
export function hostSecrets(inv: Inventory, host: Host): HostSecret[] {
  if (host.kind === 'node') return nodeSecrets(inv, host);
  const s = cosignerSettings(inv, host);
  const file = (kind: 'horcrux-ecies' | 'horcrux-shard', name: 'ecies' | 'shard'): HostSecret => ({
    ref: refFor(inv, kind, host.name),
    name,
    path: s.keyFiles[name],
    dir: s.keyDir,
    mode: '0600',
    ...(s.owner ? { owner: s.owner } : {}),
    ...(s.group ? { group: s.group } : {}),
    format: 'json',
    readers: ['horcrux'],
  });
  return [file('horcrux-ecies', 'ecies'), file('horcrux-shard', 'shard')];
}

function nodeSecrets(inv: Inventory, node: NodeHost): HostSecret[] {
  const out: HostSecret[] = [
    {
      ref: refFor(inv, 'engine-jwt', node.name),
      name: 'engine-jwt',
      path: JWT_FILE,
      dir: SECRETS_DIR,
      mode: node.jwt.mode,
      ...(node.jwt.owner ? { owner: node.jwt.owner } : {}),
      ...(node.jwt.group ? { group: node.jwt.group } : {}),
      format: 'hex64',
      readers: ['el', 'cl'],
    },
  ];
  if (node.env) {
    out.push({
      ref: refFor(inv, 'node-env', node.name),
      name: 'node-env',
      path: node.env.path,
      dir: posix.dirname(node.env.path),
      mode: node.env.mode,
      ...(node.env.owner ? { owner: node.env.owner } : {}),
      ...(node.env.group ? { group: node.env.group } : {}),
      format: 'env',
      readers: [...node.env.services],
    });
  }
  return out;
}

/** The host's secret of `kind`, or undefined when it holds none. */
export function hostSecret(inv: Inventory, host: Host, kind: SecretKind): HostSecret | undefined {
  return hostSecrets(inv, host).find((s) => s.ref.kind === kind);
}

/** The tmpfs directories `host` needs (the secrets dir first, then a cosigner's key dir), each once. */
export function tmpfsDirs(inv: Inventory, host: Host): string[] {
  return [...new Set([SECRETS_DIR, ...hostSecrets(inv, host).map((s) => s.dir)])];
}

/** The stored values a run over `hosts` needs, each once (e.g. one network JWT for a whole fleet). */
export function refsOf(inv: Inventory, hosts: readonly Host[]): SecretRef[] {
  const seen = new Map<string, SecretRef>();
  for (const h of hosts) for (const s of hostSecrets(inv, h)) seen.set(refKey(s.ref), s.ref);
  return [...seen.values()];
}

// ------------------------------------------------------------------------------------------------------------
// Vault / OpenBao
// ------------------------------------------------------------------------------------------------------------

/**
 * The KV v2 secret path (below the mount) of a value: `krypton/<network>/<leaf>`, or
 * `krypton/<network>/nodes/<node>/<leaf>` for a node's own, `krypton/<network>/horcrux/<cosigner>/<leaf>` for a
 * cosigner's key files (one subtree per cosigner, so a policy grants its own only).
 */
export function kvPath(r: SecretRef): string {
  const net = assertSegment('network', r.network);
  const leaf = KIND_SPECS[r.kind].leaf;
  if (r.kind === 'horcrux-ecies' || r.kind === 'horcrux-shard') return `krypton/${net}/horcrux/${assertSegment('cosigner', r.scope)}/${leaf}`;
  return r.scope === NETWORK_SCOPE ? `krypton/${net}/${leaf}` : `krypton/${net}/nodes/${assertSegment('node', r.scope)}/${leaf}`;
}

/** KV v2 data path, `<mount>/data/<path>` (e.g. `secret/data/krypton/473374/engine-jwt`), for API calls and ACL policies. */
export function kvDataPath(mount: string, path: string): string {
  return `${normaliseVaultPath('KV mount', mount)}/data/${normaliseVaultPath('secret path', path)}`;
}

/** KV v2 metadata path, `<mount>/metadata/<path>`. */
export function kvMetadataPath(mount: string, path: string): string {
  return `${normaliseVaultPath('KV mount', mount)}/metadata/${normaliseVaultPath('secret path', path)}`;
}

/** `secret/krypton/473374/engine-jwt` (mount and path), for messages. */
export function kvSource(inv: Inventory, r: SecretRef): string {
  return `${inv.vault.kvMount}/${kvPath(r)}`;
}

/** The one KV v2 field of a single-field kind (`hex` for the JWT, `json` for a key file); undefined for env (each field a variable). */
export function kvField(kind: SecretKind): string | undefined {
  if (kind === 'engine-jwt') return 'hex';
  if (kind === 'horcrux-ecies' || kind === 'horcrux-shard') return 'json';
  return undefined;
}

/** ACL policy name of a host: `krypton-node-<network>-<node>` / `krypton-cosigner-<network>-<cosigner>` (lowercase). */
export function policyName(inv: Inventory, host: Pick<Host, 'kind' | 'name'>): string {
  return `krypton-${host.kind}-${assertSegment('network', inv.network)}-${assertSegment(host.kind, host.name)}`.toLowerCase();
}

/** AppRole role name of a host: the same string as its policy (one role, one policy per host). */
export function roleName(inv: Inventory, host: Pick<Host, 'kind' | 'name'>): string {
  return policyName(inv, host);
}

/** The Vault Agent's own files on a host, all on the secrets tmpfs (never in a cosigner's key dir). */
export const AGENT_FILES = {
  config: `${SECRETS_DIR}/vault-agent.hcl`,
  roleId: `${SECRETS_DIR}/role_id`,
  secretId: `${SECRETS_DIR}/secret_id`,
  pid: `${SECRETS_DIR}/agent.pid`,
  tokenSink: `${SECRETS_DIR}/agent-token`,
} as const;

/** The agent template that renders a host secret: `/run/krypton-secrets/<name>.ctmpl` (`jwt.ctmpl` for the JWT, as before). */
export function templatePath(s: Pick<HostSecret, 'name'>): string {
  const base = s.name === 'engine-jwt' ? 'jwt' : s.name === 'ecies' ? 'ecies_keys' : s.name;
  return `${SECRETS_DIR}/${base}.ctmpl`;
}

// ------------------------------------------------------------------------------------------------------------
// AWS KMS
// ------------------------------------------------------------------------------------------------------------

/**
 * The encryption context a value's blob is bound to: `purpose`, `network`, and `node` (a node's own value) or
 * `cosigner` (a key file). KMS requires the identical context (case-sensitive) to decrypt.
 */
export function encryptionContext(r: SecretRef): Record<string, string> {
  const ctx: Record<string, string> = { purpose: KIND_SPECS[r.kind].purpose, network: assertSegment('network', r.network) };
  if (r.scope !== NETWORK_SCOPE) ctx[r.kind.startsWith('horcrux-') ? 'cosigner' : 'node'] = assertSegment('host', r.scope);
  return ctx;
}

/** `purpose=krypton-engine-jwt, network=473374[, node=val-1]`, for messages. */
export function describeContext(ctx: Record<string, string>): string {
  return Object.entries(ctx)
    .map(([k, v]) => `${k}=${v}`)
    .join(', ');
}

/**
 * The blob dir of a value below the blob root (`<inventory dir>/blobs`), as path segments:
 * `<network>/<leaf>`, `<network>/nodes/<node>/<leaf>`, `<network>/horcrux/<cosigner>/<leaf>`.
 */
export function blobDirSegments(r: SecretRef): string[] {
  return kvPath(r).split('/').slice(1);
}

/** Where a host keeps the current blob of `s` (not secret; persistent disk is fine): see the inventory's `kms.blob_dir` and the Horcrux home. */
export function hostBlobPath(inv: Inventory, host: Host, s: Pick<HostSecret, 'name' | 'path'>): string {
  if (host.kind === 'cosigner') return posix.join(cosignerSettings(inv, host).home, 'blobs', `${posix.basename(s.path)}.enc`);
  const dir = inv.kms?.blobDir ?? '/opt/krypton/secrets';
  return `${dir}/${s.name === 'engine-jwt' ? 'jwt.hex' : posix.basename(s.path)}.enc`;
}

// ------------------------------------------------------------------------------------------------------------
// AWS Secrets Manager
// ------------------------------------------------------------------------------------------------------------

/** Secrets Manager name of a value: the KV path (`krypton/<network>/engine-jwt`, `krypton/<network>/nodes/<node>/env`, …). */
export function smSecretName(r: SecretRef): string {
  return kvPath(r);
}

/** Secrets Manager VersionId krypton-secrets gives version `n` of `kind` (ClientRequestToken: 32–64 characters). */
export function smVersionId(n: number, kind: SecretKind = 'engine-jwt'): string {
  const prefix = kind === 'engine-jwt' ? 'krypton-engine-jwt' : `krypton-secret-${KIND_SPECS[kind].leaf}`;
  return `${prefix}-v${String(n).padStart(13, '0')}`;
}

/** The version number of a VersionId written by {@link smVersionId}; undefined for any other id. */
export function parseSmVersionId(id: string | undefined): number | undefined {
  const m = id ? /^krypton-(?:engine-jwt|secret-[a-z]+)-v(\d{13})$/.exec(id) : null;
  return m ? Number(m[1]) : undefined;
}

// ------------------------------------------------------------------------------------------------------------
// Horcrux cosigners
// ------------------------------------------------------------------------------------------------------------

/** Horcrux's ECIES key file name in the key dir. */
export const ECIES_FILE = 'ecies_keys.json';

/** Horcrux's shard file name for a chain id: `{chain-id}_shard.json`. */
export const shardFileName = (chainId: string): string => `${chainId}_shard.json`;

/** Defaults for the `horcrux:` block (ARCHITECTURE.md "Horcrux"). */
export const HORCRUX_DEFAULTS = {
  home: '/opt/horcrux',
  p2pPort: 2222,
  privValPort: 1234,
  grpcTimeout: '1000ms',
  raftTimeout: '1000ms',
  start: ['systemctl', 'start', 'horcrux'],
  stop: ['systemctl', 'stop', 'horcrux'],
  status: ['systemctl', 'is-active', '--quiet', 'horcrux'],
  keyDirSizeBytes: 1 << 20,
} as const;

/** Everything a task needs to know about one cosigner, defaults filled in. */
export interface CosignerSettings {
  name: string;
  shardId: number;
  /** Horcrux home: config.yaml and state/ (persistent disk). */
  home: string;
  configFile: string;
  stateDir: string;
  /** The tmpfs key dir. */
  keyDir: string;
  /** The two key files in the key dir. */
  keyFiles: { ecies: string; shard: string };
  chainId: string;
  threshold: number;
  /** `tcp://<host>:<port>` other cosigners reach this one at. */
  p2pAddr: string;
  start: string[];
  stop: string[];
  /** Exit 0 when Horcrux is running. */
  status: string[];
  /** Owner/group of the key dir, key files, config.yaml and state/ (default: the SSH user, i.e. unchanged). */
  owner?: string;
  group?: string;
}

function hostForUrl(h: string): string {
  return h.includes(':') && !h.startsWith('[') ? `[${h}]` : h;
}

/** The chain id Horcrux names shard files with (`horcrux.chain_id`, default the network). */
export function horcruxChainId(inv: Inventory): string {
  return inv.horcrux?.chainId ?? inv.network;
}

/**
 * Resolves one cosigner's settings. `undefined` threshold is allowed here (tasks refuse it with a hint); the
 * inventory's `horcrux:` block is optional so node-only inventories need none.
 */
export function cosignerSettings(inv: Inventory, c: CosignerHost): CosignerSettings {
  const h = inv.horcrux;
  const home = c.home ?? h?.home ?? HORCRUX_DEFAULTS.home;
  const chainId = horcruxChainId(inv);
  const p2pHost = c.p2pAddress ?? c.conn.address;
  return {
    name: c.name,
    shardId: c.shardId,
    home,
    configFile: posix.join(home, 'config.yaml'),
    stateDir: posix.join(home, 'state'),
    keyDir: c.keyDir,
    keyFiles: { ecies: posix.join(c.keyDir, ECIES_FILE), shard: posix.join(c.keyDir, shardFileName(chainId)) },
    chainId,
    threshold: h?.threshold ?? 0,
    p2pAddr: `tcp://${hostForUrl(p2pHost)}:${c.p2pPort ?? h?.p2pPort ?? HORCRUX_DEFAULTS.p2pPort}`,
    start: c.start ?? h?.start ?? [...HORCRUX_DEFAULTS.start],
    stop: c.stop ?? h?.stop ?? [...HORCRUX_DEFAULTS.stop],
    status: c.status ?? h?.status ?? [...HORCRUX_DEFAULTS.status],
    ...(h?.owner ? { owner: h.owner } : {}),
    ...(h?.group ? { group: h.group } : {}),
  };
}

/** `privValAddr` of every chain node the cosigners sign for: `horcrux.chain_nodes`, else every validator on `priv_val_port`. */
export function chainNodes(inv: Inventory): string[] {
  if (inv.horcrux?.chainNodes?.length) return [...inv.horcrux.chainNodes];
  const port = inv.horcrux?.privValPort ?? HORCRUX_DEFAULTS.privValPort;
  return inv.nodes.filter((n) => n.role === 'validator').map((n) => `tcp://${hostForUrl(n.conn.address)}:${port}`);
}
