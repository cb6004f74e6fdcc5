import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { commandLine, shellQuote } from '../../../src/core/transport.ts';

// What the remote side does with an exec request is `$SHELL -c "<command line>"`; here the local POSIX
// shells stand in for it. Every argv element must come back byte for byte, and nothing may be expanded.

const NASTY = [
  '',
  ' ',
  'plain',
  'two words',
  "it's",
  "''",
  '"double"',
  '$(touch PWNED)',
  '`touch PWNED`',
  '${HOME}',
  '$HOME',
  'a\nb\nc',
  '\n',
  '*',
  '?',
  '[a-z]*',
  '~',
  '~root',
  '-n',
  '--',
  'a;b|c&d',
  '&& touch PWNED',
  'x > PWNED',
  '\\',
  '\\n',
  'tab\there',
  '!event',
  '#notacomment',
  'ünïcødé ✓',
  "mix 'single' \"double\" $(x) `y` * \\ \n end",
];

const shells = ['/bin/sh', '/bin/bash', '/bin/dash'].filter((s) => existsSync(s));
let dir: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'krypton-quote-'));
  // Files a glob could expand to, if quoting failed.
  writeFileSync(join(dir, 'a-file'), '');
  writeFileSync(join(dir, 'b-file'), '');
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function run(shell: string, line: string, cwd = dir) {
  return spawnSync(shell, ['-c', line], { cwd, encoding: 'utf8', env: { PATH: process.env.PATH, HOME: '/nonexistent-home' } });
}

describe('shellQuote', () => {
  it('leaves safe words bare and single-quotes the rest', () => {
    expect(shellQuote('abc-1.2_x/y:z@h%+=,')).toBe('abc-1.2_x/y:z@h%+=,');
    expect(shellQuote('')).toBe("''");
    expect(shellQuote("it's")).toBe(`'it'\\''s'`);
    expect(shellQuote('a b')).toBe("'a b'");
  });
});

describe.each(shells)('commandLine round trip through %s -c', (shell) => {
  it('returns every argv element unchanged and expands nothing', () => {
    const r = run(shell, commandLine(['printf', '%s\\0', ...NASTY]));
    expect(r.status).toBe(0);
    const got = r.stdout.split('\0').slice(0, -1);
    expect(got).toEqual(NASTY);
    expect(existsSync(join(dir, 'PWNED'))).toBe(false);
  });

  it('each element is exactly one argument', () => {
    for (const a of NASTY) {
      const r = run(shell, `${commandLine(['sh', '-c', 'printf "%s|" "$#"', 'argv0', a])}`);
      expect(r.stdout).toBe('1|');
    }
  });

  it('cd -- <cwd> handles nasty directory names, including a leading dash', () => {
    for (const name of ['-dash', 'sp ace', "quo'te", '$(touch PWNED)', 'new\nline', '*']) {
      const d = join(dir, name);
      mkdirSync(d, { recursive: true });
      const r = run(shell, commandLine(['pwd'], d), '/');
      expect(r.stdout).toBe(`${d}\n`);
    }
    expect(existsSync(join(dir, 'PWNED'))).toBe(false);
  });

  it('a failed cd does not run the command', () => {
    const r = run(shell, commandLine(['touch', join(dir, 'PWNED')], join(dir, 'missing dir')));
    expect(r.status).not.toBe(0);
    expect(existsSync(join(dir, 'PWNED'))).toBe(false);
  });
});
