import { z } from 'zod';

/**
 * Octal file mode as a quoted YAML string, e.g. "0600". A bare YAML number (read as decimal) is refused; the
 * loader's message then quotes the number as the user wrote it (src/core/yaml-source.ts `validate`).
 */
export const octalMode = z.string({
  error: (iss) =>
    typeof iss.input === 'number'
      ? 'expected a quoted octal mode such as "0600"; a bare YAML number is not a mode string'
      : 'expected a quoted octal mode such as "0600"',
}).regex(/^0?[0-7]{3}$/, 'expected an octal mode such as "0600" (three octal digits, optional leading 0)');

/** An absolute POSIX path. */
export const absolutePath = z
  .string()
  .regex(/^\/[^\u0000-\u001f\u007f]*$/, 'expected an absolute path (starting with /, no control characters)')
  .refine((p) => !p.split('/').includes('..'), { message: 'expected a path without .. segments' });

/** A command as an argv list: `[docker, compose, restart, el, cl]`. Never a shell string. */
export const argv = z.array(z.string().min(1), { error: 'expected a command as a list of words, e.g. [nodectl, restart, el, cl]' }).min(1);

/** A host name usable in Vault policy and role names. */
export const hostName = z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'expected a host name of lowercase letters, digits and dashes');

/** A chain id as a quoted string of decimal digits; a bare YAML number is refused (the loader quotes what was written). */
const chainId = z.string({
  error: (iss) => (typeof iss.input === 'number' ? 'expected the chain id as a quoted string' : 'expected the chain id as a quoted string, e.g. "473374"'),
}).regex(/^[0-9]{1,20}$/, 'expected a numeric chain id such as "473374" (testnet) or "47337" (mainnet)');

const seconds = (min: number, max: number) => z.number().int().min(min).max(max);

const sshFingerprint = z.string().regex(/^SHA256:[A-Za-z0-9+/]{43}$/, 'expected a host key fingerprint as ssh-keygen -lf prints it: SHA256:<43 base64 characters>');

/** Vault / OpenBao settings. Env (`BAO_*`, then `VAULT_*`) overrides `address` the way the CLIs do. */
export const vaultSchema = z.strictObject({
  address: z.url().optional(),
  /** Address of Vault as the hosts' agents reach it (default: `address`). */
  agent_address: z.url().optional(),
  namespace: z.string().optional(),
  ca_cert: z.string().optional(),
  kv_mount: z.string().regex(/^[A-Za-z0-9_-]+$/).default('secret'),
  approle_mount: z.string().regex(/^[A-Za-z0-9_-]+$/).default('approle'),
  /** daemon: periodic tokens, the agent keeps running; oneshot: exit_after_auth, no token stays on the host. */
  agent_mode: z.enum(['daemon', 'oneshot']).default('daemon'),
  /** Response-wrapping TTL of each delivered secret_id, seconds (ARCHITECTURE.md: 100–300). */
  wrap_ttl_seconds: seconds(100, 300).default(120),
  secret_id_ttl_seconds: seconds(60, 86400).default(600),
  token_period_seconds: seconds(300, 31 * 86400).default(3600),
  /** One Engine-API JWT per node at `krypton/<network>/nodes/<node>/engine-jwt` (a leak exposes one node only). */
  jwt_per_node: z.boolean().default(false),
  /** Vault Agent binary on the hosts (`vault` or `bao`). */
  agent_binary: z.string().default('vault'),
});

export const sshSchema = z.strictObject({
  user: z.string().optional(),
  port: z.number().int().min(1).max(65535).optional(),
  identity_file: z.string().optional(),
  known_hosts: z.string().optional(),
  /** ssh_config file to honour (default ~/.ssh/config; `none` to ignore). */
  config: z.string().optional(),
  proxy_jump: z.string().optional(),
  connect_timeout_seconds: seconds(1, 600).default(10),
  use_agent: z.boolean().default(true),
});

/** The permission bits of a validated {@link octalMode} string ("0640" -> 0o640). */
function modeBits(m: string): number {
  return parseInt(m, 8);
}

/** Modes a secret file may have: the owner reads (or reads and writes), the group at most reads, other users nothing. */
export const SECRET_FILE_MODES: readonly string[] = ['0600', '0640', '0400', '0440'];

/** Modes a secrets tmpfs root may have: the owner has it all, the group at most enters and lists, other users nothing. */
export const SECRET_DIR_MODES: readonly string[] = ['0700', '0750', '0710'];

const isMode = (m: string) => /^0?[0-7]{3}$/.test(m);

/**
 * The mode of a file holding a secret (jwt.hex, the env-secrets file): one of {@link SECRET_FILE_MODES}. Group
 * read is allowed (a container user's group); group write, execute bits and any bit for other users are refused.
 */
export const secretFileMode = octalMode.refine((m) => !isMode(m) || SECRET_FILE_MODES.includes(`0${modeBits(m).toString(8).padStart(3, '0')}`), {
  error: (iss) =>
    `expected "0600", "0640", "0400" or "0440": this file holds a secret, so the group may at most read it and other users get nothing (${describeMode(String(iss.input), 'file')})`,
});

/**
 * The mode of a secrets tmpfs root (`/run/krypton-secrets`, a cosigner's key dir): one of {@link SECRET_DIR_MODES}.
 * The group may enter (and list); group write and any bit for other users are refused.
 */
export const secretDirMode = octalMode.refine((m) => !isMode(m) || SECRET_DIR_MODES.includes(`0${modeBits(m).toString(8).padStart(3, '0')}`), {
  error: (iss) =>
    `expected "0700", "0750" or "0710": this directory holds secrets, so the group may at most enter and list it and other users get nothing (${describeMode(String(iss.input), 'dir')})`,
});

/** What is wrong with a mode in words: "0660 lets the group write". */
function describeMode(m: string, kind: 'file' | 'dir'): string {
  if (!isMode(m)) return `${m} is not an octal mode`;
  const b = modeBits(m);
  const wrong: string[] = [];
  if (b & 0o007) wrong.push('gives other users access');
  if (b & 0o020) wrong.push('lets the group write');
  if (kind === 'file' && b & 0o111) wrong.push('sets an execute bit');
  if (kind === 'dir' && (b & 0o700) !== 0o700) wrong.push('does not give the owner rwx');
  if (kind === 'dir' && (b & 0o050) === 0o040) wrong.push('lets the group list but not enter');
  if (kind === 'file' && (b & 0o400) === 0) wrong.push('does not let the owner read');
  return `0${b.toString(8).padStart(3, '0')} ${wrong.length ? wrong.join(' and ') : 'is not one of these'}`;
}

const jwtFileSchema = z.strictObject({
  owner: z.string().regex(/^[a-z_][a-z0-9_-]*\$?$|^[0-9]+$/, 'expected a user name or a numeric uid').optional(),
  group: z.string().regex(/^[a-z_][a-z0-9_-]*\$?$|^[0-9]+$/, 'expected a group name or a numeric gid').optional(),
  mode: secretFileMode.optional(),
});

const agentCmdSchema = z.strictObject({
  start: argv.optional(),
  stop: argv.optional(),
});

/** A compose env file: apply edits its JWT_PATH line, so it must be named like one (`.env`, `x.env`, `.env.x`). */
const envFilePath = absolutePath.refine((p) => /(^|\.)env$|^\.env(\.|$)/.test(p.split('/').pop() ?? ''), {
  message: 'expected a compose env file (named .env, <name>.env or .env.<name>): apply edits its JWT_PATH line',
});

/** Names in /run/krypton-secrets the tool itself uses (the JWT, the agent's files, the loaded-record, templates). */
const RESERVED_TMPFS_NAMES = /^(jwt\.hex|role_id|secret_id|agent\.pid|agent-token|vault-agent\.hcl|loaded(\.new)?|.*\.ctmpl|\..*)$/;

/** A path on the node's secrets tmpfs (`/run/krypton-secrets/…`): env-secrets never go to persistent disk. */
const tmpfsFilePath = absolutePath
  .refine((p) => p.startsWith('/run/krypton-secrets/') && !p.slice('/run/krypton-secrets/'.length).includes('/') && p.length > '/run/krypton-secrets/'.length, {
    message: 'expected a file directly in /run/krypton-secrets (the secrets tmpfs), e.g. /run/krypton-secrets/node.env',
  })
  .refine((p) => !RESERVED_TMPFS_NAMES.test(p.slice(p.lastIndexOf('/') + 1)), {
    message: 'expected a name of its own: jwt.hex, role_id, secret_id, agent.pid, agent-token, vault-agent.hcl, loaded, *.ctmpl and dot-files in /run/krypton-secrets are the tool\'s',
  });

/** A compose service name. */
const serviceName = z.string().regex(/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/, 'expected a compose service name such as el');

/** Node env-secrets: where they land on the tmpfs, who reads them, whose they are. */
const envSecretsSchema = z.strictObject({
  /** File on the tmpfs the services read through compose `env_file:` (default /run/krypton-secrets/node.env). */
  path: tmpfsFilePath.optional(),
  /** Services that read it; they restart (in lockstep, under the validator budget) when its fingerprint changes. */
  services: z.array(serviceName).min(1).optional(),
  owner: z.string().regex(/^[a-z_][a-z0-9_-]*\$?$|^[0-9]+$/, 'expected a user name or a numeric uid').optional(),
  group: z.string().regex(/^[a-z_][a-z0-9_-]*\$?$|^[0-9]+$/, 'expected a group name or a numeric gid').optional(),
  mode: secretFileMode.optional(),
  /** The node's own values (`krypton/<network>/nodes/<node>/env`) instead of the network's (`krypton/<network>/env`). */
  per_node: z.boolean().optional(),
});

/**
 * Wait bounds of a host, seconds (also in `defaults:`; a host's own keys win key by key). `exec_seconds`: one remote
 * command (a fact gathering, a restart, a host-side fetch; default 120). `step_seconds`: how long a step waits for
 * the host to converge after it applied (an agent rendering, a node answering again); default: the task's own,
 * grown with the work and the host's measured round trip (README "Timeouts").
 */
export const timeoutsSchema = z.strictObject({
  exec_seconds: seconds(1, 3600).optional(),
  step_seconds: seconds(1, 3600).optional(),
});

/** Settings a node may override (also the `defaults:` block). */
const nodeOverrides = {
  timeouts: timeoutsSchema.optional(),
  deploy_dir: absolutePath.optional(),
  env_file: envFilePath.optional(),
  restart: argv.optional(),
  /**
   * How to recreate el/cl when compose must create them again (.env, compose file, env_file or JWT mount source
   * changed). Default: `docker compose up -d --no-deps --force-recreate el cl` with the default restart, else `restart`.
   */
  recreate: argv.optional(),
  agent: agentCmdSchema.optional(),
  jwt: jwtFileSchema.optional(),
  /** Where bootstrap.sh left the plaintext JWT (default `<deploy_dir>/jwt.hex`); migration shreds it. */
  legacy_jwt_path: absolutePath.optional(),
  /** Node env-secrets (issue: `secret/krypton/<network>/env`); `false` in a node turns the defaults' off. */
  env: z.union([envSecretsSchema, z.literal(false)]).optional(),
};

const connOverrides = {
  address: z.string().min(1).optional(),
  port: z.number().int().min(1).max(65535).optional(),
  user: z.string().optional(),
  identity_file: z.string().optional(),
  host_key: sshFingerprint.optional(),
  proxy_jump: z.string().optional(),
};

export const nodeSchema = z.strictObject({
  role: z.enum(['validator', 'rpc'], { error: 'expected role: validator or rpc' }),
  ...connOverrides,
  ...nodeOverrides,
});

export const cosignerSchema = z.strictObject({
  ...connOverrides,
  shard_id: z.number().int().min(1).max(255),
  key_dir: absolutePath,
  home: absolutePath.optional(),
  p2p_port: z.number().int().min(1).max(65535).optional(),
  /** Host the other cosigners dial for p2p (default: address). Never 0.0.0.0 or loopback. */
  p2p_address: z.string().min(1).optional(),
  /** Horcrux start / stop / status commands (default: horcrux.start / stop / status). */
  start: argv.optional(),
  stop: argv.optional(),
  status: argv.optional(),
  /** The cosigner's Vault Agent commands (default: defaults.agent, as for nodes). */
  agent: agentCmdSchema.optional(),
  /** Wait bounds (default: defaults.timeouts, as for nodes). */
  timeouts: timeoutsSchema.optional(),
});

/** Settings shared by every Horcrux cosigner (ARCHITECTURE.md "Horcrux"). */
export const horcruxSchema = z.strictObject({
  /** Chain id in shard file names, `{chain_id}_shard.json` (default: network). */
  chain_id: z.string().regex(/^[A-Za-z0-9_.-]+$/, 'expected a chain id of letters, digits, "_", "." and "-"').optional(),
  /** Cosigners needed to sign: more than half of them, at most all. */
  threshold: z.number().int().min(1).max(255),
  /** Horcrux home (config.yaml, state/ on persistent disk) where a cosigner sets none (default /opt/horcrux). */
  home: absolutePath.optional(),
  p2p_port: z.number().int().min(1).max(65535).optional(),
  /** privValAddr of the chain nodes, tcp://host:port (default: every validator on priv_val_port). */
  chain_nodes: z.array(z.string().regex(/^tcp:\/\//, 'expected tcp://host:port')).optional(),
  priv_val_port: z.number().int().min(1).max(65535).optional(),
  grpc_timeout: z.string().regex(/^\d+(ms|s)$/, 'expected a duration such as "1000ms"').optional(),
  raft_timeout: z.string().regex(/^\d+(ms|s)$/, 'expected a duration such as "1000ms"').optional(),
  /** Horcrux commands (argv; default systemctl start|stop|is-active horcrux). */
  start: argv.optional(),
  stop: argv.optional(),
  status: argv.optional(),
  /** Owner and group of the key dir, key files, config.yaml and state/ (the user Horcrux runs as). */
  owner: z.string().min(1).optional(),
  group: z.string().min(1).optional(),
});

export const kmsSchema = z.strictObject({
  key_id: z.string().min(1),
  region: z.string().optional(),
  endpoint_url: z.url().optional(),
  decrypt: z.enum(['host', 'operator']).default('host'),
  per_node: z.boolean().default(false),
  blob_dir: absolutePath.default('/opt/krypton/secrets'),
});

export const inventorySchema = z.strictObject({
  network: chainId,
  backend: z.enum(['vault', 'kms', 'secrets-manager']).default('vault'),
  vault: vaultSchema.prefault({}),
  kms: kmsSchema.optional(),
  ssh: sshSchema.prefault({}),
  defaults: z.strictObject(nodeOverrides).prefault({}),
  nodes: z.record(hostName, nodeSchema).default({}),
  cosigners: z.record(hostName, cosignerSchema).optional(),
  horcrux: horcruxSchema.optional(),
  /**
   * Named selections (region, canary, client …): each a list of host names or other group names, usable in a
   * play's `hosts:` and in `--limit`. A group may not share a name with a host or a built-in selection.
   */
  groups: z.record(hostName, z.array(z.string().min(1)).min(1, 'expected at least one host or group name')).optional(),
});

export type InventoryFile = z.infer<typeof inventorySchema>;
