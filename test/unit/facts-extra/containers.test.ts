/**
 * The compose-containers fact (src/facts/containers.ts): its snippet run for real with this machine's sh against a
 * stand-in `docker` on PATH (it prints what Docker 20.10 / Compose v5 print for the formats the snippet asks for),
 * with /run/krypton-secrets moved to a temp dir on /dev/shm; the parser on raw output; and the pure helpers
 * (mount form, container user, read check, geth's crc32). The `/proc/<pid>/root` read is exercised with this test
 * process's own pid, whose root is this machine's `/`: the "container" file is a temp file.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { Secret, sha256Hex } from '../../../src/core/secret.ts';
import {
  canRead,
  composeContainers,
  containerUser,
  engineJwtCrc32,
  jwtMountForm,
  parseContainers,
  type ContainersFact,
} from '../../../src/facts/containers.ts';

const shm = mkdtempSync('/dev/shm/ks-containers-');
afterAll(() => rmSync(shm, { recursive: true, force: true }));

const JWT = '0031fa90a884717ceee535c1cbae9f0bc4542a8cb58eb21d8abcc06978f0ff2e';
const OLD = 'f'.repeat(64);
const HASH_EL = 'a'.repeat(64);
const HASH_CL = 'b'.repeat(64);

/** A stand-in `docker` CLI: answers the snippet's calls from files in its own dir. */
function fakeDocker(dir: string, o: { psFails?: string; inspect: Record<string, string>; logs?: string; hashes?: string; config?: string }): string {
  const bin = join(dir, 'bin');
  mkdirSync(bin, { recursive: true });
  for (const [id, text] of Object.entries(o.inspect)) writeFileSync(join(dir, `inspect-${id}`), text);
  writeFileSync(join(dir, 'logs'), o.logs ?? '');
  writeFileSync(join(dir, 'hashes'), o.hashes ?? '');
  writeFileSync(join(dir, 'config'), o.config ?? '');
  writeFileSync(join(dir, 'ps'), Object.keys(o.inspect).map((id) => `${id.startsWith('e') ? 'el' : 'cl'} ${id}`).join('\n') + '\n');
  writeFileSync(
    join(bin, 'docker'),
    `#!/bin/sh
d=${JSON.stringify(dir)}
echo "$*" >> "$d/calls"
case "$1 $2" in
  "compose ps") ${o.psFails ? `echo 'time="x" level=warning msg="The JWT_PATH variable is not set."' >&2; echo ${JSON.stringify(o.psFails)} >&2; exit 1` : 'echo \'time="x" level=warning msg="noise"\' >&2; cat "$d/ps"'} ;;
  "compose config") if [ "$3" = --hash ]; then cat "$d/hashes"; elif [ "$3" = --services ]; then [ -s "$d/config" ] && printf 'cl\nel\n' || exit 1; elif [ -s "$d/config" ]; then cat "$d/config"; else exit 1; fi ;;
  "inspect --format") eval "id=\\$$#"; cat "$d/inspect-$id" ;;
  "logs --since") cat "$d/logs" >&2 ;;
  *) echo "unexpected docker $*" >&2; exit 2 ;;
esac
`,
  );
  chmodSync(join(bin, 'docker'), 0o755);
  return bin;
}

/** Runs the snippet as the executor does (subshell, no stdin, stderr dropped), /run/krypton-secrets moved to `secrets`. */
function run(script: string, o: { secrets: string; deploy: string; path: string }): string {
  const s = script.replaceAll('/run/krypton-secrets', o.secrets).replaceAll('/opt/krypton', o.deploy);
  return execFileSync('/bin/sh', ['-c', `( ${s}\n) </dev/null 2>/dev/null`], { encoding: 'utf8', env: { PATH: o.path, LANG: 'C' } });
}

const SYSTEM_PATH = '/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin';

describe('composeContainers: the snippet on a host', () => {
  it('a compose host: ids, state, config hashes, the single-file JWT mount and what the container holds, geth crc32; never a value', () => {
    const d = mkdtempSync(join(shm, 'host-'));
    const secrets = join(d, 'secrets');
    const deploy = join(d, 'deploy');
    const inContainer = join(d, 'container'); // what "/proc/<pid>/root/<dest>" resolves to for this process
    mkdirSync(secrets, { mode: 0o700 });
    mkdirSync(deploy);
    mkdirSync(inContainer);
    writeFileSync(join(secrets, 'jwt.hex'), JWT, { mode: 0o600 });
    writeFileSync(join(inContainer, 'jwt.hex'), OLD); // the container still sees the old file
    writeFileSync(join(deploy, 'docker-compose.yml'), 'services:\n  el:\n    volumes:\n      - ${JWT_PATH}:/jwt/jwt.hex:ro\n      - el-data:/data\n');
    const pid = process.pid;
    const bin = fakeDocker(d, {
      inspect: {
        e0000000000a: `S|running|${pid}||${HASH_EL}|2026-12-03T08:15:42.991695091Z\nM|/run/krypton-secrets/jwt.hex|${join(inContainer, 'jwt.hex')}\nM|/var/log/krypton|/var/log/krypton\n`,
        c0000000000b: `S|exited|0|1000:1000|${HASH_CL}|2026-12-03T08:15:43.1Z\nM|/run/krypton-secrets/jwt.hex|/jwt/jwt.hex\n`,
      },
      hashes: `cl ${HASH_CL}\nel ${'c'.repeat(64)}\n`,
      // `docker compose config` as v5 renders it: env_file values in `environment:` (they must not leave the host)
      config: 'name: krypton\nservices:\n  cl:\n    environment:\n      API_KEY: do-not-leak-me\n    user: "1000:1000"\n  el:\n    environment:\n      API_KEY: do-not-leak-me\n    image: geth\nvolumes:\n  el-data:\n    name: krypton_el-data\n',
      logs: 'INFO [12-03|08:15:43.059] Maximum peer count ETH=50\nINFO [12-03|08:15:44.010] Loaded JWT secret file                   path=/jwt/jwt.hex crc32=0xd5344cb1\nINFO [12-03|08:16:44.010] Loaded JWT secret file                   path=/jwt/jwt.hex crc32=0x70170faf\n',
    });
    const fact = composeContainers('/opt/krypton', ['el', 'cl']);
    const out = run(fact.script, { secrets, deploy, path: `${bin}:${SYSTEM_PATH}` });
    expect(out).not.toContain(JWT);
    expect(out).not.toContain(OLD);
    expect(out).not.toContain('do-not-leak-me');
    const f = fact.parse(out, 0) as Extract<ContainersFact, { compose: true }>;
    expect(f.services['cl']!.composeUser).toBe('1000:1000');
    expect(f.projectServices).toEqual(['cl', 'el']);
    expect(f.services['el']!.composeUser).toBe('');
    expect(f.compose).toBe(true);
    expect(f.declared).toBe('file');
    expect(f.wantHash).toEqual({ el: 'c'.repeat(64), cl: HASH_CL });
    expect(f.jwtFile).toEqual({ uid: process.getuid!(), gid: process.getgid!(), mode: '0600' });
    expect(f.secretsDir?.mode).toBe('0700');
    const el = f.services['el']!;
    expect(el).toMatchObject({ state: 'running', id: 'e0000000000a', pid, user: '', configHash: HASH_EL, loadedCrc32: '0x70170faf', uid: process.getuid!() });
    // The mount source is the tool's file, so it is the one judged (dockerd reports the host path as it is).
    expect(el.jwtMount).toMatchObject({ form: 'file', destination: join(inContainer, 'jwt.hex'), heldSha256: sha256Hex(OLD) });
    const cl = f.services['cl']!;
    expect(cl).toMatchObject({ state: 'exited', id: 'c0000000000b', user: '1000:1000', jwtMount: { form: 'file', path: '/jwt/jwt.hex' } });
    expect(cl.jwtMount!.heldSha256).toBeUndefined(); // not running: nothing read through /proc
    expect(cl.pid).toBeUndefined();
    expect(cl.loadedCrc32).toBeUndefined(); // logs are read for el only
  });

  it('not a compose host: docker missing, or `docker compose ps` failing, says so with the reason', () => {
    const d = mkdtempSync(join(shm, 'nocompose-'));
    mkdirSync(join(d, 'deploy'));
    const fact = composeContainers('/opt/krypton', ['el', 'cl']);
    const emptyBin = join(d, 'empty');
    mkdirSync(emptyBin);
    // A PATH with no docker on it (the snippet stops at `command -v docker`, a builtin, before it needs any tool).
    const noDocker = run(fact.script, { secrets: join(d, 's'), deploy: join(d, 'deploy'), path: emptyBin });
    expect(fact.parse(noDocker, 0)).toEqual({ compose: false, reason: 'docker is not on PATH' });

    const bin = fakeDocker(d, { psFails: 'no configuration file provided: not found', inspect: {} });
    expect(fact.parse(run(fact.script, { secrets: join(d, 's'), deploy: join(d, 'deploy'), path: `${bin}:${SYSTEM_PATH}` }), 0)).toEqual({
      compose: false,
      reason: 'docker compose ps failed: no configuration file provided: not found',
    });
    expect(fact.parse(run(fact.script, { secrets: join(d, 's'), deploy: join(d, 'missing'), path: `${bin}:${SYSTEM_PATH}` }), 0)).toMatchObject({
      compose: false,
      reason: expect.stringMatching(/^the deploy dir .*missing does not exist$/),
    });
  });

  it('a project with no containers yet: both services absent, and the JWT form from the compose file', () => {
    const d = mkdtempSync(join(shm, 'fresh-'));
    mkdirSync(join(d, 'deploy'));
    writeFileSync(join(d, 'deploy', 'compose.yaml'), 'services:\n  el:\n    volumes:\n      - /run/krypton-secrets:/jwt:ro\n');
    const bin = fakeDocker(d, { inspect: {} });
    const fact = composeContainers('/opt/krypton', ['el', 'cl']);
    const out = run(fact.script, { secrets: join(d, 'nothing'), deploy: join(d, 'deploy'), path: `${bin}:${SYSTEM_PATH}` });
    const f = fact.parse(out, 0);
    expect(f).toMatchObject({ compose: true, services: { el: { state: 'absent' }, cl: { state: 'absent' } }, wantHash: {} });
    // compose could not render its config (e.g. JWT_PATH unset): the user a recreate gives is unknown
    expect((f as Extract<ContainersFact, { compose: true }>).services['el']!.composeUser).toBeUndefined();
    expect((f as Extract<ContainersFact, { compose: true }>).projectServices).toBeUndefined();
    // the test moved /run/krypton-secrets, so the declared dir form is judged on the original path only
    expect(parseContainers('@compose\n@decl - /run/krypton-secrets:/jwt:ro\n', ['el', 'cl'])).toMatchObject({ declared: 'dir' });
    expect(jwtMountForm(parseContainers('@compose\n@decl - /run/krypton-secrets:/jwt:ro\n', ['el', 'cl']) as Extract<ContainersFact, { compose: true }>)).toBe('dir');
  });
});

describe('parseContainers', () => {
  it('picks the tool file over other JWT-looking mounts, the dir form for /run/krypton-secrets, and reads process ids', () => {
    const f = parseContainers(
      [
        '@compose',
        '@svc el',
        '@svc cl',
        '@svc mev-boost',
        '@decl - ${JWT_PATH}:/jwt/jwt.hex:ro',
        '@jwtstat 0 1001 640',
        '@dirstat 0 0 700',
        `@hash el ${HASH_EL}`,
        `@c el e0000000000a|running|77|geth|${HASH_EL}|2026-12-03T08:15:42Z`,
        '@u el Uid: 1001 1001 1001 1001',
        '@u el Gid: 1001 1001 1001 1001',
        '@u el Groups: 1001 27 ',
        `@m el ${sha256Hex(OLD)}|/opt/krypton/jwt.hex|/old/jwt.hex`,
        `@m el ${sha256Hex(JWT)}|/run/krypton-secrets/jwt.hex|/jwt/jwt.hex`,
        `@c cl c0000000000b|running|78||${HASH_CL}|2026-12-03T08:15:43Z`,
        `@m cl ${sha256Hex(JWT)}|/run/krypton-secrets|/secrets`,
        '@crc el 0x1234abcd',
        '@crc cl not-a-crc',
      ].join('\n'),
      ['el', 'cl'],
    ) as Extract<ContainersFact, { compose: true }>;
    expect(f.services['el']).toMatchObject({ user: 'geth', uid: 1001, gid: 1001, groups: [1001, 27], loadedCrc32: '0x1234abcd' });
    expect(f.services['el']!.jwtMount).toEqual({ form: 'file', source: '/run/krypton-secrets/jwt.hex', destination: '/jwt/jwt.hex', path: '/jwt/jwt.hex', heldSha256: sha256Hex(JWT) });
    expect(f.services['cl']!.jwtMount).toEqual({ form: 'dir', source: '/run/krypton-secrets', destination: '/secrets', path: '/secrets/jwt.hex', heldSha256: sha256Hex(JWT) });
    expect(f.services['cl']!.loadedCrc32).toBeUndefined();
    expect(f.jwtFile).toEqual({ uid: 0, gid: 1001, mode: '0640' });
    expect(f.projectServices).toEqual(['el', 'cl', 'mev-boost']);
    expect(jwtMountForm(f)).toBe('file');
  });

  it('an old plaintext mount is still found (so the task can recreate it)', () => {
    const f = parseContainers(`@compose\n@c el e1|running|5||${HASH_EL}|t\n@m el -|/opt/krypton/jwt.hex|/jwt/jwt.hex\n`, ['el', 'cl']) as Extract<ContainersFact, { compose: true }>;
    expect(f.services['el']!.jwtMount).toEqual({ form: 'file', source: '/opt/krypton/jwt.hex', destination: '/jwt/jwt.hex', path: '/jwt/jwt.hex' });
    expect(f.services['cl']).toEqual({ service: 'cl', state: 'absent' });
  });

  it('no @compose line: not a compose host', () => {
    expect(parseContainers('', ['el'])).toEqual({ compose: false, reason: 'docker compose did not answer' });
  });
});

describe('container users and the read check', () => {
  const file = (uid: number, gid: number, mode: string) => ({ uid, gid, mode });
  it('root in every spelling docker has', () => {
    for (const user of ['', '0', 'root', '0:0', 'root:root']) expect(containerUser({ user }), user).toEqual({ root: true });
    expect(containerUser({ user: '1000', uid: 0 })).toEqual({ root: true }); // the running process decides
  });

  it('a non-root user reads as owner with owner-read, as group member with group-read, and not otherwise', () => {
    const u1000 = containerUser({ user: '1000:1000' });
    expect(u1000).toMatchObject({ root: false, uid: 1000, gid: 1000 });
    expect(canRead(u1000, file(0, 0, '0600'), undefined, 'file')).toBe(false);
    expect(canRead(u1000, file(1000, 0, '0600'), undefined, 'file')).toBe(true);
    expect(canRead(u1000, file(1000, 0, '0200'), undefined, 'file')).toBe(false);
    expect(canRead(u1000, file(0, 1000, '0640'), undefined, 'file')).toBe(true);
    expect(canRead(u1000, file(0, 1000, '0600'), undefined, 'file')).toBe(false);
    const withGroups = containerUser({ user: 'geth', uid: 1001, gid: 1001, groups: [1001, 2000] });
    expect(canRead(withGroups, file(0, 2000, '0640'), undefined, 'file')).toBe(true);
    // the dir form: the tmpfs dir must let the user through too
    expect(canRead(u1000, file(1000, 0, '0600'), file(0, 0, '0700'), 'dir')).toBe(false);
    expect(canRead(u1000, file(1000, 0, '0600'), file(0, 0, '0700'), 'file')).toBe(true); // a single-file mount skips the dir
    expect(canRead(containerUser({ user: '' }), file(0, 0, '0600'), file(0, 0, '0700'), 'dir')).toBe(true);
  });

  it('unknown when the user is only a name in the image, or the file is not there', () => {
    expect(canRead(containerUser({ user: 'geth' }), file(0, 0, '0600'), undefined, 'file')).toBeUndefined();
    expect(canRead(containerUser({ user: '1000' }), undefined, undefined, 'file')).toBeUndefined();
  });
});

describe("geth's crc32 of the JWT", () => {
  it('is the IEEE CRC-32 of the 32 decoded bytes, printed like Go %#x (no zero padding)', () => {
    expect(engineJwtCrc32(new Secret(JWT))).toBe(`0x${crc32(Buffer.from(JWT, 'hex')).toString(16)}`);
    // a value whose crc32 has a leading zero nibble prints without it
    let hex = '';
    for (let i = 0; ; i++) {
      hex = sha256Hex(String(i));
      if (crc32(Buffer.from(hex, 'hex')) < 0x10000000) break;
    }
    expect(engineJwtCrc32(new Secret(hex))).toMatch(/^0x[1-9a-f][0-9a-f]{0,6}$/);
  });
});
