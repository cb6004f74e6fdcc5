import { describe, expect, it } from 'vitest';
import { Secret } from '../../src/core/secret.ts';
import { parseInventory } from '../../src/inventory/loader.ts';
import { nodeChecks, type NodeAuditFacts } from '../../src/verify/checks.ts';

const inv = parseInventory(
  'inv.yml',
  'network: "473374"\nvault: { address: "http://127.0.0.1:8200" }\nnodes:\n  val-1: { role: validator, address: 10.0.0.1 }\n',
);
const node = inv.nodes[0]!;
const value = new Secret('ab'.repeat(32));

function good(): NodeAuditFacts {
  return {
    mount: { fsType: 'tmpfs', options: ['rw', 'size=1024k', 'mode=700', 'noswap'], sizeBytes: 1 << 20, mode: '0700' },
    kernel: { release: '6.8.0', supportsNoswap: true, swapActive: true },
    agent: {
      running: true,
      pid: 42,
      startedAt: 100,
      tokenSink: true,
      secretIdFile: false,
      leftoverTempFiles: 0,
      configMtime: 90,
      jwt: { exists: true, mode: '0600', owner: 'root', group: 'root', sizeBytes: 64, mtime: 101, sha256: value.fingerprint(), isHex64: true },
    },
    copies: [],
    legacyGit: { tracked: false, historyCommits: 0 },
    legacy: { exists: false },
    jwtPath: { fileExists: true, values: ['/run/krypton-secrets/jwt.hex'] },
    expected: { secret: value, version: 3, source: 'secret/krypton/473374/engine-jwt' },
    probe: { outcome: 'accepted', httpStatus: 200, detail: 'ok' },
    token: { renewable: true, ttlSeconds: 3000, policies: ['default', 'krypton-node-473374-val-1'] },
    capabilities: { ownPath: 'secret/data/krypton/473374/engine-jwt', own: ['read'], others: { 'secret/metadata/x': ['deny'] } },
  };
}

const failed = (f: NodeAuditFacts) => nodeChecks(inv, node, f).filter((r) => !r.ok).map((r) => r.check);

describe('verify checks (pure)', () => {
  it('a good node passes every check, and no row carries the value', () => {
    const rows = nodeChecks(inv, node, good());
    expect(rows.map((r) => r.check)).toEqual(['tmpfs', 'jwt.file', 'jwt.backend', 'jwt.copies', 'jwt.path', 'agent', 'secret_id', 'engine.auth', 'vault.policy']);
    expect(rows.every((r) => r.ok)).toBe(true);
    expect(JSON.stringify(rows)).not.toContain(value.revealText());
  });

  it('names each failure', () => {
    const f = good();
    f.copies = [{ fingerprint: value.fingerprint(), where: '/opt/krypton/backup.txt' }, { fingerprint: 'f'.repeat(64), where: '/opt/krypton/other' }];
    const rows = nodeChecks(inv, node, f);
    const copy = rows.find((r) => r.check === 'jwt.copies')!;
    expect(copy.ok).toBe(false);
    expect(copy.detail).toContain('/opt/krypton/backup.txt');
    expect(copy.detail).not.toContain('/opt/krypton/other');

    const mode = good();
    mode.agent.jwt.mode = '0644';
    expect(failed(mode)).toEqual(['jwt.file']);

    const swap = good();
    swap.mount!.options = ['rw'];
    expect(failed(swap)).toEqual(['tmpfs']);
    swap.kernel.swapActive = false;
    expect(failed(swap)).toEqual([]);

    const stale = good();
    stale.expected = { secret: new Secret('cd'.repeat(32)), version: 4, source: 's' };
    expect(failed(stale)).toEqual(['jwt.backend']);

    const wide = good();
    wide.capabilities = { ownPath: 'p', own: ['read', 'list'], others: {} };
    expect(failed(wide)).toEqual(['vault.policy']);
    wide.capabilities = { ownPath: 'p', own: ['read'], others: { 'secret/data/krypton/473374/horcrux/any/shard': ['read'] } };
    expect(failed(wide)).toEqual(['vault.policy']);

    const leftover = good();
    leftover.agent.secretIdFile = true;
    expect(failed(leftover)).toEqual(['secret_id']);
    const interrupted = good();
    interrupted.agent.leftoverTempFiles = 2;
    expect(failed(interrupted)).toEqual(['secret_id']);

    const plaintext = good();
    plaintext.legacy = { exists: true, mode: '0644' };
    plaintext.jwtPath = { fileExists: true, values: ['/opt/krypton/jwt.hex'] };
    expect(failed(plaintext)).toEqual(['jwt.path', 'jwt.legacy']);

    const tracked = good();
    tracked.legacyGit = { repo: '/opt/krypton', tracked: true, historyCommits: 2 };
    expect(failed(tracked)).toEqual(['jwt.git']);
  });

  it('after a reboot says the node must be re-provisioned', () => {
    const f = good();
    f.mount = undefined;
    f.agent = { running: false, tokenSink: false, secretIdFile: false, leftoverTempFiles: 0, jwt: { exists: false, isHex64: false } };
    f.token = undefined;
    f.probe = { outcome: 'unreachable', detail: 'nothing accepts connections on 127.0.0.1:8551' };
    const rows = nodeChecks(inv, node, f);
    expect(rows.filter((r) => !r.ok).map((r) => r.check)).toEqual(['tmpfs', 'jwt.file', 'jwt.backend', 'agent', 'engine.auth']);
    expect(rows.find((r) => r.check === 'agent')!.detail).toMatch(/re-provision it: krypton-secrets apply playbooks\/provision.yml .* --limit val-1/);
  });

  it('a renewable token is required in daemon mode; oneshot wants no token on the host', () => {
    const f = good();
    f.token = { renewable: false, ttlSeconds: 20, policies: [] };
    expect(failed(f)).toEqual(['agent']);
    const oneshot = parseInventory('i.yml', 'network: "473374"\nvault: { agent_mode: oneshot }\nnodes:\n  val-1: { role: validator }\n');
    const o = good();
    o.agent.running = false;
    expect(nodeChecks(oneshot, oneshot.nodes[0]!, o).filter((r) => !r.ok).map((r) => r.check)).toEqual(['agent']);
    o.agent.tokenSink = false;
    expect(nodeChecks(oneshot, oneshot.nodes[0]!, o).every((r) => r.ok)).toBe(true);
  });
});
