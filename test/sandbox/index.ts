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
import { SandboxError, killAndWait, pidAlive, procArgv, run, runOk, waitFor, type RunResult } from './proc.ts';
import {
  COMPOSE_FILE,
  CONTAINER_WITNESS,
  DOCKER_CLI,
  composeInHost,
  dockerdUp,
  ensureDockerTools,
  ensureImages,
  lastLoadedJwt,
  loadImages,
  parseComposePs,
  parseContainerStarts,
  parseDockerEvents,
  removeHostCgroups,
  startDockerd,
  type ComposeService,
  type ContainerEvent,
  type ContainerStart,
  type JwtMount,
  type Runtime,
} from './docker.ts';
import { emptyState, readInfo, tryReadState, writeState, type Backend, type SandboxHost, type SandboxInfo, type SandboxState } from './state.ts';

export type { Backend, SandboxHost, SandboxInfo } from './state.ts';
export type { RunResult } from './proc.ts';
export { SandboxError } from './proc.ts';
export { DEFAULT_DIR, VAULT_ADDRESS, BRIDGE_ADDRESS, NETWORK_ID } from './layout.ts';
export { MOTO_ADDRESS, AWS_REGION, KMS_KEY_ALIAS, type SandboxAws, type AwsKey } from './moto.ts';
export {
  CL_IMAGE,
  COMPOSE_FILE,
  COMPOSE_VERSION,
  CONTAINER_WITNESS,
  EL_IMAGE,
  GETH_VERSION,
  JWT_IN_CONTAINER,
  engineJwtCrc32,
  lastLoadedJwt,
  type ComposeService,
  type ContainerEvent,
  type ContainerStart,
  type JwtMount,
  type Runtime,
} from './docker.ts';

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
  /**
   * Declare node env-secrets in the inventory (`defaults.env`) and store one variable for them (default true).
   * `false`: a JWT-only fleet, as before env-secrets existed.
   */
  env?: boolean;
  /**
   * How nodes run el/cl (default 'standin': nodectl + the node stand-ins). 'docker': a dockerd per node,
   * el = the real geth and cl = the CL stand-in in containers under docker compose in /opt/krypton
   * (not started, except with plaintextJwt: `docker compose up -d`).
   */
  runtime?: Runtime;
  /** Runtime docker: the JWT mount form of the compose file (default 'file'; 'dir' is refused with plaintextJwt). */
  jwtMount?: JwtMount;
  /**
   * Also give OpenBao a file audit device with `log_raw` writing to this path (the canary leak matrix reads the
   * tokens, wrapping tokens and secret_ids of a run from it). It holds them in clear: use a tmpfs path
   * (e.g. under /dev/shm) and delete it after sandboxDown.
   */
  vaultAuditLog?: string;
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
  const runtime = opts.runtime ?? 'standin';
  const jwtMount = opts.jwtMount ?? 'file';
  if (runtime !== 'standin' && runtime !== 'docker') throw new SandboxError(`unknown runtime ${String(runtime)} (standin|docker)`);
  if (jwtMount !== 'file' && jwtMount !== 'dir') throw new SandboxError(`unknown JWT mount form ${String(jwtMount)} (file|dir)`);
  if (opts.jwtMount && runtime !== 'docker') throw new SandboxError('--jwt-mount applies to --runtime docker only');
  if (runtime === 'docker' && opts.plaintextJwt && jwtMount === 'dir') {
    throw new SandboxError('--plaintext-jwt is the old single-file form (JWT_PATH=/opt/krypton/jwt.hex): use --jwt-mount file');
  }
  if (process.getuid?.() !== 0) throw new SandboxError('the sandbox needs root (network namespaces, mounts)');
  const dir = resolve(opts.dir ?? DEFAULT_DIR);
  const { baoBin, venvBin } = findOpenBao();
  // Builds (first run: geth takes minutes) and image tarballs happen before anything is made.
  const dockerTools = runtime === 'docker' ? await ensureDockerTools() : undefined;
  const images = dockerTools ? await ensureImages(dockerTools) : undefined;

  await sandboxDown(dir);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const state = emptyState();
  const save = () => writeState(dir, state);
  save();
  try {
    const docker = dockerTools && images ? { tools: dockerTools, images, jwtMount } : undefined;
    const info = await bringUp(dir, state, save, { nodes, cosigners, backend, plaintextJwt: !!opts.plaintextJwt, env: opts.env ?? true, ...(opts.vaultAuditLog ? { vaultAuditLog: opts.vaultAuditLog } : {}), baoBin, venvBin, docker });
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
  env: boolean;
  vaultAuditLog?: string;
  baoBin: string;
  venvBin: string;
  /** Runtime docker: the cached builds, the image tarballs (el, cl) and the JWT mount form. */
  docker?: { tools: { geth: string; compose: string; entry: string }; images: string[]; jwtMount: JwtMount };
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
  const runtime: Runtime = o.docker ? 'docker' : 'standin';
  for (const at of new Set(specs.flatMap((s) => hostBinds(s.kind, o.backend, runtime).map((b) => b.at)))) ensureDir(at, state, save);

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
  const bao = spawnBaoServer(dir, o.baoBin, rootToken, o.vaultAuditLog);
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
        layoutHost(dir, s, {
          authorizedKeys,
          baoBin: o.baoBin,
          backend: o.backend,
          plaintextJwtHex: o.plaintextJwt && s.kind === 'node' ? randomBytes(32).toString('hex') : undefined,
          runtime,
          jwtMount: o.docker?.jwtMount,
          composePlugin: o.docker?.tools.compose,
        }),
        configureHostNet(netns, s.address, PREFIX_LEN),
      ]);
      const holderPid = await startHolder(netns, hf.binds, join(hf.hostDir, 'holder.log'));
      state.resources.pids.push({ pid: holderPid, what: `holder ${s.name}`, match: 'sleep infinity' });
      save();
      const sshdPid = await startSshd(holderPid, hf, s.address);
      let dockerdPid: number | undefined;
      if (o.docker && s.kind === 'node') {
        dockerdPid = await startDockerd(holderPid, hf.hostDir, netns);
        state.resources.pids.push({ pid: dockerdPid, what: `dockerd ${s.name}`, match: DOCKERD_MATCH });
        save();
        await loadImages(holderPid, o.docker.images);
      }
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
        ...(dockerdPid ? { dockerdPid } : {}),
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
          if (o.docker) return composeUpPlaintext(h);
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
      runtime,
      env: o.env,
      ...(aws ? { kms: { keyId: aws.keyAlias, region: aws.region, endpointUrl: aws.endpoint } } : {}),
    }),
  );
  // The nodes' env-secrets, as an operator would have imported them (one variable; tests replace them).
  if (o.env) await seedSandboxEnv(files.inventory, vars);
  // Horcrux key generation output to import (cosigner_<N>/ecies_keys.json, <chain-id>_shard.json).
  const horcruxKeys = o.cosigners ? join(dir, 'horcrux-keys') : undefined;
  if (horcruxKeys) writeHorcruxKeys(horcruxKeys, generateHorcruxKeys({ shards: o.cosigners, threshold: defaultThreshold(o.cosigners), chainId: NETWORK_ID }), NETWORK_ID);

  return {
    dir,
    network: NETWORK_ID,
    backend: o.backend,
    plaintextJwt: o.plaintextJwt,
    runtime,
    ...(o.docker
      ? {
          docker: {
            jwtMount: o.docker.jwtMount,
            composeFile: COMPOSE_FILE,
            images: { el: o.docker.images[0]!, cl: o.docker.images[1]! },
            geth: o.docker.tools.geth,
            composePlugin: o.docker.tools.compose,
            entry: o.docker.tools.entry,
            dockerCli: DOCKER_CLI,
          },
        }
      : {}),
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

/** The env-secret variable sandboxUp stores for every node (a random value, so tests can look for leaks of it). */
export const SANDBOX_ENV_NAME = 'KRYPTON_SANDBOX_NODE_SECRET';

/**
 * Stores the sandbox's node env-secrets through the tool's own store (KV v2, a KMS blob or a Secrets Manager
 * secret, as the inventory says), with the operator's credentials from the sandbox env.
 */
async function seedSandboxEnv(inventoryFile: string, vars: Record<string, string>): Promise<void> {
  const [{ loadInventory }, { openStore }, { renderEnvFile }, { NETWORK_SCOPE }] = await Promise.all([
    import('../../src/inventory/loader.ts'),
    import('../../src/backends/index.ts'),
    import('../../src/model/formats.ts'),
    import('../../src/model/layout.ts'),
  ]);
  const env = { ...process.env, ...vars };
  // The AWS SDK finds the operator's credentials in process.env (as the CLI would): lend it the sandbox's.
  const saved = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]]));
  Object.assign(process.env, vars);
  try {
    const inv = await loadInventory(inventoryFile, env);
    const store = await openStore(inv, env);
    const ref = { kind: 'node-env' as const, network: inv.network, scope: NETWORK_SCOPE };
    await store.write(ref, renderEnvFile({ [SANDBOX_ENV_NAME]: randomBytes(16).toString('hex') }, 'sandbox'), await store.head(ref));
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

/** Argv substring of a host's dockerd (teardown's pid-reuse guard). */
const DOCKERD_MATCH = '--cgroup-parent /krypton-';

/**
 * `--plaintext-jwt --runtime docker`: `docker compose up -d` on the old plaintext file, then waits until
 * geth logged the file it loaded and the CL witnessed a 200 (generous bounds: a busy 2-core CI machine).
 */
async function composeUpPlaintext(h: SandboxHost): Promise<void> {
  const up = await composeInHost(h.holderPid, ['up', '-d', '--quiet-pull', 'el', 'cl']);
  if (up.code !== 0) throw new SandboxError(`${h.name}: docker compose up -d el cl failed: ${up.stderr.trim().split('\n').slice(-3).join(' ')}`);
  await waitFor(
    `${h.name}: geth to load the plaintext JWT and the CL to get a 200`,
    async () => {
      const logs = await composeInHost(h.holderPid, ['logs', '--no-color', '--no-log-prefix', 'el'], { timeoutMs: 30_000 });
      if (!lastLoadedJwt(logs.stdout + logs.stderr)) return false;
      const cl = await execInHost(h.holderPid, ['cat', '/var/log/krypton/cl.log']);
      return / 200$/m.test(cl.stdout);
    },
    { timeoutMs: 180_000, intervalMs: 500 },
  );
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
  // Runtime docker: the killed containers' cgroups (dockerd would have removed them on a clean stop).
  for (const ns of netns) await removeHostCgroups(ns);

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
 *
 * Runtime docker: dockerd and the containers are killed too (as a power cycle would; nothing is
 * stopped cleanly). Then, unless `startDockerd: false`, dockerd starts again as docker.service would at
 * boot, and applies the compose file's `restart: unless-stopped`: it starts el and cl again at once —
 * before any JWT is back on the (new, empty) /run. What they do then depends on the mount form (README
 * "Docker runtime"). With `startDockerd: false` the host stays without dockerd until startHostDockerd
 * (a host whose docker.service is ordered after the tool's boot step).
 */
export async function simulateReboot(name: string, dir?: string, opts: { startDockerd?: boolean } = {}): Promise<void> {
  const { info, host } = hostOf(name, dir);
  await rebootHost(host.netns, host.holderPid, host.sshdPid);
  if (info.runtime !== 'docker' || host.kind !== 'node') return;
  updateHost(dir, name, { dockerdPid: null });
  if (opts.startDockerd !== false) await startHostDockerd(name, dir);
}

/** Runtime docker: starts host `name`'s dockerd (no-op when it answers); resolves once its API answers. */
export async function startHostDockerd(name: string, dir?: string): Promise<void> {
  const { host } = dockerHostOf(name, dir);
  if (host.dockerdPid && pidAlive(host.dockerdPid) && (await dockerdUp(host.holderPid))) return;
  const dockerdPid = await startDockerd(host.holderPid, host.hostDir, host.netns);
  updateHost(dir, name, { dockerdPid });
}

/** Runtime docker: stops host `name`'s dockerd (SIGTERM: dockerd stops the containers first). Idempotent. */
export async function stopHostDockerd(name: string, dir?: string): Promise<void> {
  const { host } = dockerHostOf(name, dir);
  if (host.dockerdPid && pidAlive(host.dockerdPid)) await killAndWait([host.dockerdPid], 'SIGTERM', 30_000);
  updateHost(dir, name, { dockerdPid: null });
}

function dockerHostOf(name: string, dir?: string): { info: SandboxInfo; host: SandboxHost } {
  const r = hostOf(name, dir);
  if (r.info.runtime !== 'docker' || r.host.kind !== 'node') throw new SandboxError(`${name} is not a docker node (sandbox runtime ${r.info.runtime ?? 'standin'})`);
  return r;
}

/**
 * Runtime docker: runs `docker compose <args>` in host `name`'s deploy dir /opt/krypton (so compose
 * reads /opt/krypton/.env), as an SSH session there would. Resolves {code, signal, stdout, stderr}.
 */
export async function composeExec(name: string, args: readonly string[], opts: HostExecOptions = {}): Promise<RunResult> {
  const { host } = dockerHostOf(name, opts.dir);
  return composeInHost(host.holderPid, args, { input: opts.input, timeoutMs: opts.timeoutMs, env: { ...HOST_SESSION_ENV, ...opts.env } });
}

/** Runtime docker: `docker compose ps --all` of host `name` as rows {service, name, id, state, status}. */
export async function composePs(name: string, dir?: string): Promise<ComposeService[]> {
  const r = await composeExec(name, ['ps', '--all', '--format', 'json'], { dir });
  if (r.code !== 0) throw new SandboxError(`${name}: docker compose ps failed: ${r.stderr.trim()}`);
  return parseComposePs(r.stdout);
}

/** Runtime docker: the container id and main pid (in this machine's pid namespace) of service `svc`, or undefined when not running. */
export async function containerOf(name: string, svc: string, dir?: string): Promise<{ id: string; pid: number } | undefined> {
  const row = (await composePs(name, dir)).find((r) => r.service === svc && r.state === 'running');
  if (!row) return undefined;
  const r = await hostExec(name, [DOCKER_CLI, 'inspect', '--format', '{{.State.Pid}}', row.id], { dir });
  const pid = Number(r.stdout.trim());
  return r.code === 0 && pid > 0 ? { id: row.id, pid } : undefined;
}

/**
 * Runtime docker: SHA-256 (hex) of file `path` exactly as service `svc`'s running container sees it —
 * read through /proc/<container pid>/root, i.e. the container's own mount namespace, so a stale
 * single-file bind mount shows its old content (`docker cp` would not: it re-binds the source).
 * Undefined when the container does not run or the file is unreadable there. The content never leaves the host.
 */
export async function containerFileSha256(name: string, svc: string, path: string, dir?: string): Promise<string | undefined> {
  const c = await containerOf(name, svc, dir);
  if (!c) return undefined;
  const r = await hostExec(name, ['sha256sum', `/proc/${c.pid}/root${path}`], { dir });
  return r.code === 0 ? r.stdout.trim().split(/\s+/)[0] : undefined;
}

/**
 * Runtime docker: the last `Loaded JWT secret file path=… crc32=0x…` of host `name`'s el (geth) container
 * logs: {path, crc32 as geth prints it ("0x" + lowercase hex, no leading zeros)}; undefined when none.
 * Compare with engineJwtCrc32(hex). A recreated container starts a fresh log; a restarted one appends.
 */
export async function gethLoadedJwtCrc32(name: string, dir?: string): Promise<{ path: string; crc32: string } | undefined> {
  const r = await composeExec(name, ['logs', '--no-color', '--no-log-prefix', 'el'], { dir });
  return lastLoadedJwt(r.stdout + r.stderr);
}

/** Runtime docker: host `name`'s container-start witness (/var/log/krypton/containers.log), oldest first. */
export async function containerStarts(name: string, dir?: string): Promise<ContainerStart[]> {
  const r = await hostExec(name, ['cat', CONTAINER_WITNESS], { dir });
  return r.code === 0 ? parseContainerStarts(r.stdout) : [];
}

/**
 * Runtime docker: the compose containers' events (kill, die, stop, start, restart, create, destroy …) of
 * host `name`'s dockerd since `sinceMs` (unix ms; default: dockerd's whole in-memory buffer, its last
 * 256 events or so), oldest first. A dockerd restart (simulateReboot) empties the buffer.
 */
export async function dockerEvents(name: string, sinceMs = 0, dir?: string): Promise<ContainerEvent[]> {
  const until = (Date.now() / 1000 + 1).toFixed(3);
  const r = await hostExec(name, [DOCKER_CLI, 'events', '--since', (sinceMs / 1000).toFixed(3), '--until', until, '--filter', 'type=container', '--format', '{{json .}}'], { dir });
  if (r.code !== 0) throw new SandboxError(`${name}: docker events failed: ${r.stderr.trim()}`);
  return parseDockerEvents(r.stdout);
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
  if (patch.dockerdPid) state.resources.pids.push({ pid: patch.dockerdPid, what: `dockerd ${name}`, match: DOCKERD_MATCH });
  writeState(d, state);
}
