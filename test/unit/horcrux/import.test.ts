import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { Backends } from '../../../src/backends/registry.ts';
import type { HorcruxKind } from '../../../src/backends/vault-paths.ts';
import { KryptonError } from '../../../src/core/errors.ts';
import type { Secret } from '../../../src/core/secret.ts';
import { importHorcrux } from '../../../src/horcrux/import.ts';
import type { HorcruxStore, StoredHorcruxKey } from '../../../src/horcrux/store.ts';
import { parseInventory } from '../../../src/inventory/loader.ts';
import { generateHorcruxKeys, writeHorcruxKeys } from '../../sandbox/horcrux-keys.ts';

const FIXTURE = join(import.meta.dirname, '..', 'fixtures', 'horcrux.yml');
const inv = parseInventory(FIXTURE, readFileSync(FIXTURE, 'utf8'));
const CHAIN = '473374';
const root = mkdtempSync(join(tmpdir(), 'ks-import-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** An in-memory KV v2-like store with versions, check-and-set, and an optional failure on the nth write. */
class MemStore implements HorcruxStore {
  data = new Map<string, { versions: (Secret | undefined)[] }>();
  writes = 0;
  failOnWrite?: number;
  denied = false;
  source(c: string, k: HorcruxKind): string {
    return `mem/${c}/${k}`;
  }
  async read(c: string, k: HorcruxKind): Promise<{ current?: StoredHorcruxKey; casVersion: number }> {
    const e = this.data.get(`${c}/${k}`);
    if (!e) return { casVersion: 0 };
    const v = e.versions.length;
    const cur = e.versions[v - 1];
    return { ...(cur ? { current: { secret: cur, version: v, source: this.source(c, k) } } : {}), casVersion: v };
  }
  async write(c: string, k: HorcruxKind, value: Secret, cas: number): Promise<{ version: number }> {
    this.writes++;
    if (this.failOnWrite === this.writes) throw new KryptonError('E_VAULT', 'simulated write failure', { hint: 'h' });
    const e = this.data.get(`${c}/${k}`) ?? { versions: [] };
    if (e.versions.length !== cas) throw new KryptonError('E_VAULT', 'cas mismatch');
    e.versions.push(value);
    this.data.set(`${c}/${k}`, e);
    return { version: e.versions.length };
  }
  async undo(c: string, k: HorcruxKind, version: number, previous: StoredHorcruxKey | undefined): Promise<void> {
    const e = this.data.get(`${c}/${k}`)!;
    if (previous) e.versions.push(previous.secret);
    e.versions[version - 1] = undefined; // destroyed
  }
  async preflight(): Promise<void> {
    if (this.denied) throw new KryptonError('E_VAULT_DENIED', 'denied before writing');
  }
  live(): number {
    return [...this.data.values()].filter((e) => e.versions.at(-1) !== undefined).length;
  }
}

const noBackends = {} as Backends;

function keyDir(name: string, shards = 3, threshold = 2) {
  const set = generateHorcruxKeys({ shards, threshold, chainId: CHAIN });
  const dir = join(root, name);
  writeHorcruxKeys(dir, set, CHAIN);
  return { dir, set };
}

describe('importHorcrux', () => {
  it('stores every file, then a second import changes nothing; prints fingerprints, never content', async () => {
    const { dir, set } = keyDir('ok');
    const store = new MemStore();
    const lines: string[] = [];
    const r = await importHorcrux({ dir, inventory: inv, backends: noBackends, store, print: (l) => lines.push(l) });
    expect(r.files.map((f) => `${f.cosigner}/${f.kind}:${f.status}`)).toEqual([
      'cosigner-1/ecies:written', 'cosigner-1/shard:written', 'cosigner-2/ecies:written', 'cosigner-2/shard:written', 'cosigner-3/ecies:written', 'cosigner-3/shard:written',
    ]);
    expect(store.live()).toBe(6);
    expect((await store.read('cosigner-2', 'shard')).current!.secret.revealText()).toBe(set.cosigners[1]!.shard);
    const out = lines.join('\n');
    for (const c of set.cosigners) {
      expect(out).not.toContain(c.ecies);
      expect(out).not.toContain((JSON.parse(c.shard) as { privateShard: string }).privateShard);
    }
    expect(out).toMatch(/still in .*--shred-source/);
    expect(existsSync(join(dir, 'cosigner_1', 'ecies_keys.json'))).toBe(true);

    const again = await importHorcrux({ dir, inventory: inv, backends: noBackends, store });
    expect(again.files.every((f) => f.status === 'unchanged')).toBe(true);
    expect(store.writes).toBe(6);
  });

  it('a malformed set stores nothing and never contacts the store', async () => {
    const { dir } = keyDir('bad');
    writeFileSync(join(dir, 'cosigner_3', `${CHAIN}_shard.json`), '{"pubKey":"AAAA","privateShard":"AAAA","id":3}');
    const store = new MemStore();
    await expect(importHorcrux({ dir, inventory: inv, backends: noBackends, store })).rejects.toThrow(/not importable .* nothing was stored[\s\S]*cosigner_3\/473374_shard\.json: "pubKey" is 3 bytes/);
    expect(store.writes).toBe(0);
  });

  it('refuses different stored keys unless --replace; with replace it writes new versions', async () => {
    const a = keyDir('a');
    const b = keyDir('b');
    const store = new MemStore();
    await importHorcrux({ dir: a.dir, inventory: inv, backends: noBackends, store });
    const err = await importHorcrux({ dir: b.dir, inventory: inv, backends: noBackends, store }).catch((e: unknown) => e as KryptonError);
    expect(err).toBeInstanceOf(KryptonError);
    expect((err as KryptonError).message).toMatch(/already holds other key files for 6 of them; nothing was stored/);
    expect((err as KryptonError).hint).toMatch(/--replace/);
    expect(store.writes).toBe(6);
    const r = await importHorcrux({ dir: b.dir, inventory: inv, backends: noBackends, store, replace: true });
    expect(r.files.every((f) => f.status === 'written' && f.version === 2)).toBe(true);
  });

  it('a write failing half-way undoes the writes of this run', async () => {
    const { dir } = keyDir('half');
    const store = new MemStore();
    store.failOnWrite = 4;
    const err = (await importHorcrux({ dir, inventory: inv, backends: noBackends, store }).catch((e: unknown) => e)) as KryptonError;
    expect(err.code).toBe('E_VAULT');
    expect(err.message).toMatch(/simulated write failure — the import stopped; undone: mem\/cosigner-2\/ecies v1, mem\/cosigner-1\/shard v1, mem\/cosigner-1\/ecies v1/);
    expect(store.live()).toBe(0);
    // Fixed: the import goes through (destroyed versions count for check-and-set).
    store.failOnWrite = undefined;
    const r = await importHorcrux({ dir, inventory: inv, backends: noBackends, store });
    expect(r.files.filter((f) => f.status === 'written')).toHaveLength(6);
  });

  it('a token that may not write is refused before anything is written', async () => {
    const { dir } = keyDir('denied');
    const store = new MemStore();
    store.denied = true;
    await expect(importHorcrux({ dir, inventory: inv, backends: noBackends, store })).rejects.toThrow(/denied before writing/);
    expect(store.writes).toBe(0);
  });

  it('--shred-source shreds only after the stored fingerprints were verified, and removes the emptied dirs', async () => {
    const { dir } = keyDir('shred');
    const store = new MemStore();
    const lines: string[] = [];
    const r = await importHorcrux({ dir, inventory: inv, backends: noBackends, store, shredSource: true, print: (l) => lines.push(l) });
    expect(r.shredded).toHaveLength(6);
    expect(existsSync(join(dir, 'cosigner_1'))).toBe(false);
    expect(lines.filter((l) => l.startsWith('shredded '))).toHaveLength(6);

    // A store that gives back something else: verification fails, nothing is shredded.
    const { dir: dir2 } = keyDir('noshred');
    const liar = new MemStore();
    const realRead = liar.read.bind(liar);
    let reads = 0;
    liar.read = async (c, k) => {
      const r2 = await realRead(c, k);
      return ++reads > 6 && r2.current ? { ...r2, current: { ...r2.current, secret: (await realRead('cosigner-1', 'ecies')).current!.secret } } : r2;
    };
    await expect(importHorcrux({ dir: dir2, inventory: inv, backends: noBackends, store: liar, shredSource: true })).rejects.toThrow(/did not give the imported ones/);
    expect(existsSync(join(dir2, 'cosigner_2', 'ecies_keys.json'))).toBe(true);
  });

  it('needs cosigners and a threshold in the inventory', async () => {
    const noHorcrux = parseInventory('/tmp/x.yml', 'network: "473374"\ncosigners:\n  c-1: { shard_id: 1, key_dir: /k }\n');
    await expect(importHorcrux({ dir: root, inventory: noHorcrux, backends: noBackends, store: new MemStore() })).rejects.toThrow(/no horcrux: block/);
  });
});
