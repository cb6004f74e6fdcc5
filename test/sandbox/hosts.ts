/**
 * One sandbox host = a network namespace `ks-<name>` (veth to the bridge) whose processes share a
 * private mount namespace held open by a `sleep infinity` "holder": fresh tmpfs on /run, the host's
 * persistent dirs bind-mounted on /opt/krypton (or /opt/horcrux), /var/log/krypton and /usr/local/sbin.
 * Debian's sshd runs in those namespaces. Because the holder, not sshd, keeps the namespaces alive,
 * sshd can be stopped and started (a host that is down) without losing the host's mounts.
 */
import { chmodSync, copyFileSync, mkdirSync, openSync, closeSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { DEPLOY_DIR, ENV_FILE, HOST_SESSION_ENV, NETWORK_ID, SANDBOX_SRC, type HostSpec, hostBinds } from './layout.ts';
import { DOCKER_CLI, dockerNodeEnv, renderCompose, type JwtMount, type Runtime } from './docker.ts';
import { SandboxError, killAndWait, logTail, pidAlive, procComm, run, runOk, shQuote, tcpOpen, waitFor, type RunOptions, type RunResult } from './proc.ts';

/** Mount options of a host's /run, as Debian mounts it at boot. */
const RUN_TMPFS_OPTS = 'mode=0755,nosuid,nodev,size=64m';
/** What a freshly booted host's /run holds (sshd's privilege-separation dir must exist). */
const BOOT_RUN_DIRS = ['/run/sshd', '/run/lock'];

/** Node tools: source in test/sandbox/tools -> name on the host's PATH (/usr/local/sbin). */
const NODE_TOOLS: Record<string, string> = {
  'nodectl.cjs': 'nodectl',
  'agentctl.cjs': 'agentctl',
  'krypton-el.cjs': 'krypton-el.cjs',
  'krypton-cl.cjs': 'krypton-cl.cjs',
  'engine-jwt.cjs': 'engine-jwt.cjs',
  'proc-util.cjs': 'proc-util.cjs',
};

/** Cosigner tools: the Vault Agent runner and the Horcrux stand-in (horcruxctl start|stop|status). */
const COSIGNER_TOOLS: Record<string, string> = {
  'agentctl.cjs': 'agentctl',
  'horcruxctl.cjs': 'horcruxctl',
  'horcrux-standin.cjs': 'horcrux-standin.cjs',
  'proc-util.cjs': 'proc-util.cjs',
};

/** The harmless compose env file a node starts with (no JWT_PATH: el/cl wait for the tool). */
export const DEFAULT_NODE_ENV = [
  '# krypton node compose env (sandbox)',
  'COMPOSE_PROJECT_NAME=krypton',
  `NETWORK_ID=${NETWORK_ID}`,
  'EL_IMAGE=krypton/el:stand-in',
  'CL_IMAGE=krypton/cl:stand-in',
  '',
].join('\n');

/** The old provisioning script, left in the deploy dir of `--plaintext-jwt` nodes (never run). */
const BOOTSTRAP_STUB = `#!/bin/sh
# bootstrap.sh — the old way (stub kept by the sandbox for migration tests; not executed).
# It wrote the Engine-API secret in plaintext to the persistent deploy dir, world-readable:
#   openssl rand -hex 32 | tr -d '\\n' > ${DEPLOY_DIR}/jwt.hex && chmod 0644 ${DEPLOY_DIR}/jwt.hex
#   echo "JWT_PATH=${DEPLOY_DIR}/jwt.hex" >> ${ENV_FILE}
#   docker compose up -d el cl
echo "bootstrap.sh: stub, superseded by krypton-secrets" >&2
exit 1
`;

export interface HostFiles {
  hostDir: string;
  binds: Record<string, string>;
  sshdConfig: string;
  sshdLog: string;
  hostKeyPub: string;
}

/**
 * Lays out <dir>/hosts/<name>: host key, sshd_config, the persistent dirs, and the tools dir (node
 * tools + a `bao` symlink to the real binary). With `plaintextJwt` (nodes), writes the old-style
 * world-readable jwt.hex, JWT_PATH and bootstrap.sh into the deploy dir. With runtime 'docker' (nodes):
 * the deploy dir gets docker-compose.yml (JWT mount form `jwtMount`) and a docker .env, the tools dir a
 * `docker` link to Debian's client, root's ~/.docker the compose CLI plugin (link to `composePlugin`),
 * /etc/docker an empty daemon.json.
 */
export async function layoutHost(
  dir: string,
  spec: HostSpec,
  o: {
    authorizedKeys: string;
    baoBin: string;
    plaintextJwtHex?: string;
    backend?: 'vault' | 'kms' | 'secrets-manager';
    runtime?: Runtime;
    jwtMount?: JwtMount;
    /** The cached docker-compose plugin binary (runtime 'docker'). */
    composePlugin?: string;
  },
): Promise<HostFiles> {
  const hostDir = join(dir, 'hosts', spec.name);
  const binds: Record<string, string> = {};
  const docker = o.runtime === 'docker' && spec.kind === 'node';
  for (const b of hostBinds(spec.kind, o.backend, docker ? 'docker' : 'standin')) {
    binds[b.at] = join(hostDir, b.sub);
    mkdirSync(binds[b.at]!, { recursive: true, mode: 0o755 });
  }
  const tools = join(hostDir, 'tools');
  if (spec.kind === 'node') {
    for (const [src, dst] of Object.entries(NODE_TOOLS)) {
      copyFileSync(join(SANDBOX_SRC, 'tools', src), join(tools, dst));
      chmodSync(join(tools, dst), 0o755);
    }
    // Extensionless scripts are CommonJS only outside a "type": "module" package; say so explicitly.
    writeFileSync(join(tools, 'package.json'), '{ "type": "commonjs" }\n');
    const deploy = join(hostDir, 'deploy');
    let env = docker ? dockerNodeEnv() : DEFAULT_NODE_ENV;
    if (o.plaintextJwtHex) {
      writeFileSync(join(deploy, 'jwt.hex'), o.plaintextJwtHex, { mode: 0o644 });
      chmodSync(join(deploy, 'jwt.hex'), 0o644);
      writeFileSync(join(deploy, 'bootstrap.sh'), BOOTSTRAP_STUB, { mode: 0o755 });
      env += `JWT_PATH=${DEPLOY_DIR}/jwt.hex\n`;
    }
    writeFileSync(join(deploy, '.env'), env, { mode: 0o644 });
    if (docker) {
      if (!o.composePlugin) throw new SandboxError('runtime docker needs the compose plugin binary');
      writeFileSync(join(deploy, 'docker-compose.yml'), renderCompose(o.jwtMount ?? 'file'));
      symlinkSync(DOCKER_CLI, join(tools, 'docker'));
      const plugins = join(binds['/root/.docker']!, 'cli-plugins');
      mkdirSync(plugins, { recursive: true, mode: 0o755 });
      symlinkSync(o.composePlugin, join(plugins, 'docker-compose'));
      writeFileSync(join(binds['/etc/docker']!, 'daemon.json'), '{}\n');
    }
  } else {
    // Horcrux home: state/ (double-sign high-water marks) stays on persistent disk; the key dir
    // (/opt/horcrux/keys) and config.yaml are left for the tool (key dir on tmpfs). The stand-in
    // (horcruxctl start) starts only when the key dir holds parseable key files with mode 0600.
    mkdirSync(join(hostDir, 'horcrux', 'state'), { recursive: true, mode: 0o700 });
    for (const [src, dst] of Object.entries(COSIGNER_TOOLS)) {
      copyFileSync(join(SANDBOX_SRC, 'tools', src), join(tools, dst));
      chmodSync(join(tools, dst), 0o755);
    }
    writeFileSync(join(tools, 'package.json'), '{ "type": "commonjs" }\n');
  }
  symlinkSync(o.baoBin, join(tools, 'bao'));

  const key = join(hostDir, 'ssh_host_ed25519_key');
  await runOk('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', `root@${spec.name}`, '-f', key]);
  const sshdConfig = join(hostDir, 'sshd_config');
  const sshdLog = join(hostDir, 'sshd.log');
  writeFileSync(
    sshdConfig,
    [
      `# sshd of sandbox host ${spec.name} (generated)`,
      `ListenAddress ${spec.address}`,
      'Port 22',
      `HostKey ${key}`,
      'PermitRootLogin prohibit-password',
      'PubkeyAuthentication yes',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'UsePAM no',
      'StrictModes no',
      `AuthorizedKeysFile ${o.authorizedKeys}`,
      'Subsystem sftp internal-sftp',
      'MaxSessions 10',
      `PidFile ${join(hostDir, 'sshd.pid')}`,
      'LogLevel VERBOSE',
      'PrintMotd no',
      'PrintLastLog no',
      'UseDNS no',
      '',
    ].join('\n'),
  );
  return { hostDir, binds, sshdConfig, sshdLog, hostKeyPub: `${key}.pub` };
}

/** Root-namespace `ip -batch` lines creating the host's netns and veth pair (bridge side enslaved, up). */
export function rootNetLines(netns: string, veth: string, bridge: string): string[] {
  return [`netns add ${netns}`, `link add ${veth} type veth peer name eth0 netns ${netns}`, `link set ${veth} master ${bridge} up`];
}

/** Inside the host netns: address on eth0, eth0 and loopback up (no default route: nothing leaves the bridge). */
export async function configureHostNet(netns: string, address: string, prefixLen: number): Promise<void> {
  await runOk('ip', ['-n', netns, '-batch', '-'], {
    input: [`addr add ${address}/${prefixLen} dev eth0`, 'link set eth0 up', 'link set lo up', ''].join('\n'),
  });
}

/** Commands (for `sh -c`) that give a host a fresh, booted /run. */
function bootRunScript(): string {
  return [`mount -t tmpfs -o ${RUN_TMPFS_OPTS} tmpfs /run`, ...BOOT_RUN_DIRS.map((d) => `mkdir -p ${d}`)].join('\n');
}

/**
 * Starts the host's namespace holder: `nsenter --net=/run/netns/<netns> unshare --mount --propagation private`,
 * then /run tmpfs + bind mounts, then `exec sleep infinity`. Resolves with its pid once the mounts are
 * in place (the process has become `sleep`). Not `ip netns exec`: that remounts /sys for the netns, which
 * hides this machine's cgroup mounts under /sys/fs/cgroup, and a host's dockerd (`--runtime docker`) then
 * fails with "Devices cgroup isn't mounted". The host sees this machine's /sys (and cgroups) instead.
 */
export async function startHolder(netns: string, binds: Record<string, string>, logFile: string): Promise<number> {
  const script = [
    'set -e',
    bootRunScript(),
    ...Object.entries(binds).map(([at, src]) => `mount --bind ${shQuote(src)} ${shQuote(at)}`),
    'exec sleep infinity',
  ].join('\n');
  const log = openSync(logFile, 'a');
  const child = spawn('nsenter', [`--net=/run/netns/${netns}`, '--', 'unshare', '--mount', '--propagation', 'private', '--', 'sh', '-c', script], {
    cwd: '/',
    detached: true,
    stdio: ['ignore', log, log],
    env: HOST_SESSION_ENV,
  });
  closeSync(log);
  let exited: string | undefined;
  child.on('exit', (code, signal) => (exited = signal ?? `code ${code}`));
  child.on('error', (e) => (exited = e.message));
  child.unref();
  const pid = child.pid;
  if (!pid) throw new SandboxError(`cannot start the namespace holder of ${netns}`);
  await waitFor(`the mount namespace of ${netns}`, () => {
    if (exited) throw new SandboxError(`setting up the mounts of ${netns} failed (${exited})${logTail(logFile)}`);
    return procComm(pid) === 'sleep';
  });
  return pid;
}

/** Starts sshd -D in the holder's namespaces; resolves with its pid once port 22 accepts connections. */
export async function startSshd(holderPid: number, files: Pick<HostFiles, 'sshdConfig' | 'sshdLog'>, address: string): Promise<number> {
  const child = spawn('nsenter', ['-t', String(holderPid), '-n', '-m', '--', '/usr/sbin/sshd', '-D', '-f', files.sshdConfig, '-E', files.sshdLog], {
    cwd: '/',
    detached: true,
    stdio: 'ignore',
    env: HOST_SESSION_ENV,
  });
  let exited: string | undefined;
  child.on('exit', (code, signal) => (exited = signal ?? `code ${code}`));
  child.on('error', (e) => (exited = e.message));
  child.unref();
  const pid = child.pid;
  if (!pid) throw new SandboxError(`cannot start sshd for ${address}`);
  await waitFor(`sshd on ${address}:22`, async () => {
    if (exited) throw new SandboxError(`sshd for ${address} exited (${exited})${logTail(files.sshdLog)}`);
    return tcpOpen(address, 22, 200);
  });
  return pid;
}

/** Pids of every process in the network namespace (`ip netns pids`). */
export async function netnsPids(netns: string): Promise<number[]> {
  const r = await run('ip', ['netns', 'pids', netns]);
  return r.code === 0 ? r.stdout.split(/\s+/).filter(Boolean).map(Number) : [];
}

/** Runs argv inside the holder's network + mount namespaces (no ssh), with a root-session env. */
export function execInHost(holderPid: number, argv: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  if (!pidAlive(holderPid)) throw new SandboxError(`the host's namespace holder (pid ${holderPid}) is gone`);
  return run('nsenter', ['-t', String(holderPid), '-n', '-m', '--', ...argv], { env: HOST_SESSION_ENV, ...opts });
}

/** Kills every sshd process of the host (listener and sessions). */
export async function killSshd(netns: string): Promise<void> {
  const pids = (await netnsPids(netns)).filter((p) => procComm(p) === 'sshd');
  await killAndWait(pids, 'SIGTERM');
}

/**
 * A reboot, keeping the host's sshd listener: SIGKILL every other process of the host (sessions,
 * el/cl, agents …), unmount /run with everything mounted under it (e.g. /run/krypton-secrets) and any tmpfs
 * mounted under /opt (a cosigner's key dir), and mount a fresh, booted /run. Persistent dirs are untouched.
 */
export async function rebootHost(netns: string, holderPid: number, sshdPid: number | null): Promise<void> {
  const keep = new Set([holderPid, sshdPid ?? -1]);
  await killAndWait((await netnsPids(netns)).filter((p) => !keep.has(p)), 'SIGKILL');
  // tmpfs mounts on the persistent dirs (a cosigner's key dir under /opt/horcrux) vanish at a reboot too.
  const optTmpfs = `for m in $(findmnt -rn -t tmpfs -o TARGET | grep '^/opt/' | sort -r); do umount -l "$m"; done`;
  await runOk('nsenter', ['-t', String(holderPid), '-m', '--', 'sh', '-c', ['set -e', optTmpfs, 'umount -R /run 2>/dev/null || umount -R -l /run', bootRunScript()].join('\n')], {
    env: HOST_SESSION_ENV,
  });
}
