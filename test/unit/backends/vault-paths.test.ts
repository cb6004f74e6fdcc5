import { describe, expect, it } from 'vitest';
import { KryptonError } from '../../../src/core/errors.ts';
import {
  cosignerPolicyName,
  engineJwtPath,
  horcruxPath,
  kvDataPath,
  kvMetadataPath,
  nodePolicyName,
  nodeRoleName,
  normaliseVaultPath,
} from '../../../src/backends/vault-paths.ts';

function code(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    return e instanceof KryptonError ? e.code : 'not-a-KryptonError';
  }
  return undefined;
}

describe('vault-paths', () => {
  it('KV v2 data and metadata paths', () => {
    expect(kvDataPath('secret', 'krypton/473374/engine-jwt')).toBe('secret/data/krypton/473374/engine-jwt');
    expect(kvMetadataPath('/secret/', '/krypton/473374/engine-jwt/')).toBe('secret/metadata/krypton/473374/engine-jwt');
    expect(kvDataPath('kv/team', 'a')).toBe('kv/team/data/a');
  });

  it('names', () => {
    expect(engineJwtPath('473374')).toBe('krypton/473374/engine-jwt');
    expect(nodePolicyName('473374', 'val-2')).toBe('krypton-node-473374-val-2');
    expect(nodeRoleName('473374', 'val-2')).toBe(nodePolicyName('473374', 'val-2'));
    expect(cosignerPolicyName('473374', 'cosigner-1')).toBe('krypton-cosigner-473374-cosigner-1');
    expect(horcruxPath('473374', 'cosigner-1', 'ecies')).toBe('krypton/473374/horcrux/cosigner-1/ecies');
    expect(horcruxPath('473374', 'cosigner-1', 'shard')).toBe('krypton/473374/horcrux/cosigner-1/shard');
  });

  it('policy and role names are lowercase, as Vault stores them', () => {
    expect(nodePolicyName('TestNet', 'Val-2')).toBe('krypton-node-testnet-val-2');
    expect(cosignerPolicyName('TestNet', 'C1')).toBe('krypton-cosigner-testnet-c1');
  });

  it('refuses names that could escape their path or glob in a policy (E_INPUT)', () => {
    for (const bad of ['', '.', '..', 'a/b', 'a b', 'a*', 'a+', 'x?y', 'ü'])
      expect(code(() => nodePolicyName('n', bad)), JSON.stringify(bad)).toBe('E_INPUT');
    expect(code(() => engineJwtPath('../sys'))).toBe('E_INPUT');
    expect(code(() => kvDataPath('secret', 'a/../../sys/x'))).toBe('E_INPUT');
    expect(code(() => kvDataPath('', 'x'))).toBe('E_INPUT');
    expect(code(() => normaliseVaultPath('secret path', 'a//b'))).toBe('E_INPUT');
    expect(code(() => horcruxPath('n', 'c', 'key' as 'shard'))).toBe('E_INPUT');
  });
});
