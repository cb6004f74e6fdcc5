/** A node as every task sees it: inventory values with defaults and per-host overrides resolved. */
export interface NodeHost {
  kind: 'node';
  name: string;
  role: 'validator' | 'rpc';
  conn: HostConnection;
  /** Deploy dir, e.g. `/opt/krypton`. */
  deployDir: string;
  /** Compose env file, e.g. `/opt/krypton/.env`. */
  envFile: string;
  /** Restart command for `el` and `cl` together (argv), run in `deployDir`. */
  restart: string[];
  /**
   * Recreate command (argv, run in `deployDir`): used instead of `restart` when the containers must be created
   * again to see a change — `.env` (JWT_PATH), the compose file, an `env_file` or the JWT mount source changed, or a
   * service has no container yet (`docker compose restart` keeps the env and mounts a container was created with).
   * Default: `[docker, compose, up, -d, --no-deps, --force-recreate, el, cl]` with the default `restart`, else the
   * node's own `restart` (a custom restart command is honoured for both).
   */
  recreate: string[];
  agent: { start: string[]; stop: string[] };
  /** Engine-API JWT file settings; `mode` is an octal string ("0600"). */
  jwt: { owner?: string; group?: string; mode: string };
  /** The old plaintext JWT file bootstrap.sh wrote (migration shreds it; verify scans it). */
  legacyJwtPath: string;
  /**
   * Node env-secrets (`env:` in the inventory), when the node has any: rendered from the store into `path` on the
   * tmpfs (a compose `env_file:`), read by `services` (restarted when it changes). `perNode`: the node's own
   * values (`krypton/<network>/nodes/<node>/env`) instead of the network's (`krypton/<network>/env`).
   */
  env?: { path: string; services: string[]; mode: string; owner?: string; group?: string; perNode: boolean };
  /** Wait bounds set in the inventory (the host's `timeouts:` over `defaults.timeouts`); unset: computed defaults. */
  timeouts?: HostTimeouts;
}

/**
 * A host's wait bounds from the inventory, seconds. `execSeconds`: one remote command; `stepSeconds`: a step's wait to
 * converge after it applied. Each names where it was set (`from`, for messages: "timeouts.exec_seconds of val-1").
 */
export interface HostTimeouts {
  execSeconds?: number;
  stepSeconds?: number;
  /** Where each was set: `defaults.timeouts` or `nodes.<name>.timeouts` / `cosigners.<name>.timeouts`. */
  execFrom?: string;
  stepFrom?: string;
}

export interface CosignerHost {
  kind: 'cosigner';
  name: string;
  conn: HostConnection;
  shardId: number;
  keyDir: string;
  home?: string;
  p2pPort?: number;
  start?: string[];
  stop?: string[];
  status?: string[];
  /** Host other cosigners dial for p2p (default: conn.address). */
  p2pAddress?: string;
  /** The cosigner's Vault Agent commands (argv), defaults filled in as for nodes. */
  agent: { start: string[]; stop: string[] };
  /** Wait bounds set in the inventory, as for nodes. */
  timeouts?: HostTimeouts;
}

/** The inventory's `horcrux:` block (see src/horcrux/config.ts for the defaults). */
export interface HorcruxSettings {
  chainId?: string;
  threshold: number;
  home?: string;
  p2pPort?: number;
  chainNodes?: string[];
  privValPort?: number;
  grpcTimeout?: string;
  raftTimeout?: string;
  start?: string[];
  stop?: string[];
  status?: string[];
  owner?: string;
  group?: string;
}

export type Host = NodeHost | CosignerHost;

/** How to reach a host; unset fields fall back to ssh_config, then OpenSSH defaults. */
export interface HostConnection {
  /** Address or ssh_config alias (default: the inventory name). */
  address: string;
  port?: number;
  user?: string;
  identityFile?: string;
  /** Pinned host key fingerprint `SHA256:…`; wins over known_hosts. */
  hostKey?: string;
  proxyJump?: string;
}

export interface VaultSettings {
  address?: string;
  /** Vault as the hosts' agents reach it: `agent_address`, else `address`, else BAO_ADDR/VAULT_ADDR at load time. */
  agentAddress?: string;
  namespace?: string;
  caCert?: string;
  kvMount: string;
  approleMount: string;
  agentMode: 'daemon' | 'oneshot';
  wrapTtlSeconds: number;
  secretIdTtlSeconds: number;
  tokenPeriodSeconds: number;
  agentBinary: string;
  /** One JWT per node (`krypton/<network>/nodes/<node>/engine-jwt`) instead of one per network. */
  jwtPerNode: boolean;
}

export interface KmsSettings {
  keyId: string;
  region?: string;
  endpointUrl?: string;
  decrypt: 'host' | 'operator';
  perNode: boolean;
  blobDir: string;
}

export interface SshSettings {
  user?: string;
  port?: number;
  identityFile?: string;
  knownHosts?: string;
  config?: string;
  proxyJump?: string;
  connectTimeoutSeconds: number;
  useAgent: boolean;
}

/** A validated inventory. */
export interface Inventory {
  /** Absolute path of the file it came from. */
  file: string;
  /** Chain id as a string: "473374" testnet, "47337" mainnet. */
  network: string;
  backend: 'vault' | 'kms' | 'secrets-manager';
  /** Each node has its own Engine-API JWT (`vault.jwt_per_node` with Vault, `kms.per_node` with KMS / Secrets Manager). */
  jwtPerNode: boolean;
  vault: VaultSettings;
  kms?: KmsSettings;
  ssh: SshSettings;
  nodes: NodeHost[];
  cosigners: CosignerHost[];
  /** Horcrux settings shared by the cosigners (absent in node-only inventories). */
  horcrux?: HorcruxSettings;
  /** `groups:`, resolved: group name to its host names (nested groups flattened), in inventory order. */
  groups?: Readonly<Record<string, readonly string[]>>;
}

/** The selections every inventory has: a play's `hosts:` and `--limit` accept these names. */
export const BUILTIN_SELECTIONS = ['all', 'nodes', 'validators', 'rpc', 'cosigners'] as const;

/** The tmpfs every node's secrets live in (ARCHITECTURE.md "tmpfs"). */
export const SECRETS_DIR = '/run/krypton-secrets';

export function allHosts(inv: Inventory): Host[] {
  return [...inv.nodes, ...inv.cosigners];
}
