/**
 * `import-horcrux`: put the output of Horcrux's key generation (`cosigner_<N>/ecies_keys.json`,
 * `cosigner_<N>/<chain-id>_shard.json`) into the backend, one subtree per cosigner, all or nothing:
 *
 * Vault: KV v2 `horcrux/<cosigner>/{ecies,shard}`; KMS: blobs bound to `{purpose, network, cosigner}` (kms.ts).
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
import { randomBytes } from 'node:crypto';
import { open, readdir, rmdir, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Backends } from '../backends/registry.ts';
import type { HorcruxKind } from '../backends/vault-paths.ts';
import { KryptonError, toKryptonError } from '../core/errors.ts';
import { shortFingerprint } from '../core/secret.ts';
import type { Inventory } from '../inventory/model.ts';
import { horcruxChainId } from './config.ts';
import { readAndValidateKeySet, type HorcruxKeyFile, type ValidatedKeySet } from './keys.ts';
import { kmsHorcruxStore } from './kms.ts';
import { kmsOf, vaultHorcruxStore, type HorcruxStore, type StoredHorcruxKey } from './store.ts';

export interface ImportOptions {
  dir: string;
  inventory: Inventory;
  backends: Backends;
  /** Overwrite stored key files that differ (default: refuse). */
  replace?: boolean;
  /** After a verified import, shred the local files. */
  shredSource?: boolean;
  /** Progress lines for people (never content). */
  print?: (line: string) => void;
  /** The store to use (default: the inventory's backend). */
  store?: HorcruxStore;
}

export interface ImportedFile {
  cosigner: string;
  kind: HorcruxKind;
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

interface Planned {
  cosigner: string;
  kind: HorcruxKind;
  key: HorcruxKeyFile;
  current?: StoredHorcruxKey;
  casVersion: number;
}

/** The store for the inventory's backend. */
export function horcruxStoreFor(backends: Backends, inv: Inventory): HorcruxStore {
  if (inv.backend === 'vault') return vaultHorcruxStore(backends, inv);
  if (inv.backend === 'kms') return kmsHorcruxStore(inv, kmsOf(backends));
  throw new KryptonError('E_INPUT', `import-horcrux does not support backend ${inv.backend}`, { hint: 'use backend: vault or kms' });
}

export async function importHorcrux(o: ImportOptions): Promise<ImportResult> {
  const inv = o.inventory;
  const print = o.print ?? (() => {});
  if (inv.cosigners.length === 0) throw new KryptonError('E_INPUT', `the inventory ${inv.file} lists no cosigners`, { hint: 'add the cosigners (with shard_id and key_dir) under cosigners:' });
  if (!inv.horcrux) throw new KryptonError('E_INPUT', `the inventory ${inv.file} has no horcrux: block, so the threshold to check the shards against is unknown`, { hint: 'add horcrux: { threshold: <more than half the cosigners> }' });

  // 1. Every file checked before the backend is contacted.
  const set: ValidatedKeySet = await readAndValidateKeySet(o.dir, {
    cosigners: inv.cosigners.map((c) => ({ name: c.name, shardId: c.shardId })),
    chainId: horcruxChainId(inv),
    threshold: inv.horcrux.threshold,
  });
  print(`checked ${set.cosigners.length * 2} key files in ${o.dir}: ${set.cosigners.length} cosigners, threshold ${set.threshold}, chain ${set.chainId}, validator key ${set.validatorPubKey}`);

  // 2. What the backend holds.
  const store = o.store ?? horcruxStoreFor(o.backends, inv);
  const planned: Planned[] = [];
  for (const c of set.cosigners) {
    for (const [kind, key] of [['ecies', c.ecies], ['shard', c.shard]] as const) {
      const { current, casVersion } = await store.read(c.cosigner, kind);
      planned.push({ cosigner: c.cosigner, kind, key, ...(current ? { current } : {}), casVersion });
    }
  }
  const conflicts = planned.filter((p) => p.current && !p.current.secret.equals(p.key.secret));
  if (conflicts.length && !o.replace) {
    throw new KryptonError(
      'E_INPUT',
      `the backend already holds other key files for ${conflicts.length} of them; nothing was stored:\n${conflicts
        .map((p) => `- ${p.current!.source} v${p.current!.version} (${p.current!.secret.shortFingerprint()}) differs from ${p.key.file} (${p.key.secret.shortFingerprint()})`)
        .join('\n')}`,
      { hint: 'to replace a cluster\'s keys deliberately, import with --replace, then apply playbooks/cosigner-bringup.yml (all cosigners must move together)' },
    );
  }
  const toWrite = planned.filter((p) => !p.current || !p.current.secret.equals(p.key.secret));

  // 3. Write all, or undo.
  const written: { p: Planned; version: number }[] = [];
  if (toWrite.length) {
    await store.preflight(toWrite.map((p) => ({ cosigner: p.cosigner, kind: p.kind })));
    try {
      for (const p of toWrite) {
        const w = await store.write(p.cosigner, p.kind, p.key.secret, p.casVersion);
        written.push({ p, version: w.version });
      }
    } catch (err) {
      const e = toKryptonError(err);
      const undone: string[] = [];
      const notUndone: string[] = [];
      for (const { p, version } of written.reverse()) {
        try {
          await store.undo(p.cosigner, p.kind, version, p.current);
          undone.push(`${store.source(p.cosigner, p.kind)} v${version}`);
        } catch {
          notUndone.push(`${store.source(p.cosigner, p.kind)} v${version}`);
        }
      }
      throw new KryptonError(
        e.code,
        `${e.message} — the import stopped${undone.length ? `; undone: ${undone.join(', ')}` : ''}${notUndone.length ? `; NOT undone (remove by hand): ${notUndone.join(', ')}` : ''}`,
        { hint: e.hint ?? 'fix the cause and import again (files already stored unchanged are skipped)' },
      );
    }
  }

  // 4. Read back and compare.
  const files: ImportedFile[] = [];
  const mismatched: string[] = [];
  for (const p of planned) {
    const { current } = await store.read(p.cosigner, p.kind);
    if (!current || !current.secret.equals(p.key.secret)) {
      mismatched.push(`${store.source(p.cosigner, p.kind)}: ${current ? current.secret.shortFingerprint() : 'absent'}, expected ${p.key.secret.shortFingerprint()} (${p.key.file})`);
      continue;
    }
    const wasWritten = written.some((w) => w.p === p);
    files.push({ cosigner: p.cosigner, kind: p.kind, file: p.key.file, fingerprint: p.key.secret.fingerprint(), source: current.source, version: current.version, status: wasWritten ? 'written' : 'unchanged' });
    print(`${p.cosigner.padEnd(12)} ${p.key.name.padEnd(24)} ${shortFingerprint(p.key.secret.fingerprint())}  ${current.source} v${current.version}  ${wasWritten ? 'written' : 'unchanged'}`);
  }
  if (mismatched.length) {
    throw new KryptonError('E_VERIFY', `reading the stored key files back did not give the imported ones:\n${mismatched.map((m) => `- ${m}`).join('\n')}`, {
      hint: 'someone else may be writing these paths; the local files were NOT shredded — investigate, then import again',
    });
  }

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

/** Overwrites a file with random bytes of its size, fsyncs, and unlinks it. */
export async function shredFile(path: string): Promise<void> {
  const { size } = await stat(path);
  const fh = await open(path, 'r+');
  try {
    await fh.write(randomBytes(Math.max(size, 1)), 0, Math.max(size, 1), 0);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await unlink(path);
}
