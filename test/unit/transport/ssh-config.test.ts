import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { KryptonError } from '../../../src/core/errors.ts';
import { currentUser, loadSshConfig, lookupSshConfig, parseProxyJump, parseSshConfig } from '../../../src/transport/ssh-config.ts';
import { resolveTarget } from '../../../src/transport/ssh.ts';

let home: string;
const env = { SSH_AUTH_SOCK: '/tmp/agent.sock', KEYDIR: '/keys' };

function writeConfig(text: string, rel = '.ssh/config'): string {
  const f = join(home, rel);
  mkdirSync(join(f, '..'), { recursive: true });
  writeFileSync(f, text);
  return f;
}

async function lookup(text: string, host: string, opts: { user?: string; port?: number } = {}) {
  const file = writeConfig(text);
  const loaded = await loadSshConfig(file, { home, env });
  return lookupSshConfig(loaded.config, host, { ...opts, home, env, localUser: 'alice' });
}

beforeEach(() => {
  home = mkdtempSync(join(tmpdir(), 'krypton-sshcfg-'));
});
afterEach(() => rmSync(home, { recursive: true, force: true }));

describe('lookupSshConfig', () => {
  it('takes the first value obtained, accumulates IdentityFile, expands ~ and tokens', async () => {
    const s = await lookup(
      `
Host val-*
  HostName %h.fleet.example
  User ops
  Port 2222
  IdentityFile ~/.ssh/fleet_ed25519
  UserKnownHostsFile ~/.ssh/kh_%h_%p_%r %d/.ssh/second

Host *
  User nobody
  Port 22
  IdentityFile %d/.ssh/id_%u
  IdentityFile \${KEYDIR}/extra
`,
      'val-1',
    );
    expect(s.hostName).toBe('val-1.fleet.example');
    expect(s.user).toBe('ops');
    expect(s.port).toBe(2222);
    expect(s.identityFiles).toEqual([join(home, '.ssh/fleet_ed25519'), join(home, '.ssh/id_alice'), '/keys/extra']);
    expect(s.userKnownHostsFiles).toEqual([join(home, '.ssh/kh_val-1.fleet.example_2222_ops'), join(home, '.ssh/second')]);
  });

  it('is case-insensitive about keywords and host names', async () => {
    const s = await lookup('Host Bastion\n  hostname 10.0.0.1\n  USER jump\n  port 2200\n', 'BASTION');
    expect(s).toMatchObject({ hostName: '10.0.0.1', user: 'jump', port: 2200 });
  });

  it('returns nothing for a host no block matches', async () => {
    const s = await lookup('Host other\n  User x\n', 'val-1');
    expect(s).toEqual({ identityFiles: [] });
  });

  it('never executes Match exec (the block does not apply)', async () => {
    const marker = join(home, 'executed');
    const s = await lookup(`Match exec "touch ${marker}"\n  User pwned\nHost *\n  User fine\n`, 'h');
    expect(existsSync(marker)).toBe(false);
    expect(s.user).toBe('fine');
  });

  it('honours Match host / user / all', async () => {
    const text = 'Match user deploy host 10.0.*\n  Port 2022\nMatch all\n  IdentityFile ~/k\n';
    expect((await lookup(text, '10.0.0.5', { user: 'deploy' })).port).toBe(2022);
    expect((await lookup(text, '10.0.0.5', { user: 'other' })).port).toBeUndefined();
    expect((await lookup(text, '10.0.0.5')).identityFiles).toEqual([join(home, 'k')]);
  });

  it('parses ProxyJump lists and none; reports ProxyCommand', async () => {
    expect((await lookup('Host a\n  ProxyJump ops@bastion:2200,inner\n', 'a')).proxyJump).toEqual([
      { user: 'ops', host: 'bastion', port: 2200 },
      { host: 'inner' },
    ]);
    expect((await lookup('Host a\n  ProxyJump none\nHost *\n  ProxyJump b\n', 'a')).proxyJump).toEqual([]);
    expect((await lookup('Host a\n  ProxyCommand ssh -W %h:%p gw\n', 'a')).proxyCommand).toBe('ssh -W %h:%p gw');
  });

  it('reads connect/keepalive/agent/known-hosts options and ignores StrictHostKeyChecking', async () => {
    const s = await lookup(
      'Host a\n  ConnectTimeout 7\n  ServerAliveInterval 30\n  ServerAliveCountMax 5\n  IdentityAgent ~/agent.sock\n  HashKnownHosts yes\n  HostKeyAlias a-alias\n  StrictHostKeyChecking no\n  GlobalKnownHostsFile none\n',
      'a',
    );
    expect(s).toMatchObject({
      connectTimeoutSeconds: 7,
      serverAliveIntervalSeconds: 30,
      serverAliveCountMax: 5,
      identityAgent: join(home, 'agent.sock'),
      hashKnownHosts: true,
      hostKeyAlias: 'a-alias',
      globalKnownHostsFiles: [],
    });
    expect(JSON.stringify(s)).not.toMatch(/strict/i);
  });

  it('rejects malformed values with E_INVENTORY', async () => {
    await expect(lookup('Host a\n  Port abc\n', 'a')).rejects.toMatchObject({ code: 'E_INVENTORY' });
    await expect(lookup('Host a\n  IdentityFile ~/%Z\n', 'a')).rejects.toMatchObject({ code: 'E_INVENTORY' });
    await expect(lookup('Host a\n  IdentityFile ${NOPE}/k\n', 'a')).rejects.toThrow(/NOPE/);
    expect(() => parseSshConfig('Host "unterminated\n')).toThrow(KryptonError);
  });

  it('drops CanonicalizeHostName (the library would spawn nslookup)', async () => {
    const s = await lookup('Host a\n  CanonicalizeHostName yes\n  CanonicalDomains example.com\n  User u\n', 'a');
    expect(s.user).toBe('u');
  });
});

describe('loadSshConfig Include', () => {
  it('expands globs relative to ~/.ssh in place (an included value comes first)', async () => {
    writeConfig('Host a\n  User from-include\n', '.ssh/config.d/10-a.conf');
    writeConfig('Host b\n  User b-include\n', '.ssh/config.d/20-b.conf');
    writeConfig('Host *\n  User hidden\n', '.ssh/config.d/.hidden');
    const file = writeConfig('Include config.d/*.conf\nHost a\n  User main\n  Port 2200\nHost *\n  User star\n');
    const loaded = await loadSshConfig(file, { home });
    expect(loaded.files).toHaveLength(3);
    const a = lookupSshConfig(loaded.config, 'a', { home });
    expect(a.user).toBe('from-include');
    expect(a.port).toBe(2200);
    expect(lookupSshConfig(loaded.config, 'b', { home }).user).toBe('b-include');
    expect(lookupSshConfig(loaded.config, 'c', { home }).user).toBe('star');
  });

  it('Include inside Host * keeps its blocks; inside a specific Host they are dropped with a warning', async () => {
    writeConfig('Port 2022\nHost inner\n  User inner-user\n', '.ssh/inc');
    let loaded = await loadSshConfig(writeConfig('Host *\n  Include inc\n'), { home });
    expect(lookupSshConfig(loaded.config, 'inner', { home })).toMatchObject({ port: 2022, user: 'inner-user' });
    expect(loaded.warnings).toEqual([]);
    loaded = await loadSshConfig(writeConfig('Host special\n  Include inc\n'), { home });
    expect(lookupSshConfig(loaded.config, 'special', { home }).port).toBe(2022);
    expect(lookupSshConfig(loaded.config, 'inner', { home }).user).toBeUndefined();
    expect(loaded.warnings[0]).toMatch(/ignored/);
  });

  it('stops at Include loops', async () => {
    const file = writeConfig('Include config\nHost a\n  User u\n');
    const loaded = await loadSshConfig(file, { home });
    expect(lookupSshConfig(loaded.config, 'a', { home }).user).toBe('u');
    expect(loaded.warnings.some((w) => /deeper/.test(w))).toBe(true);
  });

  it('treats a missing file as empty and reads ~/.ssh/config by default', async () => {
    expect((await loadSshConfig(join(home, 'nope'), { home })).files).toEqual([]);
    writeConfig('Host x\n  User y\n');
    const loaded = await loadSshConfig(undefined, { home });
    expect(loaded.files[0]).toBe(join(home, '.ssh/config'));
    expect(lookupSshConfig(loaded.config, 'x', { home }).user).toBe('y');
  });
});

describe('parseProxyJump', () => {
  it('parses user, host, port and bracketed IPv6', () => {
    expect(parseProxyJump('j1,ops@j2:2222,[fd00::1]:2200,ssh://u@j4:23')).toEqual([
      { host: 'j1' },
      { user: 'ops', host: 'j2', port: 2222 },
      { host: 'fd00::1', port: 2200 },
      { user: 'u', host: 'j4', port: 23 },
    ]);
  });
  it('rejects empty hops and bad ports', () => {
    expect(() => parseProxyJump('a,,b')).toThrow(KryptonError);
    expect(() => parseProxyJump('a:99999')).toThrow(/bad port/);
    expect(() => parseProxyJump('@a')).toThrow(/empty user/);
  });
});

describe('resolveTarget', () => {
  async function resolve(text: string, input: Parameters<typeof resolveTarget>[0]) {
    const file = writeConfig(text);
    return resolveTarget(input, { configFile: file, home, env, localUser: 'alice' });
  }

  it('inventory values win over ssh_config, ssh_config over defaults', async () => {
    const cfg = 'Host 10.0.0.5\n  User cfguser\n  Port 2200\n  IdentityFile ~/.ssh/cfgkey\n  ConnectTimeout 9\n';
    writeConfig('key', '.ssh/cfgkey');
    const fromCfg = await resolve(cfg, { name: 'val-1', address: '10.0.0.5' });
    expect(fromCfg).toMatchObject({ name: 'val-1', address: '10.0.0.5', user: 'cfguser', port: 2200, identityFile: join(home, '.ssh/cfgkey'), connectTimeoutMs: 9000 });
    const explicit = await resolve(cfg, { name: 'val-1', address: '10.0.0.5', user: 'root', port: 22, identityFile: '~/inv', connectTimeoutMs: 1000 });
    expect(explicit).toMatchObject({ user: 'root', port: 22, identityFile: join(home, 'inv'), connectTimeoutMs: 1000 });
    expect(explicit.moreIdentityFiles).toEqual([join(home, '.ssh/cfgkey')]);
  });

  it('defaults: the local user, port 22, existing ~/.ssh/id_* keys, ~/.ssh/known_hosts + global files', async () => {
    writeConfig('k', '.ssh/id_ed25519');
    const t = await resolve('', { name: 'h' });
    expect(t).toMatchObject({ address: 'h', user: 'alice', port: 22, identityFile: join(home, '.ssh/id_ed25519'), knownHostsFile: join(home, '.ssh/known_hosts') });
    expect(t.extraKnownHostsFiles).toEqual([join(home, '.ssh/known_hosts2'), '/etc/ssh/ssh_known_hosts', '/etc/ssh/ssh_known_hosts2']);
    expect(t.moreIdentityFiles).toBeUndefined();
    expect(typeof currentUser()).toBe('string');
  });

  it('looks ssh_config up by the name when there is no address, and maps HostName', async () => {
    const t = await resolve('Host val-2\n  HostName 192.0.2.10\n', { name: 'val-2' });
    expect(t.address).toBe('192.0.2.10');
  });

  it('an inventory known_hosts file replaces ssh_config and global ones', async () => {
    const t = await resolve('Host *\n  UserKnownHostsFile ~/a ~/b\n', { name: 'h', knownHostsFile: '~/fleet_known_hosts' });
    expect(t.knownHostsFile).toBe(join(home, 'fleet_known_hosts'));
    expect(t.extraKnownHostsFiles).toBeUndefined();
    const u = await resolve('Host *\n  UserKnownHostsFile ~/a ~/b\n', { name: 'h' });
    expect(u.knownHostsFile).toBe(join(home, 'a'));
    expect(u.extraKnownHostsFiles?.[0]).toBe(join(home, 'b'));
  });

  it('resolves ProxyJump hops through ssh_config, each with its own settings', async () => {
    const cfg = 'Host bastion\n  HostName 198.51.100.1\n  User jumper\n  Port 2222\nHost 10.*\n  ProxyJump bastion,ops@inner:2200\n';
    const t = await resolve(cfg, { name: 'val-1', address: '10.0.0.5', knownHostsFile: '/fleet/kh', acceptNew: true });
    expect(t.proxyJump).toHaveLength(2);
    expect(t.proxyJump![0]).toMatchObject({ address: '198.51.100.1', user: 'jumper', port: 2222, knownHostsFile: '/fleet/kh', acceptNew: true });
    expect(t.proxyJump![1]).toMatchObject({ address: 'inner', user: 'ops', port: 2200 });
    const direct = await resolve(cfg, { name: 'val-1', address: '10.0.0.5', proxyJump: 'none' });
    expect(direct.proxyJump).toBeUndefined();
    const inv = await resolve(cfg, { name: 'val-1', address: '10.0.0.5', proxyJump: ['u@j:23'] });
    expect(inv.proxyJump![0]).toMatchObject({ address: 'j', user: 'u', port: 23 });
  });

  it('refuses ProxyCommand and ProxyJump loops', async () => {
    await expect(resolve('Host a\n  ProxyCommand nc %h %p\n', { name: 'a' })).rejects.toMatchObject({ code: 'E_INVENTORY' });
    await expect(resolve('Host a\n  ProxyJump a\n', { name: 'a' })).rejects.toThrow(/deeper/);
  });

  it('normalises a pinned hostKey and rejects a malformed one', async () => {
    const fp = 'SHA256:nThbg6kXUpJWGl7E1IGOCspRomTxdCARLviKw6E5SY8';
    expect((await resolve('', { name: 'a', hostKey: `sha256:${fp.slice(7)}=` })).hostKey).toBe(fp);
    await expect(resolve('', { name: 'a', hostKey: 'nope' })).rejects.toMatchObject({ code: 'E_INVENTORY' });
  });

  it('IdentityAgent none turns the agent off; a path sets the socket', async () => {
    expect((await resolve('Host *\n  IdentityAgent none\n', { name: 'a' })).useAgent).toBe(false);
    expect((await resolve('Host *\n  IdentityAgent /run/a.sock\n', { name: 'a' })).agentSocket).toBe('/run/a.sock');
  });
});
