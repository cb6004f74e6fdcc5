/**
 * node.restart-lockstep on compose hosts (issue 9), pure: facts in, plan out — recreate (not restart) when compose
 * must create the containers again, restart when only the JWT file's content changed or a container holds another
 * JWT than the file (a single-file bind mount keeps the old file), the `recreate` inventory setting and its default,
 * the refusal to (re)start el on a missing or non-hex file, the container user's read check, and what plan says
 * about single-file mounts. Also the inventory's `recreate` default, and verify's `el.holds` / `cl.holds` /
 * `el.loaded` rows. Inventories are inline (the shared fixtures belong to the fixture runner).
 */
import { describe, expect, it } from 'vitest';
import { Secret, sha256Hex } from '../../../src/core/secret.ts';
import { parseInventory } from '../../../src/inventory/loader.ts';
import type { Inventory, NodeHost } from '../../../src/model/inventory.ts';
import type { ExecAction } from '../../../src/model/action.ts';
import type { Plan, PlanContext } from '../../../src/model/task.ts';
import type { ContainersFact, ServiceContainer } from '../../../src/facts/containers.ts';
import type { LoadedFact, SecretFileFact } from '../../../src/facts/secrets.ts';
import type { EngineProbeFact } from '../../../src/facts/inputs.ts';
import { RESTART_PRELUDE, nodeRestartLockstep, recreateArgv, restartArgv } from '../../../src/tasks/node-restart-lockstep.ts';
import { hostChecks, type HostAuditFacts } from '../../../src/verify/checks.ts';
import { tmpfsDirs } from '../../../src/model/layout.ts';

const INV = `network: "473374"
vault: { address: "https://vault.test:8200" }
nodes:
  val-1: { role: validator, address: 10.0.0.1 }
  val-2: { role: validator, address: 10.0.0.2, restart: [nodectl, restart, el, cl] }
  val-3: { role: validator, address: 10.0.0.3, restart: [systemctl, restart, krypton-node] }
  val-4: { role: validator, address: 10.0.0.4, recreate: [docker, compose, up, -d, --force-recreate, --wait, el, cl] }
  val-5: { role: validator, address: 10.0.0.5, env: { services: [cl, mev-boost] } }
`;
const inv: Inventory = parseInventory('/f/inv.yml', INV);
const node = (n: string) => inv.nodes.find((x) => x.name === n) as NodeHost;

const JWT = 'a1'.repeat(32);
const OLD = 'b2'.repeat(32);
const HASH = 'c'.repeat(64);
const sha = (hex: string) => sha256Hex(hex);

const probe = (outcome: EngineProbeFact['outcome'] = 'accepted'): EngineProbeFact => ({
  outcome,
  httpStatus: outcome === 'accepted' ? 200 : 401,
  detail: outcome,
  version: 3,
  fingerprint: sha(JWT),
  source: 'secret/krypton/473374/engine-jwt',
});
const jwtFile = (hex: string | null = JWT, extra: Partial<SecretFileFact> = {}): SecretFileFact =>
  hex === null ? { exists: false } : { exists: true, mode: '0600', owner: 'root', group: 'root', sizeBytes: 64, mtime: 1, sha256: sha(hex), isHex64: true, ...extra };
const loadedOn = (hex = JWT): LoadedFact => ({ el: { 'engine-jwt': sha(hex) }, cl: { 'engine-jwt': sha(hex) } });

function container(svc: string, o: Partial<ServiceContainer> & { held?: string | null; source?: string } = {}): ServiceContainer {
  const { held = JWT, source = '/run/krypton-secrets/jwt.hex', ...rest } = o;
  return {
    service: svc,
    state: 'running',
    id: `${svc}0000000000`.slice(0, 12),
    pid: 100,
    user: '',
    uid: 0,
    gid: 0,
    groups: [0],
    configHash: HASH,
    startedAt: '2026-12-03T08:00:00Z',
    jwtMount: { form: 'file', source, destination: '/jwt/jwt.hex', path: '/jwt/jwt.hex', ...(held ? { heldSha256: sha(held) } : {}) },
    ...rest,
  };
}
function compose(o: { el?: Partial<ServiceContainer> & { held?: string | null; source?: string }; cl?: Partial<ServiceContainer> & { held?: string | null; source?: string }; want?: string; jwtFile?: { uid: number; gid: number; mode: string } } = {}): ContainersFact {
  return {
    compose: true,
    services: { el: container('el', o.el), cl: container('cl', o.cl) },
    wantHash: { el: o.want ?? HASH, cl: o.want ?? HASH },
    declared: 'file',
    jwtFile: o.jwtFile ?? { uid: 0, gid: 0, mode: '0600' },
    secretsDir: { uid: 0, gid: 0, mode: '0700' },
  };
}

function plan(n: string, f: { probe?: EngineProbeFact; loaded?: LoadedFact; files?: Record<string, SecretFileFact>; containers?: ContainersFact }, restartPending = false): Plan {
  const host = node(n);
  const ctx: PlanContext = { host, inventory: inv, restartPending, resume: false, store: { delivery: 'agent', hostCopies: false } };
  return nodeRestartLockstep.plan(nodeRestartLockstep.params.parse({}), { probe: f.probe ?? probe(), loaded: f.loaded ?? loadedOn(), files: f.files ?? { 'engine-jwt': jwtFile() }, containers: f.containers }, ctx);
}
const exec = (p: Plan): ExecAction => {
  if (p.kind !== 'change') throw new Error(`expected a change, got ${JSON.stringify(p)}`);
  expect(p.actions).toHaveLength(1);
  return p.actions[0] as ExecAction;
};
/** The restart command inside `sh -c 'setsid -w "$@" …' sh <argv…>`. */
const command = (p: Plan) => exec(p).argv.slice(4);

describe('the inventory: recreate', () => {
  it('defaults to compose recreate with the default restart, to the custom restart otherwise; an explicit recreate wins', () => {
    expect(node('val-1').restart).toEqual(['docker', 'compose', 'restart', 'el', 'cl']);
    expect(node('val-1').recreate).toEqual(['docker', 'compose', 'up', '-d', '--no-deps', '--force-recreate', 'el', 'cl']);
    expect(node('val-2').recreate).toEqual(['nodectl', 'restart', 'el', 'cl']);
    expect(node('val-3').recreate).toEqual(['systemctl', 'restart', 'krypton-node']);
    expect(node('val-4').recreate).toEqual(['docker', 'compose', 'up', '-d', '--force-recreate', '--wait', 'el', 'cl']);
    const d = parseInventory('/f/d.yml', 'network: "473374"\ndefaults:\n  recreate: [podman-compose, up, -d, el, cl]\nnodes:\n  val-1: { role: validator }\n');
    expect(d.nodes[0]!.recreate).toEqual(['podman-compose', 'up', '-d', 'el', 'cl']);
    expect(() => parseInventory('/f/x.yml', 'network: "473374"\nnodes:\n  val-1: { role: validator, recreate: docker compose up -d }\n')).toThrow(/recreate: expected a command as a list of words/);
  });

  it('the trailing `el cl` of restart and recreate is replaced by the services asked for; other commands run as they are', () => {
    expect(recreateArgv(node('val-1'), ['cl', 'mev-boost'])).toEqual(['docker', 'compose', 'up', '-d', '--no-deps', '--force-recreate', 'cl', 'mev-boost']);
    expect(recreateArgv(node('val-2'), ['el'])).toEqual(['nodectl', 'restart', 'el']);
    expect(recreateArgv(node('val-3'), ['el'])).toEqual(['systemctl', 'restart', 'krypton-node']);
    expect(restartArgv(node('val-1'), ['cl'])).toEqual(['docker', 'compose', 'restart', 'cl']);
  });
});

describe('node.restart-lockstep on a compose host', () => {
  it('converged: nothing to do, and plan says the single-file mount needs a restart for each new value', () => {
    const p = plan('val-1', { containers: compose() });
    expect(p.kind).toBe('noChange');
    const reason = (p as { reason: string }).reason;
    expect(reason).toMatch(/^el and cl run on the current JWT \(Engine API accepted v3\); the containers hold jwt\.hex \(sha256:/);
    expect(reason).toMatch(/single-file bind mount \(\/run\/krypton-secrets\/jwt\.hex -> \/jwt\/jwt\.hex\): each new value needs a restart/);
    expect(JSON.stringify(p)).not.toContain(JWT);
  });

  it('JWT_PATH changed in .env (restartPending): recreate both, not restart (compose restart keeps the old mount)', () => {
    const p = plan('val-1', { containers: compose() }, true);
    expect(command(p)).toEqual(['docker', 'compose', 'up', '-d', '--no-deps', '--force-recreate', 'el', 'cl']);
    expect(exec(p).cwd).toBe('/opt/krypton');
    expect(exec(p).description).toMatch(/^recreate el and cl together \(`docker compose up -d --no-deps --force-recreate el cl`\): JWT_PATH changed/);
    // the restart runs under setsid -w and then records what each service read
    expect(exec(p).argv.slice(0, 2)).toEqual(['sh', '-c']);
    expect(exec(p).argv[2]!.startsWith(`${RESTART_PRELUDE}\n{ [ -f /run/krypton-secrets/loaded ]`)).toBe(true);
  });

  it('only the file content changed (a rotation): restart, and say the containers hold the old value', () => {
    const p = plan('val-1', { probe: probe('rejected'), loaded: loadedOn(OLD), containers: compose({ el: { held: OLD }, cl: { held: OLD } }) });
    expect(command(p)).toEqual(['docker', 'compose', 'restart', 'el', 'cl']);
    const d = exec(p).description;
    expect(d).toMatch(/^restart el and cl together/);
    expect(d).toContain(`el and cl hold another JWT (sha256:${sha(OLD).slice(0, 12)}) than jwt.hex (sha256:${sha(JWT).slice(0, 12)})`);
    expect(d).toMatch(/single-file bind mount into the containers: each new value needs a restart\)$/);
  });

  it('a container holding another value than the file restarts both, even when the record and the Engine API look fine', () => {
    // e.g. someone replaced the file by hand with the stored value after a restart the tool did not record
    const p = plan('val-1', { containers: compose({ cl: { held: OLD } }) });
    expect(command(p)).toEqual(['docker', 'compose', 'restart', 'el', 'cl']);
    expect(exec(p).description).toContain('cl holds another JWT');
  });

  it('the compose config hash moved (.env, compose file, env_file): recreate that service', () => {
    const p = plan('val-1', { containers: compose({ el: { configHash: 'd'.repeat(64) } }) });
    expect(command(p)).toEqual(['docker', 'compose', 'up', '-d', '--no-deps', '--force-recreate', 'el']);
    expect(exec(p).description).toContain('the compose config of el changed since its container was created');
  });

  it('a JWT mount from another source (the old plaintext file): recreate both', () => {
    const c = compose({ el: { source: '/opt/krypton/jwt.hex', held: OLD }, cl: { source: '/opt/krypton/jwt.hex', held: OLD } });
    const p = plan('val-1', { containers: c });
    expect(command(p)).toEqual(['docker', 'compose', 'up', '-d', '--no-deps', '--force-recreate', 'el', 'cl']);
    expect(exec(p).description).toContain('el and cl mount the JWT from /opt/krypton/jwt.hex, not /run/krypton-secrets/jwt.hex');
  });

  it('no containers yet (a fresh compose host): recreate creates them', () => {
    const c = compose();
    if (c.compose) c.services = { el: { service: 'el', state: 'absent' }, cl: { service: 'cl', state: 'absent' } };
    const p = plan('val-1', { probe: probe('unreachable'), loaded: {}, containers: c });
    expect(command(p)).toEqual(['docker', 'compose', 'up', '-d', '--no-deps', '--force-recreate', 'el', 'cl']);
    expect(exec(p).description).toContain('el and cl have no containers yet');
  });

  it('a stopped cl is started again (restart), el left alone', () => {
    const p = plan('val-1', { containers: compose({ cl: { state: 'exited', held: null, pid: undefined } }) });
    expect(command(p)).toEqual(['docker', 'compose', 'restart', 'cl']);
    expect(exec(p).description).toContain('cl is exited');
  });

  it('changed env-secrets on a compose host recreate their readers (compose reads an env_file only at create)', () => {
    const ENV = 'e'.repeat(64);
    const p = plan('val-5', {
      loaded: { el: { 'engine-jwt': sha(JWT) }, cl: { 'engine-jwt': sha(JWT), 'node-env': 'f'.repeat(64) }, 'mev-boost': { 'node-env': 'f'.repeat(64) } },
      files: { 'engine-jwt': jwtFile(), 'node-env': { exists: true, mode: '0600', owner: 'root', group: 'root', sizeBytes: 10, mtime: 1, sha256: ENV } },
      containers: compose(),
    });
    expect(command(p)).toEqual(['docker', 'compose', 'up', '-d', '--no-deps', '--force-recreate', 'cl', 'mev-boost']);
    expect(exec(p).description).toContain('node.env is an env_file, which compose reads only when it creates a container');
  });

  it('a custom restart without recreate is honoured for both; an explicit recreate is used as given', () => {
    expect(command(plan('val-2', { containers: compose() }, true))).toEqual(['nodectl', 'restart', 'el', 'cl']);
    expect(command(plan('val-3', { containers: compose() }, true))).toEqual(['systemctl', 'restart', 'krypton-node']);
    expect(command(plan('val-4', { containers: compose() }, true))).toEqual(['docker', 'compose', 'up', '-d', '--force-recreate', '--wait', 'el', 'cl']);
    expect(command(plan('val-4', { probe: probe('rejected'), containers: compose() }))).toEqual(['docker', 'compose', 'restart', 'el', 'cl']);
  });

  it('a compose project whose services are called otherwise (a custom restart): its containers are not judged', () => {
    const other: ContainersFact = { compose: true, services: { el: { service: 'el', state: 'absent' }, cl: { service: 'cl', state: 'absent' } }, wantHash: {}, projectServices: ['geth', 'beacon'] };
    expect(plan('val-3', { containers: other }).kind).toBe('noChange');
    expect(command(plan('val-3', { probe: probe('rejected'), containers: other }))).toEqual(['systemctl', 'restart', 'krypton-node']);
    const rows = hostChecks(inv, node('val-3'), 'agent', tmpfsDirs(inv, node('val-3')), {
      mounts: [],
      kernel: { release: '6.8.0', supportsNoswap: true, swapActive: false },
      agent: { running: false, tokenSink: false, secretIdFile: false, leftoverTempFiles: 0 },
      files: {},
      stored: {},
      containers: other,
    });
    expect(rows.filter((r) => /^(el|cl)\./.test(r.check))).toEqual([]);
  });

  it('not a compose host (or no container facts): judged by the records and the Engine API as before', () => {
    expect(plan('val-2', { containers: { compose: false, reason: 'docker is not on PATH' } }).kind).toBe('noChange');
    expect(command(plan('val-1', { probe: probe('rejected'), containers: { compose: false, reason: 'docker is not on PATH' } }))).toEqual(['docker', 'compose', 'restart', 'el', 'cl']);
    expect(command(plan('val-1', { probe: probe('rejected') }))).toEqual(['docker', 'compose', 'restart', 'el', 'cl']);
  });
});

describe('node.restart-lockstep refuses before it restarts anything', () => {
  it('jwt.hex missing: no (re)start of el (geth would make its own secret), on any host', () => {
    for (const containers of [compose({ el: { held: OLD }, cl: { held: OLD } }), undefined]) {
      const p = plan('val-1', { probe: probe('rejected'), files: { 'engine-jwt': jwtFile(null) }, containers });
      expect(p.kind).toBe('refuse');
      if (p.kind !== 'refuse') return;
      expect(p.error.code).toBe('E_PLAN_CONFLICT');
      expect(p.error.message).toMatch(/\/run\/krypton-secrets\/jwt\.hex is missing: refusing to \(re\)start el .*geth would make its own secret/);
      expect(p.error.hint).toBeTruthy();
    }
    // recreate too (restartPending)
    expect(plan('val-1', { files: { 'engine-jwt': jwtFile(null) }, containers: compose() }, true)).toMatchObject({ kind: 'refuse', error: { code: 'E_PLAN_CONFLICT' } });
  });

  it('jwt.hex not exactly 64 lowercase hex: refused the same way', () => {
    const p = plan('val-1', { probe: probe('rejected'), files: { 'engine-jwt': jwtFile(`0x${JWT.slice(2)}`, { isHex64: false }) }, containers: compose() });
    expect(p).toMatchObject({ kind: 'refuse', error: { code: 'E_PLAN_CONFLICT', message: expect.stringMatching(/not exactly 64 lowercase hex/) } });
  });

  it('a missing jwt.hex does not block an env-only restart of services that do not read the JWT', () => {
    const p = plan('val-5', {
      loaded: { el: { 'engine-jwt': sha(JWT) }, cl: { 'engine-jwt': sha(JWT), 'node-env': 'e'.repeat(64) }, 'mev-boost': { 'node-env': '0'.repeat(64) } },
      files: { 'engine-jwt': jwtFile(null), 'node-env': { exists: true, mode: '0600', owner: 'root', group: 'root', sizeBytes: 10, mtime: 1, sha256: 'e'.repeat(64) } },
    });
    expect(command(p)).toEqual(['docker', 'compose', 'restart', 'mev-boost']);
  });

  it("a container user that can read the file neither as owner nor as group member: refused, with the inventory's knobs as the hint", () => {
    const p = plan('val-1', { probe: probe('rejected'), loaded: loadedOn(OLD), containers: compose({ cl: { user: '1000:1000', uid: 1000, gid: 1000, groups: [1000], held: OLD }, el: { held: OLD } }) });
    expect(p.kind).toBe('refuse');
    if (p.kind !== 'refuse') return;
    expect(p.error.code).toBe('E_PLAN_CONFLICT');
    expect(p.error.message).toBe("cl's container runs as 1000:1000 (uid 1000, gid 1000), which cannot read /run/krypton-secrets/jwt.hex (uid 0, gid 0, mode 0600)");
    expect(p.error.hint).toMatch(/set jwt\.owner to "1000" \(or jwt\.group to a group of that user with mode "0640"\) for val-1 in the inventory/);
  });

  it('…and lets it through when it owns the file, or is in its group with group-read; root always', () => {
    const base = { probe: probe('rejected'), loaded: loadedOn(OLD) };
    const user = { user: '1000:1000', uid: 1000, gid: 1000, groups: [1000], held: OLD };
    expect(plan('val-1', { ...base, containers: compose({ cl: user, el: { held: OLD }, jwtFile: { uid: 1000, gid: 0, mode: '0600' } }) }).kind).toBe('change');
    expect(plan('val-1', { ...base, containers: compose({ cl: user, el: { held: OLD }, jwtFile: { uid: 0, gid: 1000, mode: '0640' } }) }).kind).toBe('change');
    expect(plan('val-1', { ...base, containers: compose({ cl: user, el: { held: OLD }, jwtFile: { uid: 0, gid: 1000, mode: '0600' } }) }).kind).toBe('refuse');
    // not running: the user comes from .Config.User
    expect(plan('val-1', { ...base, containers: compose({ cl: { user: '1000', uid: undefined, gid: undefined, groups: undefined, state: 'exited', held: null }, el: { held: OLD } }) }).kind).toBe('refuse');
  });

  it("a recreate is judged by the user the compose config gives (what the new container runs as), a restart by the current one's", () => {
    // the compose file now says user 1000 for cl (config hash moved): the recreated cl could not read the file
    const toUser = compose({ cl: { configHash: 'd'.repeat(64), composeUser: '1000:1000' }, el: { composeUser: '' } });
    const p = plan('val-1', { containers: toUser });
    expect(p).toMatchObject({ kind: 'refuse', error: { code: 'E_PLAN_CONFLICT', message: "cl's container would run as 1000:1000 (uid 1000, gid 1000), which cannot read /run/krypton-secrets/jwt.hex (uid 0, gid 0, mode 0600)" } });
    // the compose file no longer sets a user, the old container ran as 1000: the recreate goes ahead (the image's default)
    const back = compose({ cl: { configHash: 'd'.repeat(64), composeUser: '', user: '1000:1000', uid: 1000, gid: 1000, groups: [1000], state: 'restarting', held: null } });
    expect(command(plan('val-1', { containers: back }))).toEqual(['docker', 'compose', 'up', '-d', '--no-deps', '--force-recreate', 'cl']);
    // a fresh host whose compose file runs el as 1000: refused before the containers are created
    const fresh = compose({ el: { composeUser: '1000' } });
    if (fresh.compose) fresh.services['el'] = { service: 'el', state: 'absent', composeUser: '1000' };
    expect(plan('val-1', { probe: probe('unreachable'), loaded: {}, containers: fresh })).toMatchObject({ kind: 'refuse', error: { message: expect.stringMatching(/^el's container would run as 1000 \(uid 1000\)/) } });
  });
});

describe('verify: what the containers hold', () => {
  const vinv = parseInventory('inv.yml', 'network: "473374"\nvault: { address: "http://127.0.0.1:8200" }\nnodes:\n  val-1: { role: validator, address: 10.0.0.1 }\n');
  const vnode = vinv.nodes[0]!;
  const value = new Secret(JWT);
  const facts = (containers?: ContainersFact, crc = '0x1a2b3c'): HostAuditFacts => ({
    mounts: [{ fsType: 'tmpfs', options: ['rw', 'noswap'], sizeBytes: 1 << 20, mode: '0700' }],
    kernel: { release: '6.8.0', supportsNoswap: true, swapActive: true },
    agent: { running: true, pid: 42, startedAt: 100, tokenSink: true, secretIdFile: false, leftoverTempFiles: 0, configMtime: 90 },
    files: { 'engine-jwt': jwtFile() },
    stored: { 'engine-jwt': { version: 3, fingerprint: value.fingerprint(), source: 'secret/krypton/473374/engine-jwt' } },
    copies: [],
    jwtPath: { fileExists: true, values: ['/run/krypton-secrets/jwt.hex'] },
    probe: { outcome: 'accepted', httpStatus: 200, detail: 'ok' },
    token: { renewable: true, ttlSeconds: 3000, policies: ['default'] },
    ...(containers ? { containers, jwtCrc32: { version: 3, crc32: crc, source: 'secret/krypton/473374/engine-jwt' } } : {}),
  });
  const rows = (f: HostAuditFacts) => hostChecks(vinv, vnode, 'agent', tmpfsDirs(vinv, vnode), f).filter((r) => /^(el|cl)\./.test(r.check));

  it('a converged compose node: el.holds, cl.holds and el.loaded pass, and say the single-file mount needs restarts', () => {
    const r = rows(facts(compose({ el: { loadedCrc32: '0x1a2b3c' } })));
    expect(r.map((x) => [x.check, x.ok])).toEqual([['el.holds', true], ['cl.holds', true], ['el.loaded', true]]);
    expect(r[0]!.detail).toMatch(/^el \(container el0000000000\) holds secret\/krypton\/473374\/engine-jwt v3 \(sha256:[0-9a-f]{12}\) at \/jwt\/jwt\.hex through a single-file bind mount of \/run\/krypton-secrets\/jwt\.hex: each new value needs a restart/);
    expect(r[2]!.detail).toMatch(/^el loaded the current JWT \(crc32 0x1a2b3c, secret\/krypton\/473374\/engine-jwt v3\)/);
    expect(JSON.stringify(r)).not.toContain(JWT);
  });

  it('a container still holding the old value, or geth having loaded another: failures naming the check', () => {
    const r = rows(facts(compose({ el: { held: OLD, loadedCrc32: '0xdead' }, cl: { held: OLD } })));
    expect(r.filter((x) => !x.ok).map((x) => x.check)).toEqual(['el.holds', 'cl.holds', 'el.loaded']);
    expect(r[0]!.detail).toMatch(/^el \(container el0000000000\) holds another JWT \(sha256:[0-9a-f]{12}\) at \/jwt\/jwt\.hex than secret\/krypton\/473374\/engine-jwt v3 .*single-file bind mount of \/run\/krypton-secrets\/jwt\.hex keeps the file the container started with; restart el and cl/);
    expect(r[2]!.detail).toMatch(/^el loaded another JWT \(crc32 0xdead\) than secret\/krypton\/473374\/engine-jwt v3 \(crc32 0x1a2b3c\)/);
  });

  it('not a compose host: no container rows; a geth that logged no crc32 passes el.loaded with the reason', () => {
    expect(rows(facts(undefined))).toEqual([]);
    expect(rows({ ...facts(undefined), containers: { compose: false, reason: 'docker is not on PATH' } })).toEqual([]);
    const r = rows(facts(compose()));
    expect(r.find((x) => x.check === 'el.loaded')).toMatchObject({ ok: true, detail: expect.stringMatching(/logged no "Loaded JWT secret file/) });
  });

  it('absent, stopped, unreadable: each a failure with its reason', () => {
    const c = compose({ cl: { state: 'exited', held: null } }) as Extract<ContainersFact, { compose: true }>;
    c.services['el'] = { service: 'el', state: 'absent' };
    const r = rows(facts(c));
    expect(r.map((x) => [x.check, x.ok])).toEqual([['el.holds', false], ['cl.holds', false], ['el.loaded', false]]);
    expect(r[0]!.detail).toMatch(/^el has no container in \/opt\/krypton/);
    expect(r[1]!.detail).toBe('cl (container cl0000000000) is exited');
    const unreadable = rows(facts(compose({ el: { held: null } })));
    expect(unreadable[0]).toMatchObject({ check: 'el.holds', ok: false, detail: expect.stringMatching(/^could not read \/jwt\/jwt\.hex inside el/) });
  });
});
