/**
 * The sandbox's bookkeeping file, <dir>/state.json: what `up` made (recorded before each thing is
 * made, so `down` can undo a half-failed `up`) and, once `up` has finished, the SandboxInfo that
 * helpers and tests read.
 */
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { HostKind } from './layout.ts';
import type { SandboxAws } from './moto.ts';
import { SandboxError } from './proc.ts';

export type Backend = 'vault' | 'kms' | 'secrets-manager';

/** One host of the fleet, as brought up. */
export interface SandboxHost {
  name: string;
  kind: HostKind;
  /** Nodes only. */
  role?: 'validator';
  /** IPv4 address on the sandbox bridge, e.g. "198.18.0.11"; sshd listens on port 22 there. */
  address: string;
  port: 22;
  user: 'root';
  /** Network namespace, `ks-<name>`. */
  netns: string;
  /** <dir>/hosts/<name>: host key, sshd config and log, and the host's persistent dirs. */
  hostDir: string;
  /** Mountpoint inside the host -> dir on this machine's disk, e.g. {"/opt/krypton": "<hostDir>/deploy"}. */
  binds: Record<string, string>;
  /** The process that holds the host's network + mount namespaces (`sleep infinity`); hostExec enters its namespaces. */
  holderPid: number;
  /** The host's sshd listener; null while stopped by stopHostSshd. */
  sshdPid: number | null;
  /** Runtime docker, nodes only: the host's dockerd (null while stopped, e.g. after simulateReboot with startDockerd: false). */
  dockerdPid?: number | null;
  /** Cosigners only: shard id 1..M and the key dir the tool fills (tmpfs). */
  shardId?: number;
  keyDir?: string;
}

/** What `sandboxUp` returns and `readSandboxInfo` reads back. All paths are absolute. */
export interface SandboxInfo {
  dir: string;
  network: string;
  backend: Backend;
  plaintextJwt: boolean;
  /** How the nodes run el/cl: 'standin' (nodectl + node stand-ins) or 'docker' (dockerd per host, geth + CL stand-in under compose). */
  runtime: 'standin' | 'docker';
  /** Runtime docker: the nodes' JWT mount form, the images, the tools used. */
  docker?: {
    jwtMount: 'file' | 'dir';
    /** /opt/krypton/docker-compose.yml on each node. */
    composeFile: string;
    images: { el: string; cl: string };
    /** The cached builds: geth binary, compose plugin, entrypoint; and the docker client on the hosts. */
    geth: string;
    composePlugin: string;
    entry: string;
    dockerCli: string;
  };
  vault: {
    /** "http://198.18.0.1:8200" */
    address: string;
    /** The dev server's root token. */
    token: string;
    pid: number;
  };
  /** With `backend: kms|secrets-manager`: moto (IAM enforced), the CMK and every identity (sandbox-only keys). */
  aws?: SandboxAws;
  /** The real OpenBao binary (not the venv's Python wrapper) and the project venv's bin dir. */
  baoBin: string;
  venvBin: string;
  ssh: { user: 'root'; identityFile: string; knownHosts: string };
  files: { inventory: string; env: string; hostsJson: string; knownHosts: string; identityFile: string; state: string; /** With cosigners: the Horcrux key generation output (cosigner_<N>/). */ horcruxKeys?: string };
  /** The variables exported by <dir>/env (PATH given in full: the two dirs prepended to this process's PATH). */
  env: Record<string, string>;
  hosts: Record<string, SandboxHost>;
  /** Host names by kind, in order. */
  nodes: string[];
  cosigners: string[];
  /** ISO time `up` finished. */
  upAt: string;
}

export interface RecordedPid {
  pid: number;
  what: string;
  /** A substring of the process's argv (space-joined) that must match before teardown kills it (pid reuse guard). */
  match: string;
}

export interface SandboxState {
  version: 1;
  resources: {
    bridge?: string;
    netns: string[];
    links: string[];
    /** Root-namespace dirs `up` created (mountpoints), parents first. */
    createdDirs: string[];
    pids: RecordedPid[];
  };
  info?: SandboxInfo;
}

export const statePath = (dir: string) => join(dir, 'state.json');

export function emptyState(): SandboxState {
  return { version: 1, resources: { netns: [], links: [], createdDirs: [], pids: [] } };
}

/** The state file, or undefined when absent or unreadable. */
export function tryReadState(dir: string): SandboxState | undefined {
  try {
    return JSON.parse(readFileSync(statePath(dir), 'utf8')) as SandboxState;
  } catch {
    return undefined;
  }
}

/** Atomically (temp + rename) writes the state file, mode 0600 (it holds the dev root token). */
export function writeState(dir: string, state: SandboxState): void {
  const tmp = `${statePath(dir)}.tmp`;
  writeFileSync(tmp, JSON.stringify(state, null, 2) + '\n', { mode: 0o600 });
  renameSync(tmp, statePath(dir));
}

/** The SandboxInfo of the sandbox in `dir`; throws when no sandbox is up there. */
export function readInfo(dir: string): SandboxInfo {
  const state = existsSync(statePath(dir)) ? tryReadState(dir) : undefined;
  if (!state?.info) throw new SandboxError(`no sandbox is up in ${dir} (run: npm run sandbox:up)`);
  return state.info;
}
