import { inspect } from 'node:util';
import nodeVault from 'node-vault';
import { describe, expect, it } from 'vitest';
import { KryptonError } from '../../../src/core/errors.ts';
import { classifyVaultError, translateVaultError, vaultErrorText, type VaultOpContext } from '../../../src/backends/vault.ts';

// A token that the generic scrubber would NOT recognise (no `s.`/`hvs.` prefix): the backend must not rely on
// scrubbing to keep it out, it must never copy it in the first place.
const TOKEN = 'plain-root-token-0123456789abcdefXYZ';

const ctx: VaultOpContext = {
  op: 'create a secret_id for role krypton-node-473374-val-2',
  path: 'auth/approle/role/krypton-node-473374-val-2/secret-id',
  capability: 'update',
  address: 'https://vault.example:8200',
  addressSource: 'BAO_ADDR',
};

/** The real node-vault ApiResponseError, produced by node-vault's own response handler (no I/O). */
async function apiResponseError(statusCode: number, body: unknown): Promise<unknown> {
  const client = nodeVault({ endpoint: 'http://127.0.0.1:1', token: TOKEN });
  return client.handleVaultResponse({ statusCode, body, request: { path: '/v1/x' } }).then(
    () => expect.unreachable(),
    (e: unknown) => e,
  );
}

/**
 * Shaped like what node-vault 0.12 rethrows for a network/TLS failure: axios's AxiosError, carrying the request
 * config (headers with X-Vault-Token), the ClientRequest (its `_header` string holds the token too) and a cause.
 */
function axiosLikeError(code: string, message: string): Error {
  const cause = Object.assign(new Error(message), { code });
  return Object.assign(new Error(message), {
    name: 'AxiosError',
    code,
    isAxiosError: true,
    cause,
    config: {
      method: 'post',
      url: 'https://vault.example:8200/v1/auth/approle/role/x/secret-id',
      headers: { 'X-Vault-Token': TOKEN, 'X-Vault-Wrap-TTL': '120s' },
      data: JSON.stringify({ token: TOKEN }),
    },
    request: { _header: `POST /v1/auth/approle/role/x/secret-id HTTP/1.1\r\nX-Vault-Token: ${TOKEN}\r\n` },
    toJSON: () => ({ config: { headers: { 'X-Vault-Token': TOKEN } } }),
  });
}

function expectNoToken(err: KryptonError): void {
  expect(err).toBeInstanceOf(KryptonError);
  expect(err.message).not.toContain(TOKEN);
  expect(err.hint ?? '').not.toContain(TOKEN);
  expect(inspect(err, { depth: 10, showHidden: true })).not.toContain(TOKEN);
  expect(inspect(err.cause, { depth: 10, showHidden: true })).not.toContain(TOKEN);
  expect(JSON.stringify(err)).not.toContain(TOKEN);
  expect(String(err.stack)).not.toContain(TOKEN);
  const cause = err.cause as Record<string, unknown> | undefined;
  if (cause) {
    expect(cause).not.toHaveProperty('config');
    expect(cause).not.toHaveProperty('request');
    expect(cause).not.toHaveProperty('response');
  }
}

describe('node-vault error shapes (as read from its source)', () => {
  it('ApiResponseError carries response.statusCode and response.body, and message = errors[0]', async () => {
    const e = (await apiResponseError(403, { errors: ['1 error occurred:\n\t* permission denied\n\n'] })) as {
      message: string;
      response: { statusCode: number; body: unknown };
    };
    expect(e.response.statusCode).toBe(403);
    expect(e.message).toContain('permission denied');
    expect(classifyVaultError(e)).toEqual({ kind: 'http', status: 403, errors: ['1 error occurred:\n\t* permission denied\n\n'] });
  });

  it('classifies axios-like network errors by code, also from cause or an AggregateError', () => {
    expect(classifyVaultError(axiosLikeError('ECONNREFUSED', 'connect ECONNREFUSED 127.0.0.1:8200'))).toMatchObject({ kind: 'network', code: 'ECONNREFUSED' });
    const agg = Object.assign(new AggregateError([Object.assign(new Error('x'), { code: 'ECONNREFUSED' })], ''), {});
    expect(classifyVaultError(agg)).toMatchObject({ kind: 'network', code: 'ECONNREFUSED' });
    expect(classifyVaultError({ message: 'weird' })).toEqual({ kind: 'other', message: 'weird' });
  });
});

describe('vaultErrorText', () => {
  it('unwraps multierror text, de-duplicates, scrubs', () => {
    expect(vaultErrorText(['1 error occurred:\n\t* permission denied\n\n'])).toBe('permission denied');
    expect(vaultErrorText(['2 errors occurred:\n\t* a\n\t* b\n\n', 'a'])).toBe('a; b');
    expect(vaultErrorText(['bad token s.AbCdEfGhIjKlMnOpQrStUvWx'])).toBe('bad token [redacted]');
    expect(vaultErrorText([])).toBe('');
  });
});

describe('translateVaultError', () => {
  it('403 -> E_VAULT_DENIED naming operation and path, hint names the capability', async () => {
    const err = translateVaultError(await apiResponseError(403, { errors: ['1 error occurred:\n\t* permission denied\n\n'] }), ctx);
    expect(err.code).toBe('E_VAULT_DENIED');
    expect(err.message).toBe('Vault refused to create a secret_id for role krypton-node-473374-val-2 (403 permission denied).');
    expect(err.hint).toMatch(/^the token needs update on auth\/approle\/role\/krypton-node-473374-val-2\/secret-id/);
    expect((err.cause as { statusCode?: number }).statusCode).toBe(403);
    expectNoToken(err);
  });

  it('400 -> E_VAULT with Vault\'s errors text, scrubbed', async () => {
    const err = translateVaultError(
      await apiResponseError(400, { errors: ['error converting input for field "token_period": time: invalid duration "bogus"', 'leaked s.AbCdEfGhIjKlMnOpQrStUvWx'] }),
      ctx,
    );
    expect(err.code).toBe('E_VAULT');
    expect(err.message).toContain('invalid duration "bogus"');
    expect(err.message).toContain('(HTTP 400)');
    expect(err.message).not.toContain('s.AbCdEfGhIjKlMnOpQrStUvWx');
    expectNoToken(err);
  });

  it('503 -> E_VAULT with a sealed hint; 404 no handler -> mount hint; 404 namespace -> E_VAULT_CONFIG', async () => {
    const sealed = translateVaultError(await apiResponseError(503, { errors: ['Vault is sealed'] }), ctx);
    expect(sealed.code).toBe('E_VAULT');
    expect(sealed.hint).toMatch(/sealed/);
    const noRoute = translateVaultError(await apiResponseError(404, { errors: ['no handler for route "kv/data/x". route entry not found.'] }), { ...ctx, path: 'kv/data/x' });
    expect(noRoute.hint).toMatch(/nothing is mounted at kv\//);
    const ns = translateVaultError(await apiResponseError(404, { errors: ['namespace not found'] }), ctx);
    expect(ns.code).toBe('E_VAULT_CONFIG');
    expect(ns.hint).toMatch(/NAMESPACE/);
  });

  it('connection refused / DNS / unreachable / timeout -> E_VAULT_CONFIG naming the address and its source', () => {
    for (const [code, msg, want] of [
      ['ECONNREFUSED', 'connect ECONNREFUSED 10.0.0.1:8200', /connection refused/],
      ['ENOTFOUND', 'getaddrinfo ENOTFOUND vault.example', /host name not found/],
      ['EHOSTUNREACH', 'connect EHOSTUNREACH 10.0.0.1:8200', /no route to host/],
      ['ECONNABORTED', 'timeout of 30000ms exceeded', /no answer in time/],
    ] as const) {
      const err = translateVaultError(axiosLikeError(code, msg), ctx);
      expect(err.code).toBe('E_VAULT_CONFIG');
      expect(err.message).toContain('https://vault.example:8200 (from BAO_ADDR)');
      expect(err.message).toMatch(want);
      expect((err.cause as { code?: string }).code).toBe(code);
      expectNoToken(err);
    }
  });

  it('TLS failures -> E_VAULT_CONFIG with a CA hint; https to a plain-http port -> scheme hint', () => {
    const untrusted = translateVaultError(axiosLikeError('UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'unable to verify the first certificate'), ctx);
    expect(untrusted.code).toBe('E_VAULT_CONFIG');
    expect(untrusted.message).toMatch(/cannot connect securely to Vault at https:\/\/vault.example:8200/);
    expect(untrusted.hint).toMatch(/BAO_CACERT/);
    expectNoToken(untrusted);
    const selfSigned = translateVaultError(axiosLikeError('SELF_SIGNED_CERT_IN_CHAIN', 'self-signed certificate in certificate chain'), ctx);
    expect(selfSigned.hint).toMatch(/CACERT/);
    const plain = translateVaultError(axiosLikeError('EPROTO', 'write EPROTO ...:ssl3_get_record:wrong version number'), ctx);
    expect(plain.code).toBe('E_VAULT_CONFIG');
    expect(plain.hint).toMatch(/plain http/);
  });

  it('anything else -> E_VAULT, scrubbed, without the library object', () => {
    const weird = Object.assign(new Error(`boom X-Vault-Token: ${TOKEN}`), { config: { headers: { 'X-Vault-Token': TOKEN } } });
    const err = translateVaultError(weird, ctx);
    expect(err.code).toBe('E_VAULT');
    expectNoToken(err);
  });

  it('passes a KryptonError through unchanged', () => {
    const k = new KryptonError('E_INPUT', 'x');
    expect(translateVaultError(k, ctx)).toBe(k);
  });
});
