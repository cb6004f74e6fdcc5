/**
 * createVaultBackend through node-vault's own request/response handling, with only the HTTP layer replaced by a
 * recording fake (`fakeHttp`): request shapes (paths, headers, bodies) and response/error mapping.
 */
import { inspect } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { KryptonError } from '../../../src/core/errors.ts';
import { Secret } from '../../../src/core/secret.ts';
import { createVaultBackend, type VaultRawRequest, type VaultRawResponse } from '../../../src/backends/vault.ts';

const TOKEN = 'plain-root-token-0123456789abcdefXYZ';
const ADDR = 'http://vault.test:8200';

type Handler = (req: VaultRawRequest) => VaultRawResponse | Promise<VaultRawResponse>;

function setup(handler: Handler, extra: { namespace?: string } = {}) {
  const requests: VaultRawRequest[] = [];
  const backend = createVaultBackend(
    { address: ADDR, token: new Secret(TOKEN), ...extra, sources: { address: 'VAULT_ADDR', token: 'VAULT_TOKEN' } },
    {
      fakeHttp: async (req) => {
        requests.push(req);
        return handler(req);
      },
    },
  );
  return { backend, requests };
}

const ok = (body: unknown): VaultRawResponse => ({ statusCode: 200, body });
const status = (statusCode: number, body: unknown = { errors: [] }): VaultRawResponse => ({ statusCode, body });
const pathOf = (r: VaultRawRequest) => new URL(r.uri).pathname + new URL(r.uri).search;

async function rejection(p: Promise<unknown>): Promise<KryptonError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(KryptonError);
    return e as KryptonError;
  }
  throw new Error('expected a rejection');
}

function expectClean(err: KryptonError, ...secrets: string[]) {
  for (const s of [TOKEN, ...secrets]) {
    expect(err.message).not.toContain(s);
    expect(inspect(err, { depth: 10, showHidden: true })).not.toContain(s);
    expect(JSON.stringify(err)).not.toContain(s);
  }
}

describe('createVaultBackend (node-vault with a fake HTTP layer)', () => {
  const saved = { ns: process.env.VAULT_NAMESPACE, prefix: process.env.VAULT_PREFIX };
  beforeEach(() => {
    process.env.VAULT_NAMESPACE = 'from-env-must-be-ignored';
    process.env.VAULT_PREFIX = '/must-be-ignored';
  });
  afterEach(() => {
    if (saved.ns === undefined) delete process.env.VAULT_NAMESPACE;
    else process.env.VAULT_NAMESPACE = saved.ns;
    if (saved.prefix === undefined) delete process.env.VAULT_PREFIX;
    else process.env.VAULT_PREFIX = saved.prefix;
  });

  it('keeps the token out of util.inspect / JSON of the backend', () => {
    const { backend } = setup(() => ok({}));
    expect(inspect(backend, { depth: 10, showHidden: true })).not.toContain(TOKEN);
    expect(JSON.stringify(backend)).not.toContain(TOKEN);
  });

  it('sends the token and the namespace from settings only (node-vault env fallbacks pinned)', async () => {
    const { backend, requests } = setup(() => ok({ data: { policy: 'path "x" {}' } }), { namespace: 'team-a' });
    await backend.policyRead('p1');
    expect(requests[0]!.uri).toBe(`${ADDR}/v1/sys/policies/acl/p1`);
    expect(requests[0]!.headers['X-Vault-Token']).toBe(TOKEN);
    expect(requests[0]!.headers['X-Vault-Namespace']).toBe('team-a');
    const noNs = setup(() => ok({ data: { policy: '' } }));
    await noNs.backend.policyRead('p1');
    expect(noNs.requests[0]!.headers['X-Vault-Namespace']).toBeUndefined();
  });

  describe('kvRead', () => {
    it('GET <mount>/data/<path>[?version=], values as Secrets', async () => {
      const { backend, requests } = setup(() =>
        ok({ data: { data: { jwt: 'ab'.repeat(32), n: 7 }, metadata: { version: 3, destroyed: false, deletion_time: '' } } }),
      );
      const got = await backend.kvRead('secret', 'krypton/473374/engine-jwt', 3);
      expect(pathOf(requests[0]!)).toBe('/v1/secret/data/krypton/473374/engine-jwt?version=3');
      expect(requests[0]!.method).toBe('GET');
      expect(got?.version).toBe(3);
      expect(got?.data.jwt).toBeInstanceOf(Secret);
      expect(got?.data.jwt?.revealText()).toBe('ab'.repeat(32));
      expect(got?.data.n?.revealText()).toBe('7');
      expect(inspect(got)).not.toContain('ab'.repeat(32));
    });

    it('undefined on 404 (absent) and for a deleted or destroyed version', async () => {
      expect(await setup(() => status(404)).backend.kvRead('secret', 'x')).toBeUndefined();
      const deleted = { data: { data: null, metadata: { version: 2, deletion_time: '2020-01-01T00:00:00Z', destroyed: false } } };
      expect(await setup(() => status(404, deleted)).backend.kvRead('secret', 'x')).toBeUndefined();
      const destroyed = { data: { data: null, metadata: { version: 1, deletion_time: '', destroyed: true } } };
      expect(await setup(() => status(404, destroyed)).backend.kvRead('secret', 'x', 1)).toBeUndefined();
    });

    it('a 404 with Vault error text (no such mount) is an error, not "absent"', async () => {
      const err = await rejection(setup(() => status(404, { errors: ['no handler for route "nope/data/x". route entry not found.'] })).backend.kvRead('nope', 'x'));
      expect(err.code).toBe('E_VAULT');
      expect(err.hint).toMatch(/nothing is mounted at nope\//);
    });

    it('refuses path traversal and bad versions before sending anything (E_INPUT)', async () => {
      const { backend, requests } = setup(() => ok({}));
      expect((await rejection(backend.kvRead('secret', '../../sys/policies/acl/root'))).code).toBe('E_INPUT');
      expect((await rejection(backend.kvRead('secret', 'a//b'))).code).toBe('E_INPUT');
      expect((await rejection(backend.kvRead('secret', 'x', 0))).code).toBe('E_INPUT');
      expect((await rejection(backend.read('sys/../secret/data/x'))).code).toBe('E_INPUT');
      expect(requests).toHaveLength(0);
    });
  });

  it('kvMetadata maps versions; a future deletion_time is not "deleted" yet', async () => {
    const { backend, requests } = setup(() =>
      ok({
        data: {
          current_version: 3,
          versions: {
            '1': { created_time: 't1', deletion_time: '', destroyed: true },
            '2': { created_time: 't2', deletion_time: '2020-01-01T00:00:00Z', destroyed: false },
            '3': { created_time: 't3', deletion_time: '2999-01-01T00:00:00Z', destroyed: false },
          },
        },
      }),
    );
    const m = await backend.kvMetadata('secret', 'x');
    expect(pathOf(requests[0]!)).toBe('/v1/secret/metadata/x');
    expect(m).toEqual({
      currentVersion: 3,
      versions: {
        '1': { createdTime: 't1', deleted: false, destroyed: true },
        '2': { createdTime: 't2', deleted: true, destroyed: false },
        '3': { createdTime: 't3', deleted: false, destroyed: false },
      },
    });
    expect(await setup(() => status(404)).backend.kvMetadata('secret', 'x')).toBeUndefined();
  });

  describe('kvWrite', () => {
    it('POSTs {data, options:{cas}} with Secrets revealed only in the body', async () => {
      const { backend, requests } = setup(() => ok({ data: { version: 1 } }));
      const jwt = new Secret('cd'.repeat(32));
      expect(await backend.kvWrite('secret', 'krypton/n/engine-jwt', { jwt, note: 'plain' }, { cas: 0 })).toEqual({ version: 1 });
      expect(requests[0]!.method).toBe('POST');
      expect(pathOf(requests[0]!)).toBe('/v1/secret/data/krypton/n/engine-jwt');
      expect(requests[0]!.json).toEqual({ data: { jwt: 'cd'.repeat(32), note: 'plain' }, options: { cas: 0 } });
      await backend.kvWrite('secret', 'x', { a: 'b' });
      expect(requests[1]!.json).toEqual({ data: { a: 'b' } });
    });

    it('a check-and-set mismatch -> E_VAULT "already exists" (cas 0) or "changed concurrently" (cas n)', async () => {
      const cas = () => status(400, { errors: ['check-and-set parameter did not match the current version'] });
      const exists = await rejection(setup(cas).backend.kvWrite('secret', 'k', { a: new Secret('s3cr3t-value') }, { cas: 0 }));
      expect(exists.code).toBe('E_VAULT');
      expect(exists.message).toMatch(/secret\/k already exists/);
      expectClean(exists, 's3cr3t-value');
      const changed = await rejection(setup(cas).backend.kvWrite('secret', 'k', { a: 'b' }, { cas: 4 }));
      expect(changed.code).toBe('E_VAULT');
      expect(changed.message).toMatch(/changed concurrently.*version 4/);
    });
  });

  it('raw read/write: GET/PUT /v1/<path>, data or undefined', async () => {
    const { backend, requests } = setup((r) => (r.method === 'GET' ? status(404) : { statusCode: 204, body: '' }));
    expect(await backend.read('auth/approle/role/x')).toBeUndefined();
    expect(await backend.write('sys/policies/acl/x', { policy: new Secret('path "a" {}') })).toBeUndefined();
    expect(requests[1]!.method).toBe('PUT');
    expect(requests[1]!.json).toEqual({ policy: 'path "a" {}' });
  });

  it('roleId reads role-id as a Secret; a missing role is E_VAULT with a hint', async () => {
    const { backend, requests } = setup(() => ok({ data: { role_id: 'rid-123' } }));
    const rid = await backend.roleId('approle', 'krypton-node-n-val-1');
    expect(pathOf(requests[0]!)).toBe('/v1/auth/approle/role/krypton-node-n-val-1/role-id');
    expect(rid.revealText()).toBe('rid-123');
    const missing = await rejection(setup(() => status(404)).backend.roleId('approle', 'nope'));
    expect(missing.code).toBe('E_VAULT');
    expect(missing.message).toMatch(/AppRole role nope does not exist at auth\/approle\//);
  });

  describe('wrappedSecretId', () => {
    const wrapInfo = (creation_path: string) =>
      ok({ data: null, wrap_info: { token: 's.WrapWrapWrapWrapWrapWrap', accessor: 'acc-1', ttl: 120, creation_time: 't', creation_path } });

    it('POSTs with X-Vault-Wrap-TTL: <n>s and parses wrap_info', async () => {
      const { backend, requests } = setup(() => wrapInfo('auth/approle/role/r1/secret-id'));
      const w = await backend.wrappedSecretId('approle', 'r1', 120);
      expect(requests[0]!.method).toBe('POST');
      expect(pathOf(requests[0]!)).toBe('/v1/auth/approle/role/r1/secret-id');
      expect(requests[0]!.headers['X-Vault-Wrap-TTL']).toBe('120s');
      expect(requests[0]!.headers['X-Vault-Token']).toBe(TOKEN);
      expect(w.wrappingToken.revealText()).toBe('s.WrapWrapWrapWrapWrapWrap');
      expect(w).toMatchObject({ accessor: 'acc-1', creationPath: 'auth/approle/role/r1/secret-id', ttlSeconds: 120 });
      expect(inspect(w)).not.toContain('s.WrapWrapWrapWrapWrapWrap');
    });

    it('a wrong creation path -> E_VAULT_WRAP', async () => {
      const err = await rejection(setup(() => wrapInfo('auth/approle/role/other/secret-id')).backend.wrappedSecretId('approle', 'r1', 120));
      expect(err.code).toBe('E_VAULT_WRAP');
    });

    it('an unwrapped answer -> E_VAULT_WRAP, the secret_id destroyed by accessor, never echoed', async () => {
      const { backend, requests } = setup((r) =>
        r.uri.endsWith('/secret-id')
          ? ok({ data: { secret_id: 'clear-secret-id-value', secret_id_accessor: 'sid-acc' }, wrap_info: null })
          : { statusCode: 204, body: '' },
      );
      const err = await rejection(backend.wrappedSecretId('approle', 'r1', 120));
      expect(err.code).toBe('E_VAULT_WRAP');
      expect(err.hint).toMatch(/was destroyed/);
      expectClean(err, 'clear-secret-id-value');
      expect(pathOf(requests[1]!)).toBe('/v1/auth/approle/role/r1/secret-id-accessor/destroy');
      expect(requests[1]!.json).toEqual({ secret_id_accessor: 'sid-acc' });
    });

    it('refuses a wrap TTL that is not a positive integer ("0s" would not wrap at all)', async () => {
      const { backend, requests } = setup(() => ok({}));
      for (const ttl of [0, -5, 1.5, Number.NaN]) expect((await rejection(backend.wrappedSecretId('approle', 'r1', ttl))).code).toBe('E_INPUT');
      expect(requests).toHaveLength(0);
    });

    it('403 -> E_VAULT_DENIED in the operator\'s words', async () => {
      const err = await rejection(setup(() => status(403, { errors: ['1 error occurred:\n\t* permission denied\n\n'] })).backend.wrappedSecretId('approle', 'krypton-node-473374-val-2', 120));
      expect(err.code).toBe('E_VAULT_DENIED');
      expect(err.message).toBe('Vault refused to create a secret_id for role krypton-node-473374-val-2 (403 permission denied).');
      expect(err.hint).toMatch(/^the token needs update on auth\/approle\/role\/krypton-node-473374-val-2\/secret-id/);
      expectClean(err);
    });
  });

  it('wrapLookup sends the wrapping token in the BODY, not the URL; invalid -> E_VAULT_WRAP', async () => {
    const wt = 's.WrapWrapWrapWrapWrapWrap';
    const { backend, requests } = setup(() => ok({ data: { creation_path: 'auth/approle/role/r1/secret-id', creation_ttl: 120, creation_time: 't' } }));
    expect(await backend.wrapLookup(new Secret(wt))).toEqual({ creationPath: 'auth/approle/role/r1/secret-id', creationTtl: 120, creationTime: 't' });
    expect(requests[0]!.method).toBe('POST');
    expect(requests[0]!.uri).toBe(`${ADDR}/v1/sys/wrapping/lookup`);
    expect(requests[0]!.json).toEqual({ token: wt });
    const bad = await rejection(setup(() => status(400, { errors: ['wrapping token is not valid or does not exist'] })).backend.wrapLookup(new Secret(wt)));
    expect(bad.code).toBe('E_VAULT_WRAP');
    expectClean(bad, wt);
  });

  it('unwrap authenticates with the wrapping token itself; strings come back as Secrets', async () => {
    const wt = 's.WrapWrapWrapWrapWrapWrap';
    const { backend, requests } = setup(() => ok({ data: { secret_id: 'sid', secret_id_num_uses: 1 } }));
    const data = await backend.unwrap(new Secret(wt));
    expect(requests[0]!.headers['X-Vault-Token']).toBe(wt);
    expect((data.secret_id as Secret).revealText()).toBe('sid');
    expect(data.secret_id_num_uses).toBe(1);
    const used = await rejection(setup(() => status(400, { errors: ['wrapping token is not valid or does not exist'] })).backend.unwrap(new Secret(wt)));
    expect(used.code).toBe('E_VAULT_WRAP');
  });

  it('createToken: orphan, no default policy, TTL in seconds; the backend keeps its own token', async () => {
    const { backend, requests } = setup((r) => (r.uri.endsWith('create-orphan') ? ok({ auth: { client_token: 's.NewNewNewNewNewNewNewNew' } }) : ok({ data: {} })));
    const t = await backend.createToken({ policies: ['p1'], ttlSeconds: 600 });
    expect(t.revealText()).toBe('s.NewNewNewNewNewNewNewNew');
    expect(pathOf(requests[0]!)).toBe('/v1/auth/token/create-orphan');
    expect(requests[0]!.json).toEqual({ policies: ['p1'], ttl: '600s', no_default_policy: true, display_name: 'krypton-secrets' });
    await backend.tokenLookupSelf();
    expect(requests[1]!.headers['X-Vault-Token']).toBe(TOKEN);
  });

  it('capabilities: POST sys/capabilities {token, paths} -> per-path lists', async () => {
    const { backend, requests } = setup(() => ok({ data: { 'secret/data/x': ['read'], 'secret/data/y': ['deny'], capabilities: ['read'] } }));
    const caps = await backend.capabilities(new Secret('s.OtherOtherOtherOtherOther'), ['secret/data/x', 'secret/data/y']);
    expect(caps).toEqual({ 'secret/data/x': ['read'], 'secret/data/y': ['deny'] });
    expect(requests[0]!.json).toEqual({ token: 's.OtherOtherOtherOtherOther', paths: ['secret/data/x', 'secret/data/y'] });
  });

  it('tokenLookupSelf maps the answer and leaves the token id out', async () => {
    const other = 's.OtherOtherOtherOtherOther';
    const { backend, requests } = setup(() =>
      ok({ data: { id: other, accessor: 'acc', policies: ['p1'], ttl: 3599, period: 3600, renewable: true, orphan: true, display_name: 'approle', path: 'auth/approle/login', type: 'service', expire_time: '2030-01-01T00:00:00Z', num_uses: 0, meta: { role_name: 'r1' } } }),
    );
    const info = await backend.tokenLookupSelf(new Secret(other));
    expect(requests[0]!.headers['X-Vault-Token']).toBe(other);
    expect(info).toEqual({
      accessor: 'acc',
      policies: ['p1'],
      ttlSeconds: 3599,
      periodSeconds: 3600,
      renewable: true,
      orphan: true,
      displayName: 'approle',
      path: 'auth/approle/login',
      type: 'service',
      expireTime: '2030-01-01T00:00:00Z',
      numUses: 0,
      meta: { role_name: 'r1' },
    });
    expect(JSON.stringify(info)).not.toContain(other);
  });

  it('a network error carrying the token in its request config -> E_VAULT_CONFIG without it', async () => {
    const { backend } = setup((req) => {
      throw Object.assign(new Error('connect ECONNREFUSED 10.9.9.9:8200'), {
        code: 'ECONNREFUSED',
        isAxiosError: true,
        config: { headers: { ...req.headers } },
        request: { _header: `GET / HTTP/1.1\r\nX-Vault-Token: ${req.headers['X-Vault-Token']}\r\n` },
      });
    });
    const err = await rejection(backend.kvRead('secret', 'x'));
    expect(err.code).toBe('E_VAULT_CONFIG');
    expect(err.message).toBe(`cannot reach Vault at ${ADDR} (from VAULT_ADDR) to read KV secret secret/x: connection refused.`);
    expectClean(err);
  });
});
