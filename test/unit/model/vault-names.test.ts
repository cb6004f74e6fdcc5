import { describe, expect, it } from 'vitest';
import { KryptonError } from '../../../src/core/errors.ts';
import { NETWORK_SCOPE, kvDataPath, kvMetadataPath, kvPath, normaliseVaultPath, policyName, roleName } from '../../../src/model/layout.ts';

function code(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    return e instanceof KryptonError ? e.code : 'not-a-KryptonError';
  }
  return undefined;
}

const inv = (network: string) => ({ network }) as Parameters<typeof policyName>[0];

describe('Vault names in the layout', () => {
  it('KV v2 data and metadata paths', () => {
    expect(kvDataPath('secret', 'krypton/473374/engine-jwt')).toBe('secret/data/krypton/473374/engine-jwt');
    expect(kvMetadataPath('/secret/', '/krypton/473374/engine-jwt/')).toBe('secret/metadata/krypton/473374/engine-jwt');
    expect(kvDataPath('kv/team', 'a')).toBe('kv/team/data/a');
  });

  it('names', () => {
    expect(kvPath({ kind: 'engine-jwt', network: '473374', scope: NETWORK_SCOPE })).toBe('krypton/473374/engine-jwt');
    expect(kvPath({ kind: 'node-env', network: '473374', scope: NETWORK_SCOPE })).toBe('krypton/473374/env');
    expect(kvPath({ kind: 'node-env', network: '473374', scope: 'val-2' })).toBe('krypton/473374/nodes/val-2/env');
    expect(policyName(inv('473374'), { kind: 'node', name: 'val-2' })).toBe('krypton-node-473374-val-2');
    expect(roleName(inv('473374'), { kind: 'node', name: 'val-2' })).toBe(policyName(inv('473374'), { kind: 'node', name: 'val-2' }));
    expect(policyName(inv('473374'), { kind: 'cosigner', name: 'cosigner-1' })).toBe('krypton-cosigner-473374-cosigner-1');
    expect(kvPath({ kind: 'horcrux-ecies', network: '473374', scope: 'cosigner-1' })).toBe('krypton/473374/horcrux/cosigner-1/ecies');
    expect(kvPath({ kind: 'horcrux-shard', network: '473374', scope: 'cosigner-1' })).toBe('krypton/473374/horcrux/cosigner-1/shard');
  });

  it('policy and role names are lowercase, as Vault stores them', () => {
    expect(policyName(inv('TestNet'), { kind: 'node', name: 'Val-2' })).toBe('krypton-node-testnet-val-2');
    expect(policyName(inv('TestNet'), { kind: 'cosigner', name: 'C1' })).toBe('krypton-cosigner-testnet-c1');
  });

  it('refuses names that could escape their path or glob in a policy (E_INPUT)', () => {
    for (const bad of ['', '.', '..', 'a/b', 'a b', 'a*', 'a+', 'x?y', 'ü'])
      expect(code(() => policyName(inv('n'), { kind: 'node', name: bad })), JSON.stringify(bad)).toBe('E_INPUT');
    expect(code(() => kvPath({ kind: 'engine-jwt', network: '../sys', scope: NETWORK_SCOPE }))).toBe('E_INPUT');
    expect(code(() => kvPath({ kind: 'node-env', network: '1', scope: '../x' }))).toBe('E_INPUT');
    expect(code(() => kvDataPath('secret', 'a/../../sys/x'))).toBe('E_INPUT');
    expect(code(() => kvDataPath('', 'x'))).toBe('E_INPUT');
    expect(code(() => normaliseVaultPath('secret path', 'a//b'))).toBe('E_INPUT');
  });
});
