/**
 * The bytes of each secret kind and how each backend holds them (src/model/formats.ts): pure codecs. Every
 * refusal says what is wrong (a length, an offset, a name, a line number) and never the value itself.
 */
import { describe, expect, it } from 'vitest';
import { KryptonError } from '../../../src/core/errors.ts';
import { Secret } from '../../../src/core/secret.ts';
import {
  canonicalHex64,
  envNameProblem,
  envValueProblem,
  envVarsOf,
  fromBlobPlaintext,
  fromKvFields,
  fromSecretString,
  hex64Problem,
  parseEnvText,
  renderEnvFile,
  toKvFields,
  toSecretString,
  valueProblem,
} from '../../../src/model/formats.ts';

const HEX = '0031fa90a884717ceee535c1cbae9f0bc4542a8cb58eb21d8abcc06978f0ff2e';

/** The KryptonError `f` throws. */
function thrown(f: () => unknown): KryptonError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(KryptonError);
    return e as KryptonError;
  }
  throw new Error('expected a KryptonError');
}

describe('hex64 (Engine-API JWT)', () => {
  const cases: [string, string, string | undefined][] = [
    ['canonical', HEX, undefined],
    ['31 bytes', HEX.slice(2), '31 bytes, expected 32 (64 hex)'],
    ['33 bytes', `${HEX}ab`, '33 bytes, expected 32 (64 hex)'],
    ['an odd number of hex digits', HEX.slice(1), '63 hex characters, expected 32 (64 hex)'],
    ['empty', '', '0 bytes, expected 32 (64 hex)'],
    ['0x prefix', `0x${HEX}`, 'byte 0: `0x` prefix'],
    ['0X prefix', `0X${HEX}`, 'byte 0: `0X` prefix'],
    ['trailing CR LF', `${HEX}\r\n`, 'trailing CR LF'],
    ['trailing LF', `${HEX}\n`, 'trailing LF'],
    ['trailing space and TAB', `${HEX} \t`, 'trailing space TAB'],
    ['leading whitespace', ` ${HEX}`, 'leading whitespace'],
    ['uppercase', HEX.slice(0, 4) + HEX.slice(4).toUpperCase(), 'uppercase hex at byte 4'],
    ['a non-hex digit', `${HEX.slice(0, 10)}g${HEX.slice(11)}`, 'byte 10: not a hex digit'],
    ['0x prefix and a newline', `0x${HEX}\n`, 'trailing LF; byte 0: `0x` prefix'],
    ['whitespace, 0x and a non-hex digit after them', ` 0x${HEX.slice(0, 5)}z${HEX.slice(6)}`, 'leading whitespace; byte 1: `0x` prefix; byte 8: not a hex digit'],
  ];
  it.each(cases)('%s', (_title, text, want) => {
    const p = hex64Problem(new Secret(text));
    expect(p).toBe(want);
    // The message describes the value; it never contains it (nor a recognisable part of it).
    if (p !== undefined && text.length >= 16) {
      expect(p).not.toContain(text.trim());
      expect(p).not.toContain(HEX.slice(10, 26));
      expect(p.toLowerCase()).not.toContain(HEX.slice(10, 26));
    }
  });

  it('canonicalHex64: strips 0x and surrounding whitespace, lowercases; nothing to make of a wrong length or non-hex', () => {
    expect(canonicalHex64(new Secret(`  0X${HEX.toUpperCase()}\r\n`))?.revealText()).toBe(HEX);
    expect(canonicalHex64(new Secret(HEX))?.revealText()).toBe(HEX);
    expect(canonicalHex64(new Secret(HEX.slice(2)))).toBeUndefined();
    expect(canonicalHex64(new Secret(`${HEX.slice(1)}q`))).toBeUndefined();
  });
});

describe('env (node env-secrets)', () => {
  it('renders the canonical file: NAME=\'value\' lines sorted by byte order, quotes escaped, final newline', () => {
    const s = renderEnvFile({ b_token: "it's", API_KEY: 'x y # not a comment', A: '', Z9: 'back\\slash' }, 'secret/krypton/473374/env');
    expect(s.revealText()).toBe("A=''\nAPI_KEY='x y # not a comment'\nZ9='back\\slash'\nb_token='it\\'s'\n");
    expect(renderEnvFile({}, 'w').revealText()).toBe('');
    // The order does not depend on the order given.
    expect(renderEnvFile({ B: '1', A: '2' }, 'w').fingerprint()).toBe(renderEnvFile({ A: '2', B: '1' }, 'w').fingerprint());
  });

  it('refuses bad names, JWT_PATH, and values with a newline, CR, NUL or an ambiguous backslash — every one at once, by name and offset, never the value', () => {
    const values = { '1ST': 'v1-secret-aaaa', 'has-dash': 'v2-secret-bbbb', JWT_PATH: '/tmp/v3-secret-cccc', NL: 'v4-secret\ndddd', CR: 'v5\rsecret-eeee', NUL: 'v6-sec\u0000ret-ffff', BQ: "v7-secret\\'gggg", END: 'v8-secret-hhhh\\' };
    const e = thrown(() => renderEnvFile(values, 'secret/krypton/473374/env'));
    expect(e.code).toBe('E_INPUT');
    expect(e.message).toBe(
      'secret/krypton/473374/env: "1ST" is not a variable name (expected [A-Za-z_][A-Za-z0-9_]*); ' +
        'BQ: the value has a backslash before a quote at character 9 (ambiguous in a compose env file); ' +
        'CR: the value has a line break at character 2; ' +
        'END: the value ends with a backslash (ambiguous in a compose env file); ' +
        'JWT_PATH would shadow the JWT_PATH krypton-secrets manages in the compose env file; ' +
        'NL: the value has a line break at character 9; ' +
        'NUL: the value has a NUL at character 6; ' +
        '"has-dash" is not a variable name (expected [A-Za-z_][A-Za-z0-9_]*)',
    );
    expect(e.hint).toMatch(/no JWT_PATH/);
    for (const v of Object.values(values)) for (const part of v.split(/[\r\n\u0000\\']/)) if (part.length > 3) expect(e.message).not.toContain(part);
  });

  it('name and value checks on their own', () => {
    expect(envNameProblem('GOOD_name_9')).toBeUndefined();
    expect(envNameProblem('_x')).toBeUndefined();
    expect(envNameProblem('9x')).toMatch(/is not a variable name/);
    expect(envNameProblem('A B')).toMatch(/is not a variable name/);
    expect(envNameProblem('')).toMatch(/is not a variable name/);
    expect(envNameProblem('JWT_PATH')).toMatch(/would shadow the JWT_PATH/);
    expect(envNameProblem('jwt_path')).toBeUndefined(); // compose names are case-sensitive
    expect(envValueProblem('A', 'plain value with spaces, "quotes" and a \\ backslash')).toBeUndefined();
    expect(envValueProblem('A', 'x\ny')).toBe('A: the value has a line break at character 1');
  });

  it('parseEnvText reads what operators write: export, comments, blank lines, CRLF, single- and double-quoted values', () => {
    const text = [
      '# provider keys',
      '',
      'export API_KEY=abc123',
      "  RPC_PASSWORD='p@ss w#rd' # trailing comment",
      'DQ="a \\"b\\" c"',
      'UNQ=v #comment',
      'HASH=v#no-space-kept',
      'EMPTY=',
      'SQ=\'it\\\'s\'',
      'WIN=crlf\r',
      '',
    ].join('\n');
    expect(parseEnvText(text)).toEqual({
      ok: true,
      vars: { API_KEY: 'abc123', RPC_PASSWORD: 'p@ss w#rd', DQ: 'a "b" c', UNQ: 'v', HASH: 'v#no-space-kept', EMPTY: '', SQ: "it's", WIN: 'crlf' },
    });
  });

  it('parseEnvText gives every problem with its line number, never the value (a BAD LINE among them)', () => {
    const text = ['GOOD=fine', 'BAD LINE', 'TOKEN="ends\\nnext"', 'GOOD=again', '1NAME=v', 'JWT_PATH=/run/x', "OPEN='never closed", 'OK=1'].join('\n');
    const r = parseEnvText(text);
    expect(r).toEqual({
      ok: false,
      problems: [
        { line: 2, message: 'expected NAME=value' },
        { line: 3, message: 'TOKEN: the value has a line break at character 4' },
        { line: 4, message: 'GOOD is set twice' },
        { line: 5, message: '"1NAME" is not a variable name (expected [A-Za-z_][A-Za-z0-9_]*)' },
        { line: 6, message: 'JWT_PATH would shadow the JWT_PATH krypton-secrets manages in the compose env file' },
        { line: 7, message: 'OPEN: unterminated or malformed quoted value' },
      ],
    });
    const messages = JSON.stringify(r);
    for (const v of ['fine', 'ends', 'next', 'again', 'never closed', '/run/x']) expect(messages).not.toContain(v);
  });

  it('the canonical file reads back as the same variables (renderEnvFile -> parseEnvText / envVarsOf)', () => {
    const vars = { A: "it's", B: 'x y # z', C: '', D: 'back\\slash', E: '"double"', F: "' leading quote", G: 'ünïcödé' };
    const file = renderEnvFile(vars, 'w');
    expect(parseEnvText(file.revealText())).toEqual({ ok: true, vars });
    expect(envVarsOf(file, 'w')).toEqual(vars);
    expect(valueProblem('env', file)).toBeUndefined();
  });

  it('valueProblem(env) refuses a file that parses but is not canonical (unsorted, unquoted), and envVarsOf a bad one', () => {
    expect(valueProblem('env', new Secret("B='1'\nA='2'\n"))).toMatch(/not in canonical form/);
    expect(valueProblem('env', new Secret('A=1\n'))).toMatch(/not in canonical form/);
    expect(valueProblem('env', new Secret('BAD LINE\n'))).toBe('line 1: expected NAME=value');
    const e = thrown(() => envVarsOf(new Secret("A='x'\nBAD LINE\n"), 'blobs/473374/env/v1.enc'));
    expect(e.message).toBe('blobs/473374/env/v1.enc: line 2: expected NAME=value');
  });
});

describe('json (Horcrux key files) and valueProblem', () => {
  it('non-empty, at most 4096 bytes, parseable', () => {
    expect(valueProblem('json', new Secret('{"id":1}\n'))).toBeUndefined();
    expect(valueProblem('json', new Secret(''))).toBe('empty');
    expect(valueProblem('json', new Secret('x'.repeat(4097)))).toBe('4097 bytes, over 4096');
    expect(valueProblem('json', new Secret('{"privateShard": "c2VjcmV0"'))).toBe('not JSON');
    expect(valueProblem('hex64', new Secret(`${HEX}\n`))).toBe('trailing LF');
  });
});

describe('store codecs', () => {
  const env = renderEnvFile({ API_KEY: 'abc', PASS: "it's" }, 'w');

  it('KV v2: a single-field kind is one field; env is one field per variable; both round-trip', () => {
    const jwt = new Secret(HEX);
    const fields = toKvFields('hex64', 'hex', jwt, 'p');
    expect(Object.keys(fields)).toEqual(['hex']);
    expect(fromKvFields('hex64', 'hex', fields, 'p').equals(jwt)).toBe(true);
    const envFields = toKvFields('env', undefined, env, 'p');
    expect(Object.fromEntries(Object.entries(envFields).map(([k, v]) => [k, v.revealText()]))).toEqual({ API_KEY: 'abc', PASS: "it's" });
    expect(fromKvFields('env', undefined, envFields, 'p').equals(env)).toBe(true);
    const key = new Secret('{"eciesKey":"x","id":1}');
    expect(fromKvFields('json', 'json', toKvFields('json', 'json', key, 'p'), 'p').equals(key)).toBe(true);
  });

  it('KV v2: a missing field names the fields there are; a bad JWT field says what is wrong, not the value', () => {
    const e = thrown(() => fromKvFields('hex64', 'hex', { value: new Secret(HEX) }, 'secret/krypton/473374/engine-jwt v3'));
    expect(e.message).toBe('secret/krypton/473374/engine-jwt v3 has no field "hex" (it has "value")');
    const bad = thrown(() => fromKvFields('hex64', 'hex', { hex: new Secret(`0x${HEX}`) }, 'secret/krypton/473374/engine-jwt v3'));
    expect(bad.message).toBe('secret/krypton/473374/engine-jwt v3 field "hex": byte 0: `0x` prefix');
    expect(bad.hint).toMatch(/canonical form/);
    expect(bad.message).not.toContain(HEX);
    const badEnv = thrown(() => fromKvFields('env', undefined, { 'bad-name': new Secret('hunter2-secret') }, 'secret/krypton/473374/env v2'));
    expect(badEnv.message).toMatch(/^secret\/krypton\/473374\/env v2: "bad-name" is not a variable name/);
    expect(badEnv.message).not.toContain('hunter2');
  });

  it('Secrets Manager: hex64 and json are the SecretString itself; env a compact JSON object with sorted names; round trips', () => {
    expect(toSecretString('hex64', new Secret(HEX), 'n').revealText()).toBe(HEX);
    expect(fromSecretString('hex64', new Secret(HEX), 'n').revealText()).toBe(HEX);
    const ss = toSecretString('env', env, 'n');
    expect(ss.revealText()).toBe('{"API_KEY":"abc","PASS":"it\'s"}');
    expect(fromSecretString('env', ss, 'n').equals(env)).toBe(true);
    expect(fromSecretString('env', new Secret('{"PASS":"it\'s","API_KEY":"abc"}'), 'n').equals(env)).toBe(true);
  });

  it('Secrets Manager: refusals without the value', () => {
    expect(thrown(() => fromSecretString('env', new Secret('not json hunter2'), 'secretsmanager:krypton/473374/env')).message).toBe('secretsmanager:krypton/473374/env is not a JSON object of variables');
    expect(thrown(() => fromSecretString('env', new Secret('["hunter2"]'), 'x')).message).toBe('x is not a JSON object whose values are all strings');
    expect(thrown(() => fromSecretString('env', new Secret('{"A":1234567}'), 'x')).message).toBe('x is not a JSON object whose values are all strings');
    const e = thrown(() => fromSecretString('env', new Secret('{"JWT_PATH":"/hunter2"}'), 'x'));
    expect(e.message).toMatch(/JWT_PATH would shadow/);
    expect(e.message).not.toContain('hunter2');
    expect(thrown(() => fromSecretString('hex64', new Secret(HEX.toUpperCase()), 'x')).message).toBe('x: uppercase hex at byte 4') // 0031fa…: the first letter is at byte 4;
  });

  it('KMS blob plaintext: the bytes themselves, checked for their format', () => {
    expect(fromBlobPlaintext('env', env, 'b').equals(env)).toBe(true);
    const e = thrown(() => fromBlobPlaintext('hex64', new Secret(`${HEX}\n`), 'blobs/473374/engine-jwt/v2.enc'));
    expect(e.message).toBe('blobs/473374/engine-jwt/v2.enc decrypts to a value that is not valid: trailing LF');
    expect(e.message).not.toContain(HEX);
  });
});
