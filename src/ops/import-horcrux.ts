/**
 * `import-horcrux`: put the output of Horcrux's key generation (`cosigner_<N>/ecies_keys.json`,
 * `cosigner_<N>/<chain-id>_shard.json`) into the store, one subtree per cosigner, all or nothing:
 *
 * Vault: KV v2 `horcrux/<cosigner>/{ecies,shard}`; KMS: blobs bound to `{purpose, network, cosigner}`; Secrets
 * Manager: secrets of the same names (src/model/layout.ts). The store steps are src/ops/import.ts's.
 *
 * 1. read and check every file (src/horcrux/keys.ts) against the inventory's cosigners and threshold — any
 *    problem refuses the whole import before the backend is contacted;
 * 2. read what the backend holds: identical files are left alone (a second import changes nothing); different
 *    ones are refused unless `replace` (a cosigner's keys are not overwritten by accident);
 * 3. check the token may write every path (Vault `sys/capabilities-self`), then write each file with
 *    check-and-set; if any write fails, undo the writes of this run (restore/destroy) and report;
 * 4. read every file back and compare SHA-256 with the local file;
 * 5. only then, and only with `shredSource`, overwrite each imported file with random bytes, fsync, unlink,
 *    and remove the emptied `cosigner_<N>/` dirs — each one reported. Without it, say that the files remain.
 *
 * Nothing here prints or logs file content; fingerprints are SHA-256, shown truncated.
 */
import { readdir, rmdir } from 'node:fs/promises';
import { join } from 'node:path';
import { KryptonError } from '../core/errors.ts';
import type { Inventory } from '../model/inventory.ts';
import { horcruxChainId, refFor } from '../model/layout.ts';
import type { SecretStore } from '../model/store.ts';
import { readAndValidateKeySet, type ValidatedKeySet } from '../horcrux/keys.ts';
import { importValues, shredFile, type ImportedValue } from './import.ts';

export interface ImportOptions {
  dir: string;
  inventory: Inventory;
  store: SecretStore;
  /** Overwrite stored key files that differ (default: refuse). */
  replace?: boolean;
  /** After a verified import, shred the local files. */
  shredSource?: boolean;
  /** Progress lines for people (never content). */
  print?: (line: string) => void;
}

export interface ImportedFile {
  cosigner: string;
  kind: 'ecies' | 'shard';
  file: string;
  fingerprint: string;
  source: string;
  version: number;
  status: 'written' | 'unchanged';
}

export interface ImportResult {
  chainId: string;
  threshold: number;
  validatorPubKey: string;
  files: ImportedFile[];
  /** Paths shredded (relative to the import dir). */
  shredded: string[];
}

export async function importHorcrux(o: ImportOptions): Promise<ImportResult> {
  const inv = o.inventory;
  const print = o.print ?? (() => {});
  if (inv.cosigners.length === 0) throw new KryptonError('E_INPUT', `the inventory ${inv.file} lists no cosigners`, { hint: 'add the cosigners (with shard_id and key_dir) under cosigners:' });
  if (!inv.horcrux) throw new KryptonError('E_INPUT', `the inventory ${inv.file} has no horcrux: block, so the threshold to check the shards against is unknown`, { hint: 'add horcrux: { threshold: <more than half the cosigners> }' });
  // 1. Every file checked before the store is contacted.
  const set: ValidatedKeySet = await readAndValidateKeySet(o.dir, {
    cosigners: inv.cosigners.map((c) => ({ name: c.name, shardId: c.shardId })),
    chainId: horcruxChainId(inv),
    threshold: inv.horcrux.threshold,
  });
  print(`checked ${set.cosigners.length * 2} key files in ${o.dir}: ${set.cosigners.length} cosigners, threshold ${set.threshold}, chain ${set.chainId}, validator key ${set.validatorPubKey}`);
  const items = set.cosigners.flatMap((c) =>
    ([['horcrux-ecies', 'ecies', c.ecies], ['horcrux-shard', 'shard', c.shard]] as const).map(([kind, short, key]) => ({ ref: refFor(inv, kind, c.cosigner), value: key.secret, file: key.file, cosigner: c.cosigner, short })),
  );
  // 2.–4. Store all or nothing, read back.
  const stored: ImportedValue[] = await importValues(o.store, items, {
    ...(o.replace ? { replace: true } : {}),
    replaceHint: "to replace a cluster's keys deliberately, import with --replace, then apply playbooks/cosigner-bringup.yml (all cosigners must move together)",
    print,
  });
  const files: ImportedFile[] = stored.map((v, i) => ({ cosigner: items[i]!.cosigner, kind: items[i]!.short, file: v.file, fingerprint: v.fingerprint, source: v.source, version: v.version, status: v.status }));
  // 5. Shred, only when asked and verified.
  const shredded: string[] = [];
  if (o.shredSource) {
    for (const c of set.cosigners) {
      for (const key of [c.ecies, c.shard]) {
        await shredFile(join(o.dir, key.file));
        shredded.push(key.file);
        print(`shredded ${join(o.dir, key.file)} (overwritten with random bytes, fsynced, unlinked)`);
      }
      const d = join(o.dir, c.ecies.file.split('/')[0]!);
      if ((await readdir(d)).length === 0) {
        await rmdir(d);
        print(`removed empty ${d}/`);
      }
    }
    print('note: overwriting in place does not reach copies kept by SSD wear levelling, copy-on-write filesystems or backups');
  } else {
    print(`the key files are still in ${o.dir}: after checking the fingerprints above, run again with --shred-source to shred them (or shred them yourself)`);
  }
  return { chainId: set.chainId, threshold: set.threshold, validatorPubKey: set.validatorPubKey, files, shredded };
}
