/**
 * Secret redaction (ARCHITECTURE.md invariant 1: no secret in a log, an error or JSON output) and the
 * scrubbing of library errors before they become a `cause`.
 */
import { execFileSync } from 'node:child_process';
import { Console } from 'node:console';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { format, inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import { KryptonError, scrubCause, scrubText, toKryptonError } from '../../src/core/errors.ts';
import {
  FINGERPRINT_SHOWN_HEX,
  isEngineJwtHex,
  isSecret,
  mintEngineJwtHex,
  normaliseEngineJwtHex,
  Secret,
  sha256Hex,
  shortFingerprint,
} from '../../src/core/secret.ts';

const JWT = '0031fa90a884717ceee535c1cbae9f0bc4542a8cb58eb21d8abcc06978f0ff2e';
const JWT_FP = '5a382a21b4b9836d35bbbcec3d584931c477ed9521a9a026bd0e13ef9ad02d1b';
const TOKEN = 'hvs.CAESIJ9x2QzPq7Lk3mN8vB5wR1tY6uI0oP4aS';

/** Everything a console.log of `args` would print, captured (no terminal involved). */
function consoleOutput(...args: unknown[]): string {
  let out = '';
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      out += chunk.toString('utf8');
      cb();
    },
  });
  const c = new Console({ stdout: sink, stderr: sink, colorMode: false });
  c.log(...args);
  c.error(...args);
  c.dir(args, { depth: 20 });
  c.table([{ s: args[0] }]);
  return out;
}

describe('Secret redacts itself', () => {
  const s = new Secret(JWT);
  const shown = `[secret sha256:${JWT_FP.slice(0, 12)}]`;

  it('String(), template literals, concatenation, toString', () => {
    expect(String(s)).toBe(shown);
    expect(`${s}`).toBe(shown);
    expect('x' + s).toBe(`x${shown}`);
    expect(s.toString()).toBe(shown);
    expect([s, s].join(',')).toBe(`${shown},${shown}`);
  });

  it('JSON.stringify, nested in objects, arrays and Maps turned into objects', () => {
    const nested = { a: { b: [1, { c: s }] }, d: s, e: Object.fromEntries(new Map([['k', s]])) };
    const json = JSON.stringify(nested);
    expect(json).not.toContain(JWT);
    expect(json).toBe(`{"a":{"b":[1,{"c":"${shown}"}]},"d":"${shown}","e":{"k":"${shown}"}}`);
    expect(JSON.stringify(s)).toBe(`"${shown}"`);
  });

  it('util.inspect, nested deep, with showHidden, and through util.format', () => {
    const nested = { a: { b: { c: { d: { e: [s] } } } }, m: new Map([['k', s]]), set: new Set([s]) };
    for (const text of [
      inspect(s),
      inspect(nested, { depth: Infinity }),
      inspect(nested, { depth: Infinity, showHidden: true }),
      inspect(s, { customInspect: true, showHidden: true }),
      format('%s %o %O %j %d', s, nested, nested, nested, s),
    ]) {
      expect(text).not.toContain(JWT);
    }
    expect(inspect(s)).toBe(shown);
  });

  it('console.log / console.error / console.dir / console.table output (captured)', () => {
    const out = consoleOutput(s, { nested: { s } }, [s]);
    expect(out).toContain(shown);
    expect(out).not.toContain(JWT);
  });

  it('an Error whose message was built from a Secret shows only the fingerprint', () => {
    const e = new KryptonError('E_INPUT', `bad value ${s}`, { hint: 'x' });
    expect(inspect(e)).not.toContain(JWT);
    expect(JSON.stringify(e)).not.toContain(JWT);
  });

  it('has no enumerable own properties that could carry the bytes', () => {
    expect(Object.keys(s)).toEqual([]);
    expect(Object.getOwnPropertyNames(s)).toEqual([]);
    expect(JSON.stringify({ ...s })).toBe('{}');
    expect(JSON.stringify(structuredClone(s))).not.toContain(JWT);
  });

  it('isSecret tells Secrets from strings', () => {
    expect(isSecret(s)).toBe(true);
    expect(isSecret(JWT)).toBe(false);
    expect(isSecret(shown)).toBe(false);
  });
});

describe('Secret bytes and fingerprints', () => {
  it('fingerprint equals sha256sum of the same bytes (text and binary)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'krypton-secret-test-'));
    try {
      const cases: [string, Buffer][] = [
        ['jwt', Buffer.from(JWT, 'utf8')],
        ['binary', Buffer.from([0, 1, 2, 0xff, 0xfe, 10, 13, 0x80])],
        ['empty', Buffer.alloc(0)],
        ['utf8', Buffer.from('pässwörd ✓\n', 'utf8')],
      ];
      for (const [name, bytes] of cases) {
        const f = join(dir, name);
        writeFileSync(f, bytes);
        const sum = execFileSync('sha256sum', ['--', f], { encoding: 'utf8' }).split(' ')[0];
        const s = new Secret(bytes);
        expect(s.fingerprint(), name).toBe(sum);
        expect(sha256Hex(bytes), name).toBe(sum);
        expect(s.shortFingerprint()).toBe(`sha256:${sum!.slice(0, FINGERPRINT_SHOWN_HEX)}`);
        expect(shortFingerprint(sum!)).toBe(s.shortFingerprint());
      }
      expect(new Secret(JWT).fingerprint()).toBe(JWT_FP);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('copies its input and hands out copies', () => {
    const src = Buffer.from('abc');
    const s = new Secret(src);
    src[0] = 0x7a;
    expect(s.revealText()).toBe('abc');
    const out = s.reveal();
    out[0] = 0x7a;
    expect(s.revealText()).toBe('abc');
    expect(s.length).toBe(3);
  });

  it('equals compares bytes, not identity', () => {
    expect(new Secret('a').equals(new Secret(Buffer.from('a')))).toBe(true);
    expect(new Secret('a').equals(new Secret('b'))).toBe(false);
  });

  it('random and mintEngineJwtHex', () => {
    const r = Secret.random(32);
    expect(r.length).toBe(32);
    expect(r.equals(Secret.random(32))).toBe(false);
    const j = mintEngineJwtHex();
    expect(j.revealText()).toMatch(/^[0-9a-f]{64}$/);
    expect(isEngineJwtHex(j)).toBe(true);
    expect(j.equals(mintEngineJwtHex())).toBe(false);
  });

  it('isEngineJwtHex accepts exactly 64 lowercase hex', () => {
    expect(isEngineJwtHex(new Secret(JWT))).toBe(true);
    expect(isEngineJwtHex(new Secret(JWT.toUpperCase()))).toBe(false);
    expect(isEngineJwtHex(new Secret(`${JWT}\n`))).toBe(false);
    expect(isEngineJwtHex(new Secret(`0x${JWT}`))).toBe(false);
    expect(isEngineJwtHex(new Secret(JWT.slice(1)))).toBe(false);
  });
});

describe('normaliseEngineJwtHex', () => {
  const cases: [string, string, string | undefined][] = [
    ['already strict', JWT, JWT],
    ['trailing newline', `${JWT}\n`, JWT],
    ['CRLF and spaces', `  ${JWT}\r\n`, JWT],
    ['0x prefix', `0x${JWT}`, JWT],
    ['0X prefix, uppercase, newline', `0X${JWT.toUpperCase()}\n`, JWT],
    ['uppercase', JWT.toUpperCase(), JWT],
    ['63 characters', JWT.slice(1), undefined],
    ['65 characters', `${JWT}0`, undefined],
    ['two 0x prefixes', `0x0x${JWT}`, undefined],
    ['space inside', `${JWT.slice(0, 32)} ${JWT.slice(32)}`, undefined],
    ['not hex', `${JWT.slice(0, 63)}g`, undefined],
    ['empty', '', undefined],
    ['only 0x', '0x', undefined],
    ['32 raw bytes, not hex text', '\u0000'.repeat(32), undefined],
  ];
  for (const [name, input, want] of cases) {
    it(name, () => {
      const got = normaliseEngineJwtHex(new Secret(input));
      if (want === undefined) expect(got).toBeUndefined();
      else {
        expect(got).toBeInstanceOf(Secret);
        expect(got!.revealText()).toBe(want);
        expect(isEngineJwtHex(got!)).toBe(true);
      }
    });
  }
});

describe('scrubText', () => {
  const redacted: [string, string, string][] = [
    ['Vault service token', `login failed for ${TOKEN} (403)`, 'login failed for [redacted] (403)'],
    ['OpenBao s. token', 'token s.AbCdEfGhIjKlMnOpQrStUvWx expired', 'token [redacted] expired'],
    ['batch token', 'hvb.AAAAAQJ1xF_s3cr3t-batch-token-abcdef', '[redacted]'],
    ['64 hex (JWT secret)', `jwt ${JWT} rejected`, 'jwt [redacted] rejected'],
    ['64 hex in quotes / after =', `hex="${JWT}" jwt=${JWT}`, 'hex="[redacted]" jwt=[redacted]'],
    ['64 uppercase hex', JWT.toUpperCase(), '[redacted]'],
    ['X-Vault-Token header', `X-Vault-Token: ${TOKEN}`, '[redacted]'],
    ['X-Vault-Token as JSON', `{"X-Vault-Token":"abc123"}`, '{"[redacted]"}'],
    ['lowercase header in an object dump', "{ 'x-vault-token': 'abc123' }", "{ '[redacted]' }"],
    ['Authorization with a JWT bearer', 'authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJpYXQiOjF9.c2ln', '[redacted]'],
    ['AWS access key id', 'key AKIAABCDEFGHIJKLMNOP denied', 'key [redacted] denied'],
    ['aws_secret_access_key', 'aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY', '[redacted]'],
    ['secret_id field', '{"secret_id": "e7a3c9d1-11aa"}', '{"[redacted]"}'],
    ['wrapping_token / client_token', 'wrapping_token=abc client_token: def', '[redacted] [redacted]'],
  ];
  for (const [name, input, want] of redacted) {
    it(`redacts: ${name}`, () => expect(scrubText(input)).toBe(want));
  }

  it('leaves ordinary text alone', () => {
    const t = 'mount: /run/krypton-secrets: permission denied (exit 32); version 3 of secret/krypton/473374/engine-jwt';
    expect(scrubText(t)).toBe(t);
  });

  // BUG (reported): the Authorization pattern consumes only the scheme word, so an opaque bearer token or a
  // Basic credential that follows it is left in the text. src/core/errors.ts TOKEN_PATTERNS.
  it('redacts the credential after "Authorization: Bearer" / "Basic", not only the scheme', () => {
    expect(scrubText('Authorization: Bearer opaque-token-123')).not.toContain('opaque-token-123');
    expect(scrubText('Authorization: Basic dXNlcjpwYXNzd29yZA==')).not.toContain('dXNlcjpwYXNzd29yZA==');
  });

  // BUG (reported): `\b` cannot match between "0x" and the hex, so a 0x-prefixed JWT — the form old
  // plaintext jwt.hex files have — is not redacted. src/core/errors.ts TOKEN_PATTERNS.
  it('redacts a 0x-prefixed 64-hex JWT', () => {
    expect(scrubText(`file holds 0x${JWT}`)).not.toContain(JWT);
  });
});

describe('scrubCause / KryptonError causes', () => {
  /** What node-vault re-throws: an axios error carrying the client token in its request config. */
  function axiosLikeError(): Error {
    const e = new Error(`Request failed with status code 403 (token ${TOKEN})`) as Error & Record<string, unknown>;
    e.name = 'AxiosError';
    e['code'] = 'ERR_BAD_REQUEST';
    e['statusCode'] = 403;
    e['config'] = { url: 'https://vault:8200/v1/auth/approle/role/x/secret-id', headers: { 'X-Vault-Token': TOKEN, 'X-Vault-Wrap-TTL': '120s' } };
    e['request'] = { _header: `POST /v1/x HTTP/1.1\r\nX-Vault-Token: ${TOKEN}\r\n` };
    e['response'] = { status: 403, data: { errors: ['permission denied'], wrap_info: { token: TOKEN } } };
    return e;
  }

  it('keeps only name, scrubbed message, code and statusCode', () => {
    const c = scrubCause(axiosLikeError()) as Error & Record<string, unknown>;
    expect(c).toBeInstanceOf(Error);
    expect(c.name).toBe('AxiosError');
    expect(c.message).toBe('Request failed with status code 403 (token [redacted])');
    expect(c['code']).toBe('ERR_BAD_REQUEST');
    expect(c['statusCode']).toBe(403);
    expect(c['config']).toBeUndefined();
    expect(c['request']).toBeUndefined();
    expect(c['response']).toBeUndefined();
    expect(inspect(c, { depth: Infinity, showHidden: true })).not.toContain(TOKEN);
  });

  it('a KryptonError with a library cause never shows the token, however it is printed', () => {
    const e = new KryptonError('E_VAULT_DENIED', 'Vault refused to create a secret_id', { hint: 'check the policy', cause: axiosLikeError(), host: 'val-2', task: 'vault.deliver-secret-id' });
    for (const text of [inspect(e, { depth: Infinity }), inspect(e, { depth: Infinity, showHidden: true }), JSON.stringify(e), String(e), format('%o', e), consoleOutput(e)]) {
      expect(text).not.toContain(TOKEN);
    }
    expect(e.toJSON()).toEqual({ code: 'E_VAULT_DENIED', message: 'Vault refused to create a secret_id', hint: 'check the policy' });
    expect(e).toMatchObject({ host: 'val-2', task: 'vault.deliver-secret-id' });
  });

  it('non-Error throwables are reduced too', () => {
    expect(scrubCause(`raw ${TOKEN}`).message).toBe('raw [redacted]');
    expect(scrubCause({ message: `m ${JWT}`, statusCode: 500, headers: { authorization: TOKEN } }).message).toBe('m [redacted]');
    expect(inspect(scrubCause({ message: 'x', headers: { authorization: TOKEN } }), { showHidden: true })).not.toContain(TOKEN);
  });

  it('a KryptonError passes through scrubCause unchanged', () => {
    const k = new KryptonError('E_INPUT', 'x', { hint: 'y' });
    expect(scrubCause(k)).toBe(k);
  });

  it('toKryptonError wraps unknown errors as E_INTERNAL (or the fallback) with a scrubbed message', () => {
    const e = toKryptonError(axiosLikeError());
    expect(e.code).toBe('E_INTERNAL');
    expect(e.message).not.toContain(TOKEN);
    expect(inspect(e, { depth: Infinity })).not.toContain(TOKEN);
    expect(toKryptonError(new Error('connect ECONNREFUSED'), 'E_SSH_CONNECT').code).toBe('E_SSH_CONNECT');
    const k = new KryptonError('E_INPUT', 'x');
    expect(toKryptonError(k)).toBe(k);
  });
});
