import { describe, expect, it } from 'vitest';
import { parseInventory } from '../../src/inventory/loader.ts';
import { checkLimit, selectHosts } from '../../src/executor/select.ts';
import { KryptonError } from '../../src/core/errors.ts';

const INV = `network: "473374"
ssh: { known_hosts: /dev/null }
nodes:
  val-1: { role: validator, address: 10.0.0.1 }
  val-2: { role: validator, address: 10.0.0.2 }
  val-3: { role: validator, address: 10.0.0.3 }
  val-10: { role: validator, address: 10.0.0.10 }
  rpc-1: { role: rpc, address: 10.0.0.4 }
groups:
  eu: [val-1, val-2]
  us: [val-3, rpc-1]
  canary: [val-1]
  west: [eu, canary, val-10]
`;

const inv = parseInventory('inv.yml', INV);
const names = (s: Set<string> | undefined) => [...(s ?? [])].sort();

function thrown(f: () => unknown): KryptonError {
  try {
    f();
  } catch (e) {
    if (e instanceof KryptonError) return e;
    throw e;
  }
  throw new Error('did not throw');
}

describe('inventory groups:', () => {
  it('resolves nested groups to host names in inventory order', () => {
    expect(inv.groups).toEqual({ eu: ['val-1', 'val-2'], us: ['val-3', 'rpc-1'], canary: ['val-1'], west: ['val-1', 'val-2', 'val-10'] });
  });

  it('refuses a member that is neither host nor group, at its line and column', () => {
    const e = thrown(() => parseInventory('inv.yml', INV.replace('us: [val-3, rpc-1]', 'us: [val-3, rpc-9]')));
    expect(e.code).toBe('E_INVENTORY');
    expect(e.message).toMatch(/^inv\.yml:11:\d+: groups\.us: rpc-9 is neither a host nor a group/);
  });

  it('refuses a group that contains itself, and a group named like a host or a built-in selection', () => {
    expect(thrown(() => parseInventory('inv.yml', INV.replace('canary: [val-1]', 'canary: [west]'))).message).toMatch(/contains itself \((canary → west → canary|west → canary → west)\)/);
    expect(thrown(() => parseInventory('inv.yml', INV.replace('canary: [val-1]', 'val-2: [val-1]'))).message).toMatch(/^inv\.yml:12:3: group val-2 has the name of a host/);
    expect(thrown(() => parseInventory('inv.yml', INV.replace('canary: [val-1]', 'validators: [val-1]'))).message).toMatch(/group validators has the name of a built-in selection/);
  });

  it('refuses an unknown key inside groups: shape (a mapping of lists)', () => {
    expect(thrown(() => parseInventory('inv.yml', INV.replace('canary: [val-1]', 'canary: val-1'))).code).toBe('E_INVENTORY');
  });
});

describe('selectHosts with groups', () => {
  it('takes a group name as hosts:, and group names inside a list', () => {
    expect(selectHosts(inv, 'eu').map((h) => h.name)).toEqual(['val-1', 'val-2']);
    expect(selectHosts(inv, ['us', 'val-1', 'eu']).map((h) => h.name)).toEqual(['val-3', 'rpc-1', 'val-1', 'val-2']);
    expect(thrown(() => selectHosts(inv, 'nowhere')).code).toBe('E_PLAYBOOK');
  });
});

describe('--limit patterns', () => {
  it('globs match whole names: val-* everything named val-, val-? one character, classes', () => {
    expect(names(checkLimit(inv, ['val-*']))).toEqual(['val-1', 'val-10', 'val-2', 'val-3']);
    expect(names(checkLimit(inv, ['val-?']))).toEqual(['val-1', 'val-2', 'val-3']);
    expect(names(checkLimit(inv, ['val-[12]']))).toEqual(['val-1', 'val-2']);
    expect(names(checkLimit(inv, ['val-[!12]']))).toEqual(['val-3']);
  });

  it('"val-*,!val-2" selects every val- host but val-2; negation alone starts from all hosts', () => {
    expect(names(checkLimit(inv, ['val-*', '!val-2']))).toEqual(['val-1', 'val-10', 'val-3']);
    expect(names(checkLimit(inv, ['!validators']))).toEqual(['rpc-1']);
  });

  it('groups and roles select what they name; repeated -l patterns are one union', () => {
    expect(names(checkLimit(inv, ['eu']))).toEqual(['val-1', 'val-2']);
    expect(names(checkLimit(inv, ['rpc']))).toEqual(['rpc-1']);
    expect(names(checkLimit(inv, ['west', '!canary']))).toEqual(['val-10', 'val-2']);
    expect(names(checkLimit(inv, ['eu', 'us']))).toEqual(['rpc-1', 'val-1', 'val-2', 'val-3']);
  });

  it('a pattern matching no host, and a selection left empty, are E_USAGE naming them', () => {
    const e = thrown(() => checkLimit(inv, ['val-*', 'db-*', 'nope']));
    expect(e.code).toBe('E_USAGE');
    expect(e.message).toBe('--limit db-*, nope match no host of the inventory inv.yml');
    expect(e.hint).toContain('selections: all, nodes, validators, rpc, cosigners, eu, us, canary, west');
    expect(thrown(() => checkLimit(inv, ['eu', '!eu'])).message).toMatch(/leaves no host/);
    expect(thrown(() => checkLimit(inv, [' ', ''])).message).toMatch(/names no host/);
  });
});
