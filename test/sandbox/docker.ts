/**
 * The sandbox's Docker runtime (`sandbox:up -- --runtime docker`): per node host, Debian's `dockerd`
 * (docker.io 20.10) inside the host's own network and mount namespaces, with vfs storage, no iptables,
 * no bridge, its data root on the host's persistent dir and its socket at the default
 * /var/run/docker.sock of the host's own /run; two images built here FROM scratch (el = the real geth,
 * cl = the CL stand-in on this machine's node binary); and a real `docker-compose.yml` in /opt/krypton
 * run by the real Docker Compose v5 CLI plugin. On the hosts every `docker` is Debian's client
 * /usr/bin/docker (the tools dir, first on PATH, links `docker` to it), which finds the compose plugin in
 * /root/.docker/cli-plugins (a per-host bind mount).
 *
 * Witness logs (README "Docker runtime"): the images' entrypoint appends
 * `<unix-seconds.millis> start <svc> <container-id-12>` to /var/log/krypton/containers.log at each
 * container start; the CL stand-in keeps writing cl.log; dockerd's event buffer (`docker events
 * --since`) has kill/die/stop/start with nanosecond times.
 */
import { createHash } from 'node:crypto';
import { closeSync, existsSync, openSync, readFileSync, readdirSync, rmdirSync, statSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { DEPLOY_DIR, HOST_SESSION_ENV, NETWORK_ID, REPO_ROOT, SANDBOX_SRC, WITNESS_DIR } from './layout.ts';
import { ensureImageTar, sharedLibs, type ImageSpec } from './images.ts';
import { SandboxError, logTail, run, runOk, waitFor, type RunOptions, type RunResult } from './proc.ts';

export const GETH_VERSION = 'v1.17.10';
export const COMPOSE_VERSION = 'v5.6.0';
/** Build cache outside the repo (geth, compose, entrypoint, image tarballs, Go module cache). */
export const CACHE_DIR = process.env['KRYPTON_SANDBOX_CACHE'] || '/var/cache/krypton-sandbox';
/** Debian's docker.io: the daemon and the client every host uses. */
export const DOCKERD = '/usr/sbin/dockerd';
export const DOCKER_CLI = '/usr/bin/docker';
export const EL_IMAGE = `krypton-sandbox/el:geth-${GETH_VERSION}`;
export const CL_IMAGE = 'krypton-sandbox/cl:stand-in';
export const COMPOSE_FILE = `${DEPLOY_DIR}/docker-compose.yml`;
/** The container-start witness: `<unix-seconds.millis> start <svc> <container-id-12>` per container start. */
export const CONTAINER_WITNESS = `${WITNESS_DIR}/containers.log`;
/** Where both containers see the JWT file, whatever the mount form. */
export const JWT_IN_CONTAINER = '/jwt/jwt.hex';
/** The tool's tmpfs (the directory form mounts it whole). */
export const SECRETS_DIR = '/run/krypton-secrets';
/** The node env file the compose services read (`env_file`, required: false). */
export const NODE_ENV_FILE = `${SECRETS_DIR}/node.env`;

/** How the JWT reaches the containers: one file (`${JWT_PATH}:/jwt/jwt.hex:ro`) or the tmpfs dir (`/run/krypton-secrets:/jwt:ro`). */
export type JwtMount = 'file' | 'dir';
export type Runtime = 'standin' | 'docker';

/** Runs argv in the holder's network + mount namespaces with a root-session env (like hosts.ts execInHost). */
function execInHost(holderPid: number, argv: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  return run('nsenter', ['-t', String(holderPid), '-n', '-m', '--', ...argv], { env: HOST_SESSION_ENV, ...opts });
}

export interface DockerTools {
  geth: string;
  compose: string;
  entry: string;
}

function entryHash(): string {
  const src = join(SANDBOX_SRC, 'images', 'entry');
  return createHash('sha256')
    .update(Buffer.concat([readFileSync(join(src, 'go.mod')), readFileSync(join(src, 'main.go'))]))
    .digest('hex')
    .slice(0, 12);
}

/**
 * The cached Go builds (geth, the compose plugin, the images' entrypoint); runs .ci/build-docker-tools.sh
 * when one is missing (first run on a machine: geth takes minutes). Throws SandboxError when Debian's
 * docker.io is not installed (hint: .ci/install-deps.sh).
 */
export async function ensureDockerTools(): Promise<DockerTools> {
  for (const bin of [DOCKERD, DOCKER_CLI]) {
    if (!existsSync(bin)) throw new SandboxError(`${bin} is missing: the docker runtime needs Debian's docker.io (run: bash .ci/install-deps.sh)`);
  }
  const tools: DockerTools = {
    geth: join(CACHE_DIR, `geth-${GETH_VERSION}`, 'geth'),
    compose: join(CACHE_DIR, `compose-${COMPOSE_VERSION}`, 'docker-compose'),
    entry: join(CACHE_DIR, `entry-${entryHash()}`, 'krypton-entry'),
  };
  if (Object.values(tools).some((p) => !existsSync(p))) {
    process.stderr.write('sandbox: building the docker runtime tools (geth, compose, entrypoint; first run only)\n');
    await runOk('bash', [join(REPO_ROOT, '.ci', 'build-docker-tools.sh')], { timeoutMs: 45 * 60_000 });
    for (const p of Object.values(tools)) if (!existsSync(p)) throw new SandboxError(`.ci/build-docker-tools.sh did not produce ${p}`);
  }
  return tools;
}

/**
 * A small post-merge genesis for chain id 473374: every fork through Prague at block/time 0 and
 * terminalTotalDifficulty 0, so geth serves the Engine API from block 0; no accounts.
 */
export const GENESIS = {
  config: {
    chainId: Number(NETWORK_ID),
    homesteadBlock: 0,
    eip150Block: 0,
    eip155Block: 0,
    eip158Block: 0,
    byzantiumBlock: 0,
    constantinopleBlock: 0,
    petersburgBlock: 0,
    istanbulBlock: 0,
    berlinBlock: 0,
    londonBlock: 0,
    mergeNetsplitBlock: 0,
    terminalTotalDifficulty: 0,
    shanghaiTime: 0,
    cancunTime: 0,
    pragueTime: 0,
    blobSchedule: {
      cancun: { target: 3, max: 6, baseFeeUpdateFraction: 3338477 },
      prague: { target: 6, max: 9, baseFeeUpdateFraction: 5007716 },
    },
  },
  nonce: '0x0',
  timestamp: '0x0',
  extraData: '0x',
  gasLimit: '0x1c9c380',
  difficulty: '0x0',
  alloc: {},
};

/** The el and cl image specs (docker-archive, FROM scratch; see images.ts). */
export async function imageSpecs(tools: DockerTools): Promise<ImageSpec[]> {
  const entry = '/usr/local/bin/krypton-entry';
  const el: ImageSpec = {
    name: 'el',
    tag: EL_IMAGE,
    files: [
      { at: '/usr/local/bin/geth', from: tools.geth, mode: 0o755 },
      { at: entry, from: tools.entry, mode: 0o755 },
      { at: '/etc/krypton/genesis.json', content: JSON.stringify(GENESIS, null, 2) + '\n' },
    ],
    dirs: ['/data', '/jwt', WITNESS_DIR, '/tmp'],
    config: {
      // krypton-entry: witness line, `geth init` into an empty datadir, then exec geth with compose's command.
      Entrypoint: [entry, 'el', '--init-if-missing', '/data/geth/chaindata', '--', '/usr/local/bin/geth', 'init', '--datadir', '/data', '/etc/krypton/genesis.json', '--', '/usr/local/bin/geth'],
      Env: ['PATH=/usr/local/bin'],
      WorkingDir: '/',
      Labels: { 'org.krypton.sandbox': 'el', 'org.krypton.geth-version': GETH_VERSION },
    },
  };
  const node = process.execPath;
  const libs = await sharedLibs(node);
  const clDir = '/opt/krypton-cl';
  const cl: ImageSpec = {
    name: 'cl',
    tag: CL_IMAGE,
    files: [
      { at: '/usr/local/bin/node', from: node, mode: 0o755 },
      ...libs.map((l) => ({ at: l, from: l })),
      { at: entry, from: tools.entry, mode: 0o755 },
      { at: `${clDir}/krypton-cl.cjs`, from: join(SANDBOX_SRC, 'tools', 'krypton-cl.cjs') },
      { at: `${clDir}/engine-jwt.cjs`, from: join(SANDBOX_SRC, 'tools', 'engine-jwt.cjs') },
      { at: `${clDir}/package.json`, content: '{ "type": "commonjs" }\n' },
      // The stand-in reads JWT_PATH from an env file at start (engine-jwt.cjs): inside the container it is
      // this one, pointing at the mounted file, whichever mount form the compose file uses.
      { at: '/etc/krypton/cl.env', content: `# the CL stand-in's env file inside the container\nJWT_PATH=${JWT_IN_CONTAINER}\n` },
    ],
    dirs: ['/jwt', WITNESS_DIR, '/tmp'],
    config: {
      Entrypoint: [entry, 'cl', '/usr/local/bin/node', `${clDir}/krypton-cl.cjs`],
      Env: ['PATH=/usr/local/bin', 'KRYPTON_ENV_FILE=/etc/krypton/cl.env', `KRYPTON_LOG_DIR=${WITNESS_DIR}`],
      WorkingDir: '/',
      Labels: { 'org.krypton.sandbox': 'cl' },
    },
  };
  return [el, cl];
}

/** Builds (or takes from the cache) both image tarballs; resolves with their paths, el first. */
export async function ensureImages(tools: DockerTools): Promise<string[]> {
  const specs = await imageSpecs(tools);
  return Promise.all(specs.map((s) => ensureImageTar(s, CACHE_DIR)));
}

/** geth's flags: no peers, no discovery, no IPC/HTTP RPC; only authrpc on the host's 127.0.0.1:8551. */
export const GETH_FLAGS = [
  '--datadir', '/data',
  '--nodiscover', '--maxpeers', '0',
  '--ipcdisable',
  '--cache', '64',
  '--authrpc.addr', '127.0.0.1',
  '--authrpc.port', '8551',
  '--authrpc.jwtsecret', JWT_IN_CONTAINER,
];

/**
 * /opt/krypton/docker-compose.yml as an operator writes it: services el and cl on the host network,
 * `restart: unless-stopped`, `env_file` = the node env file on the tmpfs (required: false), the witness
 * dir bind-mounted, and the JWT as `${JWT_PATH}:/jwt/jwt.hex:ro` (file) or `/run/krypton-secrets:/jwt:ro`
 * (dir). `pull_policy: never`: the images are loaded, no registry is reachable.
 */
export function renderCompose(form: JwtMount): string {
  const jwtVolume = form === 'file' ? `\${JWT_PATH}:${JWT_IN_CONTAINER}:ro` : `${SECRETS_DIR}:/jwt:ro`;
  const common = (indent: string) =>
    [
      `${indent}pull_policy: never`,
      `${indent}network_mode: host`,
      `${indent}restart: unless-stopped`,
      `${indent}env_file:`,
      `${indent}  - path: ${NODE_ENV_FILE}`,
      `${indent}    required: false`,
    ].join('\n');
  return `# ${COMPOSE_FILE} (generated by the sandbox, test/sandbox/docker.ts; JWT mount form: ${form})
# el = the real geth ${GETH_VERSION}, cl = the sandbox's CL stand-in. Both on the host's network: the Engine
# API is this host's 127.0.0.1:8551. JWT_PATH comes from ${DEPLOY_DIR}/.env, which krypton-secrets edits.
services:
  el:
    image: \${EL_IMAGE:-${EL_IMAGE}}
${common('    ')}
    volumes:
      - ${jwtVolume}
      - el-data:/data
      - ${WITNESS_DIR}:${WITNESS_DIR}
    command: [${GETH_FLAGS.map((f) => JSON.stringify(f)).join(', ')}]
  cl:
    image: \${CL_IMAGE:-${CL_IMAGE}}
${common('    ')}
    depends_on: [el]
    volumes:
      - ${jwtVolume}
      - ${WITNESS_DIR}:${WITNESS_DIR}
volumes:
  el-data:
`;
}

/** The compose env file of a docker node (the tool manages only its JWT_PATH line). */
export function dockerNodeEnv(jwtPath?: string): string {
  return [
    '# krypton node compose env (sandbox, docker runtime)',
    'COMPOSE_PROJECT_NAME=krypton',
    `NETWORK_ID=${NETWORK_ID}`,
    `EL_IMAGE=${EL_IMAGE}`,
    `CL_IMAGE=${CL_IMAGE}`,
    ...(jwtPath ? [`JWT_PATH=${jwtPath}`] : []),
    '',
  ].join('\n');
}

/** cgroup parent of a host's containers (one per host and slot, so teardown can remove exactly its own). */
export const cgroupParentOf = (netns: string) => `/krypton-${netns}`;

/** dockerd's argv inside a host (every path is the host's own: /run is its tmpfs, the rest bind mounts). */
export function dockerdArgv(netns: string): string[] {
  return [
    DOCKERD,
    '--config-file', '/etc/docker/daemon.json',
    '--data-root', '/var/lib/docker',
    '--exec-root', '/run/docker',
    '--pidfile', '/run/docker.pid',
    '--host', 'unix:///run/docker.sock',
    '--storage-driver', 'vfs',
    '--iptables=false', '--ip6tables=false', '--ip-forward=false', '--ip-masq=false',
    '--bridge=none',
    '--cgroup-parent', cgroupParentOf(netns),
    '--log-opt', 'max-size=10m',
  ];
}

/**
 * Starts dockerd in the holder's namespaces (after checking the host sees this machine's cgroup mounts);
 * resolves with its pid once the API answers. Log: <hostDir>/docker/dockerd.log.
 */
export async function startDockerd(holderPid: number, hostDir: string, netns: string): Promise<number> {
  const cg = await execInHost(holderPid, ['findmnt', '-rn', '-o', 'TARGET', '-R', '/sys/fs/cgroup']);
  if (!/\/sys\/fs\/cgroup\/(devices|unified)?/.test(cg.stdout)) {
    throw new SandboxError(`${netns}: no cgroup mounts under /sys/fs/cgroup inside the host's mount namespace (dockerd needs them)`);
  }
  const logFile = join(hostDir, 'docker', 'dockerd.log');
  const log = openSync(logFile, 'a');
  const child = spawn('nsenter', ['-t', String(holderPid), '-n', '-m', '--', ...dockerdArgv(netns)], {
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
  if (!pid) throw new SandboxError(`cannot start dockerd in ${netns}`);
  await waitFor(
    `dockerd in ${netns}`,
    async () => {
      if (exited) throw new SandboxError(`dockerd in ${netns} exited (${exited})${logTail(logFile)}`);
      return (await execInHost(holderPid, [DOCKER_CLI, 'version', '--format', '{{.Server.Version}}'], { timeoutMs: 20_000 })).code === 0;
    },
    { timeoutMs: 90_000, intervalMs: 200 },
  );
  return pid;
}

/** `docker load -i <tar>` of each tarball into the host's dockerd. */
export async function loadImages(holderPid: number, tars: readonly string[]): Promise<void> {
  for (const tar of tars) {
    const r = await execInHost(holderPid, [DOCKER_CLI, 'load', '-q', '-i', tar], { timeoutMs: 300_000 });
    if (r.code !== 0) throw new SandboxError(`docker load -i ${tar} failed: ${r.stderr.trim().split('\n').slice(-3).join(' ')}`);
  }
}

/** Runs `docker compose <args>` in the host's deploy dir (so compose reads /opt/krypton/.env). */
export function composeInHost(holderPid: number, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  return execInHost(holderPid, ['sh', '-c', 'cd "$0" && exec "$@"', DEPLOY_DIR, DOCKER_CLI, 'compose', ...args], { timeoutMs: 180_000, ...opts });
}

/** One row of `docker compose ps --all --format json`. */
export interface ComposeService {
  service: string;
  /** Container name, e.g. "krypton-el-1". */
  name: string;
  /** Container id (full). */
  id: string;
  /** "running", "exited", "restarting", "created" … */
  state: string;
  /** Human status, e.g. "Up 3 seconds". */
  status: string;
}

/** Parses `docker compose ps --format json` (one JSON object per line, or one array: both forms exist). */
export function parseComposePs(stdout: string): ComposeService[] {
  const t = stdout.trim();
  if (!t) return [];
  const rows: Record<string, unknown>[] = t.startsWith('[') ? JSON.parse(t) : t.split('\n').map((l) => JSON.parse(l));
  return rows.map((r) => ({ service: String(r['Service']), name: String(r['Name']), id: String(r['ID']), state: String(r['State']), status: String(r['Status']) }));
}

/** The geth log line that fingerprints the secret it loaded (go-ethereum node/node.go ObtainJWTSecret). */
const LOADED_JWT = /Loaded JWT secret file\s+path=(\S+)\s+crc32=(0x[0-9a-f]+)/g;

/** The last `Loaded JWT secret file` of a log text: {path, crc32 "0x…" as geth prints it}, or undefined. */
export function lastLoadedJwt(log: string): { path: string; crc32: string } | undefined {
  let last: RegExpExecArray | undefined;
  for (const m of log.matchAll(LOADED_JWT)) last = m as RegExpExecArray;
  return last ? { path: last[1]!, crc32: last[2]! } : undefined;
}

/**
 * geth's fingerprint of an Engine-API secret: IEEE CRC-32 of the 32 decoded bytes, printed like Go's
 * `%#x` (lowercase, no leading zeros), e.g. "0x60825757". `hex` = the 64 hex characters of the file.
 */
export function engineJwtCrc32(hex: string): string {
  const bytes = Buffer.from(hex.trim().replace(/^0x/, ''), 'hex');
  if (bytes.length !== 32) throw new SandboxError(`an Engine-API secret is 32 bytes, got ${bytes.length}`);
  return `0x${crc32(bytes).toString(16)}`;
}

/** One line of /var/log/krypton/containers.log. */
export interface ContainerStart {
  /** Unix time in milliseconds. */
  atMs: number;
  service: string;
  /** First 12 hex of the container id ("-" if unknown): same across restarts, new on recreate. */
  containerId: string;
}

export function parseContainerStarts(text: string): ContainerStart[] {
  const out: ContainerStart[] = [];
  for (const line of text.split('\n')) {
    const m = /^(\d+)\.(\d{3}) start (\S+) (\S+)$/.exec(line.trim());
    if (m) out.push({ atMs: Number(m[1]) * 1000 + Number(m[2]), service: m[3]!, containerId: m[4]! });
  }
  return out;
}

/** One container event from dockerd's buffer (`docker events`), compose services only. */
export interface ContainerEvent {
  /** Unix time in nanoseconds, as a bigint-safe string → number of ms is `atMs`. */
  atMs: number;
  /** kill, die, stop, start, restart, create, destroy … */
  action: string;
  service: string;
  containerId: string;
}

export function parseDockerEvents(stdout: string): ContainerEvent[] {
  const out: ContainerEvent[] = [];
  for (const line of stdout.split('\n')) {
    if (!line.trim()) continue;
    const e = JSON.parse(line) as { timeNano?: number; time?: number; Action?: string; status?: string; id?: string; Actor?: { ID?: string; Attributes?: Record<string, string> } };
    const service = e.Actor?.Attributes?.['com.docker.compose.service'];
    if (!service) continue;
    out.push({ atMs: e.timeNano ? Math.floor(e.timeNano / 1e6) : (e.time ?? 0) * 1000, action: String(e.Action ?? e.status).split(':')[0]!, service, containerId: String(e.Actor?.ID ?? e.id ?? '').slice(0, 12) });
  }
  return out;
}

/**
 * Removes the host's container cgroups (cgroupfs driver: /sys/fs/cgroup/<hierarchy>/krypton-<netns>/…),
 * deepest first, once its processes are gone. The kernel frees a killed task's cgroup a little after the
 * task is reaped, so this retries for up to `timeoutMs` (default 10 000); best effort, never throws.
 */
export async function removeHostCgroups(netns: string, timeoutMs = 10_000): Promise<void> {
  const parent = cgroupParentOf(netns).slice(1);
  let roots: string[] = [];
  try {
    roots = ['/sys/fs/cgroup', ...readdirSync('/sys/fs/cgroup').map((h) => join('/sys/fs/cgroup', h))].map((h) => join(h, parent));
  } catch {
    return;
  }
  const rmTree = (d: string): boolean => {
    try {
      if (!statSync(d).isDirectory()) return true;
    } catch {
      return true; // gone
    }
    try {
      for (const e of readdirSync(d, { withFileTypes: true })) if (e.isDirectory()) rmTree(join(d, e.name));
      rmdirSync(d);
      return true;
    } catch {
      return false; // still populated
    }
  };
  await waitFor(`the cgroups of ${netns} to go`, () => roots.map(rmTree).every(Boolean), { timeoutMs, intervalMs: 100 }).catch(() => {});
}

/** True when dockerd answers in the host. */
export async function dockerdUp(holderPid: number): Promise<boolean> {
  return (await execInHost(holderPid, [DOCKER_CLI, 'version', '--format', '{{.Server.Version}}'], { timeoutMs: 20_000 })).code === 0;
}
