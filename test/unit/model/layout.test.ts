/**
 * What a host holds, and every name krypton-secrets gives its things (src/model/layout.ts): one pure module read
 * by backends, renderers, facts and tasks. The names here are an on-disk and in-store contract: KV v2 paths,
 * KMS encryption contexts and blob dirs, Secrets Manager names — existing stores and blob dirs keep working.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { KryptonError } from '../../../src/core/errors.ts';
import { parseInventory } from '../../../src/inventory/loader.ts';
import type { Host, Inventory } from '../../../src/model/inventory.ts';
import {
  AGENT_FILES,
  JWT_FILE,
  NODE_ENV_FILE,
  assertSegment,
  blobDirSegments,
  cosignerSettings,
  describeContext,
  describeRef,
  encryptionContext,
  hostBlobPath,
  hostSecret,
  hostSecrets,
  kvDataPath,
  kvField,
  kvMetadataPath,
  kvPath,
  kvSource,
  normaliseVaultPath,
  parseSmVersionId,
  policyName,
  refFor,
  refKey,
  refsOf,
  roleName,
  sameRef,
  smSecretName,
  smVersionId,
  templatePath,
  tmpfsDirs,
  type SecretRef,
} from '../../../src/model/layout.ts';

const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures');
const load = (name: string): Inventory => parseInventory(join(FIXTURES, name), readFileSync(join(FIXTURES, name), 'utf8'));
const host = (inv: Inventory, name: string): Host => [...inv.nodes, ...inv.cosigners].find((h) => h.name === name)!;

const inv = load('inventory.yml');
const env = load('env.yml');
const perNode = load('per-node.yml');
const horcrux = load('horcrux.yml');
const kmsPerNode = load('kms-per-node.yml');

describe('references', () => {
  it('refFor: the JWT is the network\'s unless jwt_per_node / kms.per_node; env-secrets per node only with env.per_node; key files always per cosigner', () => {
    expect(refFor(inv, 'engine-jwt', 'val-1')).toEqual({ kind: 'engine-jwt', network: '473374', scope: '*' });
    expect(refFor(perNode, 'engine-jwt', 'val-2')).toEqual({ kind: 'engine-jwt', network: '473374', scope: 'val-2' });
    expect(refFor(kmsPerNode, 'engine-jwt', 'val-1')).toEqual({ kind: 'engine-jwt', network: '47337', scope: 'val-1' });
    expect(refFor(env, 'node-env', 'val-1')).toEqual({ kind: 'node-env', network: '473374', scope: '*' });
    expect(refFor(env, 'node-env', 'val-2')).toEqual({ kind: 'node-env', network: '473374', scope: 'val-2' });
    expect(refFor(horcrux, 'horcrux-shard', 'cosigner-2')).toEqual({ kind: 'horcrux-shard', network: '473374', scope: 'cosigner-2' });
    expect(() => refFor(horcrux, 'horcrux-ecies', '../cosigner-1')).toThrow(KryptonError);
  });

  it('keys, equality and descriptions', () => {
    const a: SecretRef = { kind: 'node-env', network: '473374', scope: 'val-2' };
    expect(refKey(a)).toBe('473374/node-env@val-2');
    expect(sameRef(a, { ...a })).toBe(true);
    expect(sameRef(a, { ...a, scope: '*' })).toBe(false);
    expect(describeRef(a)).toBe('the node env-secrets of val-2');
    expect(describeRef({ kind: 'engine-jwt', network: '47337', scope: '*' })).toBe('the Engine-API JWT of network 47337');
  });
});

describe('hostSecrets: what a host holds', () => {
  it('a node without env: just its JWT (jwt.hex on the tmpfs, read by el and cl), with the node\'s mode/owner/group', () => {
    expect(hostSecrets(inv, host(inv, 'val-1'))).toEqual([
      { ref: { kind: 'engine-jwt', network: '473374', scope: '*' }, name: 'engine-jwt', path: JWT_FILE, dir: '/run/krypton-secrets', mode: '0600', format: 'hex64', readers: ['el', 'cl'] },
    ]);
    expect(hostSecrets(inv, host(inv, 'val-2'))[0]).toMatchObject({ mode: '0640', owner: 'krypton', group: 'krypton' });
    expect(JWT_FILE).toBe('/run/krypton-secrets/jwt.hex');
  });

  it('a node with env (the defaults\'): the JWT, then the env file with its readers', () => {
    expect(hostSecrets(env, host(env, 'val-1'))).toEqual([
      { ref: { kind: 'engine-jwt', network: '473374', scope: '*' }, name: 'engine-jwt', path: '/run/krypton-secrets/jwt.hex', dir: '/run/krypton-secrets', mode: '0600', format: 'hex64', readers: ['el', 'cl'] },
      { ref: { kind: 'node-env', network: '473374', scope: '*' }, name: 'node-env', path: NODE_ENV_FILE, dir: '/run/krypton-secrets', mode: '0600', format: 'env', readers: ['cl', 'mev-boost'] },
    ]);
    expect(NODE_ENV_FILE).toBe('/run/krypton-secrets/node.env');
  });

  it('a node with its own env (per_node), own path, mode, owner, readers; a node with env: false has none', () => {
    expect(hostSecret(env, host(env, 'val-2'), 'node-env')).toEqual({
      ref: { kind: 'node-env', network: '473374', scope: 'val-2' },
      name: 'node-env',
      path: '/run/krypton-secrets/el.env',
      dir: '/run/krypton-secrets',
      mode: '0640',
      owner: 'krypton',
      group: 'krypton',
      format: 'env',
      readers: ['el'],
    });
    expect(hostSecrets(env, host(env, 'rpc-1')).map((s) => s.name)).toEqual(['engine-jwt']);
    expect(hostSecret(env, host(env, 'rpc-1'), 'node-env')).toBeUndefined();
  });

  it('a cosigner: its ECIES keys and its shard in its tmpfs key dir, 0600, horcrux.owner, read by horcrux', () => {
    const cos = load('cosigners.yml');
    expect(hostSecrets(cos, host(cos, 'cosigner-3'))).toEqual([
      { ref: { kind: 'horcrux-ecies', network: '473374', scope: 'cosigner-3' }, name: 'ecies', path: '/var/lib/horcrux-keys/ecies_keys.json', dir: '/var/lib/horcrux-keys', mode: '0600', owner: 'horcrux', group: 'horcrux', format: 'json', readers: ['horcrux'] },
      { ref: { kind: 'horcrux-shard', network: '473374', scope: 'cosigner-3' }, name: 'shard', path: '/var/lib/horcrux-keys/473374_shard.json', dir: '/var/lib/horcrux-keys', mode: '0600', owner: 'horcrux', group: 'horcrux', format: 'json', readers: ['horcrux'] },
    ]);
    expect(hostSecrets(horcrux, host(horcrux, 'cosigner-1')).every((s) => s.owner === undefined && s.group === undefined)).toBe(true);
  });

  it('tmpfsDirs: the secrets dir first, then a cosigner\'s key dir, each once; refsOf: each stored value once', () => {
    expect(tmpfsDirs(env, host(env, 'val-2'))).toEqual(['/run/krypton-secrets']);
    expect(tmpfsDirs(horcrux, host(horcrux, 'cosigner-3'))).toEqual(['/run/krypton-secrets', '/run/horcrux-keys']);
    expect(refsOf(env, env.nodes).map(refKey)).toEqual(['473374/engine-jwt@*', '473374/node-env@*', '473374/node-env@val-2']);
    expect(refsOf(horcrux, horcrux.cosigners).map(refKey)).toHaveLength(6);
  });
});

describe('Vault / OpenBao names', () => {
  it('kvPath: krypton/<network>/<leaf>, nodes/<node>/<leaf> for a node\'s own, horcrux/<cosigner>/<leaf> for key files', () => {
    expect(kvPath({ kind: 'engine-jwt', network: '473374', scope: '*' })).toBe('krypton/473374/engine-jwt');
    expect(kvPath({ kind: 'engine-jwt', network: '473374', scope: 'val-2' })).toBe('krypton/473374/nodes/val-2/engine-jwt');
    expect(kvPath({ kind: 'node-env', network: '473374', scope: '*' })).toBe('krypton/473374/env');
    expect(kvPath({ kind: 'node-env', network: '473374', scope: 'val-2' })).toBe('krypton/473374/nodes/val-2/env');
    expect(kvPath({ kind: 'horcrux-ecies', network: '473374', scope: 'cosigner-1' })).toBe('krypton/473374/horcrux/cosigner-1/ecies');
    expect(kvPath({ kind: 'horcrux-shard', network: '473374', scope: 'cosigner-1' })).toBe('krypton/473374/horcrux/cosigner-1/shard');
    expect(() => kvPath({ kind: 'node-env', network: '473374', scope: '..' })).toThrow(/invalid node/);
  });

  it('data and metadata paths, the source for messages, the field of each kind', () => {
    expect(kvDataPath('secret', 'krypton/473374/env')).toBe('secret/data/krypton/473374/env');
    expect(kvDataPath('/kv/', '/krypton/47337/engine-jwt/')).toBe('kv/data/krypton/47337/engine-jwt');
    expect(kvMetadataPath('secret', 'krypton/473374/env')).toBe('secret/metadata/krypton/473374/env');
    expect(kvSource(env, refFor(env, 'node-env', 'val-2'))).toBe('secret/krypton/473374/nodes/val-2/env');
    expect([kvField('engine-jwt'), kvField('horcrux-ecies'), kvField('horcrux-shard'), kvField('node-env')]).toEqual(['hex', 'json', 'json', undefined]);
  });

  it('policy and role names: krypton-<node|cosigner>-<network>-<host>, lowercased', () => {
    expect(policyName(inv, host(inv, 'val-1'))).toBe('krypton-node-473374-val-1');
    expect(roleName(horcrux, host(horcrux, 'cosigner-2'))).toBe('krypton-cosigner-473374-cosigner-2');
    expect(policyName(inv, { kind: 'node', name: 'Val-X' })).toBe('krypton-node-473374-val-x');
  });

  it('agent files on the secrets tmpfs; one template per host secret (jwt.ctmpl as before)', () => {
    expect(AGENT_FILES).toEqual({
      config: '/run/krypton-secrets/vault-agent.hcl',
      roleId: '/run/krypton-secrets/role_id',
      secretId: '/run/krypton-secrets/secret_id',
      pid: '/run/krypton-secrets/agent.pid',
      tokenSink: '/run/krypton-secrets/agent-token',
    });
    expect(hostSecrets(env, host(env, 'val-1')).map(templatePath)).toEqual(['/run/krypton-secrets/jwt.ctmpl', '/run/krypton-secrets/node-env.ctmpl']);
    expect(hostSecrets(horcrux, host(horcrux, 'cosigner-3')).map(templatePath)).toEqual(['/run/krypton-secrets/ecies_keys.ctmpl', '/run/krypton-secrets/shard.ctmpl']);
  });

  it('path segments: letters, digits, _ . - only; never . or ..', () => {
    expect(assertSegment('node', 'val-1.b_2')).toBe('val-1.b_2');
    for (const bad of ['', '.', '..', 'a/b', 'a b', '*', 'a?']) expect(() => assertSegment('node', bad), bad).toThrow(KryptonError);
    expect(normaliseVaultPath('KV mount', '/secret/')).toBe('secret');
    expect(() => normaliseVaultPath('secret path', 'krypton//x')).toThrow(/invalid secret path segment/);
    expect(() => normaliseVaultPath('KV mount', '//')).toThrow(/empty KV mount/);
  });
});

describe('AWS KMS names', () => {
  it('encryption context: purpose and network, plus node (a node\'s own value) or cosigner (a key file)', () => {
    expect(encryptionContext(refFor(env, 'engine-jwt', 'val-1'))).toEqual({ purpose: 'krypton-engine-jwt', network: '473374' });
    expect(encryptionContext(refFor(kmsPerNode, 'engine-jwt', 'val-2'))).toEqual({ purpose: 'krypton-engine-jwt', network: '47337', node: 'val-2' });
    expect(encryptionContext(refFor(env, 'node-env', 'val-1'))).toEqual({ purpose: 'krypton-node-env', network: '473374' });
    expect(encryptionContext(refFor(env, 'node-env', 'val-2'))).toEqual({ purpose: 'krypton-node-env', network: '473374', node: 'val-2' });
    expect(encryptionContext(refFor(horcrux, 'horcrux-ecies', 'cosigner-1'))).toEqual({ purpose: 'krypton-horcrux-ecies', network: '473374', cosigner: 'cosigner-1' });
    expect(encryptionContext(refFor(horcrux, 'horcrux-shard', 'cosigner-1'))).toEqual({ purpose: 'krypton-horcrux-shard', network: '473374', cosigner: 'cosigner-1' });
    expect(describeContext({ purpose: 'krypton-engine-jwt', network: '473374', node: 'val-1' })).toBe('purpose=krypton-engine-jwt, network=473374, node=val-1');
  });

  it('blob dirs below <inventory dir>/blobs are today\'s on-disk layout (existing blob dirs keep working)', () => {
    const blobs = (r: SecretRef) => ['blobs', ...blobDirSegments(r)].join('/');
    expect(blobs({ kind: 'engine-jwt', network: '473374', scope: '*' })).toBe('blobs/473374/engine-jwt');
    expect(blobs({ kind: 'engine-jwt', network: '47337', scope: 'val-1' })).toBe('blobs/47337/nodes/val-1/engine-jwt');
    expect(blobs({ kind: 'horcrux-ecies', network: '473374', scope: 'cosigner-2' })).toBe('blobs/473374/horcrux/cosigner-2/ecies');
    expect(blobs({ kind: 'horcrux-shard', network: '473374', scope: 'cosigner-2' })).toBe('blobs/473374/horcrux/cosigner-2/shard');
    expect(blobs({ kind: 'node-env', network: '473374', scope: '*' })).toBe('blobs/473374/env');
    expect(blobs({ kind: 'node-env', network: '473374', scope: 'val-2' })).toBe('blobs/473374/nodes/val-2/env');
  });

  it('hostBlobPath: <kms.blob_dir>/jwt.hex.enc (as before) and <file>.enc on a node; <home>/blobs/<file>.enc on a cosigner', () => {
    const envKms = load('env-kms.yml');
    const [jwt, e] = hostSecrets(envKms, host(envKms, 'val-2'));
    expect(hostBlobPath(envKms, host(envKms, 'val-2'), jwt!)).toBe('/opt/krypton/secrets/jwt.hex.enc');
    expect(hostBlobPath(envKms, host(envKms, 'val-2'), e!)).toBe('/opt/krypton/secrets/el.env.enc');
    const pn = hostSecrets(kmsPerNode, host(kmsPerNode, 'val-1'))[0]!;
    expect(hostBlobPath(kmsPerNode, host(kmsPerNode, 'val-1'), pn)).toBe('/var/lib/krypton/blobs/jwt.hex.enc');
    const hk = load('horcrux-kms.yml');
    const c3 = host(hk, 'cosigner-3');
    expect(hostSecrets(hk, c3).map((s) => hostBlobPath(hk, c3, s))).toEqual(['/var/lib/horcrux/blobs/ecies_keys.json.enc', '/var/lib/horcrux/blobs/473374_shard.json.enc']);
  });
});

describe('AWS Secrets Manager names', () => {
  it('smSecretName is the KV path', () => {
    expect(smSecretName({ kind: 'engine-jwt', network: '473374', scope: '*' })).toBe('krypton/473374/engine-jwt');
    expect(smSecretName({ kind: 'engine-jwt', network: '473374', scope: 'val-2' })).toBe('krypton/473374/nodes/val-2/engine-jwt');
    expect(smSecretName({ kind: 'node-env', network: '473374', scope: '*' })).toBe('krypton/473374/env');
    expect(smSecretName({ kind: 'horcrux-shard', network: '473374', scope: 'cosigner-1' })).toBe('krypton/473374/horcrux/cosigner-1/shard');
  });

  it('VersionIds: 32+ characters (ClientRequestToken), the JWT\'s as before, read back only when ours', () => {
    expect(smVersionId(1)).toBe('krypton-engine-jwt-v0000000000001');
    expect(smVersionId(7, 'node-env')).toBe('krypton-secret-env-v0000000000007');
    expect(smVersionId(3, 'horcrux-shard')).toBe('krypton-secret-shard-v0000000000003');
    for (const id of [smVersionId(1), smVersionId(1, 'node-env'), smVersionId(1, 'horcrux-ecies')]) expect(id.length).toBeGreaterThanOrEqual(32);
    expect(parseSmVersionId(smVersionId(42))).toBe(42);
    expect(parseSmVersionId(smVersionId(42, 'node-env'))).toBe(42);
    expect(parseSmVersionId('2f6f3e1c-8c5a-4c1e-9d3b-6a0f1e2d3c4b')).toBeUndefined();
    expect(parseSmVersionId(undefined)).toBeUndefined();
  });
});

describe('cosigner settings', () => {
  it('defaults filled in one place', () => {
    expect(cosignerSettings(horcrux, host(horcrux, 'cosigner-1') as never)).toMatchObject({
      home: '/opt/horcrux',
      keyDir: '/opt/horcrux/keys',
      keyFiles: { ecies: '/opt/horcrux/keys/ecies_keys.json', shard: '/opt/horcrux/keys/473374_shard.json' },
      chainId: '473374',
    });
  });
});
