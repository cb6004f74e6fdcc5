/**
 * Storing values an operator brings (Horcrux key files, env-secrets) into the inventory's store, all or nothing:
 *
 * 1. the caller has read and checked every value (nothing reaches the store if one is bad);
 * 2. read what the store holds: identical values are left alone (a second import changes nothing); different
 *    ones are refused unless `replace`;
 * 3. check the operator may write every reference (`checkWrite`), then write each with check-and-set; if any
 *    write fails, undo this run's writes (restore/destroy) and report which were and were not undone;
 * 4. read every value back and compare SHA-256 with what was imported;
 * 5. only then, and only with `shredSource`, overwrite each source file with random bytes, fsync and unlink it.
 *
 * Nothing here prints or logs a value; fingerprints are SHA-256, shown truncated.
 */
import { randomBytes } from 'node:crypto';
import { open, stat, unlink } from 'node:fs/promises';
import { KryptonError, toKryptonError } from '../core/errors.ts';
import type { Secret } from '../core/secret.ts';
import { describeRef, type SecretRef } from '../model/layout.ts';
import type { SecretStore, StoredValue } from '../model/store.ts';

/** One value to store: its reference, its canonical bytes, and the local file it came from (for messages and shredding). */
export interface ImportItem {
  ref: SecretRef;
  value: Secret;
  /** The source file, as shown to people (relative to the import dir, or the path given). */
  file: string;
}

/** What happened to one item. */
export interface ImportedValue {
  ref: SecretRef;
  file: string;
  fingerprint: string;
  source: string;
  version: number;
  status: 'written' | 'unchanged';
}

export interface ImportValuesOptions {
  /** Overwrite stored values that differ (default: refuse). */
  replace?: boolean;
  /** The hint when a stored value differs and `replace` is not given. */
  replaceHint: string;
  print?: (line: string) => void;
}

/**
 * Steps 2–4 above. Returns each item's outcome in order.
 * @throws KryptonError E_INPUT (a stored value differs, without `replace`; nothing was written), the store's
 * error for a failed write (after undoing this run's writes; the message says what was and was not undone),
 * E_VERIFY when a value read back is not the imported one.
 */
export async function importValues(store: SecretStore, items: readonly ImportItem[], o: ImportValuesOptions): Promise<ImportedValue[]> {
  const print = o.print ?? (() => {});
  const planned: { item: ImportItem; current?: StoredValue; head: number }[] = [];
  for (const item of items) {
    const [current, head] = await Promise.all([store.current(item.ref), store.head(item.ref)]);
    planned.push({ item, ...(current ? { current } : {}), head });
  }
  const conflicts = planned.filter((p) => p.current && !p.current.secret.equals(p.item.value));
  if (conflicts.length && !o.replace) {
    throw new KryptonError(
      'E_INPUT',
      `the store already holds other values for ${conflicts.length} of them; nothing was stored:\n${conflicts
        .map((p) => `- ${p.current!.source} v${p.current!.version} (${p.current!.secret.shortFingerprint()}) differs from ${p.item.file} (${p.item.value.shortFingerprint()})`)
        .join('\n')}`,
      { hint: o.replaceHint },
    );
  }
  const toWrite = planned.filter((p) => !p.current || !p.current.secret.equals(p.item.value));
  const written: { p: (typeof planned)[number]; version: number }[] = [];
  if (toWrite.length) {
    await store.checkWrite(toWrite.map((p) => p.item.ref));
    try {
      for (const p of toWrite) written.push({ p, version: (await store.write(p.item.ref, p.item.value, p.head)).version });
    } catch (err) {
      const e = toKryptonError(err);
      const undone: string[] = [];
      const notUndone: string[] = [];
      for (const { p, version } of written.reverse()) {
        try {
          await store.undo(p.item.ref, version, p.current);
          undone.push(`${store.describe(p.item.ref)} v${version}`);
        } catch {
          notUndone.push(`${store.describe(p.item.ref)} v${version}`);
        }
      }
      throw new KryptonError(
        e.code,
        `${e.message} — the import stopped${undone.length ? `; undone: ${undone.join(', ')}` : ''}${notUndone.length ? `; NOT undone (remove by hand): ${notUndone.join(', ')}` : ''}`,
        { hint: e.hint ?? 'fix the cause and import again (values already stored unchanged are skipped)' },
      );
    }
  }
  const out: ImportedValue[] = [];
  const mismatched: string[] = [];
  for (const p of planned) {
    const current = await store.current(p.item.ref);
    if (!current || !current.secret.equals(p.item.value)) {
      mismatched.push(`${store.describe(p.item.ref)}: ${current ? current.secret.shortFingerprint() : 'absent'}, expected ${p.item.value.shortFingerprint()} (${p.item.file})`);
      continue;
    }
    const wasWritten = written.some((w) => w.p === p);
    out.push({ ref: p.item.ref, file: p.item.file, fingerprint: p.item.value.fingerprint(), source: current.source, version: current.version, status: wasWritten ? 'written' : 'unchanged' });
    print(`${describeRef(p.item.ref)}: ${p.item.value.shortFingerprint()}  ${current.source} v${current.version}  ${wasWritten ? 'written' : 'unchanged'}`);
  }
  if (mismatched.length) {
    throw new KryptonError('E_VERIFY', `reading the stored values back did not give the imported ones:\n${mismatched.map((m) => `- ${m}`).join('\n')}`, {
      hint: 'someone else may be writing these paths; the local files were NOT shredded — investigate, then import again',
    });
  }
  return out;
}

/**
 * Overwrites a file with random bytes of its size, fsyncs, and unlinks it. Overwriting in place does not reach
 * copies kept by SSD wear levelling, copy-on-write filesystems or backups (callers say so).
 */
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
