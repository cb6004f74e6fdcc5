/**
 * verify's audit of one host, pure (src/verify/checks.ts `hostChecks`): facts in, rows out — the same checks for
 * every host secret of a node (the JWT, env-secrets) and for each tmpfs dir of a node or cosigner; the agent rows
 * only where the store delivers through an agent. No row ever carries a value.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { Secret, sha256Hex } from '../../src/core/secret.ts';
import { parseInventory } from '../../src/inventory/loader.ts';
import type { Host, Inventory } from '../../src/model/inventory.ts';
import { renderEnvFile } from '../../src/model/formats.ts';
import { tmpfsDirs } from '../../src/model/layout.ts';
import type { Delivery } from '../../src/model/store.ts';
import { checkPrefix, hostChecks, type HostAuditFacts } from '../../src/verify/checks.ts';

const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), 'fixtures');
const load = (name: string): Inventory => parseInventory(join(FIXTURES, name), readFileSync(join(FIXTURES, name), 'utf8'));

const inv = parseInventory('inv.yml', 'network: "473374"\nvault: { address: "http://127.0.0.1:8200" }\nnodes:\n  val-1: { role: validator, address: 10.0.0.1 }\n');
const node = inv.nodes[0]!;
const value = new Secret('ab'.repeat(32));
const TMPFS = { fsType: 'tmpfs', options: ['rw', 'size=1024k', 'mode=700', 'noswap'], sizeBytes: 1 << 20, mode: '0700' };
const jwtFile = (s: Secret = value) => ({ exists: true, mode: '0600', owner: 'root', group: 'root', sizeBytes: 64, mtime: 101, sha256: s.fingerprint(), isHex64: true });

function good(): HostAuditFacts {
  return {
    mounts: [{ ...TMPFS }],
    kernel: { release: '6.8.0', supportsNoswap: true, swapActive: true },
    agent: { running: true, pid: 42, startedAt: 100, tokenSink: true, secretIdFile: false, leftoverTempFiles: 0, configMtime: 90 },
    files: { 'engine-jwt': jwtFile() },
    stored: { 'engine-jwt': { version: 3, fingerprint: value.fingerprint(), source: 'secret/krypton/473374/engine-jwt' } },
    copies: [],
    legacyGit: { tracked: false, historyCommits: 0 },
    legacy: { exists: false },
    jwtPath: { fileExists: true, values: ['/run/krypton-secrets/jwt.hex'] },
    probe: { outcome: 'accepted', httpStatus: 200, detail: 'ok' },
    token: { renewable: true, ttlSeconds: 3000, policies: ['default', 'krypton-node-473374-val-1'] },
    capabilities: { ownPaths: ['secret/data/krypton/473374/engine-jwt'], own: { 'secret/data/krypton/473374/engine-jwt': ['read'] }, others: { 'secret/metadata/x': ['deny'] } },
  };
}

const checks = (f: HostAuditFacts, i: Inventory = inv, h: Host = node, delivery: Delivery = 'agent') => hostChecks(i, h, delivery, tmpfsDirs(i, h), f);
const failed = (f: HostAuditFacts, i: Inventory = inv, h: Host = node, delivery: Delivery = 'agent') => checks(f, i, h, delivery).filter((r) => !r.ok).map((r) => r.check);

describe('verify checks (pure)', () => {
  it('a good node passes every check, and no row carries the value', () => {
    const rows = checks(good());
    expect(rows.map((r) => r.check)).toEqual(['tmpfs', 'jwt.file', 'jwt.backend', 'jwt.copies', 'jwt.path', 'engine.auth', 'agent', 'secret_id', 'vault.policy']);
    expect(rows.every((r) => r.ok)).toBe(true);
    expect(rows.every((r) => r.host === 'val-1' && r.detail.trim() !== '')).toBe(true);
    expect(JSON.stringify(rows)).not.toContain(value.revealText());
  });

  it('names each failure', () => {
    const f = good();
    f.copies = [{ fingerprint: value.fingerprint(), where: '/opt/krypton/backup.txt' }, { fingerprint: 'f'.repeat(64), where: '/opt/krypton/other' }];
    const copy = checks(f).find((r) => r.check === 'jwt.copies')!;
    expect(copy.ok).toBe(false);
    expect(copy.detail).toContain('/opt/krypton/backup.txt');
    expect(copy.detail).not.toContain('/opt/krypton/other');

    const mode = good();
    mode.files['engine-jwt']!.mode = '0644';
    expect(failed(mode)).toEqual(['jwt.file']);

    const notHex = good();
    notHex.files['engine-jwt']!.isHex64 = false;
    expect(failed(notHex)).toEqual(['jwt.file']);

    const swap = good();
    swap.mounts[0]!.options = ['rw'];
    expect(failed(swap)).toEqual(['tmpfs']);
    swap.kernel.swapActive = false;
    expect(failed(swap)).toEqual([]);

    const wideMount = good();
    wideMount.mounts[0]!.mode = '0755';
    expect(failed(wideMount)).toEqual(['tmpfs']);

    const stale = good();
    stale.stored['engine-jwt'] = { version: 4, fingerprint: sha256Hex('cd'.repeat(32)), source: 's' };
    expect(failed(stale)).toEqual(['jwt.backend']);

    const unseeded = good();
    unseeded.stored['engine-jwt'] = undefined;
    expect(failed(unseeded)).toEqual(['jwt.backend']);
    expect(checks(unseeded).map((r) => r.check)).not.toContain('jwt.copies'); // nothing to look for

    const wide = good();
    wide.capabilities = { ownPaths: ['p'], own: { p: ['read', 'list'] }, others: {} };
    expect(failed(wide)).toEqual(['vault.policy']);
    wide.capabilities = { ownPaths: ['p'], own: { p: ['read'] }, others: { 'secret/data/krypton/473374/horcrux/any/shard': ['read'] } };
    expect(failed(wide)).toEqual(['vault.policy']);
    wide.capabilities = { error: 'permission denied' };
    expect(checks(wide).find((r) => r.check === 'vault.policy')).toMatchObject({ ok: false, detail: 'could not check the policy: permission denied' });

    const leftover = good();
    leftover.agent.secretIdFile = true;
    expect(failed(leftover)).toEqual(['secret_id']);
    const interrupted = good();
    interrupted.agent.leftoverTempFiles = 2;
    expect(failed(interrupted)).toEqual(['secret_id']);

    const plaintext = good();
    plaintext.legacy = { exists: true, mode: '0644' };
    plaintext.jwtPath = { fileExists: true, values: ['/opt/krypton/jwt.hex'] };
    expect(failed(plaintext)).toEqual(['jwt.path', 'jwt.legacy']);

    const tracked = good();
    tracked.legacyGit = { repo: '/opt/krypton', tracked: true, historyCommits: 2 };
    expect(failed(tracked)).toEqual(['jwt.git']);

    const rejected = good();
    rejected.probe = { outcome: 'rejected', httpStatus: 401, detail: 'HTTP 401: the Engine API refused the token signed with the expected JWT' };
    expect(checks(rejected).find((r) => r.check === 'engine.auth')).toMatchObject({ ok: false, detail: rejected.probe.detail });
  });

  it('after a reboot says the node must be re-provisioned', () => {
    const f = good();
    f.mounts = [undefined];
    f.agent = { running: false, tokenSink: false, secretIdFile: false, leftoverTempFiles: 0 };
    f.files = { 'engine-jwt': { exists: false } };
    f.token = undefined;
    f.probe = { outcome: 'unreachable', detail: 'nothing accepts connections on 127.0.0.1:8551' };
    const rows = checks(f);
    expect(rows.filter((r) => !r.ok).map((r) => r.check)).toEqual(['tmpfs', 'jwt.file', 'jwt.backend', 'engine.auth', 'agent']);
    for (const c of ['tmpfs', 'jwt.file', 'agent']) {
      expect(rows.find((r) => r.check === c)!.detail, c).toMatch(/re-provision it: krypton-secrets apply playbooks\/provision.yml -i .*inv\.yml --limit val-1$/);
    }
  });

  it('a renewable token is required in daemon mode; oneshot wants no token on the host', () => {
    const f = good();
    f.token = { renewable: false, ttlSeconds: 20, policies: [] };
    expect(failed(f)).toEqual(['agent']);
    const oneshot = parseInventory('i.yml', 'network: "473374"\nvault: { agent_mode: oneshot }\nnodes:\n  val-1: { role: validator }\n');
    const o = good();
    o.agent.running = false;
    expect(failed(o, oneshot, oneshot.nodes[0]!)).toEqual(['agent']);
    o.agent.tokenSink = false;
    expect(checks(o, oneshot, oneshot.nodes[0]!).every((r) => r.ok)).toBe(true);
  });

  it('with a store whose hosts fetch themselves (KMS, Secrets Manager) there are no agent rows', () => {
    const kms = load('kms.yml');
    const f = good();
    delete f.token;
    delete f.capabilities;
    f.agent = { running: false, tokenSink: false, secretIdFile: false, leftoverTempFiles: 0 };
    const rows = checks(f, kms, kms.nodes[0]!, 'host-fetch');
    expect(rows.map((r) => r.check)).toEqual(['tmpfs', 'jwt.file', 'jwt.backend', 'jwt.copies', 'jwt.path', 'engine.auth']);
    expect(rows.every((r) => r.ok)).toBe(true);
  });
});

describe('verify checks for node env-secrets', () => {
  const env = load('env.yml');
  const val1 = env.nodes.find((n) => n.name === 'val-1')!;
  const val2 = env.nodes.find((n) => n.name === 'val-2')!;
  const vars = { API_KEY: 'k-0123456789abcdef', SHORT: 'abc', RPC_PASSWORD: "it's-a-long-secret" };
  const envValue = renderEnvFile(vars, 'test');
  const envFile = () => ({ exists: true, mode: '0600', owner: 'root', group: 'root', sizeBytes: envValue.length, mtime: 101, sha256: envValue.fingerprint() });
  const withEnv = (): HostAuditFacts => {
    const f = good();
    f.files['node-env'] = envFile();
    f.stored['node-env'] = { version: 2, fingerprint: envValue.fingerprint(), source: 'secret/krypton/473374/env' };
    f.envCopies = [{ fingerprint: sha256Hex('krypton'), where: '/opt/krypton/.env' }];
    // what verify's laptop fact computes: the SHA-256 of each value of 8 characters or more
    f.envValueFingerprints = Object.values(vars).filter((v) => v.length >= 8).map((v) => sha256Hex(v));
    return f;
  };

  it('a good node: env.file, env.backend and env.copies pass, after the JWT rows; no row carries a value', () => {
    const rows = checks(withEnv(), env, val1);
    expect(rows.map((r) => r.check)).toEqual(['tmpfs', 'jwt.file', 'jwt.backend', 'env.file', 'env.backend', 'jwt.copies', 'env.copies', 'jwt.path', 'engine.auth', 'agent', 'secret_id', 'vault.policy']);
    expect(rows.filter((r) => !r.ok)).toEqual([]);
    expect(rows.find((r) => r.check === 'env.file')!.detail).toBe('/run/krypton-secrets/node.env: mode 0600, owner root');
    expect(rows.find((r) => r.check === 'env.backend')!.detail).toMatch(/^\/run\/krypton-secrets\/node.env equals secret\/krypton\/473374\/env v2 \(sha256:[0-9a-f]{12}\)$/);
    const text = JSON.stringify(rows);
    for (const v of [...Object.values(vars), envValue.revealText()]) expect(text).not.toContain(v);
  });

  it('a copy of the env file planted in the deploy dir fails env.copies, naming the path', () => {
    const f = withEnv();
    f.envCopies!.push({ fingerprint: envValue.fingerprint(), where: '/opt/krypton/node.env.bak' });
    const row = checks(f, env, val1).find((r) => r.check === 'env.copies')!;
    expect(row).toMatchObject({ host: 'val-1', ok: false });
    expect(row.detail).toBe('a copy of the env-secrets (the file or one of its values) is on persistent disk in /opt/krypton/node.env.bak: shred it, and change the values it exposed');
  });

  it('one value copied into another file fails too; a short value (under 8 characters) is not matched by chance', () => {
    const f = withEnv();
    f.envCopies!.push({ fingerprint: sha256Hex("it's-a-long-secret"), where: '/opt/krypton/docker-compose.override.yml' });
    f.envCopies!.push({ fingerprint: sha256Hex('abc'), where: '/opt/krypton/README' });
    const row = checks(f, env, val1).find((r) => r.check === 'env.copies')!;
    expect(row.ok).toBe(false);
    expect(row.detail).toContain('/opt/krypton/docker-compose.override.yml');
    expect(row.detail).not.toContain('/opt/krypton/README');
  });

  it('env file missing, wrong mode, wrong owner, or other than the store', () => {
    const missing = withEnv();
    missing.files['node-env'] = { exists: false };
    expect(failed(missing, env, val1)).toEqual(['env.file', 'env.backend']);
    const mode = withEnv();
    mode.files['node-env']!.mode = '0644';
    expect(failed(mode, env, val1)).toEqual(['env.file']);
    const differs = withEnv();
    differs.stored['node-env'] = { version: 3, fingerprint: 'e'.repeat(64), source: 'secret/krypton/473374/env' };
    expect(checks(differs, env, val1).find((r) => r.check === 'env.backend')!.detail).toMatch(/^\/run\/krypton-secrets\/node.env \(sha256:[0-9a-f]{12}\) differs from secret\/krypton\/473374\/env v3 \(sha256:eeeeeeeeeeee\)$/);
    // val-2 wants its own el.env 0640 krypton:krypton
    const owner = withEnv();
    owner.files['node-env'] = { ...envFile(), mode: '0640', owner: 'root' };
    expect(checks(owner, env, val2).find((r) => r.check === 'env.file')!.detail).toBe('/run/krypton-secrets/el.env is owned by root, expected krypton');
    const notImported = withEnv();
    notImported.stored['node-env'] = undefined;
    expect(checks(notImported, env, val1).find((r) => r.check === 'env.backend')).toMatchObject({ ok: false, detail: 'the store holds nothing for /run/krypton-secrets/node.env' });
  });

  it('a node without env-secrets has no env rows', () => {
    const rpc = env.nodes.find((n) => n.name === 'rpc-1')!;
    expect(checks(good(), env, rpc).map((r) => r.check).filter((c) => c.startsWith('env.'))).toEqual([]);
  });

  it('check ids per host secret: jwt (as before), env, ecies, shard', () => {
    expect(['engine-jwt', 'node-env', 'ecies', 'shard'].map((name) => checkPrefix({ name }))).toEqual(['jwt', 'env', 'ecies', 'shard']);
  });
});

describe('verify checks for a cosigner', () => {
  const hx = load('cosigners.yml');
  const c3 = hx.cosigners.find((c) => c.name === 'cosigner-3')!;
  const cosigner = (): HostAuditFacts => ({
    mounts: [{ ...TMPFS }, { ...TMPFS }],
    kernel: { release: '6.8.0', supportsNoswap: true, swapActive: false },
    agent: { running: true, pid: 42, startedAt: 100, tokenSink: true, secretIdFile: false, leftoverTempFiles: 0, configMtime: 90 },
    files: {},
    stored: {},
    token: { renewable: true, ttlSeconds: 3000, policies: ['krypton-cosigner-473374-cosigner-3'] },
    capabilities: { ownPaths: ['a', 'b'], own: { a: ['read'], b: ['read'] }, others: {} },
  });

  it('each tmpfs dir has its own row (tmpfs, tmpfs.key_dir); the key files are judged by horcrux.verify-keys, not here', () => {
    const rows = checks(cosigner(), hx, c3);
    expect(rows.map((r) => r.check)).toEqual(['tmpfs', 'tmpfs.key_dir', 'agent', 'secret_id', 'vault.policy']);
    expect(rows.every((r) => r.ok)).toBe(true);
  });

  it('a key dir that is not mounted fails with the cosigner playbook to re-provision with', () => {
    const f = cosigner();
    f.mounts = [{ ...TMPFS }, undefined];
    const row = checks(f, hx, c3).find((r) => r.check === 'tmpfs.key_dir')!;
    expect(row.ok).toBe(false);
    expect(row.detail).toMatch(/^\/var\/lib\/horcrux-keys is not mounted \(a reboot wipes it\): re-provision it: krypton-secrets apply playbooks\/cosigner-bringup.yml -i .*cosigners\.yml --limit cosigner-3$/);
    f.mounts = [{ ...TMPFS }, { fsType: 'ext4', options: ['rw'] }];
    expect(checks(f, hx, c3).find((r) => r.check === 'tmpfs.key_dir')!.detail).toBe('/var/lib/horcrux-keys is ext4, not tmpfs: secrets would be on persistent disk');
  });
});
