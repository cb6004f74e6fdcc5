/**
 * The tool on real compose hosts (issue 9): `sandboxUp({runtime: 'docker'})` gives each node its own dockerd,
 * the real geth v1.17.10 as `el` and the CL stand-in as `cl` under the real `docker compose` (v5) in /opt/krypton,
 * the JWT bind-mounted as one file (`${JWT_PATH}:/jwt/jwt.hex:ro`). Through the real CLI: provision creates the
 * containers (recreate), a second apply changes nothing, rotate-jwt restarts them (same containers) one validator
 * at a time and geth logs the new value's crc32, verify reads what each container really holds and fails naming
 * the host and check when a container still holds the old value, the restart is refused while jwt.hex is missing
 * or unreadable by the container's user, rollback-jwt, migrate-plaintext (which needs the recreate), and the same
 * provision + rotation on backend kms.
 *
 * Waits are condition polls with generous bounds (CI has run at load 12-28 on 2 cores); one sandbox per describe.
 * Names and addresses come from the sandbox (KRYPTON_SANDBOX_SLOT picks the slot).
 */
import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadInventory } from '../../src/inventory/loader.ts';
import { openStore } from '../../src/backends/index.ts';
import { refFor } from '../../src/model/layout.ts';
import {
  composePs,
  containerStarts,
  dockerEvents,
  engineJwtCrc32,
  gethLoadedJwtCrc32,
  hostExec,
  sandboxDown,
  sandboxUp,
  type SandboxInfo,
} from '../sandbox/index.ts';
import { waitFor } from '../sandbox/proc.ts';
import { cli, engineStatusOnHost, sha256, vaultJwt, type CliResult } from './helpers.ts';

process.env['AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED'] ??= 'true';

/** Every wait returns as soon as its condition holds; the bound is for a loaded 2-core CI machine. */
const SLOW = { timeoutMs: 180_000, intervalMs: 500 };
const JWT_FILE = '/run/krypton-secrets/jwt.hex';

/** The store's current Engine-API JWT of `host`, read through the tool's own store (in memory only). */
async function storedJwt(info: SandboxInfo, host = info.nodes[0]!): Promise<{ hex: string; version: number }> {
  const saved = { ...process.env };
  Object.assign(process.env, info.env); // the AWS SDK's default chain reads process.env, as the CLI's does
  try {
    const inv = await loadInventory(info.files.inventory, process.env);
    const store = await openStore(inv, process.env);
    const v = await store.current(refFor(inv, 'engine-jwt', host));
    if (!v) throw new Error('the store holds no Engine-API JWT');
    return { hex: v.secret.revealText(), version: v.version };
  } finally {
    for (const k of Object.keys(info.env)) if (saved[k] === undefined) delete process.env[k];
    Object.assign(process.env, saved);
  }
}

/** A new KV v2 version of the network's JWT written by hand (as another operator or a script would). */
async function vaultPutJwt(info: SandboxInfo, hex: string): Promise<void> {
  const res = await fetch(`${info.vault.address}/v1/secret/data/krypton/${info.network}/engine-jwt`, {
    method: 'POST',
    headers: { 'X-Vault-Token': info.vault.token, 'content-type': 'application/json' },
    body: JSON.stringify({ data: { hex } }),
  });
  expect(res.status).toBe(200);
}

const checksOf = (r: CliResult) => r.events.filter((e) => e['type'] === 'check') as { host: string; check: string; ok: boolean; detail: string }[];
const failedChecks = (r: CliResult) => checksOf(r).filter((c) => !c.ok).map((c) => `${c.host} ${c.check}`);

/** el and cl both running, as `docker compose ps` in the deploy dir lists them. */
const bothRunning = (host: string) =>
  waitFor(`el and cl running on ${host}`, async () => {
    const ps = await composePs(host);
    return ['el', 'cl'].every((s) => ps.some((r) => r.service === s && r.state === 'running')) ? ps : undefined;
  }, SLOW);

/** geth's last `Loaded JWT secret file` crc32 on `host` becomes `crc`. */
const gethLoads = (host: string, crc: string) => waitFor(`geth on ${host} to log crc32=${crc}`, async () => (await gethLoadedJwtCrc32(host))?.crc32 === crc, SLOW);

/** CL witness lines at or after `sinceMs`: [unix ms, status]. */
async function clWitness(host: string, sinceMs: number): Promise<[number, string][]> {
  const text = (await hostExec(host, ['cat', '/var/log/krypton/cl.log'])).stdout;
  return text
    .split('\n')
    .map((l) => /^(\d+)(?:\.(\d{1,3}))? (\d{3})$/.exec(l.trim()))
    .filter((m): m is RegExpExecArray => !!m)
    .map((m): [number, string] => [Number(m[1]) * 1000 + Number((m[2] ?? '0').padEnd(3, '0')), m[3]!])
    .filter(([t]) => t >= sinceMs);
}

/**
 * A node's restart window during a run that started at `sinceMs`: from dockerd's first kill/die/stop of el or cl
 * to the later of the two containers' start lines (containers.log) after it. Also the start lines themselves.
 */
async function restartWindow(host: string, sinceMs: number) {
  const events = (await dockerEvents(host, sinceMs)).filter((e) => ['kill', 'die', 'stop'].includes(e.action));
  expect(events.length, `${host}: dockerd saw el/cl stop`).toBeGreaterThan(0);
  const from = Math.min(...events.map((e) => e.atMs));
  const starts = (await containerStarts(host)).filter((s) => s.atMs >= from);
  const first = (svc: string) => starts.find((s) => s.service === svc);
  expect(first('el'), `${host}: el started again`).toBeDefined();
  expect(first('cl'), `${host}: cl started again`).toBeDefined();
  return { host, from, to: Math.max(first('el')!.atMs, first('cl')!.atMs), starts };
}

/** On every node: el and cl run, geth loaded `hex` (crc32), and 127.0.0.1:8551 answers 200 to it and 401 to another value. */
async function expectNodesOn(info: SandboxInfo, hex: string): Promise<void> {
  for (const n of info.nodes) {
    const ps = await bothRunning(n);
    expect(ps.map((r) => r.service).sort(), n).toEqual(['cl', 'el']);
    await gethLoads(n, engineJwtCrc32(hex));
    expect(await gethLoadedJwtCrc32(n), n).toEqual({ path: '/jwt/jwt.hex', crc32: engineJwtCrc32(hex) });
    expect(await engineStatusOnHost(n, hex), `${n}: the stored value`).toBe(200);
    expect(await engineStatusOnHost(n, randomBytes(32).toString('hex')), `${n}: another value`).toBe(401);
  }
}

/**
 * rotate-jwt through the CLI, then: a new store version, geth's latest crc32 on every node is the new one's, each
 * node restarted (not recreated: same container ids) once, the CL saw no 401 after its node's restart, and no two
 * validators' restart windows overlap.
 */
async function rotateAndCheck(info: SandboxInfo, playbook = 'playbooks/rotate-jwt.yml'): Promise<{ hex: string; version: number }> {
  const before = await storedJwt(info);
  const ids = Object.fromEntries(await Promise.all(info.nodes.map(async (n) => [n, Object.fromEntries((await composePs(n)).map((r) => [r.service, r.id.slice(0, 12)]))] as const)));
  const t0 = Date.now();
  const r = await cli(info, ['apply', playbook, '-i', info.files.inventory, '--json']);
  expect(r.code, r.stdout + r.stderr).toBe(0);
  const after = await storedJwt(info);
  expect(after.version).toBeGreaterThan(before.version);
  expect(after.hex).not.toBe(before.hex);
  expect(r.stdout + r.stderr).not.toContain(after.hex);
  expect(r.stdout + r.stderr).not.toContain(before.hex);
  const restarts = r.events.filter((e) => e['type'] === 'step' && e['task'] === 'node.restart-lockstep' && e['status'] === 'changed');
  expect(restarts.length, 'every node restarted').toBe(info.nodes.length);
  expect(restarts.map((e) => String((e['actions'] as string[])[0])).every((a) => a.startsWith('restart el and cl together (`docker compose restart el cl`)'))).toBe(true);
  await expectNodesOn(info, after.hex);
  const windows = [];
  for (const n of info.nodes) {
    const w = await restartWindow(n, t0);
    // a restart keeps the containers (the file's content changed, nothing compose reads at create)
    expect(w.starts.map((s) => s.containerId).sort(), n).toEqual([ids[n]!['cl'], ids[n]!['el']].sort());
    await waitFor(`a CL 200 on ${n} after its restart`, async () => (await clWitness(n, w.to)).some(([, s]) => s === '200'), SLOW);
    expect((await clWitness(n, w.to)).filter(([, s]) => s === '401'), `${n}: CL auth failures after the restart`).toEqual([]);
    windows.push(w);
  }
  for (let i = 0; i < windows.length; i++)
    for (let j = i + 1; j < windows.length; j++) {
      const [a, b] = [windows[i]!, windows[j]!];
      expect(a.from < b.to && b.from < a.to, `${a.host} [${a.from}, ${a.to}] overlaps ${b.host} [${b.from}, ${b.to}]`).toBe(false);
    }
  return after;
}

/** Provision through the CLI on a fresh docker fleet: exit 0, containers created (recreate), the stored value everywhere. */
async function provisionAndCheck(info: SandboxInfo): Promise<{ hex: string; version: number }> {
  const r = await cli(info, ['apply', 'playbooks/provision.yml', '-i', info.files.inventory, '--json']);
  expect(r.code, r.stdout + r.stderr).toBe(0);
  const restarts = r.events.filter((e) => e['type'] === 'step' && e['task'] === 'node.restart-lockstep');
  expect(restarts.map((e) => e['status'])).toEqual(info.nodes.map(() => 'changed'));
  for (const e of restarts) expect(String((e['actions'] as string[])[0])).toMatch(/^recreate el and cl together \(`docker compose up -d --no-deps --force-recreate el cl`\)/);
  const jwt = await storedJwt(info);
  expect(r.stdout + r.stderr).not.toContain(jwt.hex);
  await expectNodesOn(info, jwt.hex);
  return jwt;
}

describe('docker runtime, Vault: provision, rotation, verify, refusals, rollback (2 validators, single-file JWT mount)', () => {
  let info: SandboxInfo;

  beforeAll(async () => {
    info = await sandboxUp({ hosts: 2, runtime: 'docker' });
  }, 30 * 60_000); // a fresh machine builds geth and compose here when .ci/install-deps.sh has not

  afterAll(async () => {
    await sandboxDown();
  }, 120_000);

  it('provision exits 0: compose lists el and cl running, el is the real geth on the value in Vault (crc32, 200/401)', async () => {
    const jwt = await provisionAndCheck(info);
    expect(jwt).toEqual(await vaultJwt(info));
    for (const n of info.nodes) {
      const v = await hostExec(n, ['sh', '-c', 'cd /opt/krypton && docker compose exec -T el /usr/local/bin/geth version']);
      expect(v.stdout, n).toMatch(/^Version: 1\.17\.10-stable$/m);
      expect(sha256((await hostExec(n, ['cat', JWT_FILE])).stdout), n).toBe(sha256(jwt.hex));
    }
  }, 300_000);

  it('a second provision changes nothing, and says the single-file mount needs a restart for each new value', async () => {
    const r = await cli(info, ['apply', 'playbooks/provision.yml', '-i', info.files.inventory, '--json']);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.summary?.changed).toBe(0);
    const restart = r.events.filter((e) => e['type'] === 'step' && e['task'] === 'node.restart-lockstep');
    for (const e of restart) expect(String(e['reason'])).toMatch(/single-file bind mount \(\/run\/krypton-secrets\/jwt\.hex -> \/jwt\/jwt\.hex\): each new value needs a restart/);
  }, 180_000);

  it('verify passes, with what each container holds and what geth loaded', async () => {
    const r = await cli(info, ['verify', '-i', info.files.inventory, '--json']);
    expect(r.code, r.stdout).toBe(0);
    const jwt = await storedJwt(info);
    for (const n of info.nodes) {
      const rows = Object.fromEntries(checksOf(r).filter((c) => c.host === n).map((c) => [c.check, c]));
      for (const check of ['el.holds', 'cl.holds', 'el.loaded', 'engine.auth', 'jwt.backend']) expect(rows[check]?.ok, `${n} ${check}: ${rows[check]?.detail}`).toBe(true);
      expect(rows['el.holds']!.detail).toMatch(/single-file bind mount of \/run\/krypton-secrets\/jwt\.hex: each new value needs a restart/);
      expect(rows['el.loaded']!.detail).toBe(`el loaded the current JWT (crc32 ${engineJwtCrc32(jwt.hex)}, secret/krypton/${info.network}/engine-jwt v${jwt.version}); single-file bind mount: each new value needs a restart`);
    }
    expect(r.stdout).not.toContain(jwt.hex);
  }, 180_000);

  it('rotate-jwt: every geth on the new crc32, restarted (same containers) one validator at a time, no CL 401 after', async () => {
    await rotateAndCheck(info);
  }, 300_000);

  it('verify fails, naming host and check, while a container still holds the old value; provision puts it right', async () => {
    const old = await storedJwt(info);
    const hex = randomBytes(32).toString('hex');
    // A new version appears in Vault and lands in val-1's file by rename, as the agent's re-render would: the
    // single-file bind mount keeps the old file in both containers, and geth runs on the old value.
    await vaultPutJwt(info, hex);
    const a = info.nodes[0]!;
    const w = await hostExec(a, ['sh', '-c', 'umask 077 && cat > "$F.new" && mv -f "$F.new" "$F"'], { input: hex, env: { F: JWT_FILE } });
    expect(w.code, w.stderr).toBe(0);
    const r = await cli(info, ['verify', '-i', info.files.inventory, '--json']);
    expect(r.code).toBe(1);
    const failed = failedChecks(r);
    for (const check of ['el.holds', 'cl.holds', 'el.loaded', 'engine.auth']) expect(failed, check).toContain(`${a} ${check}`);
    expect(failed).not.toContain(`${a} jwt.backend`); // the file itself is current
    const holds = checksOf(r).find((c) => c.host === a && c.check === 'el.holds')!;
    expect(holds.detail).toMatch(/^el \(container [0-9a-f]{12}\) holds another JWT \(sha256:[0-9a-f]{12}\) at \/jwt\/jwt\.hex than secret\/krypton\/\d+\/engine-jwt v\d+ .*single-file bind mount of \/run\/krypton-secrets\/jwt\.hex keeps the file the container started with/);
    expect(holds.detail).toContain(`sha256:${sha256(old.hex).slice(0, 12)}`);
    const loaded = checksOf(r).find((c) => c.host === a && c.check === 'el.loaded')!;
    expect(loaded.detail).toContain(`el loaded another JWT (crc32 ${engineJwtCrc32(old.hex)})`);
    expect(r.stdout).not.toContain(hex);
    expect(r.stdout).not.toContain(old.hex);

    const fix = await cli(info, ['apply', 'playbooks/provision.yml', '-i', info.files.inventory, '--json']);
    expect(fix.code, fix.stdout + fix.stderr).toBe(0);
    await expectNodesOn(info, hex);
    const again = await cli(info, ['verify', '-i', info.files.inventory, '--json']);
    expect(failedChecks(again)).toEqual([]);
  }, 300_000);

  it('refuses to (re)start el while jwt.hex is missing: the host fails with E_PLAN_CONFLICT, nothing restarts', async () => {
    const a = info.nodes[0]!;
    const current = await storedJwt(info);
    const restartOnly = join(info.dir, 'restart-only.yml');
    await writeFile(restartOnly, '- name: restart only\n  hosts: nodes\n  max_validators_down: 1\n  tasks:\n    - node.restart-lockstep\n');
    expect((await hostExec(a, ['agentctl', 'stop'])).code).toBe(0);
    expect((await hostExec(a, ['rm', '-f', JWT_FILE])).code).toBe(0);
    await vaultPutJwt(info, randomBytes(32).toString('hex')); // the Engine API now rejects the stored value: a restart is due
    const ids = (await composePs(a)).map((r) => r.id).sort();
    const t0 = Date.now();
    const r = await cli(info, ['apply', restartOnly, '-i', info.files.inventory, '--json', '--limit', a]);
    expect(r.code).toBe(1);
    const h = r.summary?.hosts[a];
    expect(h?.status).toBe('failed');
    expect(h?.error?.code).toBe('E_PLAN_CONFLICT');
    expect(h?.error?.message).toMatch(/\/run\/krypton-secrets\/jwt\.hex is missing: refusing to \(re\)start el .*geth would make its own secret/);
    // no restart, no loop: the same containers, no stop/start since, geth still on the value it had
    expect((await composePs(a)).map((x) => x.id).sort()).toEqual(ids);
    expect((await dockerEvents(a, t0)).filter((e) => ['kill', 'die', 'stop', 'start', 'restart'].includes(e.action))).toEqual([]);
    expect((await containerStarts(a)).filter((s) => s.atMs >= t0)).toEqual([]);
    expect((await gethLoadedJwtCrc32(a))?.crc32).toBe(engineJwtCrc32(current.hex));

    const fix = await cli(info, ['apply', 'playbooks/provision.yml', '-i', info.files.inventory, '--json']);
    expect(fix.code, fix.stdout + fix.stderr).toBe(0);
    await expectNodesOn(info, (await storedJwt(info)).hex);
  }, 300_000);

  it("refuses to recreate cl as a user that cannot read the 0600 root file (compose user:), naming jwt.owner in the hint", async () => {
    const b = info.nodes[1]!;
    const compose = join(info.hosts[b]!.binds['/opt/krypton']!, 'docker-compose.yml');
    const original = await readFile(compose, 'utf8');
    await writeFile(compose, original.replace(/^ {2}cl:\n/m, '  cl:\n    user: "1000:1000"\n'));
    try {
      const ids = (await composePs(b)).map((r) => r.id).sort();
      const r = await cli(info, ['apply', 'playbooks/provision.yml', '-i', info.files.inventory, '--json', '--limit', b]);
      expect(r.code).toBe(1);
      const e = r.summary?.hosts[b]?.error as { code: string; message: string; hint?: string } | undefined;
      expect(e?.code).toBe('E_PLAN_CONFLICT');
      expect(e?.message).toBe("cl's container would run as 1000:1000 (uid 1000, gid 1000), which cannot read /run/krypton-secrets/jwt.hex (uid 0, gid 0, mode 0600)");
      expect(e?.hint).toMatch(/set jwt\.owner to "1000"/);
      expect((await composePs(b)).map((x) => x.id).sort()).toEqual(ids);
    } finally {
      await writeFile(compose, original);
    }
    const again = await cli(info, ['apply', 'playbooks/provision.yml', '-i', info.files.inventory, '--json', '--limit', b]);
    expect(again.code, again.stdout).toBe(0);
    expect(again.summary?.changed).toBe(0);
  }, 300_000);

  it('rollback-jwt restores the previous value on every geth', async () => {
    const head = await vaultJwt(info);
    const previous = await (async () => {
      const res = await fetch(`${info.vault.address}/v1/secret/data/krypton/${info.network}/engine-jwt?version=${head.version - 1}`, { headers: { 'X-Vault-Token': info.vault.token } });
      return ((await res.json()) as { data: { data: { hex: string } } }).data.data.hex;
    })();
    const r = await cli(info, ['rollback-jwt', '-i', info.files.inventory, '--json']);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const now = await vaultJwt(info);
    expect(now.version).toBe(head.version + 1);
    expect(now.hex).toBe(previous);
    await expectNodesOn(info, previous);
  }, 300_000);
});

describe('docker runtime, --plaintext-jwt: migrate-plaintext recreates the containers onto the tmpfs file', () => {
  let info: SandboxInfo;
  const oldHex: Record<string, string> = {};

  beforeAll(async () => {
    info = await sandboxUp({ hosts: 2, runtime: 'docker', plaintextJwt: true });
    for (const n of info.nodes) oldHex[n] = (await hostExec(n, ['cat', '/opt/krypton/jwt.hex'])).stdout.trim();
  }, 30 * 60_000);

  afterAll(async () => {
    await sandboxDown();
  }, 120_000);

  it('moves each node to /run/krypton-secrets/jwt.hex (new containers, new mount source), shreds the old file; again: no change', async () => {
    const before = Object.fromEntries(await Promise.all(info.nodes.map(async (n) => [n, (await composePs(n)).map((r) => r.id).sort()] as const)));
    for (const n of info.nodes) expect(await engineStatusOnHost(n, oldHex[n]!), n).toBe(200);
    const r = await cli(info, ['apply', 'playbooks/migrate-plaintext.yml', '-i', info.files.inventory, '--json']);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const jwt = await vaultJwt(info);
    await expectNodesOn(info, jwt.hex);
    for (const n of info.nodes) {
      expect(jwt.hex).not.toBe(oldHex[n]);
      expect(await engineStatusOnHost(n, oldHex[n]!), n).toBe(401);
      expect((await hostExec(n, ['test', '-e', '/opt/krypton/jwt.hex'])).code, `${n}: plaintext gone`).not.toBe(0);
      const ps = (await composePs(n)).map((x) => x.id).sort();
      for (const id of ps) expect(before[n], `${n}: ${id} is a new container`).not.toContain(id);
      const src = await hostExec(n, ['sh', '-c', 'docker inspect --format \'{{range .Mounts}}{{if eq .Destination "/jwt/jwt.hex"}}{{.Source}}{{end}}{{end}}\' $(cd /opt/krypton && docker compose ps -q el cl)']);
      expect(src.stdout.trim().split('\n'), n).toEqual([JWT_FILE, JWT_FILE]);
    }
    const restarts = r.events.filter((e) => e['type'] === 'step' && e['task'] === 'node.restart-lockstep');
    for (const e of restarts) expect(String((e['actions'] as string[])[0])).toMatch(/^recreate el and cl together .*mount the JWT from \/opt\/krypton\/jwt\.hex, not \/run\/krypton-secrets\/jwt\.hex/);

    const again = await cli(info, ['apply', 'playbooks/migrate-plaintext.yml', '-i', info.files.inventory, '--json']);
    expect(again.code, again.stdout).toBe(0);
    expect(again.summary?.changed).toBe(0);
    const v = await cli(info, ['verify', '-i', info.files.inventory, '--json']);
    expect(failedChecks(v)).toEqual([]);
  }, 300_000);
});

describe('docker runtime, backend kms: provision and rotation', () => {
  let info: SandboxInfo;

  beforeAll(async () => {
    info = await sandboxUp({ hosts: 2, runtime: 'docker', backend: 'kms' });
  }, 30 * 60_000);

  afterAll(async () => {
    await sandboxDown();
  }, 120_000);

  it('provision exits 0 with every geth on the stored value; a second apply changes nothing; verify passes', async () => {
    await provisionAndCheck(info);
    const again = await cli(info, ['apply', 'playbooks/provision.yml', '-i', info.files.inventory, '--json']);
    expect(again.code, again.stdout).toBe(0);
    expect(again.summary?.changed).toBe(0);
    const v = await cli(info, ['verify', '-i', info.files.inventory, '--json']);
    expect(failedChecks(v)).toEqual([]);
    expect(checksOf(v).filter((c) => c.check === 'el.loaded').map((c) => c.ok)).toEqual(info.nodes.map(() => true));
  }, 300_000);

  it('rotate-jwt: every geth on the new crc32, one validator at a time, no CL 401 after its restart', async () => {
    await rotateAndCheck(info);
  }, 300_000);
});
