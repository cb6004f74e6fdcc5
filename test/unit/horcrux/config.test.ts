import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { KryptonError } from '../../../src/core/errors.ts';
import { horcruxInventoryProblems, layoutProblems, peerAddressProblem, renderHorcruxConfig } from '../../../src/horcrux/config.ts';
import { parseInventory } from '../../../src/inventory/loader.ts';
import { chainNodes, cosignerSettings, hostSecrets } from '../../../src/model/layout.ts';
import { renderAgentConfig, renderPolicy, renderTemplate } from '../../../src/render/vault-agent.ts';

const HERE = dirname(fileURLToPath(import.meta.url));
const FIXTURE = join(HERE, '..', 'fixtures', 'horcrux.yml');
const text = readFileSync(FIXTURE, 'utf8');
const inv = parseInventory(FIXTURE, text);
const cos = (name: string) => inv.cosigners.find((c) => c.name === name)!;

function loadError(yaml: string): KryptonError {
  try {
    parseInventory('/tmp/inv.yml', yaml);
  } catch (e) {
    return e as KryptonError;
  }
  throw new Error('expected the inventory to be refused');
}

describe('cosigner settings', () => {
  it('fills defaults in one place: home, p2p address, commands, key file names', () => {
    const s1 = cosignerSettings(inv, cos('cosigner-1'));
    expect(s1).toMatchObject({
      home: '/opt/horcrux',
      configFile: '/opt/horcrux/config.yaml',
      stateDir: '/opt/horcrux/state',
      keyDir: '/opt/horcrux/keys',
      keyFiles: { ecies: '/opt/horcrux/keys/ecies_keys.json', shard: '/opt/horcrux/keys/473374_shard.json' },
      p2pAddr: 'tcp://10.20.1.11:2222',
      start: ['systemctl', 'start', 'horcrux'],
      status: ['systemctl', 'is-active', '--quiet', 'horcrux'],
      threshold: 2,
    });
    expect(cosignerSettings(inv, cos('cosigner-2')).p2pAddr).toBe('tcp://10.30.1.12:2223');
    expect(cos('cosigner-2').agent).toEqual({ start: ['agentctl', 'start'], stop: ['agentctl', 'stop'] });
    expect(cos('cosigner-1').agent.start[0]).toBe('systemd-run');
    expect(cosignerSettings(inv, cos('cosigner-3'))).toMatchObject({ home: '/var/lib/horcrux', stop: ['horcruxctl', 'stop'] });
    expect(chainNodes(inv)).toEqual(['tcp://10.20.0.11:1234']);
  });

  it('renders config.yaml in Horcrux v3 threshold-mode shape (golden)', () => {
    expect(renderHorcruxConfig(inv, cos('cosigner-2'))).toBe(
      [
        '# Horcrux config for cosigner-2 (shard 2 of 3, chain 473374), rendered by krypton-secrets. Contains no secret.',
        '# The key files in keyDir come from Vault/KMS into a tmpfs; state/ stays on persistent disk.',
        'keyDir: "/opt/horcrux/keys"',
        'signMode: threshold',
        'thresholdMode:',
        '  threshold: 2',
        '  cosigners:',
        '    - shardID: 1',
        '      p2pAddr: "tcp://10.20.1.11:2222"',
        '    - shardID: 2',
        '      p2pAddr: "tcp://10.30.1.12:2223"',
        '    - shardID: 3',
        '      p2pAddr: "tcp://10.20.1.13:2222"',
        '  grpcTimeout: "1000ms"',
        '  raftTimeout: "1000ms"',
        'chainNodes:',
        '  - privValAddr: "tcp://10.20.0.11:1234"',
        'debugAddr: ""',
        'grpcAddr: ""',
        '',
      ].join('\n'),
    );
  });

  it('renders the agent config with two templates into the key dir, 0600, and a policy on its own paths only (the one renderer nodes use too)', () => {
    const hcl = renderAgentConfig(inv, cos('cosigner-3'));
    expect(hcl).toContain('secret_id_response_wrapping_path    = "auth/approle/role/krypton-cosigner-473374-cosigner-3/secret-id"');
    expect(hcl).toContain('destination          = "/run/horcrux-keys/ecies_keys.json"');
    expect(hcl).toContain('destination          = "/run/horcrux-keys/473374_shard.json"');
    expect(hcl.match(/perms                = "0600"/g)).toHaveLength(2);
    expect(hcl.match(/backup               = false/g)).toHaveLength(2);
    const shard = hostSecrets(inv, cos('cosigner-3')).find((s) => s.name === 'shard')!;
    expect(renderTemplate(inv, shard)).toBe('{{ with secret "secret/data/krypton/473374/horcrux/cosigner-3/shard" }}{{ .Data.data.json }}{{ end }}');
    const policy = renderPolicy(inv, cos('cosigner-2'));
    expect(policy.match(/^path /gm)).toHaveLength(2);
    expect(policy).toContain('path "secret/data/krypton/473374/horcrux/cosigner-2/ecies"');
    expect(policy).toContain('path "secret/data/krypton/473374/horcrux/cosigner-2/shard"');
    expect(policy).not.toMatch(/\*|cosigner-1|cosigner-3|list|metadata/);
  });
});

describe('refusals', () => {
  it('peers: 0.0.0.0, ::, loopback and non-tcp addresses', () => {
    expect(peerAddressProblem('tcp://0.0.0.0:2222')).toMatch(/unspecified address/);
    expect(peerAddressProblem('tcp://[::]:2222')).toMatch(/unspecified address/);
    expect(peerAddressProblem('tcp://127.0.0.1:2222')).toMatch(/loopback/);
    expect(peerAddressProblem('tcp://localhost:2222')).toMatch(/loopback/);
    expect(peerAddressProblem('tcp://[fd00::1]:2222')).toBeUndefined();
    expect(peerAddressProblem('http://10.0.0.1:2222')).toMatch(/not a tcp:\/\/host:port/);
  });

  it('layouts that would put state/ on the tmpfs, or mix keys with state or the agent dir', () => {
    const base = cosignerSettings(inv, cos('cosigner-1'));
    expect(layoutProblems(base)).toEqual([]);
    expect(layoutProblems({ ...base, keyDir: '/opt/horcrux' }).join()).toMatch(/would put the Horcrux home \/opt\/horcrux .* on the tmpfs/);
    expect(layoutProblems({ ...base, keyDir: '/opt' }).join()).toMatch(/would put the Horcrux home/);
    expect(layoutProblems({ ...base, keyDir: '/opt/horcrux/state' }).join()).toMatch(/would put \/opt\/horcrux\/state on the tmpfs/);
    expect(layoutProblems({ ...base, keyDir: '/opt/horcrux/state/keys' }).join()).toMatch(/inside \/opt\/horcrux\/state/);
    expect(layoutProblems({ ...base, keyDir: '/run/krypton-secrets/keys' }).join()).toMatch(/overlaps \/run\/krypton-secrets/);
    expect(layoutProblems({ ...base, keyDir: '/opt/horcrux/keys/../state' }).join()).toMatch(/state/);
  });

  const withCosigners = (cosigners: string, horcrux = 'horcrux:\n  threshold: 2\n') =>
    `network: "473374"\nnodes:\n  val-1: { role: validator, address: 10.0.0.1 }\ncosigners:\n${cosigners}${horcrux}`;
  const three = (c3 = '  c-3: { address: 10.0.1.3, shard_id: 3, key_dir: /opt/horcrux/keys }\n') =>
    `  c-1: { address: 10.0.1.1, shard_id: 1, key_dir: /opt/horcrux/keys }\n  c-2: { address: 10.0.1.2, shard_id: 2, key_dir: /opt/horcrux/keys }\n${c3}`;

  it('the inventory loader refuses a 0.0.0.0 peer at file:line:col', () => {
    const e = loadError(withCosigners(three('  c-3: { address: 10.0.1.3, p2p_address: 0.0.0.0, shard_id: 3, key_dir: /opt/horcrux/keys }\n')));
    expect(e.code).toBe('E_INVENTORY');
    expect(e.message).toMatch(/^\/tmp\/inv\.yml:7:\d+: c-3: tcp:\/\/0\.0\.0\.0:2222 is the unspecified address/);
  });

  it('the inventory loader refuses a threshold not above half, and shard ids that are not 1..n', () => {
    expect(loadError(withCosigners(three(), 'horcrux:\n  threshold: 1\n')).message).toMatch(/:9:\d+: threshold 1 is not more than half of 3 shards/);
    expect(loadError(withCosigners(three(), 'horcrux:\n  threshold: 4\n')).message).toMatch(/threshold 4 is more than the 3 shards/);
    expect(loadError(withCosigners(three('  c-3: { address: 10.0.1.3, shard_id: 5, key_dir: /opt/horcrux/keys }\n'))).message).toMatch(/shard ids must be 1\.\.3/);
  });

  it('the inventory loader refuses a key dir that would hold the home', () => {
    const e = loadError(withCosigners(three('  c-3: { address: 10.0.1.3, shard_id: 3, key_dir: /opt/horcrux }\n')));
    expect(e.message).toMatch(/:7:\d+: c-3: key_dir \/opt\/horcrux would put the Horcrux home/);
  });

  it('inventories without a horcrux block or without cosigners load as before', () => {
    expect(horcruxInventoryProblems(parseInventory('/tmp/a.yml', withCosigners(three(), '')))).toEqual([]);
    expect(parseInventory('/tmp/b.yml', 'network: "473374"\nnodes:\n  val-1: { role: validator }\n').horcrux).toBeUndefined();
  });
});
