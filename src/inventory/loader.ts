import { resolve } from 'node:path';
import { KryptonError } from '../core/errors.ts';
import { loadYaml, locate, parseYaml, validate, type YamlSource } from '../core/yaml-source.ts';
import { inventorySchema, type InventoryFile } from './schema.ts';
import { BUILTIN_SELECTIONS, type CosignerHost, type HostTimeouts, type Inventory, type NodeHost } from '../model/inventory.ts';
import { horcruxInventoryProblems } from '../horcrux/config.ts';
import { NODE_ENV_FILE } from '../model/layout.ts';

/** Defaults for a node where neither the node nor `defaults:` says otherwise. */
export const NODE_DEFAULTS = {
  deployDir: '/opt/krypton',
  restart: ['docker', 'compose', 'restart', 'el', 'cl'],
  /** What the default restart becomes when compose must create the containers again (see NodeHost.recreate). */
  recreate: ['docker', 'compose', 'up', '-d', '--no-deps', '--force-recreate', 'el', 'cl'],
  agentStart: ['systemd-run', '--unit=krypton-vault-agent', '--collect', '--', 'vault', 'agent', '-config=/run/krypton-secrets/vault-agent.hcl'],
  agentStop: ['systemctl', 'stop', 'krypton-vault-agent'],
  jwtMode: '0600',
} as const;

/**
 * Loads and validates an inventory file (YAML, schema in `inventory/schema.ts`). Throws KryptonError
 * E_INVENTORY naming `file:line:col` for syntax errors, duplicate keys, unknown keys, wrong types,
 * duplicate host names or addresses across `nodes` and `cosigners`.
 */
export async function loadInventory(file: string, env: NodeJS.ProcessEnv = process.env): Promise<Inventory> {
  const abs = resolve(file);
  const { source, value } = await loadYaml(abs, 'E_INVENTORY');
  return buildInventory(source, value, env);
}

/** As {@link loadInventory}, from text (for tests). */
export function parseInventory(file: string, text: string, env: NodeJS.ProcessEnv = {}): Inventory {
  const { source, value } = parseYaml(file, text, 'E_INVENTORY');
  return buildInventory(source, value, env);
}

function buildInventory(source: YamlSource, value: unknown, env: NodeJS.ProcessEnv): Inventory {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new KryptonError('E_INVENTORY', `${source.file}:1:1: expected a mapping with network, nodes, … at the top level`, {
      hint: 'see inventory/testnet.yml for the shape',
    });
  }
  const raw = validate(source, inventorySchema, value, 'E_INVENTORY', 'inventory');
  const inv = toModel(source.file, raw, env);
  checkUnique(source, raw, inv);
  if (raw.groups) inv.groups = resolveGroups(source, raw.groups, inv);
  if (inv.nodes.length + inv.cosigners.length === 0) {
    throw new KryptonError('E_INVENTORY', `${locate(source, [])}: the inventory lists no nodes and no cosigners`, {
      hint: 'add hosts under nodes: or cosigners:',
    });
  }
  const horcrux = horcruxInventoryProblems(inv);
  if (horcrux.length) {
    const first = horcrux[0]!;
    const key = first.path.at(-1);
    const where = typeof key === 'string' ? locate(source, first.path.slice(0, -1), key) : locate(source, first.path);
    throw new KryptonError('E_INVENTORY', `${where}: ${first.message}${horcrux.length > 1 ? ` (and ${horcrux.length - 1} more Horcrux problem${horcrux.length > 2 ? 's' : ''}: ${horcrux.slice(1).map((p) => p.message).join('; ')})` : ''}`, {
      hint: 'fix the cosigners: / horcrux: blocks (see inventory/testnet.yml)',
    });
  }
  if (raw.backend !== 'vault' && !raw.kms) {
    throw new KryptonError('E_INVENTORY', `${locate(source, [], 'backend')}: backend ${raw.backend} needs a kms: block with key_id`, {
      hint: 'add kms: { key_id: alias/krypton-engine-jwt }',
    });
  }
  return inv;
}

function toModel(file: string, raw: InventoryFile, env: NodeJS.ProcessEnv): Inventory {
  const d = raw.defaults;
  const nodes: NodeHost[] = Object.entries(raw.nodes).map(([name, n]) => {
    const deployDir = n.deploy_dir ?? d.deploy_dir ?? NODE_DEFAULTS.deployDir;
    const restart = n.restart ?? d.restart ?? [...NODE_DEFAULTS.restart];
    return {
      kind: 'node',
      name,
      role: n.role,
      conn: {
        address: n.address ?? name,
        port: n.port,
        user: n.user,
        identityFile: n.identity_file,
        hostKey: n.host_key,
        proxyJump: n.proxy_jump,
      },
      deployDir,
      // A node's own deploy_dir moves its env file and old plaintext path unless it names them too.
      envFile: n.env_file ?? (n.deploy_dir ? `${deployDir}/.env` : (d.env_file ?? `${deployDir}/.env`)),
      restart,
      recreate: n.recreate ?? d.recreate ?? recreateDefault(restart),
      agent: {
        start: n.agent?.start ?? d.agent?.start ?? agentStartDefault(raw.vault.agent_binary),
        stop: n.agent?.stop ?? d.agent?.stop ?? [...NODE_DEFAULTS.agentStop],
      },
      jwt: {
        owner: n.jwt?.owner ?? d.jwt?.owner,
        group: n.jwt?.group ?? d.jwt?.group,
        mode: normaliseMode(n.jwt?.mode ?? d.jwt?.mode ?? NODE_DEFAULTS.jwtMode),
      },
      legacyJwtPath: n.legacy_jwt_path ?? (n.deploy_dir ? `${deployDir}/jwt.hex` : (d.legacy_jwt_path ?? `${deployDir}/jwt.hex`)),
      ...envOf(n.env, d.env),
      timeouts: timeoutsOf(`nodes.${name}`, n.timeouts, d.timeouts),
    };
  });
  const cosigners: CosignerHost[] = Object.entries(raw.cosigners ?? {}).map(([name, c]) => ({
    kind: 'cosigner',
    name,
    conn: {
      address: c.address ?? name,
      port: c.port,
      user: c.user,
      identityFile: c.identity_file,
      hostKey: c.host_key,
      proxyJump: c.proxy_jump,
    },
    shardId: c.shard_id,
    keyDir: c.key_dir,
    home: c.home,
    p2pPort: c.p2p_port,
    start: c.start,
    stop: c.stop,
    status: c.status,
    p2pAddress: c.p2p_address,
    agent: {
      start: c.agent?.start ?? d.agent?.start ?? agentStartDefault(raw.vault.agent_binary),
      stop: c.agent?.stop ?? d.agent?.stop ?? [...NODE_DEFAULTS.agentStop],
    },
    timeouts: timeoutsOf(`cosigners.${name}`, c.timeouts, d.timeouts),
  }));
  const h = raw.horcrux;
  const v = raw.vault;
  return {
    file,
    network: raw.network,
    backend: raw.backend,
    // The one place the backend decides a naming question: which setting scopes the JWT per node.
    jwtPerNode: raw.backend === 'vault' ? v.jwt_per_node : raw.kms?.per_node === true,
    vault: {
      address: v.address,
      // The hosts' agents need an address even when the inventory leaves it to the environment.
      agentAddress: v.agent_address ?? v.address ?? (env['BAO_ADDR'] || env['VAULT_ADDR'] || undefined),
      namespace: v.namespace,
      caCert: v.ca_cert,
      kvMount: v.kv_mount,
      approleMount: v.approle_mount,
      agentMode: v.agent_mode,
      wrapTtlSeconds: v.wrap_ttl_seconds,
      secretIdTtlSeconds: v.secret_id_ttl_seconds,
      tokenPeriodSeconds: v.token_period_seconds,
      agentBinary: v.agent_binary,
      jwtPerNode: v.jwt_per_node,
    },
    kms: raw.kms && {
      keyId: raw.kms.key_id,
      region: raw.kms.region,
      endpointUrl: raw.kms.endpoint_url,
      decrypt: raw.kms.decrypt,
      perNode: raw.kms.per_node,
      blobDir: raw.kms.blob_dir,
    },
    ssh: {
      user: raw.ssh.user,
      port: raw.ssh.port,
      identityFile: raw.ssh.identity_file,
      knownHosts: raw.ssh.known_hosts,
      config: raw.ssh.config,
      proxyJump: raw.ssh.proxy_jump,
      connectTimeoutSeconds: raw.ssh.connect_timeout_seconds,
      useAgent: raw.ssh.use_agent,
    },
    nodes,
    cosigners,
    ...(h
      ? {
          horcrux: {
            chainId: h.chain_id,
            threshold: h.threshold,
            home: h.home,
            p2pPort: h.p2p_port,
            chainNodes: h.chain_nodes,
            privValPort: h.priv_val_port,
            grpcTimeout: h.grpc_timeout,
            raftTimeout: h.raft_timeout,
            start: h.start,
            stop: h.stop,
            status: h.status,
            owner: h.owner,
            group: h.group,
          },
        }
      : {}),
  };
}

/** A node's env-secrets settings: its own `env:` over the defaults', `false` turning them off. */
function envOf(own: InventoryFile['defaults']['env'], dflt: InventoryFile['defaults']['env']): Pick<NodeHost, 'env'> {
  if (own === false || (own === undefined && (dflt === undefined || dflt === false))) return {};
  const d = dflt || {};
  const o = own || {};
  const owner = o.owner ?? d.owner;
  const group = o.group ?? d.group;
  return {
    env: {
      path: o.path ?? d.path ?? NODE_ENV_FILE,
      services: [...(o.services ?? d.services ?? ['el', 'cl'])],
      mode: normaliseMode(o.mode ?? d.mode ?? '0600'),
      ...(owner ? { owner } : {}),
      ...(group ? { group } : {}),
      perNode: o.per_node ?? d.per_node ?? false,
    },
  };
}

/** A host's wait bounds: its own `timeouts:` keys over `defaults.timeouts`, each with where it was set. */
function timeoutsOf(where: string, own: InventoryFile['defaults']['timeouts'], dflt: InventoryFile['defaults']['timeouts']): HostTimeouts {
  const t: HostTimeouts = {};
  if (own?.exec_seconds !== undefined) Object.assign(t, { execSeconds: own.exec_seconds, execFrom: `${where}.timeouts.exec_seconds` });
  else if (dflt?.exec_seconds !== undefined) Object.assign(t, { execSeconds: dflt.exec_seconds, execFrom: 'defaults.timeouts.exec_seconds' });
  if (own?.step_seconds !== undefined) Object.assign(t, { stepSeconds: own.step_seconds, stepFrom: `${where}.timeouts.step_seconds` });
  else if (dflt?.step_seconds !== undefined) Object.assign(t, { stepSeconds: dflt.step_seconds, stepFrom: 'defaults.timeouts.step_seconds' });
  return t;
}

/** The recreate command where the inventory names none: compose's with the default restart, else the node's own restart. */
function recreateDefault(restart: readonly string[]): string[] {
  const isDefault = restart.length === NODE_DEFAULTS.restart.length && restart.every((w, i) => w === NODE_DEFAULTS.restart[i]);
  return isDefault ? [...NODE_DEFAULTS.recreate] : [...restart];
}

function agentStartDefault(binary: string): string[] {
  return NODE_DEFAULTS.agentStart.map((w) => (w === 'vault' ? binary : w));
}

/** "600" -> "0600". */
function normaliseMode(m: string): string {
  return m.length === 3 ? `0${m}` : m;
}

function checkUnique(source: YamlSource, raw: InventoryFile, inv: Inventory): void {
  const seen = new Map<string, string>();
  for (const name of Object.keys(raw.cosigners ?? {})) {
    if (name in raw.nodes) {
      throw new KryptonError('E_INVENTORY', `${locate(source, ['cosigners'], name)}: ${name} is listed both as a node and as a cosigner`, {
        hint: 'give each host one name and one role',
      });
    }
  }
  for (const h of [...inv.nodes, ...inv.cosigners]) {
    const key = `${h.conn.address}:${h.conn.port ?? raw.ssh.port ?? 22}`;
    const other = seen.get(key);
    const group = h.kind === 'node' ? 'nodes' : 'cosigners';
    if (other) {
      throw new KryptonError('E_INVENTORY', `${locate(source, [group, h.name, 'address'])}: ${h.name} has the same address as ${other} (${key})`, {
        hint: 'each inventory host must be a different machine',
      });
    }
    seen.set(key, h.name);
  }
  const shardIds = new Map<number, string>();
  for (const c of inv.cosigners) {
    const other = shardIds.get(c.shardId);
    if (other) {
      throw new KryptonError('E_INVENTORY', `${locate(source, ['cosigners', c.name, 'shard_id'])}: shard_id ${c.shardId} is also ${other}'s`, {
        hint: 'each cosigner holds a different shard',
      });
    }
    shardIds.set(c.shardId, c.name);
  }
}

/**
 * Flattens `groups:` to host names (inventory order). Throws E_INVENTORY at the offending entry for a group named
 * like a host or a built-in selection, a member that is neither a host nor a group, and a group that contains
 * itself (directly or through others).
 */
function resolveGroups(source: YamlSource, groups: Record<string, string[]>, inv: Inventory): Record<string, string[]> {
  const hosts = [...inv.nodes, ...inv.cosigners].map((h) => h.name);
  const hostSet = new Set(hosts);
  for (const g of Object.keys(groups)) {
    if (hostSet.has(g) || (BUILTIN_SELECTIONS as readonly string[]).includes(g)) {
      throw new KryptonError('E_INVENTORY', `${locate(source, ['groups'], g)}: group ${g} has the name of ${hostSet.has(g) ? 'a host' : 'a built-in selection'}`, {
        hint: `give the group a name of its own (${BUILTIN_SELECTIONS.join(', ')} and host names are taken)`,
      });
    }
  }
  const out: Record<string, string[]> = {};
  const expand = (g: string, stack: string[]): Set<string> => {
    if (stack.includes(g)) {
      throw new KryptonError('E_INVENTORY', `${locate(source, ['groups'], g)}: group ${g} contains itself (${[...stack.slice(stack.indexOf(g)), g].join(' → ')})`, {
        hint: 'remove one of the group references',
      });
    }
    const members = new Set<string>();
    for (const [i, m] of groups[g]!.entries()) {
      if (hostSet.has(m)) members.add(m);
      else if (m in groups) for (const h of expand(m, [...stack, g])) members.add(h);
      else {
        throw new KryptonError('E_INVENTORY', `${locate(source, ['groups', g, i])}: groups.${g}: ${m} is neither a host nor a group of this inventory`, {
          hint: 'list host names from nodes: / cosigners:, or names of other groups',
        });
      }
    }
    return members;
  };
  for (const g of Object.keys(groups)) {
    const members = expand(g, []);
    out[g] = hosts.filter((h) => members.has(h));
  }
  return out;
}
