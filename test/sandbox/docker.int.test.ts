/**
 * The sandbox's docker runtime end to end (`sandboxUp({runtime: 'docker'})`): Debian's dockerd inside a
 * host's namespaces, the real geth v1.17.10 and the CL stand-in in FROM-scratch images, the real
 * `docker compose` (v5) CLI over SSH, and the facts the tool relies on: geth's `Loaded JWT secret file …
 * crc32=` fingerprint, 200/401 from geth's authrpc, single-file bind mounts that keep the old file after a
 * rename until the container restarts, `.env` read only when compose creates a container, what a reboot
 * does to the containers, and the directory form. Waits are condition polls with generous bounds (CI
 * ran at load 12-28 on 2 cores). Needs root, docker.io and the cached builds (bash .ci/install-deps.sh).
 */
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  composeExec,
  composePs,
  containerFileSha256,
  containerStarts,
  dockerEvents,
  engineJwtCrc32,
  gethLoadedJwtCrc32,
  hostExec,
  sandboxDown,
  sandboxUp,
  simulateReboot,
  type SandboxInfo,
} from './index.ts';
import { BRIDGE, NETNS_PREFIX } from './layout.ts';
import { cgroupParentOf } from './docker.ts';
import { run, waitFor } from './proc.ts';

const A = 'val-1';
const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');
/** Generous bounds for a busy 2-core machine; every wait returns as soon as its condition holds. */
const SLOW = { timeoutMs: 120_000, intervalMs: 250 };

function hs256(keyHex: string, claims: Record<string, unknown> = { iat: Math.floor(Date.now() / 1000) }): string {
  const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
  const signingInput = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64(claims)}`;
  return `${signingInput}.${createHmac('sha256', Buffer.from(keyHex, 'hex')).update(signingInput).digest('base64url')}`;
}

/** POSTs engine_exchangeCapabilities to 127.0.0.1:8551 from inside the host (token via env, not argv); status + body text, or status 0. */
async function engineCall(host: string, token: string): Promise<{ status: number; body: string }> {
  const script = `fetch('http://127.0.0.1:8551', {method: 'POST', headers: {'content-type': 'application/json', authorization: 'Bearer ' + process.env.TOKEN},
    body: JSON.stringify({jsonrpc: '2.0', id: 7, method: 'engine_exchangeCapabilities', params: [['engine_newPayloadV4']]})})
    .then(async (r) => console.log(JSON.stringify({status: r.status, body: await r.text()})), () => console.log(JSON.stringify({status: 0, body: ''})))`;
  const r = await hostExec(host, ['node', '-e', script], { env: { TOKEN: token } });
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as { status: number; body: string };
}

function sshArgs(info: SandboxInfo, address: string, command: string): string[] {
  return ['-i', info.ssh.identityFile, '-o', `UserKnownHostsFile=${info.files.knownHosts}`, '-o', 'GlobalKnownHostsFile=/dev/null', '-o', 'StrictHostKeyChecking=yes', '-o', 'BatchMode=yes', '-o', 'ConnectTimeout=10', `root@${address}`, command];
}

/** Over real SSH, in the deploy dir, as the tool does (`docker` from the session's PATH). */
async function sshCompose(info: SandboxInfo, host: string, args: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return run('ssh', sshArgs(info, info.hosts[host]!.address, `cd /opt/krypton && docker compose ${args}`), { timeoutMs: 180_000 });
}

/** As the tool would: tmpfs at /run/krypton-secrets (0700), the JWT (64 hex, no newline) 0600 from stdin, JWT_PATH in .env. */
async function provisionByHand(host: string, hex: string, jwtPath = '/run/krypton-secrets/jwt.hex'): Promise<void> {
  const r = await hostExec(
    host,
    [
      'sh',
      '-c',
      [
        'set -e',
        'mkdir -p -m 0700 /run/krypton-secrets',
        'findmnt -n -t tmpfs /run/krypton-secrets >/dev/null || mount -t tmpfs -o size=1m,mode=0700 tmpfs /run/krypton-secrets',
        'umask 077',
        'cat > "$JWT_FILE.tmp" && mv "$JWT_FILE.tmp" "$JWT_FILE"',
        `sed -i '/^JWT_PATH=/d' /opt/krypton/.env && echo "JWT_PATH=$JWT_FILE" >> /opt/krypton/.env`,
      ].join('\n'),
    ],
    { input: hex, env: { JWT_FILE: jwtPath } },
  );
  expect(r.code, r.stderr).toBe(0);
}

/** Replaces the file by rename (temp file in the same dir, then rename over it), as SFTP and Vault Agent do. */
async function replaceByRename(host: string, hex: string, path = '/run/krypton-secrets/jwt.hex'): Promise<void> {
  const r = await hostExec(host, ['sh', '-c', 'umask 077 && cat > "$F.new" && mv "$F.new" "$F"'], { input: hex, env: { F: path } });
  expect(r.code, r.stderr).toBe(0);
}

const waitForCrc = (host: string, crc: string) =>
  waitFor(`geth on ${host} to log Loaded JWT secret file crc32=${crc}`, async () => (await gethLoadedJwtCrc32(host))?.crc32 === crc, SLOW);

const waitForRunning = (host: string) =>
  waitFor(`el and cl running on ${host}`, async () => {
    const ps = await composePs(host);
    return ['el', 'cl'].every((s) => ps.some((r) => r.service === s && r.state === 'running')) ? ps : undefined;
  }, SLOW);

/** CL witness lines after `sinceMs`: [unix ms, status]. */
async function clWitness(host: string, sinceMs: number): Promise<[number, string][]> {
  const text = (await hostExec(host, ['cat', '/var/log/krypton/cl.log'])).stdout;
  return text
    .split('\n')
    .map((l) => /^(\d+\.\d{3}) (\d{3})$/.exec(l))
    .filter((m): m is RegExpExecArray => !!m)
    .map((m): [number, string] => [Math.round(Number(m[1]) * 1000), m[2]!])
    .filter(([t]) => t >= sinceMs);
}

const waitForCl200 = (host: string, sinceMs: number) =>
  waitFor(`a CL 200 on ${host} after ${sinceMs}`, async () => (await clWitness(host, sinceMs)).some(([, s]) => s === '200'), SLOW);

describe('docker runtime, single-file JWT mount', () => {
  let info: SandboxInfo;
  const jwt1 = randomBytes(32).toString('hex');
  const jwt2 = randomBytes(32).toString('hex');
  let firstIds: Record<string, string> = {};

  beforeAll(async () => {
    const t0 = Date.now();
    info = await sandboxUp({ hosts: 1, runtime: 'docker' });
    console.log(`docker sandbox (1 host) up in ${Date.now() - t0} ms`);
  }, 30 * 60_000); // a fresh machine builds geth here when .ci/install-deps.sh has not

  afterAll(async () => {
    await sandboxDown();
  }, 120_000);

  it("runs the host's own dockerd (vfs, no bridge, own socket) that docker over SSH reaches; nothing started yet", async () => {
    const i = await hostExec(A, ['docker', 'info', '--format', '{{.Driver}} {{.ServerVersion}} {{.CgroupDriver}}']);
    expect(i.code, i.stderr).toBe(0);
    expect(i.stdout.trim()).toMatch(/^vfs 20\.10\.\S+ cgroupfs$/);
    expect((await hostExec(A, ['test', '-S', '/var/run/docker.sock'])).code).toBe(0);
    expect((await hostExec(A, ['findmnt', '-n', '-o', 'TARGET', '/sys/fs/cgroup/devices'])).code).toBe(0);
    expect((await hostExec(A, ['docker', 'network', 'ls', '--format', '{{.Name}}'])).stdout).not.toMatch(/^bridge$/m);
    expect((await hostExec(A, ['readlink', '-f', '/usr/local/sbin/docker'])).stdout.trim()).toBe('/usr/bin/docker');
    expect(info.runtime).toBe('docker');
    expect(readFileSync(info.files.inventory, 'utf8')).not.toMatch(/restart:/); // the tool's default: docker compose restart el cl
    const images = await hostExec(A, ['docker', 'images', '--format', '{{.Repository}}:{{.Tag}}']);
    expect(images.stdout.split('\n').sort()).toEqual(expect.arrayContaining(['krypton-sandbox/cl:stand-in', 'krypton-sandbox/el:geth-v1.17.10']));
    const ps = await sshCompose(info, A, 'ps --all --format json');
    expect(ps.code, ps.stderr).toBe(0);
    expect(ps.stdout.trim()).toBe('');
    // With no JWT_PATH in .env, `ps` works (compose warns) but `config`/`up` refuse the empty volume spec.
    const config = await sshCompose(info, A, 'config --quiet');
    expect(config.code).not.toBe(0);
    expect(config.stderr).toMatch(/The \W{1,2}JWT_PATH\W{1,2} variable is not set[\s\S]*invalid spec: :\/jwt\/jwt\.hex:ro/);
    expect((await sshCompose(info, A, 'version --short')).stdout.trim()).toMatch(/^v?5\.6\.0$/);
  }, 120_000);

  it('el is the real geth: it loads the JWT from the tmpfs (crc32 of the 32 bytes), 200 with it, 401 with another; cl witnesses 200s', async () => {
    await provisionByHand(A, jwt1);
    const t0 = Date.now();
    const up = await sshCompose(info, A, 'up -d el cl');
    expect(up.code, up.stderr).toBe(0);
    await waitForCrc(A, engineJwtCrc32(jwt1));
    expect(await gethLoadedJwtCrc32(A)).toEqual({ path: '/jwt/jwt.hex', crc32: engineJwtCrc32(jwt1) });
    const version = await composeExec(A, ['exec', '-T', 'el', '/usr/local/bin/geth', 'version']);
    expect(version.stdout).toMatch(/^Version: 1\.17\.10-stable$/m);

    const good = await waitFor('geth to answer 200', async () => ((await engineCall(A, hs256(jwt1))).status === 200 ? true : undefined), SLOW);
    expect(good).toBe(true);
    const bad = await engineCall(A, hs256(randomBytes(32).toString('hex')));
    expect(bad.status).toBe(401);
    expect(bad.body.trim()).toBe('signature is invalid'); // geth's own answer (golang-jwt's error text, plain text)
    expect((await engineCall(A, hs256(jwt1, { iat: Math.floor(Date.now() / 1000) - 300 }))).status).toBe(401);

    const ps = await waitForRunning(A);
    expect(ps.map((r) => r.service).sort()).toEqual(['cl', 'el']);
    const sshPs = await sshCompose(info, A, 'ps --format "{{.Service}} {{.State}}"');
    expect(sshPs.stdout.trim().split('\n').sort()).toEqual(['cl running', 'el running']);

    await waitForCl200(A, t0);
    // Both containers hold the file's value, read through their own mount namespaces.
    expect(await containerFileSha256(A, 'el', '/jwt/jwt.hex')).toBe(sha256(jwt1));
    expect(await containerFileSha256(A, 'cl', '/jwt/jwt.hex')).toBe(sha256(jwt1));
    const starts = await containerStarts(A);
    expect(starts.map((s) => s.service).sort()).toEqual(['cl', 'el']);
    for (const s of starts) expect(s.containerId).toMatch(/^[0-9a-f]{12}$/);
    firstIds = Object.fromEntries(starts.map((s) => [s.service, s.containerId]));
    expect(firstIds['el']).toBe(ps.find((r) => r.service === 'el')!.id.slice(0, 12));
  }, 240_000);

  it('a single-file bind mount keeps the old file after a rename over its source, until the containers restart', async () => {
    await replaceByRename(A, jwt2);
    expect((await hostExec(A, ['sha256sum', '/run/krypton-secrets/jwt.hex'])).stdout.split(' ')[0]).toBe(sha256(jwt2));
    // The containers still see the old inode: the bind mount pinned it at container start.
    expect(await containerFileSha256(A, 'el', '/jwt/jwt.hex')).toBe(sha256(jwt1));
    expect(await containerFileSha256(A, 'cl', '/jwt/jwt.hex')).toBe(sha256(jwt1));

    const before = Date.now();
    const restart = await sshCompose(info, A, 'restart el cl');
    expect(restart.code, restart.stderr).toBe(0);
    await waitForCrc(A, engineJwtCrc32(jwt2));
    await waitForRunning(A);
    expect(await containerFileSha256(A, 'el', '/jwt/jwt.hex')).toBe(sha256(jwt2));
    expect(await containerFileSha256(A, 'cl', '/jwt/jwt.hex')).toBe(sha256(jwt2));
    expect((await engineCall(A, hs256(jwt2))).status).toBe(200);
    expect((await engineCall(A, hs256(jwt1))).status).toBe(401);

    // Witnesses: a restart keeps the containers (same ids in containers.log); dockerd's events show each
    // container's stop and start; once both have started again the CL sees no 401.
    const starts = (await containerStarts(A)).filter((s) => s.atMs >= before - 1000);
    expect(starts.map((s) => s.service).sort()).toEqual(['cl', 'el']);
    for (const s of starts) expect(s.containerId).toBe(firstIds[s.service]);
    const events = await dockerEvents(A, before - 1000);
    for (const svc of ['el', 'cl']) {
      const actions = events.filter((e) => e.service === svc).map((e) => e.action);
      expect(actions, svc).toEqual(expect.arrayContaining(['die', 'start', 'restart']));
    }
    const bothUp = Math.max(...starts.map((s) => s.atMs));
    await waitForCl200(A, bothUp);
    expect((await clWitness(A, bothUp)).filter(([, s]) => s === '401')).toEqual([]);
  }, 240_000);

  it('compose reads .env only when it creates a container: restart keeps the old JWT_PATH, up -d recreates', async () => {
    const jwt3 = randomBytes(32).toString('hex');
    await provisionByHand(A, jwt3, '/run/krypton-secrets/jwt-v3.hex');
    const source = async () => (await hostExec(A, ['docker', 'inspect', '--format', '{{range .Mounts}}{{if eq .Destination "/jwt/jwt.hex"}}{{.Source}}{{end}}{{end}}', 'krypton-el-1'])).stdout.trim();
    expect((await sshCompose(info, A, 'restart el cl')).code).toBe(0);
    await waitForRunning(A);
    expect(await source()).toBe('/run/krypton-secrets/jwt.hex');
    await waitForCrc(A, engineJwtCrc32(jwt2)); // restarted on the old path: still the old value

    const before = Date.now();
    const up = await sshCompose(info, A, 'up -d el cl');
    expect(up.code, up.stderr).toBe(0);
    expect(up.stderr).toMatch(/Recreate/);
    await waitForCrc(A, engineJwtCrc32(jwt3));
    await waitForRunning(A);
    expect(await source()).toBe('/run/krypton-secrets/jwt-v3.hex');
    const starts = (await containerStarts(A)).filter((s) => s.atMs >= before);
    expect(starts.map((s) => s.service).sort()).toEqual(['cl', 'el']);
    for (const s of starts) expect(s.containerId).not.toBe(firstIds[s.service]); // new containers
    expect(await containerFileSha256(A, 'cl', '/jwt/jwt.hex')).toBe(sha256(jwt3));
    await waitForCl200(A, Math.max(...starts.map((s) => s.atMs)));
  }, 240_000);

  it('a reboot kills the containers; dockerd restarts them at once (unless-stopped) with no JWT: the file form fails until the file is back', async () => {
    await simulateReboot(A);
    expect((await hostExec(A, ['findmnt', '-n', '/run/krypton-secrets'])).code).toBe(1);
    // docker creates a missing single-file bind source as a *directory*; mounting it onto the file
    // mountpoint fails, so neither container runs (and geth cannot make its own secret).
    const ps = await waitFor('el and cl to be exited after the reboot', async () => {
      const rows = await composePs(A);
      return rows.length === 2 && rows.every((r) => r.state === 'exited') ? rows : undefined;
    }, SLOW);
    expect(ps.length).toBe(2);
    expect((await hostExec(A, ['test', '-d', '/run/krypton-secrets/jwt-v3.hex'])).code).toBe(0);
    // The tool's job after a reboot: tmpfs over the dir (hiding what docker made), the file, a restart.
    const jwt4 = randomBytes(32).toString('hex');
    await provisionByHand(A, jwt4, '/run/krypton-secrets/jwt-v3.hex');
    expect((await sshCompose(info, A, 'restart el cl')).code).toBe(0);
    await waitForCrc(A, engineJwtCrc32(jwt4));
    await waitForRunning(A);
    expect(await containerFileSha256(A, 'el', '/jwt/jwt.hex')).toBe(sha256(jwt4));
  }, 240_000);
});

describe('docker runtime, directory JWT mount', () => {
  let info: SandboxInfo;
  const jwt1 = randomBytes(32).toString('hex');
  const jwt2 = randomBytes(32).toString('hex');

  beforeAll(async () => {
    info = await sandboxUp({ hosts: 1, runtime: 'docker', jwtMount: 'dir' });
  }, 30 * 60_000);

  it('mounts /run/krypton-secrets as /jwt: a renamed file is seen at once, geth takes it at its next start', async () => {
    expect(readFileSync(`${info.hosts[A]!.binds['/opt/krypton']}/docker-compose.yml`, 'utf8')).toContain('- /run/krypton-secrets:/jwt:ro');
    await provisionByHand(A, jwt1);
    expect((await sshCompose(info, A, 'up -d el cl')).code).toBe(0);
    await waitForCrc(A, engineJwtCrc32(jwt1));
    await waitForRunning(A);
    await replaceByRename(A, jwt2);
    await waitFor('the containers to see the new file', async () => (await containerFileSha256(A, 'el', '/jwt/jwt.hex')) === sha256(jwt2), SLOW);
    expect(await containerFileSha256(A, 'cl', '/jwt/jwt.hex')).toBe(sha256(jwt2));
    expect((await engineCall(A, hs256(jwt1))).status).toBe(200); // geth read the file at start only
    expect((await sshCompose(info, A, 'restart el cl')).code).toBe(0);
    await waitForCrc(A, engineJwtCrc32(jwt2));
    await waitFor('geth to answer 200 to the new value', async () => ((await engineCall(A, hs256(jwt2))).status === 200 ? true : undefined), SLOW);
  }, 240_000);
});

describe('docker runtime, --plaintext-jwt (the old way), then teardown', () => {
  let info: SandboxInfo;

  beforeAll(async () => {
    info = await sandboxUp({ hosts: 1, runtime: 'docker', plaintextJwt: true });
  }, 30 * 60_000);

  it('starts el/cl with compose at sandbox-up on a 0644 /opt/krypton/jwt.hex', async () => {
    const hex = readFileSync(`${info.hosts[A]!.binds['/opt/krypton']}/jwt.hex`, 'utf8');
    expect((await hostExec(A, ['stat', '-c', '%a', '/opt/krypton/jwt.hex'])).stdout.trim()).toBe('644');
    expect((await hostExec(A, ['grep', '-x', 'JWT_PATH=/opt/krypton/jwt.hex', '/opt/krypton/.env'])).code).toBe(0);
    expect(await gethLoadedJwtCrc32(A)).toEqual({ path: '/jwt/jwt.hex', crc32: engineJwtCrc32(hex) });
    await waitForRunning(A);
    expect((await engineCall(A, hs256(hex))).status).toBe(200);
  }, 120_000);

  it('sandboxDown removes the containers, dockerd, its cgroups and data root', async () => {
    const h = info.hosts[A]!;
    const pids = [h.holderPid, h.sshdPid!, h.dockerdPid!];
    await sandboxDown();
    for (const p of pids) expect(existsSync(`/proc/${p}`), `pid ${p}`).toBe(false);
    expect((await run('ip', ['netns', 'list'])).stdout.split('\n').filter((l) => l.startsWith(NETNS_PREFIX))).toEqual([]);
    expect((await run('ip', ['link', 'show', BRIDGE])).code).not.toBe(0);
    expect(existsSync(info.dir)).toBe(false);
    const cg = cgroupParentOf(h.netns).slice(1);
    for (const hier of readdirSync('/sys/fs/cgroup')) expect(existsSync(`/sys/fs/cgroup/${hier}/${cg}`), `${hier}/${cg}`).toBe(false);
    const ours = `--cgroup-parent\0/krypton-${h.netns}\0`;
    const dockerds = readdirSync('/proc').filter((p) => /^\d+$/.test(p) && (() => { try { return readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(ours); } catch { return false; } })());
    expect(dockerds).toEqual([]);
  }, 120_000);
});
