/**
 * What a compose node's containers really hold (issue 9): per service (`el`, `cl`) of the compose project in the
 * node's deploy dir — the container, its state, the user it runs as, its compose config hash against the one the
 * current `.env` / compose file / env_file give, how the JWT is mounted into it, the SHA-256 of the JWT file as the
 * container itself sees it (through `/proc/<pid>/root`, the container's own mount namespace: a single-file bind
 * mount keeps the old file after a rename, and `docker cp` would not show that), and for el the crc32 geth logged
 * when it loaded its secret. One read-only POSIX sh snippet; only digests, ids and metadata leave the host — never
 * a value, never `docker inspect`'s environment (env_file values are in it).
 *
 * A host is a compose host when `docker` is on PATH and `docker compose ps` works in the deploy dir; anywhere else
 * the fact says "not a compose host" and nothing about containers is judged.
 *
 * The laptop side: {@link storedJwtCrc32} computes geth's crc32 of the stored JWT in memory and returns only that
 * number.
 */
import { crc32 } from 'node:zlib';
import { shellQuote } from '../core/transport.ts';
import type { Secret } from '../core/secret.ts';
import type { LaptopFact, RemoteFact } from '../model/task.ts';
import { JWT_FILE } from '../model/layout.ts';
import { SECRETS_DIR } from '../model/inventory.ts';
import { readEngineJwt } from './inputs.ts';

/** The compose services that read the Engine-API JWT, in start order (el first: cl depends on it). */
export const COMPOSE_SERVICES = ['el', 'cl'] as const;

/** The JWT file's name inside a directory mount of the tmpfs (`/run/krypton-secrets:/jwt` → `/jwt/jwt.hex`). */
export const JWT_FILE_NAME = JWT_FILE.slice(JWT_FILE.lastIndexOf('/') + 1);

/** How the JWT reaches a container: one bind-mounted file, or the whole tmpfs directory. */
export interface JwtMount {
  /** `file`: a single-file bind mount (pins the file's inode: each new value needs a restart); `dir`: the tmpfs dir. */
  form: 'file' | 'dir';
  /** The bind mount's source on the host (`/run/krypton-secrets/jwt.hex`, `/run/krypton-secrets`, an old path …). */
  source: string;
  /** The mount's destination in the container (`/jwt/jwt.hex`, `/jwt`). */
  destination: string;
  /** The JWT file's path in the container (the destination, or `<destination>/jwt.hex` for the dir form). */
  path: string;
  /** SHA-256 of that file as the running container sees it; undefined when unreadable (not running, not root). */
  heldSha256?: string;
}

/** One compose service's container. */
export interface ServiceContainer {
  service: string;
  /** `absent` (compose has no container for it), or docker's state: running, exited, restarting, created … */
  state: string;
  /** Container id (12 hex). */
  id?: string;
  /** Main process id in the host's pid namespace (running only). */
  pid?: number;
  /** `docker inspect .Config.User` as it is ("" = the image's default, root unless the image says otherwise). */
  user?: string;
  /** The running main process's effective uid, gid and supplementary groups (`/proc/<pid>/status`). */
  uid?: number;
  gid?: number;
  groups?: number[];
  /** `com.docker.compose.config-hash`: the compose config the container was created from. */
  configHash?: string;
  /** `.State.StartedAt` (RFC 3339). */
  startedAt?: string;
  /** The bind mount the JWT comes through, when one is found. */
  jwtMount?: JwtMount;
  /** el: the crc32 of the last `Loaded JWT secret file … crc32=0x…` geth logged since the container started. */
  loadedCrc32?: string;
  /**
   * The `user:` the compose config gives the service — what a recreated container runs as ("" when the config
   * sets none: the image's default). Undefined when compose could not render its config.
   */
  composeUser?: string;
}

/** Numeric owner, group and octal mode (e.g. "600") of a file or dir on the host. */
export interface Ownership {
  uid: number;
  gid: number;
  mode: string;
}

export type ContainersFact =
  | { compose: false; reason: string }
  | {
      compose: true;
      /** Per service asked for (`el`, `cl`). */
      services: Record<string, ServiceContainer>;
      /** `docker compose config --hash`: what the current .env, compose file and env_files give (absent when compose cannot render the config). */
      wantHash: Record<string, string>;
      /** The project's services (`docker compose config --services`); undefined when compose cannot render its config. */
      projectServices?: string[];
      /** The compose file's JWT volume, when it declares one: `file` (`${JWT_PATH}:…`, `/run/krypton-secrets/<f>:…`) or `dir`. */
      declared?: 'file' | 'dir';
      /** /run/krypton-secrets/jwt.hex and /run/krypton-secrets, numerically (for the container user's read check). */
      jwtFile?: Ownership;
      secretsDir?: Ownership;
    };

const COMPOSE_FILES = ['compose.yaml', 'compose.yml', 'docker-compose.yaml', 'docker-compose.yml'];

/** Prints `@cuser <service> <user>` for each service-level `user:` of `docker compose config` (YAML, 2-space indent). */
const USER_AWK = [
  '/^services:/ { s = 1; seen = 1; next }',
  's && /^[^ ]/ { s = 0 }',
  's && /^  [A-Za-z0-9][A-Za-z0-9_.-]*:$/ { svc = $1; sub(/:$/, "", svc); next }',
  's && /^    user: / { u = $0; sub(/^    user: /, "", u); gsub(/"/, "", u); print "@cuser " svc " " u }',
  'END { if (seen) print "@cfg" }',
].join('\n');

/**
 * The containers of `services` in the compose project of `deployDir`, in one snippet (POSIX sh + coreutils, awk,
 * sed, grep; `docker` and its compose plugin). `logsOf`: the service whose `docker logs` (since its start) are
 * searched for geth's `Loaded JWT secret file` line (default `el`).
 */
export function composeContainers(deployDir: string, services: readonly string[], logsOf = 'el'): RemoteFact<ContainersFact> {
  const dir = shellQuote(deployDir);
  const secrets = shellQuote(SECRETS_DIR);
  const jwt = shellQuote(JWT_FILE);
  // A compose volume line naming the JWT: `- ${JWT_PATH}:/jwt/jwt.hex:ro`, `- /run/krypton-secrets:/jwt:ro`, or the long form's `source:`.
  const decl = shellQuote(`^[[:space:]]*(-|source:)[[:space:]]*["']?(\\$\\{JWT_PATH[^}]*\\}|${SECRETS_DIR}[^:[:space:]"']*)`);
  const inspect = shellQuote(
    'S|{{.State.Status}}|{{.State.Pid}}|{{.Config.User}}|{{index .Config.Labels "com.docker.compose.config-hash"}}|{{.State.StartedAt}}{{println}}' +
      '{{range .Mounts}}{{if eq .Type "bind"}}M|{{.Source}}|{{.Destination}}{{println}}{{end}}{{end}}',
  );
  const script = [
    `cd -- ${dir} 2>/dev/null || { printf '@nocompose the deploy dir %s does not exist\\n' ${dir}; exit 0; }`,
    `command -v docker >/dev/null 2>&1 || { echo "@nocompose docker is not on PATH"; exit 0; }`,
    `ps=$(docker compose ps --all --format '{{.Service}} {{.ID}}' 2>&1) || { echo "@nocompose docker compose ps failed: $(printf '%s\\n' "$ps" | grep -v 'level=warning' | tail -n 1 | cut -c1-200)"; exit 0; }`,
    'echo "@compose"',
    `for f in ${COMPOSE_FILES.join(' ')}; do if [ -f "$f" ]; then grep -E ${decl} -- "$f" | head -n 8 | sed 's/^[[:space:]]*/@decl /'; break; fi; done`,
    `[ -f ${jwt} ] && echo "@jwtstat $(stat -c '%u %g %a' -- ${jwt})"`,
    `[ -d ${secrets} ] && echo "@dirstat $(stat -c '%u %g %a' -- ${secrets})"`,
    `docker compose config --services 2>/dev/null | sed 's/^/@svc /'`,
    `docker compose config --hash ${shellQuote(services.join(','))} 2>/dev/null | sed 's/^/@hash /'`,
    // The user each service would run as once (re)created: only the services' `user:` keys leave this awk (the
    // rendered config also holds env_file values, which never leave the host).
    `docker compose config ${services.map(shellQuote).join(' ')} 2>/dev/null | awk ${shellQuote(USER_AWK)}`,
    `for svc in ${services.map(shellQuote).join(' ')}; do`,
    `  id=$(printf '%s\\n' "$ps" | awk -v s="$svc" '$1 == s { print $2; exit }')`,
    '  if [ -z "$id" ]; then echo "@c $svc absent"; continue; fi',
    `  info=$(docker inspect --format ${inspect} "$id" 2>/dev/null) || { echo "@c $svc absent"; continue; }`,
    `  s=$(printf '%s\\n' "$info" | sed -n 's/^S|//p' | head -n 1)`,
    '  echo "@c $svc $id|$s"',
    `  state=$(printf '%s' "$s" | cut -d'|' -f1); pid=$(printf '%s' "$s" | cut -d'|' -f2); started=$(printf '%s' "$s" | cut -d'|' -f5)`,
    '  up=no; [ "$state" = running ] && [ "$pid" -gt 0 ] 2>/dev/null && up=yes',
    `  [ "$up" = yes ] && grep -E '^(Uid|Gid|Groups):' "/proc/$pid/status" 2>/dev/null | tr '\\t' ' ' | sed "s/^/@u $svc /"`,
    `  printf '%s\\n' "$info" | sed -n 's/^M|//p' | while IFS='|' read -r src dst; do`,
    `    case "$src" in ${secrets}) f="$dst/${JWT_FILE_NAME}" ;; *.hex|*jwt*|*JWT*) f="$dst" ;; *) continue ;; esac`,
    `    sha=; [ "$up" = yes ] && sha=$(sha256sum -- "/proc/$pid/root$f" 2>/dev/null | cut -d' ' -f1)`,
    '    echo "@m $svc ${sha:--}|$src|$dst"',
    '  done',
    `  if [ "$svc" = ${shellQuote(logsOf)} ] && [ "$up" = yes ]; then`,
    `    crc=$(docker logs --since "$started" "$id" 2>&1 | sed -n 's/.*Loaded JWT secret file.*crc32=\\(0x[0-9a-f]*\\).*/\\1/p' | tail -n 1)`,
    '    [ -n "$crc" ] && echo "@crc $svc $crc"',
    '  fi',
    'done',
    'true',
  ].join('\n');
  return { kind: 'remote', script, parse: (stdout) => parseContainers(stdout, services) };
}

const num = (s: string | undefined): number | undefined => (s !== undefined && /^\d+$/.test(s) ? Number(s) : undefined);

function ownership(line: string | undefined): Ownership | undefined {
  const [uid, gid, mode] = (line ?? '').trim().split(/\s+/);
  const u = num(uid);
  const g = num(gid);
  return u !== undefined && g !== undefined && mode && /^[0-7]{3,4}$/.test(mode) ? { uid: u, gid: g, mode: mode.padStart(4, '0') } : undefined;
}

/** Parses {@link composeContainers}' output. */
export function parseContainers(stdout: string, services: readonly string[]): ContainersFact {
  const lines = stdout.split('\n');
  const tagged = (t: string) => lines.filter((l) => l.startsWith(`@${t} `) || l === `@${t}`).map((l) => l.slice(t.length + 1).trim());
  const no = tagged('nocompose')[0];
  if (no !== undefined || !tagged('compose').length) return { compose: false, reason: no || 'docker compose did not answer' };

  const wantHash: Record<string, string> = {};
  for (const l of tagged('hash')) {
    const [svc, hash] = l.split(/\s+/);
    if (svc && hash && /^[0-9a-f]{64}$/.test(hash)) wantHash[svc] = hash;
  }
  const out: Record<string, ServiceContainer> = {};
  for (const svc of services) out[svc] = { service: svc, state: 'absent' };
  for (const l of tagged('c')) {
    const sp = l.indexOf(' ');
    const svc = sp < 0 ? l : l.slice(0, sp);
    const rest = sp < 0 ? '' : l.slice(sp + 1);
    if (!(svc in out) || rest === 'absent' || !rest) continue;
    const [id = '', state = '', pid, user = '', hash = '', started = ''] = rest.split('|');
    out[svc] = {
      service: svc,
      state: state || 'unknown',
      id: id.slice(0, 12),
      ...(num(pid) ? { pid: num(pid) } : {}),
      user,
      ...(/^[0-9a-f]{64}$/.test(hash) ? { configHash: hash } : {}),
      ...(started ? { startedAt: started } : {}),
    };
  }
  for (const l of tagged('u')) {
    const [svc = '', key = '', ...vals] = l.split(/\s+/);
    const c = out[svc];
    if (!c) continue;
    if (key === 'Uid:' && num(vals[1]) !== undefined) c.uid = num(vals[1]);
    if (key === 'Gid:' && num(vals[1]) !== undefined) c.gid = num(vals[1]);
    if (key === 'Groups:') c.groups = vals.map(num).filter((n): n is number => n !== undefined);
  }
  const mounts: Record<string, JwtMount[]> = {};
  for (const l of tagged('m')) {
    const sp = l.indexOf(' ');
    const svc = l.slice(0, sp);
    const [sha = '-', source = '', destination = ''] = l.slice(sp + 1).split('|');
    if (!(svc in out) || !source || !destination) continue;
    const form = source === SECRETS_DIR ? 'dir' : 'file';
    (mounts[svc] ??= []).push({
      form,
      source,
      destination,
      path: form === 'dir' ? `${destination.replace(/\/$/, '')}/${JWT_FILE_NAME}` : destination,
      ...(/^[0-9a-f]{64}$/.test(sha) ? { heldSha256: sha } : {}),
    });
  }
  for (const [svc, ms] of Object.entries(mounts)) {
    // The tool's file first, then the tmpfs dir, then anything else that looks like a JWT (an old plaintext path).
    const pick = ms.find((m) => m.source === JWT_FILE) ?? ms.find((m) => m.form === 'dir') ?? ms[0];
    if (pick) out[svc]!.jwtMount = pick;
  }
  if (tagged('cfg').length) {
    for (const c of Object.values(out)) c.composeUser = '';
    for (const l of tagged('cuser')) {
      const sp = l.indexOf(' ');
      const svc = sp < 0 ? l : l.slice(0, sp);
      if (out[svc]) out[svc]!.composeUser = sp < 0 ? '' : l.slice(sp + 1).trim();
    }
  }
  for (const l of tagged('crc')) {
    const [svc = '', crc = ''] = l.split(/\s+/);
    if (out[svc] && /^0x[0-9a-f]{1,8}$/.test(crc)) out[svc]!.loadedCrc32 = crc;
  }
  const decls = tagged('decl');
  const declared = decls.some((d) => /\$\{JWT_PATH/.test(d) || d.includes(`${SECRETS_DIR}/`))
    ? 'file'
    : decls.some((d) => new RegExp(`${SECRETS_DIR.replace(/[/]/g, '\\/')}["']?:`).test(d))
      ? 'dir'
      : undefined;
  const jwtFile = ownership(tagged('jwtstat')[0]);
  const secretsDir = ownership(tagged('dirstat')[0]);
  const projectServices = tagged('svc').filter((x) => /^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(x));
  return {
    compose: true,
    services: out,
    wantHash,
    ...(projectServices.length ? { projectServices } : {}),
    ...(declared ? { declared } : {}),
    ...(jwtFile ? { jwtFile } : {}),
    ...(secretsDir ? { secretsDir } : {}),
  };
}

/** Whether `svc` is a service of the compose project (true when the project's services are not known). */
export function inProject(f: Extract<ContainersFact, { compose: true }>, svc: string): boolean {
  return !f.projectServices || f.projectServices.includes(svc);
}

/** The compose view of a fact, or undefined when the host is not a compose host (or the fact was not gathered). */
export function composeView(f: ContainersFact | undefined): Extract<ContainersFact, { compose: true }> | undefined {
  return f && f.compose ? f : undefined;
}

/** How the JWT reaches the containers: `file` when any of them (or the compose file) bind-mounts the single file. */
export function jwtMountForm(f: Extract<ContainersFact, { compose: true }>): 'file' | 'dir' | undefined {
  const forms = Object.values(f.services).flatMap((c) => (c.jwtMount ? [c.jwtMount.form] : []));
  if (forms.includes('file')) return 'file';
  if (forms.includes('dir')) return 'dir';
  return f.declared;
}

/**
 * geth's fingerprint of an Engine-API secret: IEEE CRC-32 of the 32 bytes the 64 hex characters decode to, printed
 * like Go's `%#x` (lowercase, no leading zeros), as go-ethereum's ObtainJWTSecret logs it. Computed in memory.
 */
export function engineJwtCrc32(jwtHex: Secret): string {
  return `0x${crc32(Buffer.from(jwtHex.revealText(), 'hex')).toString(16)}`;
}

/** The stored Engine-API JWT's version and geth crc32 (only that number leaves this fact; undefined: nothing stored). */
export function storedJwtCrc32(): LaptopFact<{ version: number; crc32: string; source: string } | undefined> {
  return {
    kind: 'laptop',
    async gather(env) {
      const v = await readEngineJwt(env);
      return v ? { version: v.version, crc32: engineJwtCrc32(v.secret), source: v.source } : undefined;
    },
  };
}

/** A container user as docker names it: root (`""`, `0`, `root`, `0:…`, `root:…`), numeric `uid[:gid]`, or a name. */
export function containerUser(c: Pick<ServiceContainer, 'user' | 'uid' | 'gid' | 'groups'>): { root: true } | { root: false; uid?: number; gid?: number; groups: number[]; name: string } {
  if (c.uid !== undefined) {
    if (c.uid === 0) return { root: true };
    return { root: false, uid: c.uid, ...(c.gid !== undefined ? { gid: c.gid } : {}), groups: c.groups ?? [], name: c.user || `uid ${c.uid}` };
  }
  const u = (c.user ?? '').trim();
  const [user = '', group] = u.split(':');
  if (user === '' || user === '0' || user === 'root') return { root: true };
  const uid = num(user);
  const gid = num(group);
  return { root: false, ...(uid !== undefined ? { uid } : {}), ...(gid !== undefined ? { gid } : {}), groups: [], name: u };
}

/**
 * Whether a (non-root) container user can read the JWT file: owner with owner-read, a member of the file's group
 * with group-read, or other-read; in the dir form the tmpfs dir must also let it through (execute). Undefined when
 * the user is only known by a name (resolved inside the image) or the file is not there.
 */
export function canRead(
  user: ReturnType<typeof containerUser>,
  file: Ownership | undefined,
  dir: Ownership | undefined,
  form: 'file' | 'dir' | undefined,
): boolean | undefined {
  if (user.root) return true;
  if (user.uid === undefined || !file) return undefined;
  const groups = new Set([...(user.gid !== undefined ? [user.gid] : []), ...user.groups]);
  const allowed = (o: Ownership, bits: { u: number; g: number; o: number }) => {
    const m = parseInt(o.mode, 8);
    if (user.uid === o.uid) return (m & bits.u) !== 0;
    if (groups.has(o.gid)) return (m & bits.g) !== 0;
    return (m & bits.o) !== 0;
  };
  if (!allowed(file, { u: 0o400, g: 0o040, o: 0o004 })) return false;
  if (form === 'dir' && dir && !allowed(dir, { u: 0o100, g: 0o010, o: 0o001 })) return false;
  return true;
}
