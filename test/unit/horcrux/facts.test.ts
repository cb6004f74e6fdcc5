import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { sha256Hex } from '../../../src/core/secret.ts';
import { dirState, homeState, horcruxProcess, parseDirState, parseHomeState, parseHorcruxProcess } from '../../../src/facts/dir.ts';
import { parseAgentState } from '../../../src/facts/secrets.ts';

const root = mkdtempSync(join(tmpdir(), 'ks facts '));
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** Runs a fact's script with sh on this machine (as the executor does, in a subshell) and returns stdout. */
function runScript(script: string): string {
  return execFileSync('sh', ['-c', `( ${script}\n) </dev/null 2>/dev/null`], { encoding: 'utf8' });
}

/**
 * A cosigner's facts (src/facts/dir.ts, src/facts/secrets.ts), their scripts run with sh on this machine: the key dir
 * (dirState — the same fact mount.tmpfs reads for every tmpfs dir), the Horcrux home, the agent and the process.
 */
describe('key dir fact (dirState)', () => {
  it('lists every entry (files with mode, owner and SHA-256; dirs, links, dotfiles) without their content', () => {
    const d = join(root, 'keys');
    mkdirSync(d, { mode: 0o700 });
    chmodSync(d, 0o700);
    writeFileSync(join(d, 'ecies_keys.json'), 'ECIES-CONTENT', { mode: 0o600 });
    writeFileSync(join(d, '473374_shard.json'), 'SHARD-CONTENT', { mode: 0o644 });
    chmodSync(join(d, '473374_shard.json'), 0o644);
    writeFileSync(join(d, '.hidden file'), 'x');
    mkdirSync(join(d, 'sub'));
    symlinkSync('/etc/hostname', join(d, 'link'));
    const out = runScript(dirState(d).script);
    expect(out).not.toContain('CONTENT');
    const f = parseDirState(out);
    expect(f.mount).toBeUndefined();
    expect(f).toMatchObject({ exists: true, mode: '0700' });
    const byName = Object.fromEntries(f.entries.map((e) => [e.name, e]));
    expect(Object.keys(byName).sort()).toEqual(['.hidden file', '473374_shard.json', 'ecies_keys.json', 'link', 'sub']);
    expect(byName['ecies_keys.json']).toMatchObject({ type: 'file', mode: '0600', sizeBytes: 13, sha256: sha256Hex('ECIES-CONTENT') });
    expect(byName['473374_shard.json']).toMatchObject({ mode: '0644', sha256: sha256Hex('SHARD-CONTENT') });
    expect(byName['sub']?.type).toBe('dir');
    expect(byName['link']?.type).toBe('link');
    expect(byName['link']?.sha256).toBeUndefined();
  });

  it('an absent dir, and a tmpfs mount line as findmnt prints it', () => {
    expect(parseDirState(runScript(dirState(join(root, 'nope')).script))).toEqual({ exists: false, entries: [] });
    const f = parseDirState('@mount tmpfs rw,nosuid,nodev,noexec,relatime,size=1024k,mode=700,noswap\n@dir 700 root root\n');
    expect(f).toEqual({ mount: { fsType: 'tmpfs', options: ['rw', 'nosuid', 'nodev', 'noexec', 'relatime', 'size=1024k', 'mode=700', 'noswap'], sizeBytes: 1048576 }, exists: true, mode: '0700', owner: 'root', group: 'root', entries: [] });
  });
});

describe('home fact', () => {
  it('state/ present on this disk, config.yaml with digest', () => {
    const home = join(root, 'home');
    mkdirSync(join(home, 'state'), { recursive: true, mode: 0o700 });
    writeFileSync(join(home, 'config.yaml'), 'keyDir: x\n', { mode: 0o600 });
    const f = parseHomeState(runScript(homeState({ stateDir: join(home, 'state'), configFile: join(home, 'config.yaml') }).script));
    expect(f).toMatchObject({ state: 'dir', stateMode: '0700', config: { exists: true, mode: '0600', sha256: sha256Hex('keyDir: x\n') } });
    expect(f.stateFsType).not.toBe('');
  });

  it('state/ absent: the filesystem of its nearest existing parent', () => {
    const f = parseHomeState(runScript(homeState({ stateDir: join(root, 'a', 'b', 'state'), configFile: join(root, 'a', 'config.yaml') }).script));
    expect(f.state).toBe('absent');
    expect(f.config).toEqual({ exists: false });
    expect(f.stateFsType).toBe(execFileSync('findmnt', ['-n', '-o', 'FSTYPE', '-T', root], { encoding: 'utf8' }).trim().split('\n').at(-1));
    expect(parseHomeState('@state absent\n@fs tmpfs\n@config absent\n').stateFsType).toBe('tmpfs');
  });
});

describe('agent and process facts', () => {
  it('parses a running agent and a stopped one (one agent fact for nodes and cosigners: the latest of the config and template mtimes)', () => {
    expect(parseAgentState('@agent running 4242 1732950100.500000000\n@sink yes\n@secret_id no\n@leftovers 0\n@mtime 1732949900.25\n@mtime 1732949901.5\n')).toEqual({
      running: true,
      pid: 4242,
      startedAt: 1732950100.5,
      tokenSink: true,
      secretIdFile: false,
      leftoverTempFiles: 0,
      configMtime: 1732949901.5,
    });
    expect(parseAgentState('@agent stopped\n@sink no\n@secret_id yes\n@leftovers 1\n')).toEqual({ running: false, tokenSink: false, secretIdFile: true, leftoverTempFiles: 1 });
  });

  it('runs the status command with quoted argv and reports its exit status', () => {
    expect(parseHorcruxProcess(runScript(horcruxProcess(['sh', '-c', 'exit 0']).script))).toEqual({ running: true, statusExit: 0 });
    expect(parseHorcruxProcess(runScript(horcruxProcess(['sh', '-c', 'exit 3']).script))).toEqual({ running: false, statusExit: 3 });
    expect(parseHorcruxProcess(runScript(horcruxProcess(['no such command; touch /tmp/pwned']).script))).toEqual({ running: false, statusExit: 127 });
  });
});
