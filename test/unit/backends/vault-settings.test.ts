import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { KryptonError } from '../../../src/core/errors.ts';
import { resolveVaultSettings, normaliseVaultAddress } from '../../../src/backends/vault.ts';

const TOKEN = 's.EnvTokenEnvTokenEnvToken1';
const home = mkdtempSync(join(tmpdir(), 'krypton-vault-settings-'));
const emptyHome = join(home, 'empty');
mkdirSync(emptyHome);
const tokenHome = join(home, 'with-token');
mkdirSync(tokenHome);
writeFileSync(join(tokenHome, '.vault-token'), 's.FileTokenFileTokenFileTok\n', { mode: 0o600 });
afterAll(() => rmSync(home, { recursive: true, force: true }));

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(KryptonError);
    return (e as KryptonError).code;
  }
  return undefined;
}

describe('resolveVaultSettings', () => {
  it('BAO_* wins over VAULT_* for address, token, namespace and CA', () => {
    const s = resolveVaultSettings(
      {
        BAO_ADDR: 'https://bao.example:8200/',
        VAULT_ADDR: 'https://vault.example:8200',
        BAO_TOKEN: TOKEN,
        VAULT_TOKEN: 's.OtherOtherOtherOtherOther',
        BAO_NAMESPACE: 'ns-bao',
        VAULT_NAMESPACE: 'ns-vault',
        BAO_CACERT: '/etc/bao-ca.pem',
        VAULT_CACERT: '/etc/vault-ca.pem',
      },
      undefined,
      { homeDir: tokenHome },
    );
    expect(s.address).toBe('https://bao.example:8200');
    expect(s.token.revealText()).toBe(TOKEN);
    expect(s.namespace).toBe('ns-bao');
    expect(s.caCert).toBe('/etc/bao-ca.pem');
    expect(s.sources).toEqual({ address: 'BAO_ADDR', token: 'BAO_TOKEN', namespace: 'BAO_NAMESPACE', caCert: 'BAO_CACERT' });
  });

  it('falls back to VAULT_* when BAO_* is unset or empty', () => {
    const s = resolveVaultSettings({ BAO_ADDR: '', VAULT_ADDR: 'http://127.0.0.1:8200', BAO_TOKEN: '  ', VAULT_TOKEN: TOKEN }, undefined, { homeDir: emptyHome });
    expect(s.address).toBe('http://127.0.0.1:8200');
    expect(s.token.revealText()).toBe(TOKEN);
    expect(s.sources?.address).toBe('VAULT_ADDR');
    expect(s.sources?.token).toBe('VAULT_TOKEN');
    expect(s.namespace).toBeUndefined();
    expect(s.caCert).toBeUndefined();
  });

  it('uses the inventory only where the environment has nothing (the environment wins)', () => {
    const inv = { address: 'https://inv.example:8200', namespace: 'inv-ns', caCert: '/inv/ca.pem' };
    const fromInv = resolveVaultSettings({ VAULT_TOKEN: TOKEN }, inv, { homeDir: emptyHome });
    expect(fromInv.address).toBe('https://inv.example:8200');
    expect(fromInv.namespace).toBe('inv-ns');
    expect(fromInv.caCert).toBe('/inv/ca.pem');
    expect(fromInv.sources).toMatchObject({ address: 'inventory', namespace: 'inventory', caCert: 'inventory' });

    const envWins = resolveVaultSettings({ VAULT_TOKEN: TOKEN, VAULT_ADDR: 'https://env.example:8200', VAULT_CACERT: '/env/ca.pem' }, inv, { homeDir: emptyHome });
    expect(envWins.address).toBe('https://env.example:8200');
    expect(envWins.caCert).toBe('/env/ca.pem');
    expect(envWins.namespace).toBe('inv-ns');
  });

  it('falls back to ~/.vault-token (trimmed), found through $HOME like the CLI', () => {
    const s = resolveVaultSettings({ VAULT_ADDR: 'http://127.0.0.1:8200', HOME: tokenHome });
    expect(s.token.revealText()).toBe('s.FileTokenFileTokenFileTok');
    expect(s.sources?.token).toBe('~/.vault-token');
  });

  it('the environment token wins over ~/.vault-token', () => {
    const s = resolveVaultSettings({ VAULT_ADDR: 'http://127.0.0.1:8200', VAULT_TOKEN: TOKEN }, undefined, { homeDir: tokenHome });
    expect(s.token.revealText()).toBe(TOKEN);
  });

  it('holds the token as a Secret: printing the settings never shows it', () => {
    const s = resolveVaultSettings({ VAULT_ADDR: 'http://127.0.0.1:8200', VAULT_TOKEN: TOKEN }, undefined, { homeDir: emptyHome });
    expect(inspect(s, { depth: 5 })).not.toContain(TOKEN);
    expect(JSON.stringify(s)).not.toContain(TOKEN);
    expect(`${s.token}`).not.toContain(TOKEN);
  });

  it('missing address -> E_VAULT_CONFIG with a hint', () => {
    try {
      resolveVaultSettings({ VAULT_TOKEN: TOKEN }, undefined, { homeDir: emptyHome });
      expect.unreachable();
    } catch (e) {
      const k = e as KryptonError;
      expect(k.code).toBe('E_VAULT_CONFIG');
      expect(k.message).toMatch(/no Vault address/);
      expect(k.hint).toMatch(/BAO_ADDR/);
    }
  });

  it('missing token (no env, no ~/.vault-token, or an empty one) -> E_VAULT_CONFIG with a hint', () => {
    writeFileSync(join(home, '.vault-token'), '\n');
    for (const homeDir of [emptyHome, home, join(home, 'does-not-exist')]) {
      try {
        resolveVaultSettings({ BAO_ADDR: 'http://127.0.0.1:8200' }, undefined, { homeDir });
        expect.unreachable();
      } catch (e) {
        const k = e as KryptonError;
        expect(k.code).toBe('E_VAULT_CONFIG');
        expect(k.message).toMatch(/no Vault token/);
        expect(k.hint).toMatch(/bao login|BAO_TOKEN/);
      }
    }
  });

  it('an unreadable ~/.vault-token -> E_VAULT_CONFIG naming the file', () => {
    const dirAsFile = join(home, 'dir-token');
    mkdirSync(join(dirAsFile, '.vault-token'), { recursive: true }); // reading a directory fails with EISDIR
    try {
      resolveVaultSettings({ BAO_ADDR: 'http://127.0.0.1:8200' }, undefined, { homeDir: dirAsFile });
      expect.unreachable();
    } catch (e) {
      expect((e as KryptonError).code).toBe('E_VAULT_CONFIG');
      expect((e as KryptonError).message).toContain('.vault-token');
    }
  });

  it('refuses addresses that are not http(s) URLs, or that carry credentials', () => {
    for (const addr of ['vault.example:8200', 'ftp://vault.example', 'https://user:pw@vault.example', 'https://vault.example/?x=1'])
      expect(codeOf(() => resolveVaultSettings({ VAULT_ADDR: addr, VAULT_TOKEN: TOKEN }, undefined, { homeDir: emptyHome }))).toBe('E_VAULT_CONFIG');
  });

  it('normaliseVaultAddress strips trailing slashes and keeps a path prefix', () => {
    expect(normaliseVaultAddress('http://127.0.0.1:8200///')).toBe('http://127.0.0.1:8200');
    expect(normaliseVaultAddress('https://proxy.example/vault/')).toBe('https://proxy.example/vault');
  });
});
