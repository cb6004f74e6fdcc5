import { shortFingerprint } from '../core/secret.ts';
import { act } from '../model/action.ts';
import { defineTask, change, noChange, refuse, type Plan, type RemoteFact } from '../model/task.ts';
import { engineProbe } from '../facts/inputs.ts';
import { loadedState, recordLoadedScript, secretFiles, type LoadedFact, type SecretFileFact } from '../facts/secrets.ts';
import { COMPOSE_SERVICES, canRead, composeContainers, composeView, containerUser, inProject, jwtMountForm, type ContainersFact, type ServiceContainer } from '../facts/containers.ts';
import { JWT_FILE, hostSecrets, type HostSecret } from '../model/layout.ts';
import { SECRETS_DIR, type NodeHost } from '../model/inventory.ts';
import { asNode, fileName, noParams } from './common.ts';

/** The shell lines that run the restart (`"$@"`), detached from the SSH channel; see the plan. Exit status kept. */
export const RESTART_PRELUDE = [
  `trap '' HUP PIPE`,
  `o=$(mktemp ${SECRETS_DIR}/.restart.XXXXXX 2>/dev/null || mktemp) || exit 1`,
  `setsid -w "$@" </dev/null >"$o" 2>&1; r=$?`,
  `cat -- "$o" >&2; rm -f -- "$o"`,
  `[ "$r" -eq 0 ] || exit "$r"`,
].join('\n');

/** The node's services in start order. */
const NODE_SERVICES = COMPOSE_SERVICES;

/**
 * Which services must restart, and why: every reader of a host secret whose file differs from what that service
 * loaded at its last restart by the tool (`loaded`, fingerprints on the tmpfs). The JWT is also judged by the
 * Engine API itself (it has no record on a host provisioned before records existed), and both el and cl restart
 * together for it (lockstep).
 */
export function servicesToRestart(
  secrets: readonly HostSecret[],
  files: Readonly<Record<string, SecretFileFact>>,
  loaded: LoadedFact,
  o: { jwtAccepted: boolean; jwtPathChanged: boolean },
): { services: string[]; why: string[] } {
  const need = new Set<string>();
  const why: string[] = [];
  if (o.jwtPathChanged) {
    NODE_SERVICES.forEach((s) => need.add(s));
    why.push('JWT_PATH changed');
  } else if (!o.jwtAccepted) {
    NODE_SERVICES.forEach((s) => need.add(s));
    why.push('the Engine API does not accept the current JWT yet');
  }
  for (const s of secrets) {
    const f = files[s.name];
    if (!f?.exists || !f.sha256) continue;
    const stale = s.readers.filter((r) => {
      const had = loaded[r]?.[s.name];
      if (s.ref.kind === 'engine-jwt' && had === undefined) return false; // judged by the Engine API above
      return had !== f.sha256;
    });
    if (!stale.length) continue;
    // The JWT is shared by el and cl: both move together.
    (s.ref.kind === 'engine-jwt' ? [...NODE_SERVICES] : stale).forEach((r) => need.add(r));
    why.push(`${fileName(s)} changed since ${stale.join(' and ')} last started`);
  }
  const order: string[] = [...NODE_SERVICES];
  return { services: [...order.filter((s) => need.has(s)), ...[...need].filter((s) => !order.includes(s))], why };
}

/** True when `argv` ends in `el cl`: its trailing service list is replaced by the services asked for. */
function endsInElCl(argv: readonly string[]): boolean {
  return argv.length >= 2 && argv.at(-2) === 'el' && argv.at(-1) === 'cl';
}

/**
 * The restart command for `services`: the node's `restart` with its trailing service list replaced when it ends
 * in `el cl` (the default `docker compose restart el cl`, `nodectl restart el cl`); a custom command is run as
 * it is (it restarts what it restarts).
 */
export function restartArgv(node: NodeHost, services: readonly string[]): string[] {
  const r = node.restart;
  return endsInElCl(r) ? [...r.slice(0, -2), ...services] : [...r];
}

/**
 * The recreate command for `services` (compose must create the containers again): the node's `recreate` (default
 * `docker compose up -d --no-deps --force-recreate el cl`; the node's own `restart` when it has a custom one and no
 * `recreate`), with the same trailing `el cl` substitution as {@link restartArgv}.
 */
export function recreateArgv(node: NodeHost, services: readonly string[]): string[] {
  const r = node.recreate;
  return endsInElCl(r) ? [...r.slice(0, -2), ...services] : [...r];
}

/** What a compose host's containers demand beyond the `loaded` records: services to restart, and whether compose must recreate them. */
export interface ContainerDemands {
  services: string[];
  /** Why compose must create the containers again (a restart keeps their env and mounts); empty: a restart does. */
  recreate: string[];
  /** Why they restart at all (the recreate reasons included). */
  why: string[];
}

/**
 * What the containers of a compose host demand, pure: a service with no container yet, a container whose compose
 * config hash is not what the current `.env`, compose file and env_files give, a JWT mount from another source
 * than the tmpfs file, or an env-secrets file that changed since its readers started (compose reads an `env_file`
 * only when it creates a container) must be recreated; a container that is not running, or that holds another
 * JWT than the file on the tmpfs (a single-file bind mount keeps the file the container started with, whatever
 * the agent renders later), must restart. el and cl move together for anything about the JWT.
 */
export function containerDemands(
  secrets: readonly HostSecret[],
  files: Readonly<Record<string, SecretFileFact>>,
  loaded: LoadedFact,
  c: Extract<ContainersFact, { compose: true }>,
): ContainerDemands {
  const need = new Set<string>();
  const both = () => NODE_SERVICES.forEach((s) => need.add(s));
  const jwt = secrets.find((s) => s.ref.kind === 'engine-jwt');
  const jwtSha = jwt ? files[jwt.name]?.sha256 : undefined;
  const absent: string[] = [];
  const configMoved: string[] = [];
  const otherSource = new Map<string, string[]>();
  const down: string[] = [];
  const stale = new Map<string, string[]>();
  for (const svc of NODE_SERVICES) {
    if (!inProject(c, svc)) continue; // the project calls its services otherwise: the records and the Engine API judge
    const k = c.services[svc];
    if (!k || k.state === 'absent') {
      both();
      absent.push(svc);
      continue;
    }
    const want = c.wantHash[svc];
    if (k.configHash && want && k.configHash !== want) {
      need.add(svc);
      configMoved.push(svc);
    }
    const m = k.jwtMount;
    if (m?.form === 'file' && m.source !== JWT_FILE) {
      both();
      otherSource.set(m.source, [...(otherSource.get(m.source) ?? []), svc]);
    } else if (k.state !== 'running') {
      need.add(svc);
      down.push(`${svc} is ${k.state}`);
    } else if (m?.heldSha256 && jwtSha && m.heldSha256 !== jwtSha) {
      both();
      const h = shortFingerprint(m.heldSha256);
      stale.set(h, [...(stale.get(h) ?? []), svc]);
    }
  }
  const and = (xs: readonly string[]) => xs.join(' and ');
  const recreate: string[] = [];
  if (absent.length) recreate.push(`${and(absent)} ${absent.length > 1 ? 'have no containers' : 'has no container'} yet`);
  if (configMoved.length) {
    recreate.push(`the compose config of ${and(configMoved)} changed since ${configMoved.length > 1 ? 'their containers were' : 'its container was'} created (.env, the compose file or an env_file)`);
  }
  for (const [source, svcs] of otherSource) recreate.push(`${and(svcs)} ${svcs.length > 1 ? 'mount' : 'mounts'} the JWT from ${source}, not ${JWT_FILE}`);
  for (const s of secrets) {
    if (s.ref.kind !== 'node-env') continue;
    const f = files[s.name];
    if (!f?.exists || !f.sha256) continue;
    const readers = s.readers.filter((r) => loaded[r]?.[s.name] !== f.sha256);
    if (!readers.length) continue;
    readers.forEach((r) => need.add(r));
    recreate.push(`${fileName(s)} is an env_file, which compose reads only when it creates a container`);
  }
  const why = [...down];
  for (const [held, svcs] of stale) why.push(`${and(svcs)} ${svcs.length > 1 ? 'hold' : 'holds'} another JWT (${held}) than ${fileName(jwt!)} (${shortFingerprint(jwtSha!)})`);
  return { services: [...need], recreate, why: [...recreate, ...why] };
}

/** Why el must not be (re)started now (geth makes its own secret when its file is missing), or undefined. */
function jwtFileRefusal(node: NodeHost, jwt: HostSecret, f: SecretFileFact | undefined): Plan | undefined {
  const hint = `the steps before this one write it (agent.start, secret.fetch-on-host): look at why they did not (e.g. /var/log/krypton/agent.log on ${node.name}), then run apply again`;
  if (!f?.exists) {
    return refuse('E_PLAN_CONFLICT', `${jwt.path} is missing: refusing to (re)start el without it (geth would make its own secret, and no CL could talk to it)`, hint);
  }
  if (f.isHex64 === false) {
    return refuse('E_PLAN_CONFLICT', `${jwt.path} is not exactly 64 lowercase hex characters: refusing to (re)start el on it (geth would refuse it or make its own secret)`, hint);
  }
  return undefined;
}

/**
 * The user a service's container runs as after this step: a restart keeps the container (its running process's
 * ids, else `.Config.User`); a recreate takes the compose config's `user:` (none set: the image's default, known
 * only when the existing container shows root). Undefined when it cannot be known here.
 */
function userAfter(k: ServiceContainer | undefined, recreate: boolean): Pick<ServiceContainer, 'user' | 'uid' | 'gid' | 'groups'> | undefined {
  if (!recreate) return k && k.state !== 'absent' ? k : undefined;
  if (k?.composeUser) return { user: k.composeUser };
  const current = k && k.state !== 'absent' ? containerUser(k) : undefined;
  return k?.composeUser === '' && current?.root ? { user: '' } : undefined;
}

/** Why a (re)started container could not read the JWT file (its user, the file's owner/group/mode), or undefined. */
function readabilityRefusal(node: NodeHost, services: readonly string[], c: Extract<ContainersFact, { compose: true }>, recreate: boolean): Plan | undefined {
  const form = jwtMountForm(c);
  for (const svc of services) {
    if (!inProject(c, svc)) continue;
    const k = c.services[svc];
    const who0 = userAfter(k, recreate);
    if (!who0) continue;
    const user = containerUser(who0);
    const mountForm = k?.jwtMount?.form ?? form;
    if (user.root || canRead(user, c.jwtFile, c.secretsDir, mountForm) !== false) continue;
    const f = c.jwtFile!;
    const who = `${user.name}${user.uid !== undefined ? ` (uid ${user.uid}${user.gid !== undefined ? `, gid ${user.gid}` : ''})` : ''}`;
    const dirBlocks = mountForm === 'dir' && c.secretsDir && canRead(user, { ...f, mode: '0444' }, c.secretsDir, 'dir') === false;
    return refuse(
      'E_PLAN_CONFLICT',
      dirBlocks
        ? `${svc}'s container ${recreate ? 'would run' : 'runs'} as ${who}, which cannot enter ${SECRETS_DIR} (uid ${c.secretsDir!.uid}, gid ${c.secretsDir!.gid}, mode ${c.secretsDir!.mode}) to read ${JWT_FILE}`
        : `${svc}'s container ${recreate ? 'would run' : 'runs'} as ${who}, which cannot read ${JWT_FILE} (uid ${f.uid}, gid ${f.gid}, mode ${f.mode})`,
      dirBlocks
        ? `bind-mount the file itself (\${JWT_PATH}:/jwt/jwt.hex:ro) instead of the directory, or run ${svc} as root`
        : `set jwt.owner${user.uid !== undefined ? ` to "${user.uid}"` : ''} (or jwt.group to a group of that user with mode "0640") for ${node.name} in the inventory, or run ${svc} as root`,
    );
  }
  return undefined;
}

/**
 * node.restart-lockstep — restart the node's services that must pick up a changed secret, together, with the
 * node's restart command (default `docker compose restart el cl` in the deploy dir), then wait until the Engine
 * API accepts a token signed with the stored JWT and each restarted service's record matches its files. el and cl
 * restart when an earlier step of the play changed JWT_PATH, when the Engine API does not accept the current JWT
 * (e.g. the agent just rendered a rotated one), or when the JWT file changed since they started; an env-secrets
 * file restarts only the services that read it (`env.services`), and only when its fingerprint changed. Otherwise
 * does nothing. After a restart it records, on the tmpfs, the SHA-256 of each file each restarted service read.
 * Holds the play's validator budget (`max_validators_down`) from the restart until the node answers again. The
 * wait is bounded by 30 s per service it may restart (60 s for el and cl) plus the host's measured round trip; the
 * step's `timeout_seconds`, `timeouts.step_seconds` in the inventory or `--timeout` replace that default.
 *
 * On a compose host (`docker` on PATH, `docker compose ps` works in the deploy dir) it also judges the containers
 * (src/facts/containers.ts): a container holding another JWT than the file restarts (a single-file bind mount
 * keeps the file it started with: each new value needs a restart, never the agent's re-render alone); and when
 * compose must create the containers again — JWT_PATH changed in `.env`, the compose config hash moved (.env, the
 * compose file, an env_file), the JWT mount source is not the tmpfs file, or a service has no container — it runs
 * the node's `recreate` (default `docker compose up -d --no-deps --force-recreate el cl`) instead of `restart`.
 *
 * Refuses with E_CLOCK_SKEW, restarting nothing, when the Engine API refuses the token while the laptop–host clock
 * skew is beyond its ±60 s (src/facts/inputs.ts `engineProbe`): a skew is not a wrong JWT.
 *
 * Refuses (E_PLAN_CONFLICT), before anything restarts: to (re)start el or cl while /run/krypton-secrets/jwt.hex is
 * missing or not exactly 64 lowercase hex (geth would make its own secret); and on a compose host, when a
 * container's user (`docker inspect .Config.User`, the running process's ids) can neither own-read nor group-read
 * the file. It never starts containers that are not the node's el/cl and never edits the compose file.
 */
export const nodeRestartLockstep = defineTask({
  id: 'node.restart-lockstep',
  summary: 'restart el and cl in lockstep',
  appliesTo: 'node',
  params: noParams,
  // `containers` is typed optional: a plan without it (a caller that gathers no container facts) judges the
  // node as a host that is not a compose host.
  facts: (_p, host, inv): { probe: ReturnType<typeof engineProbe>; loaded: ReturnType<typeof loadedState>; files: ReturnType<typeof secretFiles>; containers?: RemoteFact<ContainersFact> } => ({
    probe: engineProbe(),
    loaded: loadedState(),
    files: secretFiles(hostSecrets(inv, host)),
    containers: composeContainers(asNode(host).deployDir, NODE_SERVICES),
  }),
  plan(_p, { probe, loaded, files, containers }, { host, inventory, restartPending }) {
    const node = asNode(host);
    if (!probe) return refuse('E_INPUT', 'the store holds no Engine-API JWT for this node', 'run secret.seed first (playbooks/provision.yml does)');
    // A clock skew is not a wrong JWT: restarting el and cl would not help, and takes a healthy validator down.
    if (probe.outcome === 'skewed') {
      return refuse('E_CLOCK_SKEW', `not restarting el and cl: ${probe.detail}`, 'set the clocks right (NTP: timedatectl, chronyc tracking) on the laptop and the host, then run again; nothing was restarted');
    }
    const ss = hostSecrets(inventory, node);
    const jwt = ss.find((s) => s.ref.kind === 'engine-jwt')!;
    const base = servicesToRestart(ss, files, loaded, { jwtAccepted: probe.outcome === 'accepted', jwtPathChanged: restartPending });
    const compose = composeView(containers);
    const demands: ContainerDemands = compose ? containerDemands(ss, files, loaded, compose) : { services: [], recreate: [], why: [] };
    const need = new Set([...base.services, ...demands.services]);
    const order: string[] = [...NODE_SERVICES];
    const services = [...order.filter((s) => need.has(s)), ...[...need].filter((s) => !order.includes(s))];
    const form = compose ? jwtMountForm(compose) : undefined;
    const singleFile = form === 'file' ? ` (the JWT is a single-file bind mount into the containers: each new value needs a restart)` : '';
    if (!services.length) {
      const held = compose ? Object.values(compose.services).find((c) => c.jwtMount?.heldSha256)?.jwtMount : undefined;
      return noChange(
        `el and cl run on the current JWT (Engine API accepted v${probe.version})${ss.length > 1 ? ' and every service runs on its current files' : ''}` +
          (held ? `; the containers hold ${fileName(jwt)} (${shortFingerprint(held.heldSha256!)})` : '') +
          (form === 'file'
            ? `; the JWT is a single-file bind mount (${held ? `${held.source} -> ${held.path}` : 'from the compose file'}): each new value needs a restart, which this task does (the agent's re-render alone does not reach the containers)`
            : ''),
      );
    }
    const recreate = restartPending || demands.recreate.length > 0;
    const command = recreate ? node.recreate : node.restart;
    const argv = recreate ? recreateArgv(node, services) : restartArgv(node, services);
    const restarted = endsInElCl(command) ? services : [...new Set([...NODE_SERVICES, ...ss.flatMap((s) => s.readers)])];
    if (restarted.some((s) => jwt.readers.includes(s))) {
      const refused = jwtFileRefusal(node, jwt, files[jwt.name]);
      if (refused) return refused;
    }
    if (compose) {
      const refused = readabilityRefusal(node, restarted.filter((s) => jwt.readers.includes(s)), compose, recreate);
      if (refused) return refused;
    }
    const why = [...base.why, ...demands.why.filter((w) => !base.why.includes(w))];
    // A dropped SSH connection must not cut the restart off between stopping el and starting cl, nor skip the
    // record after it: setsid -w runs it in its own session (no SIGHUP; -w keeps its exit status), its output goes
    // to a file on the tmpfs rather than to the channel (a write to a dead channel is EPIPE/SIGPIPE, which kills
    // nodectl or compose halfway), and this shell ignores HUP and PIPE itself. The record follows a successful
    // restart only.
    const script = `${RESTART_PRELUDE}\n${recordLoadedScript(restarted, ss)}`;
    return change(
      act.exec(['sh', '-c', script, 'sh', ...argv], `${recreate ? 'recreate' : 'restart'} ${services.join(' and ')} together (\`${argv.join(' ')}\`): ${why.join('; ')}${singleFile}`, {
        cwd: node.deployDir,
      }),
    );
  },
  // Each service it may restart has to stop, start and (el) answer the Engine API again: 30 s each, so 60 s for el
  // and cl as before, more for a node whose env-secrets are read by other services too.
  settle: (_p, host, inv) => {
    const services = [...new Set([...NODE_SERVICES, ...hostSecrets(inv, host).flatMap((s) => s.readers)])];
    return { intervalMs: 500, timeoutMs: 30_000 * services.length, basis: `30 s per service it may restart (${services.join(', ')})` };
  },
  disruptive: true,
  jwtUnit: 'closes',
});
