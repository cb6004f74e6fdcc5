/**
 * The sandbox fleet (ARCHITECTURE.md section 6): real sshd hosts in network + mount namespaces, a real
 * OpenBao dev server, and node stand-ins (EL/CL with Engine-API JWT auth, nodectl, agentctl), for
 * integration tests, the demo and benchmarks. Needs Linux and root.
 *
 *   const info = await sandboxUp({ hosts: 2 });          // ~1-2 s
 *   await hostExec('val-1', ['cat', '/proc/mounts']);    // inside the host, without ssh
 *   await sandboxDown();
 *
 * Everything `up` makes is recorded in <dir>/state.json before it is made; `sandboxDown` undoes it
 * (and anything named `ks-*`), even after a half-failed `up`.
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, rmdirSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { dirname, join, resolve } from 'node:path';
import {
  BRIDGE,
  BRIDGE_ADDRESS,
  DEFAULT_DIR,
  HORCRUX_KEY_DIR,
  HOST_SESSION_ENV,
  MAX_COSIGNERS,
  MAX_NODES,
  NETNS_PREFIX,
  NETWORK_ID,
  PREFIX_LEN,
  VAULT_ADDRESS,
  VETH_PREFIX,
  findOpenBao,
  fleetSpec,
  hostBinds,
  netnsOf,
  vethOf,
} from './layout.ts';
import { configureHostNet, execInHost, killSshd, layoutHost, netnsPids, rebootHost, rootNetLines, startHolder, startSshd } from './hosts.ts';
import { BAO_SERVER_MATCH, readyBaoServer, spawnBaoServer } from './openbao.ts';
import { MOTO_MATCH, awsEnv, bootstrapMoto, spawnMoto, writeHostAwsConfig, type SandboxAws } from './moto.ts';
import { renderEnvFile, renderHostsJson, renderInventory, renderKnownHosts, sandboxEnv } from './outputs.ts';
import { defaultThreshold, generateHorcruxKeys, writeHorcruxKeys } from './horcrux-keys.ts';
import { SandboxError, killAndWait, pidAlive, procArgv, run, runOk, type RunResult } from './proc.ts';
import { emptyState, readInfo, tryReadState, writeState, type Backend, type SandboxHost, type SandboxInfo, type SandboxState } from './state.ts';

export type { Backend, SandboxHost, SandboxInfo } from './state.ts';
export type { RunResult } from './proc.ts';
export { SandboxError } from './proc.ts';
export { DEFAULT_DIR, VAULT_ADDRESS, BRIDGE_ADDRESS, NETWORK_ID } from './layout.ts';
export { MOTO_ADDRESS, AWS_REGION, KMS_KEY_ALIAS, type SandboxAws, type AwsKey } from './moto.ts';

export interface SandboxUpOptions {
  /** Number of validator nodes, val-1..val-N (1..89). */
  hosts: number;
  /** Number of Horcrux cosigners, cosigner-1..M (0..50, default 0). */
  cosigners?: number;
  /**
   * Secret backend written into inventory.yml (default 'vault'). 'kms' / 'secrets-manager' also start moto with
   * IAM enforcement, a CMK (alias/krypton-engine-jwt) and an AWS identity per node in its /root/.aws.
   */
  backend?: Backend;
  /** Start nodes the old way: plaintext /opt/krypton/jwt.hex (0644), JWT_PATH to it, el/cl running. */
  plaintextJwt?: boolean;
  /** Output dir (default <repo>/.sandbox). */
  dir?: string;
  /** Leave whatever was made when `up` fails, for debugging (default: tear it down). */
  keepOnFailure?: boolean;
}

/**
 * Brings the sandbox up (tearing down any sandbox already up in `dir` first) and returns its
 * description, also saved in <dir>/state.json. Writes <dir>/inventory.yml, env, id_ed25519(.pub),
 * known_hosts, hosts.json. Throws SandboxError (after tearing down what it made, unless keepOnFailure).
 */
export async function sandboxUp(opts: SandboxUpOptions): Promise<SandboxInfo> {
  const nodes = opts.hosts;
  const cosigners = opts.cosigners ?? 0;
  const backend = opts.backend ?? 'vault';
  if (!Number.isInteger(nodes) || nodes < 1 || nodes > MAX_NODES) throw new SandboxError(`hosts must be an integer 1..${MAX_NODES}, got ${nodes}`);
  if (!Number.isInteger(cosigners) || cosigners < 0 || cosigners > MAX_COSIGNERS) throw new SandboxError(`cosigners must be an integer 0..${MAX_COSIGNERS}, got ${cosigners}`);
  if (backend !== 'vault' && backend !== 'kms' && backend !== 'secrets-manager') {
    throw new SandboxError(`unknown backend ${String(backend)} (vault|kms|secrets-manager)`);
  }
  if (process.getuid?.() !== 0) throw new SandboxError('the sandbox needs root (network namespaces, mounts)');
  const dir = resolve(opts.dir ?? DEFAULT_DIR);
  const { baoBin, venvBin } = findOpenBao();

  await sandboxDown(dir);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const state = emptyState();
  const save = () => writeState(dir, state);
  save();
  try {
    const info = await bringUp(dir, state, save, { nodes, cosigners, backend, plaintextJwt: !!opts.plaintextJwt, baoBin, venvBin });
    state.info = info;
    save();
    return info;
  } catch (e) {
    if (!opts.keepOnFailure) await sandboxDown(dir).catch(() => {});
    throw e;
  }
}

interface BringUp {
  nodes: number;
  cosigners: number;
  backend: Backend;
  plaintextJwt: boolean;
  baoBin: string;
  venvBin: string;
}

async function bringUp(dir: string, state: SandboxState, save: () => void, o: BringUp): Promise<SandboxInfo> {
  const specs = fleetSpec(o.nodes, o.cosigners);
  const files = {
    inventory: join(dir, 'inventory.yml'),
    env: join(dir, 'env'),
    hostsJson: join(dir, 'hosts.json'),
    knownHosts: join(dir, 'known_hosts'),
    identityFile: join(dir, 'id_ed25519'),
    state: join(dir, 'state.json'),
  };
  const authorizedKeys = join(dir, 'authorized_keys');

  // Root-namespace mountpoints for the hosts' bind mounts (the filesystem is shared, the mounts are not).
  for (const at of new Set(specs.flatMap((s) => hostBinds(s.kind, o.backend).map((b) => b.at)))) ensureDir(at, state, save);

  // Bridge, namespaces and veth pairs in one `ip -batch` (recorded first, for teardown).
  state.resources.bridge = BRIDGE;
  for (const s of specs) {
    state.resources.netns.push(netnsOf(s.name));
    state.resources.links.push(vethOf(s.address));
  }
  save();
  const operatorKey = runOk('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'krypton-sandbox-operator', '-f', files.identityFile]);
  await runOk('ip', ['-batch', '-'], {
    input:
      [
        `link add ${BRIDGE} type bridge`,
        `addr add ${BRIDGE_ADDRESS}/${PREFIX_LEN} dev ${BRIDGE}`,
        `link set ${BRIDGE} up`,
        ...specs.flatMap((s) => rootNetLines(netnsOf(s.name), vethOf(s.address), BRIDGE)),
      ].join('\n') + '\n',
  });

  // OpenBao starts while the hosts come up.
  const rootToken = `ks-sandbox-root-${randomBytes(16).toString('hex')}`; // "s." is reserved for generated tokens
  const bao = spawnBaoServer(dir, o.baoBin, rootToken);
  state.resources.pids.push({ pid: bao.pid, what: 'bao server', match: BAO_SERVER_MATCH });
  save();
  const moto = o.backend === 'vault' ? undefined : spawnMoto(dir, o.venvBin);
  if (moto) {
    state.resources.pids.push({ pid: moto.pid, what: 'moto server', match: MOTO_MATCH[0]! });
    save();
  }

  await operatorKey;
  writeFileSync(authorizedKeys, readFileSync(`${files.identityFile}.pub`), { mode: 0o600 });

  const up = await Promise.all(
    specs.map(async (s) => {
      const netns = netnsOf(s.name);
      const [hf] = await Promise.all([
        layoutHost(dir, s, { authorizedKeys, baoBin: o.baoBin, backend: o.backend, plaintextJwtHex: o.plaintextJwt && s.kind === 'node' ? randomBytes(32).toString('hex') : undefined }),
        configureHostNet(netns, s.address, PREFIX_LEN),
      ]);
      const holderPid = await startHolder(netns, hf.binds, join(hf.hostDir, 'holder.log'));
      state.resources.pids.push({ pid: holderPid, what: `holder ${s.name}`, match: 'sleep infinity' });
      save();
      const sshdPid = await startSshd(holderPid, hf, s.address);
      const host: SandboxHost = {
        name: s.name,
        kind: s.kind,
        ...(s.kind === 'node' ? { role: 'validator' as const } : {}),
        address: s.address,
        port: 22,
        user: 'root',
        netns,
        hostDir: hf.hostDir,
        binds: hf.binds,
        holderPid,
        sshdPid,
        ...(s.kind === 'cosigner' ? { shardId: s.shardId, keyDir: HORCRUX_KEY_DIR } : {}),
      };
      return { host, hf };
    }),
  );
  const hosts = up.map((u) => u.host);

  await readyBaoServer(bao, rootToken);
  let aws: SandboxAws | undefined;
  if (moto && o.backend !== 'vault') {
    const nodeHosts = hosts.filter((h) => h.kind === 'node');
    const cosignerHosts = hosts.filter((h) => h.kind === 'cosigner');
    aws = await bootstrapMoto(moto, nodeHosts.map((h) => h.name), o.backend, o.backend === 'kms' ? cosignerHosts.map((h) => h.name) : []);
    for (const h of [...nodeHosts, ...(o.backend === 'kms' ? cosignerHosts : [])]) writeHostAwsConfig(h.binds['/root/.aws']!, aws.hosts[h.name]!);
  }

  if (o.plaintextJwt) {
    await Promise.all(
      hosts
        .filter((h) => h.kind === 'node')
        .map(async (h) => {
          const r = await execInHost(h.holderPid, ['nodectl', 'start', 'el', 'cl']);
          if (r.code !== 0) throw new SandboxError(`${h.name}: nodectl start el cl failed: ${r.stderr.trim()}`);
        }),
    );
  }

  const { vars: baoVars, pathPrefix } = sandboxEnv(rootToken, dirname(o.baoBin), o.venvBin);
  const vars = { ...baoVars, ...(aws ? awsEnv(aws) : {}) };
  writeFileSync(files.env, renderEnvFile(vars, pathPrefix), { mode: 0o600 });
  writeFileSync(files.knownHosts, renderKnownHosts(up.map((u) => ({ address: u.host.address, publicKeyLine: readFileSync(u.hf.hostKeyPub, 'utf8') }))));
  writeFileSync(files.hostsJson, renderHostsJson(hosts));
  writeFileSync(
    files.inventory,
    renderInventory({
      backend: o.backend,
      identityFile: files.identityFile,
      knownHosts: files.knownHosts,
      hosts,
      ...(aws ? { kms: { keyId: aws.keyAlias, region: aws.region, endpointUrl: aws.endpoint } } : {}),
    }),
  );
  // Horcrux key generation output to import (cosigner_<N>/ecies_keys.json, <chain-id>_shard.json).
  const horcruxKeys = o.cosigners ? join(dir, 'horcrux-keys') : undefined;
  if (horcruxKeys) writeHorcruxKeys(horcruxKeys, generateHorcruxKeys({ shards: o.cosigners, threshold: defaultThreshold(o.cosigners), chainId: NETWORK_ID }), NETWORK_ID);

  return {
    dir,
    network: NETWORK_ID,
    backend: o.backend,
    plaintextJwt: o.plaintextJwt,
    vault: { address: VAULT_ADDRESS, token: rootToken, pid: bao.pid },
    ...(aws ? { aws } : {}),
    baoBin: o.baoBin,
    venvBin: o.venvBin,
    ssh: { user: 'root', identityFile: files.identityFile, knownHosts: files.knownHosts },
    files: { ...files, ...(horcruxKeys ? { horcruxKeys } : {}) },
    env: { ...vars, PATH: `${pathPrefix}:${process.env.PATH ?? ''}` },
    hosts: Object.fromEntries(hosts.map((h) => [h.name, h])),
    nodes: hosts.filter((h) => h.kind === 'node').map((h) => h.name),
    cosigners: hosts.filter((h) => h.kind === 'cosigner').map((h) => h.name),
    upAt: new Date().toISOString(),
  };
}

/** mkdir -p `path`, recording (before creating) each dir that did not exist, parents first. */
function ensureDir(path: string, state: SandboxState, save: () => void): void {
  const missing: string[] = [];
  for (let p = path; !existsSync(p); p = dirname(p)) missing.unshift(p);
  if (!missing.length) return;
  state.resources.createdDirs.push(...missing);
  save();
  mkdirSync(path, { recursive: true, mode: 0o755 });
}

/**
 * Tears the sandbox in `dir` (default <repo>/.sandbox) down: kills every process in its namespaces and
 * the OpenBao server, deletes every `ks-*` network namespace, the veths and the bridge, removes the
 * mountpoint dirs `up` created (when empty) and the sandbox dir. Best effort and idempotent: works
 * with no sandbox up and after a half-failed `up`; throws only if a process survives SIGKILL.
 */
export async function sandboxDown(dir: string = DEFAULT_DIR): Promise<void> {
  dir = resolve(dir);
  const res = tryReadState(dir)?.resources ?? emptyState().resources;

  const listed = await run('ip', ['netns', 'list']);
  const liveNetns = listed.stdout
    .split('\n')
    .map((l) => l.trim().split(/\s+/)[0] ?? '')
    .filter((n) => n.startsWith(NETNS_PREFIX));
  const netns = [...new Set([...res.netns, ...liveNetns])].filter((n) => liveNetns.includes(n));

  const victims = new Set<number>();
  for (const ns of netns) for (const p of await netnsPids(ns)) victims.add(p);
  for (const r of res.pids) if (pidAlive(r.pid) && procArgv(r.pid).join(' ').includes(r.match)) victims.add(r.pid);
  for (const p of strayBaoServers()) victims.add(p);
  for (const p of strayMotoServers()) victims.add(p);
  victims.delete(process.pid);
  await killAndWait([...victims], 'SIGKILL');

  for (const ns of netns) await run('ip', ['netns', 'del', ns]);
  const links = await run('ip', ['-o', 'link', 'show']);
  const liveLinks = new Set([...links.stdout.matchAll(/^\d+:\s+([^:@\s]+)/gm)].map((m) => m[1]!));
  const ours = (l: string) => l.startsWith(VETH_PREFIX) && /^\d+$/.test(l.slice(VETH_PREFIX.length));
  for (const l of new Set([...res.links, ...[...liveLinks].filter(ours), BRIDGE])) {
    if (liveLinks.has(l)) await run('ip', ['link', 'del', l]);
  }

  // The root-namespace mountpoints are shared by every slot: removing one while another slot's hosts have
  // mounts on it silently drops those mounts, so they go only when no sandbox of any slot is left.
  const otherSlots = existsSync('/var/run/netns') && readdirSync('/var/run/netns').some((n) => /^ks\d?-/.test(n));
  for (const d of otherSlots ? [] : [...res.createdDirs].reverse()) {
    try {
      rmdirSync(d);
    } catch {
      /* gone, or not empty: leave it */
    }
  }
  rmSync(dir, { recursive: true, force: true });
}

/** Pids of OpenBao dev servers on the sandbox address (from an `up` whose state file is lost). */
function strayBaoServers(): number[] {
  const out: number[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    const argv = procArgv(Number(e));
    if (argv.includes('server') && argv.includes(BAO_SERVER_MATCH)) out.push(Number(e));
  }
  return out;
}

/** Pids of our moto servers on the sandbox address (from an `up` whose state file is lost). */
function strayMotoServers(): number[] {
  const out: number[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    const argv = procArgv(Number(e)).join(' ');
    if (MOTO_MATCH.every((m) => argv.includes(m))) out.push(Number(e));
  }
  return out;
}

/** The SandboxInfo of the sandbox up in `dir` (default <repo>/.sandbox); throws SandboxError when none is. */
export function readSandboxInfo(dir: string = DEFAULT_DIR): SandboxInfo {
  return readInfo(resolve(dir));
}

function hostOf(name: string, dir?: string): { info: SandboxInfo; host: SandboxHost } {
  const info = readSandboxInfo(dir);
  const host = info.hosts[name];
  if (!host) throw new SandboxError(`no sandbox host named ${name} (have: ${Object.keys(info.hosts).join(', ')})`);
  return { info, host };
}

export interface HostExecOptions {
  /** Sandbox dir (default <repo>/.sandbox). */
  dir?: string;
  /** Bytes for the command's stdin. */
  input?: string | Buffer;
  /** Added to the root-session environment (PATH=/usr/local/sbin:…, HOME=/root, LANG=C.UTF-8). */
  env?: Record<string, string>;
  /** SIGKILL after this many milliseconds (default 60 000). */
  timeoutMs?: number;
}

/**
 * Runs `argv` inside host `name`'s network and mount namespaces, without ssh (nsenter into the
 * host's namespace holder), as root with an SSH-session-like env: the host's tools are on PATH and
 * /run, /opt/krypton, /var/log/krypton are the host's own. For assertions (mounts, stat, witness logs).
 * Resolves {code, signal, stdout, stderr}; a non-zero exit does not throw.
 */
export async function hostExec(name: string, argv: readonly string[], opts: HostExecOptions = {}): Promise<RunResult> {
  const { host } = hostOf(name, opts.dir);
  return execInHost(host.holderPid, argv, {
    input: opts.input,
    timeoutMs: opts.timeoutMs,
    env: { ...HOST_SESSION_ENV, ...opts.env },
  });
}

/**
 * Simulates a reboot of host `name` that keeps its sshd listener: kills every other process of the
 * host (SSH sessions, el/cl, agent …), unmounts /run and everything mounted under it (so
 * /run/krypton-secrets and its secrets are gone), and mounts a fresh /run (with /run/sshd).
 * The host's persistent dirs (/opt/krypton, /var/log/krypton, /opt/horcrux) are kept.
 */
export async function simulateReboot(name: string, dir?: string): Promise<void> {
  const { host } = hostOf(name, dir);
  await rebootHost(host.netns, host.holderPid, host.sshdPid);
}

/** Stops host `name`'s sshd (listener and sessions): connections are refused until startHostSshd. Idempotent. */
export async function stopHostSshd(name: string, dir?: string): Promise<void> {
  const { host } = hostOf(name, dir);
  await killSshd(host.netns);
  updateHost(dir, name, { sshdPid: null });
}

/** Starts host `name`'s sshd again (no-op when it runs); resolves once port 22 accepts connections. */
export async function startHostSshd(name: string, dir?: string): Promise<void> {
  const { host } = hostOf(name, dir);
  if (host.sshdPid && pidAlive(host.sshdPid)) return;
  const sshdPid = await startSshd(host.holderPid, { sshdConfig: join(host.hostDir, 'sshd_config'), sshdLog: join(host.hostDir, 'sshd.log') }, host.address);
  updateHost(dir, name, { sshdPid });
}

function updateHost(dir: string | undefined, name: string, patch: Partial<SandboxHost>): void {
  const d = resolve(dir ?? DEFAULT_DIR);
  const state = tryReadState(d);
  const host = state?.info?.hosts[name];
  if (!state || !host) throw new SandboxError(`no sandbox host named ${name} in ${d}`);
  Object.assign(host, patch);
  if (patch.sshdPid) state.resources.pids.push({ pid: patch.sshdPid, what: `sshd ${name}`, match: '/usr/sbin/sshd' });
  writeState(d, state);
}
