/**
 * The one host-side fetch script (src/model/host-fetch.ts), run here for real with this machine's `sh` (dash on
 * Debian, as on the hosts) on a real tmpfs (/dev/shm, no root needed) against a fake aws CLI: a small script
 * that prints a canned stdout the way `/usr/bin/aws … --output text` does (value + one newline) or fails the way
 * it does. The real /usr/bin/aws against moto runs in test/integration/store.int.test.ts.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderEnvFile } from '../../../src/model/formats.ts';
import {
  FETCH_EXIT,
  FETCH_SCRIPT,
  HOST_AWS_CLI,
  describeFetchExit,
  fetchArgv,
  fetchDecode,
  fetchScriptArgs,
  kmsDecryptArgs,
  smGetArgs,
  type FetchSpec,
} from '../../../src/model/host-fetch.ts';

const sha256 = (b: string | Buffer) => createHash('sha256').update(b).digest('hex');
const fsType = (dir: string) => spawnSync('stat', ['-f', '-c', '%T', dir], { encoding: 'utf8' }).stdout.trim();
const HEX = 'c0ffee'.repeat(10) + 'abcd';
const TARGET = { region: 'eu-west-1', endpointUrl: 'http://198.18.0.1:5000' };

describe('argv builders', () => {
  it('kms decrypt / secretsmanager get-secret-value with --region, --endpoint-url, text output', () => {
    expect(kmsDecryptArgs('/opt/krypton/secrets/jwt.hex.enc', { purpose: 'krypton-engine-jwt', network: '473374' }, TARGET)).toEqual([
      'kms', 'decrypt', '--ciphertext-blob', 'fileb:///opt/krypton/secrets/jwt.hex.enc',
      '--encryption-context', '{"purpose":"krypton-engine-jwt","network":"473374"}',
      '--region', 'eu-west-1', '--endpoint-url', 'http://198.18.0.1:5000', '--query', 'Plaintext', '--output', 'text',
    ]);
    expect(smGetArgs('krypton/473374/env', { region: 'eu-west-1' }, 'krypton-secret-env-v0000000000002')).toEqual([
      'secretsmanager', 'get-secret-value', '--secret-id', 'krypton/473374/env', '--version-id', 'krypton-secret-env-v0000000000002',
      '--region', 'eu-west-1', '--query', 'SecretString', '--output', 'text',
    ]);
  });

  it('fetchArgv is `sh -c FETCH_SCRIPT sh <out> <mode> <owner> <group> <sha256> <decode> <format> /usr/bin/aws …`', () => {
    const spec: FetchSpec = { out: '/run/krypton-secrets/jwt.hex', mode: '0600', sha256: 'ab'.repeat(32), decode: 'base64', format: 'hex64', awsArgs: ['kms', 'decrypt'] };
    expect(fetchScriptArgs(spec)).toEqual(['/run/krypton-secrets/jwt.hex', '0600', '', '', 'ab'.repeat(32), 'base64', 'hex64', HOST_AWS_CLI, 'kms', 'decrypt']);
    expect(fetchArgv(spec)).toEqual(['sh', '-c', FETCH_SCRIPT, 'sh', ...fetchScriptArgs(spec)]);
    expect(HOST_AWS_CLI).toBe('/usr/bin/aws');
  });

  it('decode per backend and format', () => {
    expect(fetchDecode('kms', 'hex64')).toBe('base64');
    expect(fetchDecode('kms', 'env')).toBe('base64');
    expect(fetchDecode('kms', 'json')).toBe('base64');
    expect(fetchDecode('secrets-manager', 'hex64')).toBe('text');
    expect(fetchDecode('secrets-manager', 'json')).toBe('text');
    expect(fetchDecode('secrets-manager', 'env')).toBe('env-json');
  });

  it('every exit code has words; the script is valid POSIX sh (dash -n)', () => {
    for (const code of Object.values(FETCH_EXIT)) expect(describeFetchExit(code)).toBeTruthy();
    expect(new Set(Object.values(FETCH_EXIT)).size).toBe(Object.values(FETCH_EXIT).length);
    const r = spawnSync('sh', ['-n', '-c', FETCH_SCRIPT], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
  });
});

describe.skipIf(process.platform !== 'linux')('FETCH_SCRIPT on a real tmpfs (/dev/shm) with a fake aws CLI', () => {
  let shm: string; // a fresh dir on /dev/shm (tmpfs)
  let work: string; // fake aws and its canned output, on the ordinary temp dir
  let disk: string; // a dir that is not a tmpfs
  let fakeAws: string;

  beforeAll(() => {
    expect(fsType('/dev/shm'), '/dev/shm must be a tmpfs on Linux (it is on every systemd/Debian machine)').toBe('tmpfs');
    shm = mkdtempSync('/dev/shm/krypton-fetch-test-');
    chmodSync(shm, 0o700);
    work = mkdtempSync(join(tmpdir(), 'krypton-fetch-aws-'));
    const diskCandidates = [tmpdir(), process.cwd()];
    const base = diskCandidates.find((d) => fsType(d) !== 'tmpfs');
    disk = base ? mkdtempSync(join(base, '.krypton-fetch-disk-')) : '';
    fakeAws = join(work, 'aws');
    // Prints $FAKE_AWS_OUT's bytes plus one newline (as `--output text` does), records its argv; or fails like the CLI.
    writeFileSync(
      fakeAws,
      [
        '#!/bin/sh',
        'printf "%s\\n" "$*" >> "$FAKE_AWS_ARGV"',
        'if [ -n "${FAKE_AWS_FAIL:-}" ]; then echo "$FAKE_AWS_FAIL" >&2; exit 254; fi',
        'cat -- "$FAKE_AWS_OUT"; echo',
        '',
      ].join('\n'),
      { mode: 0o755 },
    );
  });
  afterAll(() => {
    for (const d of [shm, work, disk]) if (d) rmSync(d, { recursive: true, force: true });
  });

  let n = 0;
  function run(spec: Omit<FetchSpec, 'awsArgs'> & { awsArgs?: string[] }, stdout: string | Buffer, o: { fail?: string; path?: string } = {}) {
    const outFile = join(work, `out-${++n}`);
    const argvFile = join(work, `argv-${n}`);
    writeFileSync(outFile, stdout);
    const args = fetchScriptArgs({ awsArgs: ['kms', 'decrypt', '--ciphertext-blob', 'fileb:///x.enc'], ...spec }).map((a) => (a === HOST_AWS_CLI ? fakeAws : a));
    const r = spawnSync('/bin/sh', ['-c', FETCH_SCRIPT, 'sh', ...args], {
      encoding: 'utf8',
      env: { PATH: o.path ?? '/usr/local/bin:/usr/bin:/bin', FAKE_AWS_OUT: outFile, FAKE_AWS_ARGV: argvFile, ...(o.fail ? { FAKE_AWS_FAIL: o.fail } : {}) },
    });
    return { code: r.status, stderr: r.stderr, stdout: r.stdout, argv: existsSync(argvFile) ? readFileSync(argvFile, 'utf8') : '' };
  }
  const leftovers = (dir: string) => readdirSync(dir).filter((f) => f.includes('krypton-fetch'));
  const b64 = (s: string | Buffer) => Buffer.from(s).toString('base64');

  it('hex64 (KMS, base64): writes exactly the 64 hex characters, mode as asked, via a temp file that is gone afterwards', () => {
    const out = join(shm, 'jwt.hex');
    const r = run({ out, mode: '0640', sha256: sha256(HEX), decode: 'base64', format: 'hex64' }, b64(HEX));
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(readFileSync(out, 'utf8')).toBe(HEX);
    expect((statSync(out).mode & 0o777).toString(8)).toBe('640');
    expect(leftovers(shm)).toEqual([]);
    expect(r.argv).not.toContain(HEX);
    expect(r.argv).not.toContain(b64(HEX));
  });

  it('hex64 with an empty pin (boot) accepts any valid value; Secrets Manager text decode too', () => {
    const out = join(shm, 'jwt-sm.hex');
    const r = run({ out, mode: '0600', sha256: '', decode: 'text', format: 'hex64', awsArgs: ['secretsmanager', 'get-secret-value'] }, HEX);
    expect(r.code).toBe(0);
    expect(readFileSync(out, 'utf8')).toBe(HEX);
    expect((statSync(out).mode & 0o777).toString(8)).toBe('600');
  });

  it('a wrong SHA-256 exits `fingerprint`, writes nothing and leaves the old file as it was', () => {
    const out = join(shm, 'pinned.hex');
    writeFileSync(out, 'old', { mode: 0o600 });
    const r = run({ out, mode: '0600', sha256: sha256('something else'), decode: 'base64', format: 'hex64' }, b64(HEX));
    expect(r.code).toBe(FETCH_EXIT.fingerprint);
    expect(r.stderr).toMatch(/SHA-256 is not the expected/);
    expect(readFileSync(out, 'utf8')).toBe('old');
    expect(leftovers(shm)).toEqual([]);
    expect(r.stderr).not.toContain(HEX);
  });

  it('a value that is not canonical hex64 (0x, uppercase, newline, short) exits `badValue` and writes nothing', () => {
    for (const bad of [`0x${HEX}`, HEX.toUpperCase(), `${HEX}\n`, `${HEX}\r\n`, HEX.slice(2)]) {
      const out = join(shm, 'bad.hex');
      const r = run({ out, mode: '0600', sha256: '', decode: 'base64', format: 'hex64' }, b64(bad));
      expect(r.code, JSON.stringify(bad.length)).toBe(FETCH_EXIT.badValue);
      expect(existsSync(out)).toBe(false);
      expect(r.stderr).not.toContain(HEX.slice(0, 16));
      expect(r.stderr).not.toContain(HEX.toUpperCase().slice(0, 16));
    }
    const notB64 = run({ out: join(shm, 'bad2.hex'), mode: '0600', sha256: '', decode: 'base64', format: 'hex64' }, '%%% not base64 %%%');
    expect(notB64.code).toBe(FETCH_EXIT.badValue);
    expect(notB64.stderr).toMatch(/not base64/);
    expect(leftovers(shm)).toEqual([]);
  });

  it('env-json (Secrets Manager): python3 renders exactly renderEnvFile (sorted, quotes escaped, UTF-8)', () => {
    const vars = { ZED: 'last', API_KEY: "it's = #not a comment", _under: '', PASSWORD: 'pä$$wörd`x`', B2: 'a\\b' };
    const expected = renderEnvFile(vars, 'test').reveal();
    const out = join(shm, 'node.env');
    const secretString = JSON.stringify(vars);
    const r = run({ out, mode: '0600', sha256: sha256(expected), decode: 'env-json', format: 'env', awsArgs: ['secretsmanager', 'get-secret-value'] }, secretString);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(readFileSync(out)).toEqual(expected);
    expect(readFileSync(out, 'utf8')).toBe(`API_KEY='it\\'s = #not a comment'\nB2='a\\b'\nPASSWORD='pä$$wörd\`x\`'\nZED='last'\n_under=''\n`);
    // an empty object is an empty env file
    const empty = run({ out: join(shm, 'empty.env'), mode: '0600', sha256: sha256(''), decode: 'env-json', format: 'env' }, '{}');
    expect(empty.code).toBe(0);
    expect(readFileSync(join(shm, 'empty.env'), 'utf8')).toBe('');
  });

  it('env-json refuses what renderEnvFile refuses (bad name, JWT_PATH, line break, not an object of strings), without the value', () => {
    const VALUE = 'hunter2-very-secret-value';
    const cases: [unknown, RegExp][] = [
      [{ 'BAD NAME': VALUE }, /not a variable name/],
      [{ JWT_PATH: VALUE }, /JWT_PATH/],
      [{ OK: `${VALUE}\nX=1` }, /OK: the value cannot go/],
      [{ OK: `${VALUE}\\` }, /OK: the value cannot go/],
      [{ OK: 1 }, /values are all strings/],
      [[VALUE], /values are all strings/],
    ];
    for (const [obj, msg] of cases) {
      const out = join(shm, 'refused.env');
      const r = run({ out, mode: '0600', sha256: '', decode: 'env-json', format: 'env' }, JSON.stringify(obj));
      expect(r.code, JSON.stringify(obj)).toBe(FETCH_EXIT.badValue);
      expect(r.stderr).toMatch(msg);
      expect(r.stderr).not.toContain(VALUE);
      expect(existsSync(out)).toBe(false);
    }
    const notJson = run({ out: join(shm, 'x.env'), mode: '0600', sha256: '', decode: 'env-json', format: 'env' }, `{"A": "${VALUE}`);
    expect(notJson.code).toBe(FETCH_EXIT.badValue);
    expect(notJson.stderr).not.toContain(VALUE);
    const badUtf8 = run({ out: join(shm, 'y.env'), mode: '0600', sha256: '', decode: 'env-json', format: 'env' }, Buffer.from([0x7b, 0x22, 0x41, 0x22, 0x3a, 0x22, 0xff, 0xfe, 0x22, 0x7d]));
    expect(badUtf8.code).toBe(FETCH_EXIT.badValue);
    expect(badUtf8.stderr).not.toMatch(/0xff|position/);
    expect(leftovers(shm)).toEqual([]);
  });

  it('env (KMS blob of the env file): canonical lines pass; CR, a missing final newline, a stray line or JWT_PATH do not', () => {
    const good = renderEnvFile({ A: 'x', B: "y'z" }, 't').revealText();
    expect(run({ out: join(shm, 'k.env'), mode: '0600', sha256: sha256(good), decode: 'base64', format: 'env' }, b64(good)).code).toBe(0);
    expect(readFileSync(join(shm, 'k.env'), 'utf8')).toBe(good);
    for (const bad of ["A='x'\r\n", "A='x'", "A='x'\nexport B=1\n", "JWT_PATH='/x'\n", "A='x\u0000'\n"]) {
      const r = run({ out: join(shm, 'kb.env'), mode: '0600', sha256: '', decode: 'base64', format: 'env' }, b64(bad));
      expect(r.code, JSON.stringify(bad)).toBe(FETCH_EXIT.badValue);
      expect(existsSync(join(shm, 'kb.env'))).toBe(false);
    }
  });

  it('json (a Horcrux key file via Secrets Manager text): trailing newlines are kept byte for byte', () => {
    const file = '{\n  "key": "AAAA",\n  "id": 1\n}\n\n';
    const out = join(shm, 'ecies_keys.json');
    const r = run({ out, mode: '0600', sha256: sha256(file), decode: 'text', format: 'json' }, file);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(readFileSync(out, 'utf8')).toBe(file);
    const empty = run({ out: join(shm, 'e.json'), mode: '0600', sha256: '', decode: 'text', format: 'json' }, '');
    expect(empty.code).toBe(FETCH_EXIT.badValue);
  });

  it('a target dir that is not a tmpfs exits `notTmpfs` before calling the aws CLI', () => {
    expect(disk, 'needs a temp dir or checkout that is not a tmpfs').not.toBe('');
    const out = join(disk, 'jwt.hex');
    const r = run({ out, mode: '0600', sha256: '', decode: 'base64', format: 'hex64' }, b64(HEX));
    expect(r.code).toBe(FETCH_EXIT.notTmpfs);
    expect(r.stderr).toMatch(/is not a tmpfs/);
    expect(r.argv).toBe('');
    expect(existsSync(out)).toBe(false);
    expect(readdirSync(disk)).toEqual([]);
    const missing = run({ out: '/nonexistent-krypton-dir/jwt.hex', mode: '0600', sha256: '', decode: 'base64', format: 'hex64' }, b64(HEX));
    expect(missing.code).toBe(FETCH_EXIT.notTmpfs);
    expect(missing.stderr).toMatch(/\(missing\)/);
  });

  it('the aws CLI failing exits `aws` with its stderr passed through, and nothing written', () => {
    const out = join(shm, 'denied.hex');
    const msg = 'An error occurred (AccessDeniedException) when calling the Decrypt operation: User: arn:aws:iam::123456789012:user/x is not authorized to perform: kms:Decrypt';
    const r = run({ out, mode: '0600', sha256: '', decode: 'base64', format: 'hex64' }, '', { fail: msg });
    expect(r.code).toBe(FETCH_EXIT.aws);
    expect(r.stderr).toContain(msg);
    expect(existsSync(out)).toBe(false);
    expect(leftovers(shm)).toEqual([]);
  });

  it('a symlink or directory at the target exits `target`', () => {
    const link = join(shm, 'link.hex');
    symlinkSync(join(shm, 'elsewhere'), link);
    expect(run({ out: link, mode: '0600', sha256: '', decode: 'base64', format: 'hex64' }, b64(HEX)).code).toBe(FETCH_EXIT.target);
    expect(lstatSync(link).isSymbolicLink()).toBe(true);
    mkdirSync(join(shm, 'adir'));
    expect(run({ out: join(shm, 'adir'), mode: '0600', sha256: '', decode: 'base64', format: 'hex64' }, b64(HEX)).code).toBe(FETCH_EXIT.target);
  });

  it('env-json without python3 on PATH exits `noPython` before calling the aws CLI', () => {
    const bin = join(work, 'bin-no-python');
    mkdirSync(bin);
    for (const tool of ['stat', 'mktemp', 'rm', 'base64', 'sha256sum', 'cut', 'wc', 'grep', 'tr', 'tail', 'chmod', 'chown', 'mv', 'cat']) {
      const real = spawnSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' }).stdout.trim();
      if (real) symlinkSync(real, join(bin, tool));
    }
    const r = run({ out: join(shm, 'np.env'), mode: '0600', sha256: '', decode: 'env-json', format: 'env' }, '{"A":"b"}', { path: bin });
    expect(r.code).toBe(FETCH_EXIT.noPython);
    expect(r.stderr).toMatch(/python3 is missing/);
    expect(r.argv).toBe('');
    // the other decodes do not need it
    expect(run({ out: join(shm, 'np.hex'), mode: '0600', sha256: '', decode: 'base64', format: 'hex64' }, b64(HEX), { path: bin }).code).toBe(0);
  });

  it('its temp file is named like the other upload temp files (`.*.krypton-*.tmp`), 0600, in the target dir', () => {
    const out = join(shm, 'slow.hex');
    // an aws CLI that reports where the temp file is while it runs
    const probe = join(work, 'aws-probe');
    writeFileSync(probe, '#!/bin/sh\nfor f in "$DIR"/.*.krypton-*.tmp; do stat -c "%a %n" "$f" >&2; done\ncat -- "$FAKE_AWS_OUT"; echo\n', { mode: 0o755 });
    writeFileSync(join(work, 'probe-out'), b64(HEX));
    const args = fetchScriptArgs({ out, mode: '0600', sha256: '', decode: 'base64', format: 'hex64', awsArgs: [] }).map((a) => (a === HOST_AWS_CLI ? probe : a));
    const r = spawnSync('/bin/sh', ['-c', FETCH_SCRIPT, 'sh', ...args], { encoding: 'utf8', env: { PATH: '/usr/bin:/bin', DIR: shm, FAKE_AWS_OUT: join(work, 'probe-out') } });
    expect(r.status).toBe(0);
    expect(r.stderr).toMatch(new RegExp(`^600 ${shm}/\\.slow\\.hex\\.krypton-fetch-[A-Za-z0-9]{10}\\.tmp$`, 'm'));
    expect(leftovers(shm)).toEqual([]);
  });

  it('wrong arguments exit `usage`', () => {
    const r = spawnSync('sh', ['-c', FETCH_SCRIPT, 'sh', join(shm, 'x'), '0600'], { encoding: 'utf8' });
    expect(r.status).toBe(FETCH_EXIT.usage);
    expect(run({ out: 'relative/path', mode: '0600', sha256: '', decode: 'base64', format: 'hex64' }, b64(HEX)).code).toBe(FETCH_EXIT.usage);
    expect(run({ out: join(shm, 'u'), mode: '0600', sha256: '', decode: 'rot13' as 'text', format: 'hex64' }, HEX).code).toBe(FETCH_EXIT.usage);
  });

  it.runIf(process.getuid?.() === 0)('as root: chown to owner:group before the rename', () => {
    const out = join(shm, 'owned.hex');
    const r = run({ out, mode: '0640', owner: 'nobody', group: 'nogroup', sha256: sha256(HEX), decode: 'base64', format: 'hex64' }, b64(HEX));
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const id = (flag: string, name: string) => Number(spawnSync('id', [flag, name], { encoding: 'utf8' }).stdout.trim());
    expect(statSync(out).uid).toBe(id('-u', 'nobody'));
  });
});
