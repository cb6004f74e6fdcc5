/**
 * Inventory loading: defaults resolved in one place, and bad input refused with E_INVENTORY at the exact
 * `file:line:col` of the offending YAML node, in the operator's words (ARCHITECTURE.md invariant 6).
 */
import { readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { KryptonError } from '../../src/core/errors.ts';
import { loadInventory, NODE_DEFAULTS, parseInventory } from '../../src/inventory/loader.ts';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const FILE = 'inv.yml';

/** The KryptonError parseInventory throws for `text` (fails the test when it does not throw one). */
function refusal(text: string): KryptonError {
  try {
    parseInventory(FILE, text);
  } catch (err) {
    expect(err).toBeInstanceOf(KryptonError);
    const e = err as KryptonError;
    expect(e.code).toBe('E_INVENTORY');
    expect(e.hint, 'every refusal has a hint').toBeTruthy();
    return e;
  }
  throw new Error(`expected parseInventory to refuse:\n${text}`);
}

/** The one `file:line:col: …` line of a schema refusal (validate() lists issues under a heading). */
function issueLines(e: KryptonError): string[] {
  const [head, ...rest] = e.message.split('\n');
  expect(head).toBe(`inventory ${FILE} is not valid:`);
  return rest.map((l) => l.trim());
}

describe('parseInventory: good input', () => {
  const text = `# comment first
network: "473374"
vault:
  agent_binary: bao
defaults:
  deploy_dir: /opt/krypton
  jwt:
    mode: "640"
nodes:
  val-1:
    role: validator
  val-2:
    role: validator
    address: 10.0.0.2
    port: 2222
    deploy_dir: /srv/krypton
    jwt: { mode: "0600", owner: krypton }
  rpc-1:
    role: rpc
    address: 10.0.0.3
    env_file: /etc/krypton/compose.env
    restart: [systemctl, restart, el.service, cl.service]
    agent:
      stop: [pkill, -F, /run/krypton-secrets/agent.pid]
cosigners:
  cosigner-1:
    address: 10.0.1.1
    shard_id: 1
    key_dir: /opt/horcrux/keys
`;
  const inv = parseInventory(FILE, text);
  const node = (name: string) => inv.nodes.find((n) => n.name === name)!;

  it('fills inventory-level defaults', () => {
    expect(inv.file).toBe(FILE);
    expect(inv.network).toBe('473374');
    expect(inv.backend).toBe('vault');
    expect(inv.vault).toMatchObject({
      kvMount: 'secret',
      approleMount: 'approle',
      agentMode: 'daemon',
      wrapTtlSeconds: 120,
      secretIdTtlSeconds: 600,
      tokenPeriodSeconds: 3600,
      agentBinary: 'bao',
    });
    expect(inv.ssh).toMatchObject({ connectTimeoutSeconds: 10, useAgent: true });
    expect(inv.kms).toBeUndefined();
  });

  it('keeps nodes and cosigners in file order, with kinds and roles', () => {
    expect(inv.nodes.map((n) => [n.kind, n.name, n.role])).toEqual([
      ['node', 'val-1', 'validator'],
      ['node', 'val-2', 'validator'],
      ['node', 'rpc-1', 'rpc'],
    ]);
    expect(inv.cosigners).toHaveLength(1);
    expect(inv.cosigners[0]).toMatchObject({ kind: 'cosigner', name: 'cosigner-1', conn: { address: '10.0.1.1' }, shardId: 1, keyDir: '/opt/horcrux/keys' });
  });

  it('address defaults to the inventory name (an ssh_config alias)', () => {
    expect(node('val-1').conn.address).toBe('val-1');
    expect(node('val-2').conn).toMatchObject({ address: '10.0.0.2', port: 2222 });
  });

  it('env_file follows the deploy dir unless given', () => {
    expect(node('val-1')).toMatchObject({ deployDir: '/opt/krypton', envFile: '/opt/krypton/.env' });
    expect(node('val-2')).toMatchObject({ deployDir: '/srv/krypton', envFile: '/srv/krypton/.env' });
    expect(node('rpc-1')).toMatchObject({ deployDir: '/opt/krypton', envFile: '/etc/krypton/compose.env' });
  });

  it('restart and agent commands default per field, with the agent binary substituted', () => {
    expect(node('val-1').restart).toEqual(['docker', 'compose', 'restart', 'el', 'cl']);
    expect(node('rpc-1').restart).toEqual(['systemctl', 'restart', 'el.service', 'cl.service']);
    expect(node('val-1').agent.start).toEqual(['systemd-run', '--unit=krypton-vault-agent', '--collect', '--', 'bao', 'agent', '-config=/run/krypton-secrets/vault-agent.hcl']);
    expect(node('val-1').agent.stop).toEqual([...NODE_DEFAULTS.agentStop]);
    // stop overridden, start still the default
    expect(node('rpc-1').agent).toEqual({
      start: ['systemd-run', '--unit=krypton-vault-agent', '--collect', '--', 'bao', 'agent', '-config=/run/krypton-secrets/vault-agent.hcl'],
      stop: ['pkill', '-F', '/run/krypton-secrets/agent.pid'],
    });
  });

  it('the defaults never alias NODE_DEFAULTS (a node cannot mutate another node\'s command)', () => {
    node('val-1').restart.push('--oops');
    expect(node('val-2').restart).toEqual(['docker', 'compose', 'restart', 'el', 'cl']);
    expect(NODE_DEFAULTS.restart).toEqual(['docker', 'compose', 'restart', 'el', 'cl']);
  });

  it('modes are octal strings with a leading 0; node values win over defaults', () => {
    expect(node('val-1').jwt).toEqual({ mode: '0640', owner: undefined, group: undefined });
    expect(node('val-2').jwt).toMatchObject({ mode: '0600', owner: 'krypton' });
    expect(parseInventory(FILE, 'network: "1"\nnodes:\n  a: { role: rpc }\n').nodes[0]!.jwt.mode).toBe('0600');
  });

  it('a vault-backend inventory with only cosigners is fine', () => {
    const only = parseInventory(FILE, 'network: "1"\ncosigners:\n  c-1: { shard_id: 1, key_dir: /k }\n');
    expect(only.nodes).toEqual([]);
    expect(only.cosigners).toHaveLength(1);
  });

  it('backend kms with a kms block fills its defaults', () => {
    const k = parseInventory(FILE, 'network: "1"\nbackend: kms\nkms: { key_id: alias/krypton-engine-jwt }\nnodes:\n  a: { role: rpc }\n');
    expect(k.kms).toEqual({ keyId: 'alias/krypton-engine-jwt', region: undefined, endpointUrl: undefined, decrypt: 'host', perNode: false, blobDir: '/opt/krypton/secrets' });
  });

  it('the same address on different ports is two hosts', () => {
    const two = parseInventory(FILE, 'network: "1"\nnodes:\n  a: { role: rpc, address: h, port: 22 }\n  b: { role: rpc, address: h, port: 2222 }\n');
    expect(two.nodes.map((n) => n.conn.port)).toEqual([22, 2222]);
  });
});

describe('parseInventory: bad input is refused at file:line:col', () => {
  it('unknown key at the top level', () => {
    const e = refusal('network: "473374"\nbackend: vault\nnodez: {}\nnodes:\n  val-1: { role: validator }\n');
    expect(issueLines(e)).toEqual([expect.stringMatching(/^inv\.yml:3:1: nodez: unknown key \(expected one of: network, backend, vault, kms, ssh, defaults, nodes, cosigners\b.*\)$/)]);
    expect(e.hint).toBe('fix the entries above; nothing was changed on any host');
  });

  it('unknown key inside a node points at the key and lists the node keys', () => {
    const e = refusal('network: "473374"\nnodes:\n  val-1:\n    role: validator\n    adress: 10.0.0.1\n');
    expect(issueLines(e)).toEqual([expect.stringMatching(/^inv\.yml:5:5: nodes\.val-1\.adress: unknown key \(expected one of: role, address, port, user, .*\)$/)]);
  });

  it('unknown key inside defaults.jwt', () => {
    const e = refusal('network: "473374"\ndefaults:\n  jwt:\n    perms: "0600"\nnodes:\n  val-1: { role: validator }\n');
    expect(issueLines(e)).toEqual(['inv.yml:4:5: defaults.jwt.perms: unknown key (expected one of: owner, group, mode)']);
  });

  it('mode as a bare number says to quote it', () => {
    const e = refusal('network: "473374"\nnodes:\n  val-1:\n    role: validator\n    jwt:\n      mode: 0600\n');
    expect(issueLines(e)).toEqual([
      'inv.yml:6:13: nodes.val-1.jwt.mode: expected a quoted octal mode such as "0600"; a bare YAML number is not a mode string: write mode: "0600" (unquoted, YAML reads it as the number 600)',
    ]);
  });

  it('mode that is not octal', () => {
    const e = refusal('network: "473374"\nnodes:\n  val-1:\n    role: validator\n    jwt: { mode: "0680" }\n');
    expect(issueLines(e)).toEqual(['inv.yml:5:18: nodes.val-1.jwt.mode: expected an octal mode such as "0600" (three octal digits, optional leading 0)']);
  });

  it('network as a number says to quote it, echoing the value', () => {
    const e = refusal('network: 473374\nnodes:\n  val-1: { role: validator }\n');
    expect(issueLines(e)).toEqual(['inv.yml:1:10: network: expected the chain id as a quoted string: write network: "473374"']);
  });

  it('the chain-id hint quotes the source text, never the number YAML made of it (issue 10)', () => {
    const line = (v: string) => issueLines(refusal(`network: ${v}\nnodes:\n  val-1: { role: validator }\n`))[0];
    expect(line('007')).toBe('inv.yml:1:10: network: expected the chain id as a quoted string: write network: "007" (unquoted, YAML reads it as the number 7)');
    expect(line('9007199254740993')).toBe(
      'inv.yml:1:10: network: expected the chain id as a quoted string: write network: "9007199254740993" (unquoted, YAML reads it as the number 9007199254740992)',
    );
    // Quoted as written it is no chain id either: say so, and propose no other number.
    expect(line('0x12a')).toBe(
      'inv.yml:1:10: network: expected the chain id as a quoted string; quoted as written (network: "0x12a") it is refused too: expected a numeric chain id such as "473374" (testnet) or "47337" (mainnet) — YAML reads 0x12a as the number 298',
    );
    expect(line('0x12a')).not.toContain('"298"');
    // Following the hint gives the chain id as written.
    expect(parseInventory(FILE, 'network: "007"\nnodes:\n  val-1: { role: validator }\n').network).toBe('007');
    expect(parseInventory(FILE, 'network: "9007199254740993"\nnodes:\n  val-1: { role: validator }\n').network).toBe('9007199254740993');
  });

  it('a bare number where a number is expected gets no quoting advice', () => {
    const e = refusal('network: "1"\nnodes:\n  val-1: { role: validator, port: 70000 }\n');
    expect(issueLines(e)[0]).not.toMatch(/write port/);
  });

  it('a missing network', () => {
    const e = refusal('nodes:\n  val-1: { role: validator }\n');
    expect(issueLines(e)).toEqual([expect.stringMatching(/^inv\.yml:1:1: network: /)]);
  });

  it('duplicate key', () => {
    const e = refusal('network: "473374"\nnodes:\n  val-1:\n    role: validator\n    role: rpc\n');
    expect(e.message).toBe('inv.yml:5:5: duplicate key (each key may appear once in a mapping)');
    expect(e.hint).toBe('fix the YAML syntax at that position');
  });

  it('duplicate node name across nodes and cosigners', () => {
    const e = refusal('network: "473374"\nnodes:\n  val-1: { role: validator, address: 10.0.0.1 }\ncosigners:\n  val-1: { address: 10.0.0.9, shard_id: 1, key_dir: /k }\n');
    expect(e.message).toBe('inv.yml:5:3: val-1 is listed both as a node and as a cosigner');
  });

  it('duplicate address points at the second host\'s address', () => {
    const e = refusal('network: "473374"\nnodes:\n  val-1: { role: validator, address: 10.0.0.1 }\n  val-2:\n    role: validator\n    address: 10.0.0.1\n');
    expect(e.message).toBe('inv.yml:6:14: val-2 has the same address as val-1 (10.0.0.1:22)');
  });

  it('duplicate address between a node and a cosigner, through the ssh default port', () => {
    const e = refusal('network: "473374"\nssh: { port: 2200 }\nnodes:\n  val-1: { role: validator, address: h1 }\ncosigners:\n  c-1:\n    address: h1\n    shard_id: 1\n    key_dir: /k\n');
    expect(e.message).toBe('inv.yml:7:14: c-1 has the same address as val-1 (h1:2200)');
  });

  it('duplicate shard_id', () => {
    const e = refusal('network: "473374"\ncosigners:\n  c-1: { address: a, shard_id: 1, key_dir: /k }\n  c-2: { address: b, shard_id: 1, key_dir: /k }\n');
    expect(e.message).toBe("inv.yml:4:32: shard_id 1 is also c-1's");
  });

  it('bad role', () => {
    const e = refusal('network: "473374"\nnodes:\n  val-1:\n    role: sentry\n');
    expect(issueLines(e)).toEqual(['inv.yml:4:11: nodes.val-1.role: expected role: validator or rpc']);
  });

  it('YAML syntax error', () => {
    const e = refusal('network: "473374"\nnodes:\n  val-1:\n    role: validator\n   address: x\n');
    expect(e.message).toBe('inv.yml:5:1: All mapping items must start at the same column');
    expect(e.hint).toBe('fix the YAML syntax at that position');
  });

  it('YAML syntax error: an unclosed flow map', () => {
    const e = refusal('network: "473374"\nnodes:\n  val-1: { role: validator\n');
    expect(e.message).toMatch(/^inv\.yml:\d+:\d+: .*end with a \}/);
  });

  it('empty nodes (and no cosigners)', () => {
    const e = refusal('network: "473374"\nnodes: {}\n');
    expect(e.message).toBe('inv.yml:1:1: the inventory lists no nodes and no cosigners');
    expect(e.hint).toBe('add hosts under nodes: or cosigners:');
  });

  it('an empty file and a list are not inventories', () => {
    expect(refusal('').message).toBe('inv.yml:1:1: expected a mapping with network, nodes, … at the top level');
    expect(refusal('- val-1\n').message).toBe('inv.yml:1:1: expected a mapping with network, nodes, … at the top level');
  });

  it('backend kms without a kms block points at backend', () => {
    const e = refusal('network: "473374"\nbackend: kms\nnodes:\n  val-1: { role: validator }\n');
    expect(e.message).toBe('inv.yml:2:1: backend kms needs a kms: block with key_id');
  });

  it('restart given as a string instead of a list', () => {
    const e = refusal('network: "473374"\nnodes:\n  val-1:\n    role: validator\n    restart: docker compose restart el cl\n');
    expect(issueLines(e)).toEqual(['inv.yml:5:14: nodes.val-1.restart: expected a command as a list of words, e.g. [nodectl, restart, el, cl]']);
  });

  it('relative paths are refused', () => {
    const e = refusal('network: "473374"\ncosigners:\n  c-1: { address: a, shard_id: 1, key_dir: keys }\n');
    expect(issueLines(e)).toEqual(['inv.yml:3:44: cosigners.c-1.key_dir: expected an absolute path (starting with /, no control characters)']);
  });

  it('lists every issue, each at its own position', () => {
    const e = refusal('network: 1\nnodes:\n  val-1:\n    role: x\n    port: "22"\n');
    const lines = issueLines(e);
    expect(lines).toHaveLength(3);
    expect(lines[0]).toBe('inv.yml:1:10: network: expected the chain id as a quoted string: write network: "1"');
    expect(lines[1]).toBe('inv.yml:4:11: nodes.val-1.role: expected role: validator or rpc');
    expect(lines[2]).toMatch(/^inv\.yml:5:11: nodes\.val-1\.port: /);
  });
});

describe('the repo\'s example inventories load', () => {
  const files = readdirSync(join(ROOT, 'inventory')).filter((f) => f.endsWith('.yml'));
  it('inventory/ holds testnet.yml and mainnet.yml', () => {
    expect(files).toEqual(expect.arrayContaining(['testnet.yml', 'mainnet.yml']));
  });

  it('testnet.yml', async () => {
    const inv = await loadInventory(join(ROOT, 'inventory', 'testnet.yml'));
    expect(inv.file).toBe(join(ROOT, 'inventory', 'testnet.yml'));
    expect(inv.network).toBe('473374');
    expect(inv.nodes.length).toBeGreaterThan(0);
    expect(inv.nodes.every((n) => n.jwt.mode === '0600')).toBe(true);
  });

  it('mainnet.yml', async () => {
    const inv = await loadInventory(join(ROOT, 'inventory', 'mainnet.yml'));
    expect(inv.network).toBe('47337');
    expect(inv.nodes.filter((n) => n.role === 'validator').length).toBeGreaterThan(0);
  });

  for (const f of files) {
    it(`${f} loads`, async () => {
      await expect(loadInventory(join(ROOT, 'inventory', f))).resolves.toMatchObject({ backend: expect.any(String) });
    });
  }

  it('a missing file is E_INVENTORY naming the path', async () => {
    await expect(loadInventory('/nonexistent/inv.yml')).rejects.toMatchObject({ code: 'E_INVENTORY', message: 'cannot read /nonexistent/inv.yml: ENOENT' });
  });
});

describe('parseInventory: secrets stay private', () => {
  it('a JWT mode that lets every local user read it is refused', () => {
    expect(() => parseInventory('inv.yml', 'network: "473374"\nnodes:\n  val-1:\n    role: validator\n    jwt: { mode: "0644" }\n')).toThrow(
      /inv\.yml:5:18: nodes\.val-1\.jwt\.mode: expected "0600", "0640", "0400" or "0440": .*\(0644 gives other users access\)$/,
    );
    expect(parseInventory('inv.yml', 'network: "473374"\nnodes:\n  val-1:\n    role: validator\n    jwt: { mode: "0640", group: docker }\n').nodes[0]!.jwt.mode).toBe('0640');
  });

  it('secret file modes refuse group write and every bit for others; group read stays allowed (issue 10)', () => {
    const inv = (jwt: string, env = '') => `network: "473374"\nnodes:\n  val-1:\n    role: validator\n    jwt: { mode: "${jwt}" }\n${env}`;
    for (const m of ['0660', '0620', '0664', '0602', '0700', '0200', '660'])
      expect(() => parseInventory('inv.yml', inv(m)), m).toThrow(/inv\.yml:5:18: nodes\.val-1\.jwt\.mode: expected "0600", "0640", "0400" or "0440"/);
    expect(() => parseInventory('inv.yml', inv('0660'))).toThrow(/\(0660 lets the group write\)/);
    expect(() => parseInventory('inv.yml', inv('0620'))).toThrow(/\(0620 lets the group write\)/);
    for (const m of ['0600', '0640', '0400', '0440', '640']) expect(parseInventory('inv.yml', inv(m)).nodes[0]!.jwt.mode, m).toBe(m.padStart(4, '0'));
    // The env-secrets file too, in a node and in defaults.
    expect(() => parseInventory('inv.yml', inv('0600', '    env: { mode: "0660" }\n'))).toThrow(/inv\.yml:6:18: nodes\.val-1\.env\.mode: expected "0600", "0640", "0400" or "0440".*0660 lets the group write/);
    expect(() => parseInventory('inv.yml', 'network: "473374"\ndefaults:\n  env:\n    mode: "0620"\nnodes:\n  val-1: { role: validator }\n')).toThrow(/inv\.yml:4:11: defaults\.env\.mode: /);
    // A bare number: the hint quotes it as written and says that, quoted, it is refused too.
    expect(() => parseInventory('inv.yml', 'network: "473374"\nnodes:\n  val-1:\n    role: validator\n    jwt:\n      mode: 0660\n')).toThrow(
      /inv\.yml:6:13: nodes\.val-1\.jwt\.mode: .*quoted as written \(mode: "0660"\) it is refused too: expected "0600".*0660 lets the group write/,
    );
  });

  it('paths with .. segments or control characters are refused', () => {
    expect(() => parseInventory('inv.yml', 'network: "473374"\nnodes:\n  val-1: { role: validator, deploy_dir: "/opt/../etc" }\n')).toThrow(/deploy_dir: expected a path without \.\. segments/);
    expect(() => parseInventory('inv.yml', 'network: "473374"\nnodes:\n  val-1: { role: validator, deploy_dir: "/opt/k\\nx" }\n')).toThrow(/no control characters/);
  });

  it('a YAML alias bomb is refused as bad input, not an internal error', () => {
    const bomb = ['network: "473374"', 'a: &a [x, x, x, x, x, x, x, x, x, x]', 'b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]', 'c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]', 'd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]', 'nodes: {}'].join('\n');
    expect(() => parseInventory('inv.yml', bomb)).toThrow(expect.objectContaining({ code: 'E_INVENTORY' }));
  });
});

describe('parseInventory: files apply edits must be what they claim', () => {
  it('env_file must be named like a compose env file', () => {
    expect(() => parseInventory('inv.yml', 'network: "473374"\nnodes:\n  val-1: { role: validator, env_file: /etc/shadow }\n')).toThrow(/env_file: expected a compose env file/);
    for (const ok of ['/opt/krypton/.env', '/srv/k/node.env', '/srv/k/.env.testnet']) {
      expect(parseInventory('inv.yml', `network: "473374"\nnodes:\n  val-1: { role: validator, env_file: ${ok} }\n`).nodes[0]!.envFile).toBe(ok);
    }
  });
});
