/**
 * Horcrux key files — what `horcrux create-ecies-shards` and `horcrux create-ed25519-shards` write into
 * `cosigner_<N>/` — parsed and checked before anything is stored. Shapes (Horcrux v3, Go `encoding/json`,
 * so every byte string is standard padded base64):
 *
 *   ecies_keys.json        {"eciesKey": <32-byte secp256k1 private scalar>,
 *                           "eciesPubs": [<public key of cosigner 1>, …, <of cosigner n>],   // 65-byte 0x04‖X‖Y
 *                           "id": <N>}                                                      // (33-byte compressed accepted)
 *   <chain-id>_shard.json  {"pubKey": <validator Ed25519 public key, CometBFT protobuf PublicKey 0x0a 0x20 ‖ 32 bytes>,
 *                           "privateShard": <32-byte little-endian scalar: the sharing polynomial at x = N>,
 *                           "id": <N>}                                                      // (amino-prefixed or raw 32-byte
 *                                                                                            //  pubKey and "keyType": "ed25519" accepted)
 *
 * Checks: JSON shape (no unknown keys), base64, byte lengths, that each ECIES private key is a valid scalar whose
 * public key is the list's entry `id`, that every cosigner has the same ECIES public key list (one entry per
 * cosigner, no duplicates), that file ids, directory numbers and the inventory's shard ids agree, that every shard
 * names the same validator key, and — in the exponent, never reconstructing the secret — that the shards combine to
 * that validator key with exactly the inventory's threshold and that every shard lies on the same sharing.
 *
 * No message ever contains file content: problems name the file, the field and what is wrong with it.
 */
import { createECDH, ECDH } from 'node:crypto';
import { lstat, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { KryptonError } from '../core/errors.ts';
import { Secret, sha256Hex, shortFingerprint } from '../core/secret.ts';
import { BASE, encode, interpolatePublic, multiply, scalarFromLE, equal, type Point } from './ed25519.ts';

export { ECIES_FILE, shardFileName } from '../model/layout.ts';
import { ECIES_FILE, shardFileName } from '../model/layout.ts';
/** `cosigner_<N>`, the directory Horcrux's key generation writes shard N into. */
export const cosignerDirName = (shardId: number): string => `cosigner_${shardId}`;
/** Larger than any Horcrux key file, and KMS Encrypt's limit (4096 bytes). */
export const MAX_KEY_FILE_BYTES = 4096;

const B64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const PROTO_ED25519_PREFIX = Buffer.from([0x0a, 0x20]);
const AMINO_ED25519_PREFIX = Buffer.from([0x16, 0x24, 0xde, 0x64, 0x20]);

/** A checked Horcrux key file: where it came from and its exact bytes (as a Secret). */
export interface HorcruxKeyFile {
  /** Path relative to the import dir, e.g. `cosigner_2/ecies_keys.json` (for messages). */
  file: string;
  /** File name inside the cosigner's key dir: `ecies_keys.json` or `<chain-id>_shard.json`. */
  name: string;
  secret: Secret;
}

export interface CosignerKeySet {
  cosigner: string;
  shardId: number;
  ecies: HorcruxKeyFile;
  shard: HorcruxKeyFile;
}

/** What a fully checked key set tells (public facts only). */
export interface ValidatedKeySet {
  chainId: string;
  threshold: number;
  cosigners: CosignerKeySet[];
  /** The validator's Ed25519 public key, base64 (public). */
  validatorPubKey: string;
  /** SHA-256 of the (uncompressed) ECIES public key list every cosigner shares (public). */
  eciesPubsFingerprint: string;
}

export interface KeySetSpec {
  /** Inventory cosigners: name and shard id (Horcrux's 1-based cosigner id). */
  cosigners: readonly { name: string; shardId: number }[];
  chainId: string;
  threshold: number;
}

// ---------------------------------------------------------------------------------------------------------
// One file at a time
// ---------------------------------------------------------------------------------------------------------

function describeType(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  return typeof v === 'object' ? 'an object' : `a ${typeof v}`;
}

/** Field names are shown only when they look like field names (a garbled file could put anything there). */
function safeKeyName(k: string): string {
  return /^[A-Za-z_][A-Za-z0-9_]{0,31}$/.test(k) ? JSON.stringify(k) : 'a field with an unexpected name';
}

function parseJsonObject(bytes: Buffer, label: string, problems: string[]): Record<string, unknown> | undefined {
  let v: unknown;
  try {
    v = JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    // V8's message may quote the input: keep only the position.
    const pos = /position (\d+)/.exec(String((err as Error).message))?.[1];
    problems.push(`${label}: not valid JSON${pos ? ` (at byte ${pos})` : ''}`);
    return undefined;
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) {
    problems.push(`${label}: expected a JSON object, found ${describeType(v)}`);
    return undefined;
  }
  return v as Record<string, unknown>;
}

function checkKeys(obj: Record<string, unknown>, label: string, required: readonly string[], optional: readonly string[], problems: string[]): boolean {
  let ok = true;
  for (const k of required) {
    if (!(k in obj)) {
      problems.push(`${label}: missing field "${k}"`);
      ok = false;
    }
  }
  for (const k of Object.keys(obj)) {
    if (!required.includes(k) && !optional.includes(k)) {
      problems.push(`${label}: unexpected ${safeKeyName(k)} (expected ${[...required, ...optional].map((x) => `"${x}"`).join(', ')})`);
      ok = false;
    }
  }
  return ok;
}

function base64Field(v: unknown, label: string, field: string, problems: string[]): Buffer | undefined {
  if (typeof v !== 'string') {
    problems.push(`${label}: "${field}" must be a base64 string, found ${describeType(v)}`);
    return undefined;
  }
  if (!B64.test(v)) {
    problems.push(`${label}: "${field}" is not standard padded base64`);
    return undefined;
  }
  return Buffer.from(v, 'base64');
}

function idField(v: unknown, label: string, problems: string[]): number | undefined {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > 255) {
    problems.push(`${label}: "id" must be an integer 1..255, found ${typeof v === 'number' ? v : describeType(v)}`);
    return undefined;
  }
  return v;
}

/** A secp256k1 public key as 65 uncompressed bytes, or undefined when it is not a point on the curve. */
function uncompressedSecp256k1(pub: Buffer): Buffer | undefined {
  if (!((pub.length === 65 && pub[0] === 0x04) || (pub.length === 33 && (pub[0] === 0x02 || pub[0] === 0x03)))) return undefined;
  try {
    return ECDH.convertKey(pub, 'secp256k1', undefined, undefined, 'uncompressed') as Buffer;
  } catch {
    return undefined;
  }
}

export interface EciesCheck {
  id?: number;
  /** The public key list, each normalised to 65 uncompressed bytes (public). */
  pubs?: Buffer[];
  /** The public key of this file's own private key, uncompressed (public). */
  ownPub?: Buffer;
}

/** Checks one `ecies_keys.json`; appends problems (never content) to `problems`. */
export function checkEciesKeyFile(bytes: Buffer, label: string, problems: string[]): EciesCheck {
  const obj = parseJsonObject(bytes, label, problems);
  if (!obj) return {};
  checkKeys(obj, label, ['eciesKey', 'eciesPubs', 'id'], [], problems);
  const out: EciesCheck = {};
  if ('id' in obj) out.id = idField(obj.id, label, problems);

  if ('eciesKey' in obj) {
    const key = base64Field(obj.eciesKey, label, 'eciesKey', problems);
    if (key) {
      if (key.length !== 32) {
        problems.push(`${label}: "eciesKey" is ${key.length} bytes; expected a 32-byte secp256k1 private key`);
      } else {
        const ecdh = createECDH('secp256k1');
        try {
          ecdh.setPrivateKey(key);
          out.ownPub = ecdh.getPublicKey(null, 'uncompressed');
        } catch {
          problems.push(`${label}: "eciesKey" is not a valid secp256k1 private key (zero or not below the curve order)`);
        }
      }
      key.fill(0);
    }
  }

  if ('eciesPubs' in obj) {
    const list = obj.eciesPubs;
    if (!Array.isArray(list) || list.length === 0) {
      problems.push(`${label}: "eciesPubs" must be a non-empty list of base64 public keys, found ${Array.isArray(list) ? 'an empty list' : describeType(list)}`);
    } else {
      const pubs: Buffer[] = [];
      list.forEach((p, i) => {
        const raw = base64Field(p, label, `eciesPubs[${i}]`, problems);
        if (!raw) return;
        const norm = uncompressedSecp256k1(raw);
        if (!norm) {
          problems.push(
            raw.length === 65 || raw.length === 33
              ? `${label}: "eciesPubs[${i}]" is not a point on secp256k1`
              : `${label}: "eciesPubs[${i}]" is ${raw.length} bytes; expected 65 (uncompressed) or 33 (compressed) secp256k1`,
          );
          return;
        }
        pubs.push(norm);
      });
      if (pubs.length === list.length) {
        out.pubs = pubs;
        const seen = new Set<string>();
        pubs.forEach((p, i) => {
          const h = p.toString('hex');
          if (seen.has(h)) problems.push(`${label}: "eciesPubs[${i}]" repeats an earlier entry: every cosigner needs its own ECIES key`);
          seen.add(h);
        });
      }
    }
  }

  if (out.id !== undefined && out.pubs && out.ownPub) {
    const entry = out.pubs[out.id - 1];
    if (!entry) problems.push(`${label}: "id" ${out.id} has no entry in "eciesPubs" (${out.pubs.length} entries)`);
    else if (!entry.equals(out.ownPub)) problems.push(`${label}: "eciesKey" does not belong to "eciesPubs[${out.id - 1}]", the public key of cosigner ${out.id}`);
  }
  return out;
}

export interface ShardCheck {
  id?: number;
  /** The validator's 32-byte Ed25519 public key (public). */
  pubKey?: Buffer;
  /** `privateShard·B`, the shard's public share (public). */
  publicShare?: Point;
}

/** Checks one `<chain-id>_shard.json`; appends problems (never content) to `problems`. */
export function checkShardFile(bytes: Buffer, label: string, problems: string[]): ShardCheck {
  const obj = parseJsonObject(bytes, label, problems);
  if (!obj) return {};
  checkKeys(obj, label, ['pubKey', 'privateShard', 'id'], ['keyType'], problems);
  const out: ShardCheck = {};
  if ('keyType' in obj && obj.keyType !== 'ed25519') {
    problems.push(`${label}: "keyType" must be "ed25519" (only Ed25519 validator keys are supported)`);
  }
  if ('id' in obj) out.id = idField(obj.id, label, problems);
  if ('pubKey' in obj) {
    const raw = base64Field(obj.pubKey, label, 'pubKey', problems);
    if (raw) {
      if (raw.length === 34 && raw.subarray(0, 2).equals(PROTO_ED25519_PREFIX)) out.pubKey = raw.subarray(2);
      else if (raw.length === 37 && raw.subarray(0, 5).equals(AMINO_ED25519_PREFIX)) out.pubKey = raw.subarray(5);
      else if (raw.length === 32) out.pubKey = raw;
      else problems.push(`${label}: "pubKey" is ${raw.length} bytes; expected an Ed25519 public key (34-byte protobuf 0x0a 0x20 ‖ key, 37-byte amino, or 32 raw bytes)`);
    }
  }
  if ('privateShard' in obj) {
    const raw = base64Field(obj.privateShard, label, 'privateShard', problems);
    if (raw) {
      if (raw.length !== 32) problems.push(`${label}: "privateShard" is ${raw.length} bytes; expected a 32-byte Ed25519 scalar`);
      else {
        const s = scalarFromLE(raw);
        if (s === 0n) problems.push(`${label}: "privateShard" is zero`);
        else out.publicShare = multiply(BASE, s);
      }
      raw.fill(0);
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// The whole set
// ---------------------------------------------------------------------------------------------------------

/** Threshold rules Horcrux applies (signer/config.go): more than half the shards, at most all of them. */
export function thresholdProblem(threshold: number, shards: number): string | undefined {
  if (!Number.isInteger(threshold) || threshold < 1) return `threshold ${threshold} must be a whole number >= 1`;
  if (threshold <= shards / 2) return `threshold ${threshold} is not more than half of ${shards} shards: two disjoint groups of cosigners could each sign (double-sign risk)`;
  if (threshold > shards) return `threshold ${threshold} is more than the ${shards} shards: no group of cosigners could sign`;
  return undefined;
}

/**
 * Checks a key set already read into memory: `files` maps paths relative to the import dir
 * (`cosigner_1/ecies_keys.json`) to their bytes; `dirs` lists the `cosigner_*` directories found.
 * Returns the checked set, or every problem found (never file content).
 */
export function validateKeyFiles(files: ReadonlyMap<string, Buffer>, dirs: readonly string[], spec: KeySetSpec): { ok: true; set: ValidatedKeySet } | { ok: false; problems: string[] } {
  const problems: string[] = [];
  const n = spec.cosigners.length;
  const shardName = shardFileName(spec.chainId);
  if (n === 0) return { ok: false, problems: ['the inventory lists no cosigners'] };
  const tp = thresholdProblem(spec.threshold, n);
  if (tp) problems.push(`inventory: ${tp}`);
  const ids = spec.cosigners.map((c) => c.shardId).sort((a, b) => a - b);
  if (ids.some((id, i) => id !== i + 1)) problems.push(`inventory: shard ids must be 1..${n} (one per cosigner), found ${ids.join(', ')}`);

  const wanted = new Map(spec.cosigners.map((c) => [cosignerDirName(c.shardId), c]));
  for (const d of dirs) {
    if (!wanted.has(d)) problems.push(`${d}/: no cosigner in the inventory has shard_id ${d.slice('cosigner_'.length)} (cosigners: ${spec.cosigners.map((c) => `${c.name}=${c.shardId}`).join(', ')})`);
  }

  const ecies = new Map<number, EciesCheck>();
  const shards = new Map<number, ShardCheck>();
  const out: CosignerKeySet[] = [];
  for (const c of [...spec.cosigners].sort((a, b) => a.shardId - b.shardId)) {
    const d = cosignerDirName(c.shardId);
    if (!dirs.includes(d)) {
      problems.push(`${d}/: missing (${c.name} has shard_id ${c.shardId})`);
      continue;
    }
    const eFile = `${d}/${ECIES_FILE}`;
    const sFile = `${d}/${shardName}`;
    const eBytes = files.get(eFile);
    const sBytes = files.get(sFile);
    if (!eBytes) problems.push(`${eFile}: missing (horcrux create-ecies-shards writes it)`);
    if (!sBytes) {
      const others = [...files.keys()].filter((f) => f.startsWith(`${d}/`) && f.endsWith('_shard.json')).map((f) => f.slice(d.length + 1));
      problems.push(`${sFile}: missing${others.length ? ` (found ${others.join(', ')}: is horcrux.chain_id in the inventory right?)` : ' (horcrux create-ed25519-shards --chain-id writes it)'}`);
    }
    if (eBytes) {
      const e = checkEciesKeyFile(eBytes, eFile, problems);
      ecies.set(c.shardId, e);
      if (e.id !== undefined && e.id !== c.shardId) problems.push(`${eFile}: "id" is ${e.id}, but the file is in ${d}/ (${c.name}, shard_id ${c.shardId})`);
    }
    if (sBytes) {
      const s = checkShardFile(sBytes, sFile, problems);
      shards.set(c.shardId, s);
      if (s.id !== undefined && s.id !== c.shardId) problems.push(`${sFile}: "id" is ${s.id}, but the file is in ${d}/ (${c.name}, shard_id ${c.shardId})`);
    }
    if (eBytes && sBytes) {
      out.push({
        cosigner: c.name,
        shardId: c.shardId,
        ecies: { file: eFile, name: ECIES_FILE, secret: new Secret(eBytes) },
        shard: { file: sFile, name: shardName, secret: new Secret(sBytes) },
      });
    }
  }

  // Every cosigner must hold the same ECIES public key list, with one entry per cosigner.
  let pubsFingerprint = '';
  const lists = [...ecies.entries()].filter(([, e]) => e.pubs);
  if (lists.length) {
    const [firstId, first] = lists[0]!;
    pubsFingerprint = sha256Hex(Buffer.concat(first.pubs!));
    for (const [id, e] of lists) {
      if (e.pubs!.length !== n) problems.push(`${cosignerDirName(id)}/${ECIES_FILE}: "eciesPubs" has ${e.pubs!.length} entries; the inventory has ${n} cosigners`);
      if (id !== firstId && sha256Hex(Buffer.concat(e.pubs!)) !== pubsFingerprint) {
        problems.push(`${cosignerDirName(id)}/${ECIES_FILE}: "eciesPubs" differs from ${cosignerDirName(firstId)}/${ECIES_FILE}'s: the files come from different create-ecies-shards runs`);
      }
    }
  }

  // Every shard must name the same validator key, and combine to it with exactly the inventory's threshold.
  let validatorPubKey = '';
  const shardList = [...shards.entries()].filter(([, s]) => s.pubKey && s.publicShare).sort((a, b) => a[0] - b[0]);
  if (shardList.length) {
    const pub = shardList[0]![1].pubKey!;
    validatorPubKey = pub.toString('base64');
    let samePub = true;
    for (const [id, s] of shardList) {
      if (!s.pubKey!.equals(pub)) {
        samePub = false;
        problems.push(`${cosignerDirName(id)}/${shardName}: "pubKey" differs from ${cosignerDirName(shardList[0]![0])}/${shardName}'s: the shards are of different validator keys`);
      }
    }
    if (samePub && shardList.length === n && problems.length === 0) {
      problems.push(...shardMathProblems(shardList.map(([id, s]) => ({ x: id, point: s.publicShare! })), pub, spec.threshold, shardName));
    }
  }

  if (problems.length) return { ok: false, problems };
  return { ok: true, set: { chainId: spec.chainId, threshold: spec.threshold, cosigners: out, validatorPubKey, eciesPubsFingerprint: pubsFingerprint } };
}

/**
 * In the exponent: the smallest number of shards (taken in id order) whose public shares interpolate to the
 * validator key is the threshold they were dealt with; every other shard must lie on the same polynomial.
 */
function shardMathProblems(shares: { x: number; point: Point }[], pubKey: Buffer, threshold: number, shardName: string): string[] {
  let dealt: number | undefined;
  for (let t = 1; t <= shares.length; t++) {
    if (encode(interpolatePublic(shares.slice(0, t), 0)).equals(pubKey)) {
      dealt = t;
      break;
    }
  }
  if (dealt === undefined) {
    return [`the ${shardName} shards do not combine to their validator public key with any threshold: a shard is corrupted or from another key generation`];
  }
  const out: string[] = [];
  if (dealt !== threshold) out.push(`the ${shardName} shards were dealt with threshold ${dealt}, the inventory says horcrux.threshold ${threshold}`);
  const base = shares.slice(0, dealt);
  for (const s of shares.slice(dealt)) {
    if (!equal(interpolatePublic(base, s.x), s.point)) out.push(`${cosignerDirName(s.x)}/${shardName}: "privateShard" does not lie on the same sharing as the other shards (corrupted, or from another key generation)`);
  }
  return out;
}

/**
 * Reads `<dir>/cosigner_<N>/` (regular files only, each at most {@link MAX_KEY_FILE_BYTES}) and checks the set
 * with {@link validateKeyFiles}. Throws KryptonError E_INPUT listing every problem (file and field, never content).
 */
export async function readAndValidateKeySet(dir: string, spec: KeySetSpec): Promise<ValidatedKeySet> {
  const problems: string[] = [];
  let entries: string[];
  try {
    const st = await lstat(dir);
    if (!st.isDirectory()) throw Object.assign(new Error('not a directory'), { code: 'ENOTDIR' });
    entries = await readdir(dir);
  } catch (err) {
    throw new KryptonError('E_INPUT', `cannot read the key directory ${dir} (${(err as { code?: string }).code ?? 'error'})`, {
      hint: 'give the directory horcrux create-ecies-shards / create-ed25519-shards wrote cosigner_1/, cosigner_2/, … into',
    });
  }
  const dirs: string[] = [];
  const files = new Map<string, Buffer>();
  for (const e of entries.sort()) {
    if (!/^cosigner_\d+$/.test(e)) continue;
    const st = await lstat(join(dir, e));
    if (!st.isDirectory()) {
      problems.push(`${e}: not a directory`);
      continue;
    }
    dirs.push(e);
    for (const f of (await readdir(join(dir, e))).sort()) {
      if (f !== ECIES_FILE && !f.endsWith('_shard.json')) continue;
      const rel = `${e}/${f}`;
      const fst = await lstat(join(dir, e, f));
      if (!fst.isFile()) {
        problems.push(`${rel}: not a regular file${fst.isSymbolicLink() ? ' (a symlink)' : ''}`);
        continue;
      }
      if (fst.size > MAX_KEY_FILE_BYTES) {
        problems.push(`${rel}: ${fst.size} bytes; a Horcrux key file is far smaller (limit ${MAX_KEY_FILE_BYTES})`);
        continue;
      }
      files.set(rel, await readFile(join(dir, e, f)));
    }
  }
  if (!dirs.length && !problems.length) problems.push(`no cosigner_<N>/ directories in ${dir}`);
  const r = validateKeyFiles(files, dirs, spec);
  for (const b of files.values()) b.fill(0);
  if (!r.ok || problems.length) {
    const all = [...problems, ...(r.ok ? [] : r.problems)];
    throw keySetError(dir, all);
  }
  return r.set;
}

/** E_INPUT listing the problems of a key set, one per line. */
export function keySetError(dir: string, problems: readonly string[]): KryptonError {
  const shown = problems.slice(0, 20);
  const more = problems.length > shown.length ? `\n… and ${problems.length - shown.length} more` : '';
  return new KryptonError('E_INPUT', `the Horcrux key set in ${dir} is not importable (${problems.length} problem${problems.length === 1 ? '' : 's'}); nothing was stored:\n${shown.map((p) => `- ${p}`).join('\n')}${more}`, {
    hint: 'fix the files (or the inventory\'s cosigners / horcrux block) and import again; regenerate the keys with horcrux if they are damaged',
  });
}

/** `sha256:ab12cd34ef56` of a key file, for reports. */
export function keyFingerprint(k: HorcruxKeyFile): string {
  return shortFingerprint(k.secret.fingerprint());
}

/**
 * What is wrong with a Horcrux key file as a store holds it (the same checks as import-horcrux makes on one file:
 * JSON object, known fields, key lengths, the ECIES key belonging to its own public key), in words without the
 * content; undefined when it would be accepted. `expectedId` is the cosigner's shard_id (both files carry it).
 */
export function storedKeyFileProblem(kind: 'horcrux-ecies' | 'horcrux-shard', value: Secret, expectedId: number): string | undefined {
  const problems: string[] = [];
  const bytes = value.reveal();
  try {
    const got = kind === 'horcrux-ecies' ? checkEciesKeyFile(bytes, 'value', problems) : checkShardFile(bytes, 'value', problems);
    if (!problems.length && got.id !== undefined && got.id !== expectedId) problems.push(`value: "id" is ${got.id}; this cosigner's shard_id is ${expectedId}`);
  } finally {
    bytes.fill(0);
  }
  return problems.length ? problems.map((p) => p.replace(/^value: /, '')).join('; ') : undefined;
}
