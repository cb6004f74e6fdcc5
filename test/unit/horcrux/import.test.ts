/**
 * import-horcrux (src/ops/import-horcrux.ts) through the SecretStore interface: checked before the store is
 * contacted, all or nothing, read back before any shredding. The store is test/unit/fake-fleet.ts's MemoryStore
 * (KV v2 semantics: check-and-set, a destroyed version still counts); the KMS store is in kms.test.ts.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { KryptonError } from '../../../src/core/errors.ts';
import { parseInventory } from '../../../src/inventory/loader.ts';
import { refFor, refsOf, type SecretRef } from '../../../src/model/layout.ts';
import { importHorcrux } from '../../../src/ops/import-horcrux.ts';
import { MemoryStore } from '../fake-fleet.ts';
import { generateHorcruxKeys, writeHorcruxKeys } from '../../sandbox/horcrux-keys.ts';

const FIXTURE = join(import.meta.dirname, '..', 'fixtures', 'horcrux.yml');
const inv = parseInventory(FIXTURE, readFileSync(FIXTURE, 'utf8'));
const CHAIN = '473374';
const root = mkdtempSync(join(tmpdir(), 'ks-import-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const newStore = () => new MemoryStore(inv);
/** How many of the cosigners' key files the store holds a current value for. */
const live = (store: MemoryStore) => refsOf(inv, inv.cosigners).filter((r: SecretRef) => store.peek(r) !== undefined).length;
const writes = (store: MemoryStore) => store.calls.filter((c) => c.method === 'write').length;

function keyDir(name: string, shards = 3, threshold = 2) {
  const set = generateHorcruxKeys({ shards, threshold, chainId: CHAIN });
  const dir = join(root, name);
  writeHorcruxKeys(dir, set, CHAIN);
  return { dir, set };
}

describe('importHorcrux', () => {
  it('stores every file, then a second import changes nothing; prints fingerprints, never content', async () => {
    const { dir, set } = keyDir('ok');
    const store = newStore();
    const lines: string[] = [];
    const r = await importHorcrux({ dir, inventory: inv, store, print: (l) => lines.push(l) });
    expect(r.files.map((f) => `${f.cosigner}/${f.kind}:${f.status}`)).toEqual([
      'cosigner-1/ecies:written', 'cosigner-1/shard:written', 'cosigner-2/ecies:written', 'cosigner-2/shard:written', 'cosigner-3/ecies:written', 'cosigner-3/shard:written',
    ]);
    expect(live(store)).toBe(6);
    expect(store.peek(refFor(inv, 'horcrux-shard', 'cosigner-2'))!.revealText()).toBe(set.cosigners[1]!.shard);
    expect(r.files.find((f) => f.cosigner === 'cosigner-2' && f.kind === 'shard')).toMatchObject({ source: 'secret/krypton/473374/horcrux/cosigner-2/shard', version: 1 });
    const out = lines.join('\n');
    for (const c of set.cosigners) {
      expect(out).not.toContain(c.ecies);
      expect(out).not.toContain((JSON.parse(c.shard) as { privateShard: string }).privateShard);
    }
    expect(out).toMatch(/still in .*--shred-source/);
    expect(existsSync(join(dir, 'cosigner_1', 'ecies_keys.json'))).toBe(true);

    const again = await importHorcrux({ dir, inventory: inv, store });
    expect(again.files.every((f) => f.status === 'unchanged')).toBe(true);
    expect(writes(store)).toBe(6);
    expect(store.calls.filter((c) => c.method === 'checkWrite')).toHaveLength(1); // nothing to write: not even asked
  });

  it('a malformed set stores nothing and never contacts the store', async () => {
    const { dir } = keyDir('bad');
    writeFileSync(join(dir, 'cosigner_3', `${CHAIN}_shard.json`), '{"pubKey":"AAAA","privateShard":"AAAA","id":3}');
    const store = newStore();
    await expect(importHorcrux({ dir, inventory: inv, store })).rejects.toThrow(/not importable .* nothing was stored[\s\S]*cosigner_3\/473374_shard\.json: "pubKey" is 3 bytes/);
    expect(store.calls).toEqual([]);
  });

  it('refuses different stored keys unless --replace; with replace it writes new versions', async () => {
    const a = keyDir('a');
    const b = keyDir('b');
    const store = newStore();
    await importHorcrux({ dir: a.dir, inventory: inv, store });
    const err = await importHorcrux({ dir: b.dir, inventory: inv, store }).catch((e: unknown) => e as KryptonError);
    expect(err).toBeInstanceOf(KryptonError);
    expect((err as KryptonError).message).toMatch(/the store already holds other values for 6 of them; nothing was stored/);
    expect((err as KryptonError).message).toMatch(/secret\/krypton\/473374\/horcrux\/cosigner-1\/ecies v1 \(sha256:[0-9a-f]{12}\) differs from cosigner_1\/ecies_keys.json/);
    expect((err as KryptonError).hint).toMatch(/--replace/);
    expect(writes(store)).toBe(6);
    const r = await importHorcrux({ dir: b.dir, inventory: inv, store, replace: true });
    expect(r.files.every((f) => f.status === 'written' && f.version === 2)).toBe(true);
  });

  it('a write failing half-way undoes the writes of this run', async () => {
    const { dir } = keyDir('half');
    const store = newStore();
    store.failOnWrite = 4;
    const err = (await importHorcrux({ dir, inventory: inv, store }).catch((e: unknown) => e)) as KryptonError;
    expect(err.code).toBe('E_VAULT');
    expect(err.message).toMatch(
      /simulated write failure at secret\/krypton\/473374\/horcrux\/cosigner-2\/shard — the import stopped; undone: secret\/krypton\/473374\/horcrux\/cosigner-2\/ecies v1, secret\/krypton\/473374\/horcrux\/cosigner-1\/shard v1, secret\/krypton\/473374\/horcrux\/cosigner-1\/ecies v1$/,
    );
    expect(live(store)).toBe(0);
    // Fixed: the import goes through (destroyed versions count for check-and-set).
    store.failOnWrite = undefined;
    const r = await importHorcrux({ dir, inventory: inv, store });
    expect(r.files.filter((f) => f.status === 'written')).toHaveLength(6);
  });

  it('a token that may not write is refused before anything is written', async () => {
    const { dir } = keyDir('denied');
    const store = newStore();
    store.denied = true;
    await expect(importHorcrux({ dir, inventory: inv, store })).rejects.toMatchObject({ code: 'E_VAULT_DENIED' });
    expect(writes(store)).toBe(0);
  });

  it('--shred-source shreds only after the stored fingerprints were verified, and removes the emptied dirs', async () => {
    const { dir } = keyDir('shred');
    const store = newStore();
    const lines: string[] = [];
    const r = await importHorcrux({ dir, inventory: inv, store, shredSource: true, print: (l) => lines.push(l) });
    expect(r.shredded).toHaveLength(6);
    expect(existsSync(join(dir, 'cosigner_1'))).toBe(false);
    expect(lines.filter((l) => l.startsWith('shredded '))).toHaveLength(6);

    // A store that gives back something else: verification fails, nothing is shredded.
    const { dir: dir2 } = keyDir('noshred');
    const liar = newStore();
    const realCurrent = liar.current.bind(liar);
    let reads = 0;
    // After the 6 reads of the plan, every read-back gives cosigner-1's ECIES file.
    liar.current = async (ref) => {
      const v = await realCurrent(ref);
      return ++reads > 6 && v ? { ...v, secret: liar.peek(refFor(inv, 'horcrux-ecies', 'cosigner-1'))! } : v;
    };
    await expect(importHorcrux({ dir: dir2, inventory: inv, store: liar, shredSource: true })).rejects.toMatchObject({ code: 'E_VERIFY', message: expect.stringMatching(/did not give the imported ones/) });
    expect(existsSync(join(dir2, 'cosigner_2', 'ecies_keys.json'))).toBe(true);
  });

  it('needs cosigners and a threshold in the inventory', async () => {
    const noHorcrux = parseInventory('/tmp/x.yml', 'network: "473374"\ncosigners:\n  c-1: { shard_id: 1, key_dir: /k }\n');
    await expect(importHorcrux({ dir: root, inventory: noHorcrux, store: new MemoryStore(noHorcrux) })).rejects.toThrow(/no horcrux: block/);
    const noCosigners = parseInventory('/tmp/y.yml', 'network: "473374"\nnodes:\n  val-1: { role: validator }\n');
    await expect(importHorcrux({ dir: root, inventory: noCosigners, store: new MemoryStore(noCosigners) })).rejects.toThrow(/lists no cosigners/);
  });
});
