/**
 * Renders the files `up` leaves in the sandbox dir for the tool, tests and the operator:
 * inventory.yml, env, known_hosts, hosts.json. Pure functions of the SandboxInfo-to-be.
 */
import { DEPLOY_DIR, ENV_FILE, HORCRUX_HOME, NETWORK_ID, VAULT_ADDRESS } from './layout.ts';

/** p2p port of the sandbox's Horcrux cosigners (Horcrux's documented default). */
const HORCRUX_P2P_PORT = 2222;
import type { Backend, SandboxHost } from './state.ts';

export interface RenderInput {
  backend: Backend;
  /** With an AWS backend: the `kms:` block's key, region and endpoint. */
  kms?: { keyId: string; region: string; endpointUrl: string };
  identityFile: string;
  knownHosts: string;
  hosts: SandboxHost[];
  /** 'docker': no `restart:` line, so the tool's default (`docker compose restart el cl` in deploy_dir) applies. */
  runtime?: 'standin' | 'docker';
  /** Declare node env-secrets (`defaults.env`, read by el and cl). */
  env?: boolean;
}

/** inventory.yml for krypton-secrets (no secrets in it). */
export function renderInventory(o: RenderInput): string {
  const lines = [
    '# krypton-secrets sandbox inventory (generated; no secrets in here)',
    `network: "${NETWORK_ID}"`,
    `backend: ${o.backend}`,
    'vault:',
    `  address: ${VAULT_ADDRESS}`,
    ...(o.kms ? ['kms:', `  key_id: ${o.kms.keyId}`, `  region: ${o.kms.region}`, `  endpoint_url: ${o.kms.endpointUrl}`] : []),
    'ssh:',
    '  user: root',
    `  identity_file: ${o.identityFile}`,
    `  known_hosts: ${o.knownHosts}`,
    'defaults:',
    `  deploy_dir: ${DEPLOY_DIR}`,
    `  env_file: ${ENV_FILE}`,
    ...(o.runtime === 'docker'
      ? ['  # runtime docker: el/cl run under docker compose in deploy_dir; the tool restarts them with its default']
      : ['  restart: [nodectl, restart, el, cl]']),
    '  agent:',
    '    start: [agentctl, start]',
    '    stop: [agentctl, stop]',
    ...(o.env ? ['  # node env-secrets (sandboxUp seeds one variable; replace them with `bao kv put` or import-env)', '  env:', '    services: [el, cl]'] : []),
    'nodes:',
  ];
  for (const h of o.hosts.filter((h) => h.kind === 'node')) lines.push(`  ${h.name}:`, `    role: ${h.role}`, `    address: ${h.address}`);
  const cosigners = o.hosts.filter((h) => h.kind === 'cosigner');
  if (cosigners.length) {
    lines.push('cosigners:');
    for (const h of cosigners) lines.push(`  ${h.name}:`, `    address: ${h.address}`, `    shard_id: ${h.shardId}`, `    key_dir: ${h.keyDir}`, `    p2p_port: ${HORCRUX_P2P_PORT}`);
    // Horcrux (threshold more than half; the stand-in as its service; chain nodes = the validators).
    const validators = o.hosts.filter((h) => h.kind === 'node');
    lines.push(
      'horcrux:',
      `  threshold: ${Math.floor(cosigners.length / 2) + 1}`,
      `  home: ${HORCRUX_HOME}`,
      `  chain_nodes: [${validators.map((h) => `"tcp://${h.address}:1234"`).join(', ')}]`,
      '  start: [horcruxctl, start]',
      '  stop: [horcruxctl, stop]',
      '  status: [horcruxctl, status]',
    );
  }
  return lines.join('\n') + '\n';
}

/** hosts.json: {"<name>": {host, port, user, kind[, shard_id, key_dir]}}. */
export function renderHostsJson(hosts: SandboxHost[]): string {
  const out: Record<string, Record<string, unknown>> = {};
  for (const h of hosts) {
    out[h.name] = { host: h.address, port: h.port, user: h.user, kind: h.kind, ...(h.kind === 'cosigner' ? { shard_id: h.shardId, key_dir: h.keyDir } : {}) };
  }
  return JSON.stringify(out, null, 2) + '\n';
}

/** known_hosts: `<address> ssh-ed25519 AAAA…` per host (from each host key's .pub, comment dropped). */
export function renderKnownHosts(entries: { address: string; publicKeyLine: string }[]): string {
  return entries.map((e) => `${e.address} ${e.publicKeyLine.trim().split(/\s+/).slice(0, 2).join(' ')}`).join('\n') + '\n';
}

/** The exported variables of <dir>/env; PATH is "<bao dir>:<venv bin>:$PATH" (the real bao first). */
export function sandboxEnv(token: string, baoDir: string, venvBin: string): { vars: Record<string, string>; pathPrefix: string } {
  return {
    vars: { VAULT_ADDR: VAULT_ADDRESS, VAULT_TOKEN: token, BAO_ADDR: VAULT_ADDRESS, BAO_TOKEN: token },
    pathPrefix: `${baoDir}:${venvBin}`,
  };
}

/** <dir>/env as shell `export` lines, for `source .sandbox/env`. */
export function renderEnvFile(vars: Record<string, string>, pathPrefix: string): string {
  const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  return [
    '# krypton-secrets sandbox environment (generated): source .sandbox/env',
    ...Object.entries(vars).map(([k, v]) => `export ${k}=${q(v)}`),
    `export PATH=${q(pathPrefix)}:"$PATH"`,
    '',
  ].join('\n');
}
