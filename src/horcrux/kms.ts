/**
 * Horcrux key files with `backend: kms`: each file is a KMS blob bound by its encryption context to its purpose,
 * network and cosigner — `{purpose: krypton-horcrux-ecies | krypton-horcrux-shard, network, cosigner}` — so a
 * cosigner's identity, allowed to decrypt only under its own context, cannot open another cosigner's blob, and
 * an ECIES blob cannot pass for a shard.
 *
 * Blobs are not secret; like the Engine-API JWT's (src/backends/kms.ts) the canonical copies live next to the
 * inventory, meant to be committed with it: `<inventory dir>/blobs/<network>/horcrux/<cosigner>/<ecies|shard>/
 * v<N>.enc` plus `v<N>.json` (key ARN, context, blob SHA-256, never a secret). The highest N is current; a new
 * version is created exclusively (link(2)), so two importers cannot both win. On the cosigner the current blobs
 * sit at `<home>/blobs/` (persistent disk is fine), and the host's own AWS identity decrypts them into the
 * tmpfs key dir (`kms.decrypt: host`, a fixed sh script, plaintext never on a command line or on disk), or the
 * laptop decrypts in memory and writes them over SFTP (`kms.decrypt: operator`).
 */
import { randomBytes } from 'node:crypto';
import { link, mkdir, readFile, readdir, unlink, writeFile } from 'node:fs/promises';
import { dirname, join, posix, relative } from 'node:path';
import { blobRoot, type BlobMeta, type KmsBackend } from '../backends/kms.ts';
import type { HorcruxKind } from '../backends/vault-paths.ts';
import { assertVaultSegment } from '../backends/vault-paths.ts';
import { KryptonError } from '../core/errors.ts';
import { Secret, sha256Hex } from '../core/secret.ts';
import type { Inventory } from '../inventory/model.ts';
import { HOST_AWS_CLI, kmsDecryptArgs, type AwsTarget } from '../render/kms-host.ts';
import type { CosignerSettings } from './config.ts';
import type { HorcruxStore, StoredHorcruxKey } from './store.ts';

/** `purpose` of each key file's encryption context. */
export const HORCRUX_PURPOSE: Readonly<Record<HorcruxKind, string>> = { ecies: 'krypton-horcrux-ecies', shard: 'krypton-horcrux-shard' };

/** The encryption context a cosigner's key file blob is bound to. */
export function horcruxContext(inv: Inventory, cosigner: string, kind: HorcruxKind): Record<string, string> {
  return { purpose: HORCRUX_PURPOSE[kind], network: inv.network, cosigner: assertVaultSegment('cosigner', cosigner) };
}

/** `<inventory dir>/blobs/<network>/horcrux/<cosigner>/<kind>`. */
export function horcruxBlobDir(inv: Inventory, cosigner: string, kind: HorcruxKind, root = blobRoot(inv)): string {
  return join(root, assertVaultSegment('network', inv.network), 'horcrux', assertVaultSegment('cosigner', cosigner), kind);
}

/** Where the current blobs sit on the cosigner: `<home>/blobs/<key file name>.enc`. */
export function hostHorcruxBlobs(s: CosignerSettings): Record<HorcruxKind, string> {
  return {
    ecies: posix.join(s.home, 'blobs', `${posix.basename(s.keyFiles.ecies)}.enc`),
    shard: posix.join(s.home, 'blobs', `${posix.basename(s.keyFiles.shard)}.enc`),
  };
}

/** A blob of the store. */
export interface HorcruxBlob {
  version: number;
  /** Path relative to the inventory dir (for messages). */
  display: string;
  bytes: Buffer;
  sha256: string;
  meta?: BlobMeta;
}

export interface KmsHorcruxStore extends HorcruxStore {
  currentBlob(cosigner: string, kind: HorcruxKind): Promise<HorcruxBlob | undefined>;
}

/** The blob store of Horcrux key files (see the file comment). `kms` is called only when needed. */
export function kmsHorcruxStore(inv: Inventory, kms: () => KmsBackend, root: string = blobRoot(inv)): KmsHorcruxStore {
  const display = (p: string): string => relative(dirname(inv.file), p) || p;
  const keyId = (): string => {
    if (!inv.kms) throw new KryptonError('E_INVENTORY', `backend ${inv.backend} needs a kms: block with key_id`, { hint: 'add kms: { key_id: alias/… }' });
    return inv.kms.keyId;
  };
  const versions = async (c: string, k: HorcruxKind): Promise<number[]> => {
    let names: string[];
    try {
      names = await readdir(horcruxBlobDir(inv, c, k, root));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw new KryptonError('E_KMS_CONFIG', `cannot read ${display(horcruxBlobDir(inv, c, k, root))}: ${(err as NodeJS.ErrnoException).code}`, { hint: 'check its permissions' });
    }
    return names
      .map((n) => /^v([1-9][0-9]*)\.enc$/.exec(n)?.[1])
      .filter((v): v is string => v !== undefined)
      .map(Number)
      .sort((a, b) => b - a);
  };
  const blob = async (c: string, k: HorcruxKind, v: number): Promise<HorcruxBlob> => {
    const d = horcruxBlobDir(inv, c, k, root);
    const bytes = await readFile(join(d, `v${v}.enc`));
    let meta: BlobMeta | undefined;
    try {
      meta = JSON.parse(await readFile(join(d, `v${v}.json`), 'utf8')) as BlobMeta;
    } catch {
      meta = undefined;
    }
    return { version: v, display: display(join(d, `v${v}.enc`)), bytes, sha256: sha256Hex(bytes), ...(meta ? { meta } : {}) };
  };
  const store: KmsHorcruxStore = {
    source: (c, k) => display(horcruxBlobDir(inv, c, k, root)),
    async currentBlob(c, k) {
      const [v] = await versions(c, k);
      return v === undefined ? undefined : blob(c, k, v);
    },
    async read(c, k) {
      const b = await store.currentBlob(c, k);
      if (!b) return { casVersion: 0 };
      const { plaintext } = await kms().decrypt(b.bytes, horcruxContext(inv, c, k), `the blob ${b.display}`, b.meta?.key_arn);
      const current: StoredHorcruxKey = { secret: plaintext, version: b.version, source: b.display };
      return { current, casVersion: b.version };
    },
    async write(c, k, value, casVersion) {
      const [latest = 0] = await versions(c, k);
      if (latest !== casVersion) {
        throw new KryptonError('E_PLAN_CONFLICT', `${store.source(c, k)} is at version ${latest}, not ${casVersion}: someone else wrote meanwhile`, { hint: 'pull the blobs (git pull) and import again' });
      }
      const version = latest + 1;
      const ctx = horcruxContext(inv, c, k);
      const d = horcruxBlobDir(inv, c, k, root);
      const path = join(d, `v${version}.enc`);
      const { blob: bytes, keyArn } = await kms().encrypt(keyId(), value, ctx, display(path));
      await mkdir(d, { recursive: true, mode: 0o755 });
      const tmp = join(d, `.v${version}.${randomBytes(6).toString('hex')}.tmp`);
      await writeFile(tmp, bytes, { mode: 0o644, flag: 'wx' });
      try {
        await link(tmp, path);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
          throw new KryptonError('E_PLAN_CONFLICT', `${display(path)} already exists: someone else wrote version ${version} meanwhile`, { hint: 'pull the blobs and import again; nothing was overwritten' });
        }
        throw new KryptonError('E_KMS_CONFIG', `cannot write ${display(path)}: ${(err as NodeJS.ErrnoException).code}`, { hint: 'check the blob directory permissions' });
      } finally {
        await unlink(tmp).catch(() => {});
      }
      const meta: BlobMeta = { version, key_arn: keyArn, encryption_context: ctx, blob_sha256: sha256Hex(bytes), created: new Date().toISOString() };
      await writeFile(join(d, `v${version}.json`), `${JSON.stringify(meta, null, 2)}\n`, { mode: 0o644 });
      return { version };
    },
    async undo(c, k, version) {
      // The previous version (if any) becomes current again once this run's version is gone.
      const d = horcruxBlobDir(inv, c, k, root);
      await unlink(join(d, `v${version}.enc`));
      await unlink(join(d, `v${version}.json`)).catch(() => {});
    },
    async preflight() {
      await kms().describeKey(keyId());
    },
  };
  return store;
}

/** Exit codes of {@link HORCRUX_FETCH_SCRIPT}, aligned with the JWT fetch's (render/kms-host.ts FETCH_EXIT). */
export const HORCRUX_FETCH_EXIT = { aws: 2, notTmpfs: 3, fingerprint: 5, notBase64: 6 } as const;

/**
 * The host-side decrypt of one key file, a fixed POSIX sh script run as
 * `sh -c HORCRUX_FETCH_SCRIPT sh <out> <sha256> <owner> <group> <aws argv…>`: refuses unless `<out>`'s directory
 * is a tmpfs; runs the aws CLI (the plaintext comes back base64 on stdout into a shell variable — never an argv,
 * never a file on disk); decodes it into a temp file in the same tmpfs created under umask 077 (so 0600 from
 * the first byte); checks its SHA-256 is the one the operator expects; chowns when asked; renames over `<out>`.
 * Any failure removes the temp file and leaves `<out>` as it was.
 */
export const HORCRUX_FETCH_SCRIPT = [
  'set -u',
  'out=$1 want=$2 owner=$3 group=$4',
  'shift 4',
  'dir=${out%/*}',
  'fs=$(stat -f -c %T -- "$dir" 2>/dev/null) || fs=missing',
  `if [ "$fs" != tmpfs ]; then echo "krypton-secrets: $dir is not a tmpfs ($fs); nothing written" >&2; exit ${HORCRUX_FETCH_EXIT.notTmpfs}; fi`,
  'umask 077',
  'tmp="$dir/.krypton-fetch.tmp.$$"',
  "trap 'rm -f -- \"$tmp\"' EXIT",
  "trap 'exit 129' HUP INT TERM",
  `val=$("$@") || exit ${HORCRUX_FETCH_EXIT.aws}`,
  `printf '%s' "$val" | base64 -d > "$tmp" 2>/dev/null || { val=; echo "krypton-secrets: the plaintext KMS returned is not base64; nothing written" >&2; exit ${HORCRUX_FETCH_EXIT.notBase64}; }`,
  'val=',
  `if [ "$(sha256sum < "$tmp" | cut -d' ' -f1)" != "$want" ]; then echo "krypton-secrets: the decrypted file's SHA-256 is not the expected $want; nothing written" >&2; exit ${HORCRUX_FETCH_EXIT.fingerprint}; fi`,
  'chmod 0600 -- "$tmp"',
  'if [ -n "$owner$group" ]; then chown -- "$owner${group:+:$group}" "$tmp"; fi',
  'mv -f -- "$tmp" "$out"',
].join('\n');

/** argv of the host-side decrypt of one key file into the key dir (no secret in it: paths, context, a digest). */
export function horcruxFetchArgv(o: { out: string; sha256: string; owner?: string; group?: string; blobPath: string; context: Record<string, string>; target: AwsTarget }): string[] {
  return ['sh', '-c', HORCRUX_FETCH_SCRIPT, 'sh', o.out, o.sha256, o.owner ?? '', o.group ?? '', HOST_AWS_CLI, ...kmsDecryptArgs(o.blobPath, o.context, o.target)];
}

/** Wraps a blob as the value an SFTP put of the (non-secret) blob carries. */
export function blobContent(b: HorcruxBlob): Secret {
  return new Secret(b.bytes);
}
