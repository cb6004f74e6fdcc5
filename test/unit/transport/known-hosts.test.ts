import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  appendKnownHost,
  blobKeyType,
  formatKnownHostLine,
  hostFieldMatches,
  knownHostsName,
  knownKeyTypes,
  normaliseFingerprint,
  parseKnownHosts,
  readKnownHostsFiles,
  sha256Fingerprint,
  verifyHostKey,
} from '../../../src/transport/known-hosts.ts';

// Fixtures are made with the real OpenSSH tools on every run: ssh-keygen generates the keys, hashes the
// known_hosts file (-H), prints fingerprints (-lf) and looks hosts up (-F), and our results must agree.

let dir: string;
const keys: Record<'ed' | 'rsa' | 'ecdsa' | 'other', { pub: string; type: string; blob: Buffer; file: string }> = {} as never;

function genKey(name: string, type: string, bits?: number) {
  const file = join(dir, name);
  execFileSync('ssh-keygen', ['-q', '-t', type, ...(bits ? ['-b', String(bits)] : []), '-N', '', '-C', `test-${name}`, '-f', file]);
  const pub = readFileSync(`${file}.pub`, 'utf8').trim();
  const [t, b64] = pub.split(' ');
  return { pub, type: t!, blob: Buffer.from(b64!, 'base64'), file: `${file}.pub` };
}

function keygenFingerprint(file: string): string {
  return execFileSync('ssh-keygen', ['-lf', file], { encoding: 'utf8' }).split(' ')[1]!;
}

/** Line numbers ssh-keygen -F reports for `name` in `file` (its own matcher: our oracle). */
function keygenFind(file: string, name: string): number[] {
  const r = spawnSync('ssh-keygen', ['-F', name, '-f', file], { encoding: 'utf8' });
  return [...r.stdout.matchAll(/found: line (\d+)/g)].map((m) => Number(m[1]));
}

const line = (hosts: string, k: { pub: string }, marker = '') => `${marker ? `${marker} ` : ''}${hosts} ${k.pub.split(' ').slice(0, 2).join(' ')}`;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'krypton-kh-'));
  keys.ed = genKey('ed', 'ed25519');
  keys.rsa = genKey('rsa', 'rsa', 2048);
  keys.ecdsa = genKey('ecdsa', 'ecdsa', 256);
  keys.other = genKey('other', 'ed25519');
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('sha256Fingerprint', () => {
  it('equals ssh-keygen -lf for ed25519, rsa and ecdsa keys', () => {
    for (const k of Object.values(keys)) {
      expect(sha256Fingerprint(k.blob)).toBe(keygenFingerprint(k.file));
      expect(sha256Fingerprint(k.blob)).toMatch(/^SHA256:[A-Za-z0-9+/]{43}$/);
    }
  });

  it('normalises person-written fingerprints', () => {
    const fp = sha256Fingerprint(keys.ed.blob);
    expect(normaliseFingerprint(fp)).toBe(fp);
    expect(normaliseFingerprint(`sha256:${fp.slice(7)}=`)).toBe(fp);
    expect(normaliseFingerprint(`  ${fp}\n`)).toBe(fp);
    expect(normaliseFingerprint('MD5:aa:bb')).toBeUndefined();
    expect(normaliseFingerprint('SHA256:short')).toBeUndefined();
  });

  it('reads the key type from the blob', () => {
    expect(blobKeyType(keys.ed.blob)).toBe('ssh-ed25519');
    expect(blobKeyType(keys.rsa.blob)).toBe('ssh-rsa');
    expect(blobKeyType(keys.ecdsa.blob)).toBe('ecdsa-sha2-nistp256');
    expect(blobKeyType(Buffer.from([0, 0, 0]))).toBeUndefined();
  });
});

describe('parseKnownHosts', () => {
  it('skips comments, blanks, bad base64, type/blob disagreement, SSH-1 lines and unknown markers', () => {
    const text = [
      '# a comment',
      '',
      '   ',
      line('good', keys.ed),
      'bad ssh-ed25519 !!!notbase64',
      `typo ssh-rsa ${keys.ed.pub.split(' ')[1]}`,
      'old1 1024 35 1234567890',
      `@bogus host ${keys.ed.pub.split(' ').slice(0, 2).join(' ')}`,
      line('rev', keys.rsa, '@revoked'),
      line('*.ca', keys.ecdsa, '@cert-authority'),
      `${line('withcomment', keys.ed)} some comment here`,
    ].join('\n');
    const e = parseKnownHosts(text, 'kh');
    expect(e.map((x) => [x.line, x.hostField, x.marker])).toEqual([
      [4, 'good', undefined],
      [9, 'rev', 'revoked'],
      [10, '*.ca', 'cert-authority'],
      [11, 'withcomment', undefined],
    ]);
    expect(e[0]!.file).toBe('kh');
    expect(e[0]!.keyBlob.equals(keys.ed.blob)).toBe(true);
  });

  it('accepts CRLF line endings', () => {
    expect(parseKnownHosts(`${line('a', keys.ed)}\r\n${line('b', keys.rsa)}\r\n`)).toHaveLength(2);
  });
});

describe('host matching agrees with ssh-keygen -F', () => {
  const patterns = [
    'plain.example.com',
    'a.example.com,b.example.com,10.0.0.7',
    '[port.example.com]:2222',
    '*.wild.example.com,!bad.wild.example.com',
    'node-?.fleet',
    '[10.1.*.*]:2200',
    'UPPER.Example.COM',
  ];
  const queries: Array<[string, number]> = [
    ['plain.example.com', 22],
    ['plain.example.com', 2222],
    ['Plain.Example.Com', 22],
    ['b.example.com', 22],
    ['10.0.0.7', 22],
    ['10.0.0.70', 22],
    ['port.example.com', 2222],
    ['port.example.com', 22],
    ['x.wild.example.com', 22],
    ['bad.wild.example.com', 22],
    ['wild.example.com', 22],
    ['node-1.fleet', 22],
    ['node-12.fleet', 22],
    ['10.1.2.3', 2200],
    ['10.1.2.3', 22],
    ['upper.example.com', 22],
  ];

  for (const hashed of [false, true]) {
    it(`${hashed ? 'hashed (ssh-keygen -H)' : 'plain'} entries`, () => {
      const file = join(dir, hashed ? 'kh-hashed' : 'kh-plain');
      writeFileSync(file, `${patterns.map((p) => line(p, keys.ed)).join('\n')}\n`);
      if (hashed) execFileSync('ssh-keygen', ['-H', '-f', file], { stdio: 'ignore' });
      const text = readFileSync(file, 'utf8');
      const entries = parseKnownHosts(text, file);
      if (hashed) {
        // ssh-keygen -H hashes each name of a list into its own line and leaves wildcard lines alone.
        expect(entries.some((e) => e.hostField.startsWith('|1|'))).toBe(true);
      }
      let found = 0;
      for (const [host, port] of queries) {
        const name = knownHostsName(host, port);
        const ours = entries.filter((e) => hostFieldMatches(e.hostField, name)).map((e) => e.line);
        expect({ name, lines: ours }).toEqual({ name, lines: keygenFind(file, name) });
        if (ours.length > 0) found++;
      }
      // the oracle really matched things, not only agreed on "nothing"
      expect(found).toBeGreaterThanOrEqual(9);
    });
  }
});

describe('verifyHostKey', () => {
  it('matches a plain entry and reports which line', () => {
    const e = parseKnownHosts(`${line('other', keys.rsa)}\n${line('h1', keys.ed)}\n`, 'f');
    const v = verifyHostKey(e, 'h1', 22, keys.ed.blob);
    expect(v.status).toBe('match');
    expect(v.status === 'match' && v.entry.line).toBe(2);
  });

  it('uses [host]:port for non-22 ports and the bare name for 22', () => {
    const e = parseKnownHosts(`${line('[h1]:2222', keys.ed)}\n`);
    expect(verifyHostKey(e, 'h1', 2222, keys.ed.blob).status).toBe('match');
    expect(verifyHostKey(e, 'h1', 22, keys.ed.blob).status).toBe('unknown');
    expect(verifyHostKey(e, 'h1', 2223, keys.ed.blob).status).toBe('unknown');
    expect(knownHostsName('H1', 22)).toBe('h1');
    expect(knownHostsName('::1', 2222)).toBe('[::1]:2222');
  });

  it('matches hashed entries (HMAC-SHA1) written by ssh-keygen -H, including [host]:port', () => {
    const file = join(dir, 'kh-h2');
    writeFileSync(file, `${line('hashed.example', keys.ed)}\n${line('[hashed.example]:2022', keys.rsa)}\n`);
    execFileSync('ssh-keygen', ['-H', '-f', file], { stdio: 'ignore' });
    const e = parseKnownHosts(readFileSync(file, 'utf8'), file);
    expect(e.every((x) => x.hostField.startsWith('|1|'))).toBe(true);
    expect(verifyHostKey(e, 'hashed.example', 22, keys.ed.blob).status).toBe('match');
    expect(verifyHostKey(e, 'HASHED.example', 22, keys.ed.blob).status).toBe('match');
    expect(verifyHostKey(e, 'hashed.example', 2022, keys.rsa.blob).status).toBe('match');
    expect(verifyHostKey(e, 'hashed.example', 2022, keys.ed.blob).status).toBe('mismatch');
    expect(verifyHostKey(e, 'other.example', 22, keys.ed.blob).status).toBe('unknown');
  });

  it('reports a changed key as mismatch, listing the same-type entry first', () => {
    const e = parseKnownHosts(`${line('h', keys.rsa)}\n${line('h', keys.ed)}\n`, 'f');
    const v = verifyHostKey(e, 'h', 22, keys.other.blob);
    expect(v.status).toBe('mismatch');
    if (v.status !== 'mismatch') return;
    expect(v.known.map((k) => k.line)).toEqual([2, 1]);
  });

  it('calls a key of an unrecorded type for a known host a mismatch (stricter than OpenSSH)', () => {
    const e = parseKnownHosts(`${line('h', keys.rsa)}\n`);
    expect(verifyHostKey(e, 'h', 22, keys.ed.blob).status).toBe('mismatch');
  });

  it('refuses a @revoked key even when another line matches it', () => {
    const e = parseKnownHosts(`${line('h', keys.ed)}\n${line('h', keys.ed, '@revoked')}\n`, 'f');
    const v = verifyHostKey(e, 'h', 22, keys.ed.blob);
    expect(v.status).toBe('revoked');
    expect(v.status === 'revoked' && v.entry.line).toBe(2);
  });

  it('refuses a @revoked key whatever host patterns the @revoked line has', () => {
    const e = parseKnownHosts(`${line('h', keys.ed)}\n${line('elsewhere', keys.ed, '@revoked')}\n`);
    expect(verifyHostKey(e, 'h', 22, keys.ed.blob).status).toBe('revoked');
    // another key of the same host is unaffected
    const e2 = parseKnownHosts(`${line('h', keys.rsa)}\n${line('h', keys.ed, '@revoked')}\n`);
    expect(verifyHostKey(e2, 'h', 22, keys.rsa.blob).status).toBe('match');
  });

  it('ignores @cert-authority lines for plain host keys', () => {
    const e = parseKnownHosts(`${line('*', keys.ed, '@cert-authority')}\n`);
    expect(verifyHostKey(e, 'h', 22, keys.ed.blob).status).toBe('unknown');
  });

  it('wildcards and negation', () => {
    const e = parseKnownHosts(`${line('*.fleet,!val-9.fleet', keys.ed)}\n${line('node-?', keys.rsa)}\n`);
    expect(verifyHostKey(e, 'val-1.fleet', 22, keys.ed.blob).status).toBe('match');
    expect(verifyHostKey(e, 'val-9.fleet', 22, keys.ed.blob).status).toBe('unknown');
    expect(verifyHostKey(e, 'node-1', 22, keys.rsa.blob).status).toBe('match');
    expect(verifyHostKey(e, 'node-10', 22, keys.rsa.blob).status).toBe('unknown');
    expect(verifyHostKey(e, 'node-1', 22, keys.ed.blob).status).toBe('mismatch');
  });

  it('treats regex metacharacters in patterns literally', () => {
    const e = parseKnownHosts(`${line('a.b', keys.ed)}\n`);
    expect(verifyHostKey(e, 'axb', 22, keys.ed.blob).status).toBe('unknown');
  });

  it('lists known key types for host key algorithm preference', () => {
    const e = parseKnownHosts(`${line('h', keys.rsa)}\n${line('h,x', keys.ecdsa)}\n${line('x', keys.ed)}\n`);
    expect(knownKeyTypes(e, 'h', 22)).toEqual(['ssh-rsa', 'ecdsa-sha2-nistp256']);
  });
});

describe('appendKnownHost / readKnownHostsFiles', () => {
  it('appends a line ssh-keygen can find, creating the file and fixing a missing final newline', async () => {
    const file = join(dir, 'sub', 'known_hosts');
    await appendKnownHost(file, '10.9.8.7', 2222, 'ssh-ed25519', keys.ed.blob);
    expect(statSync(file).mode & 0o777).toBe(0o644);
    writeFileSync(file, readFileSync(file, 'utf8').trimEnd()); // no final newline
    await appendKnownHost(file, 'plainhost', 22, 'ssh-rsa', keys.rsa.blob, { hash: true });
    const text = readFileSync(file, 'utf8');
    expect(text.split('\n')).toHaveLength(3);
    expect(keygenFind(file, '[10.9.8.7]:2222')).toEqual([1]);
    expect(keygenFind(file, 'plainhost')).toEqual([2]);
    expect(text).not.toContain('plainhost');
    const e = await readKnownHostsFiles([join(dir, 'missing'), file]);
    expect(verifyHostKey(e, '10.9.8.7', 2222, keys.ed.blob).status).toBe('match');
    expect(verifyHostKey(e, 'plainhost', 22, keys.rsa.blob).status).toBe('match');
  });

  it('formats a plain line like ssh-keyscan does', () => {
    expect(formatKnownHostLine('H', 22, 'ssh-ed25519', keys.ed.blob)).toBe(`h ${keys.ed.pub.split(' ').slice(0, 2).join(' ')}`);
  });
});
