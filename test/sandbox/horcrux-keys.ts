/**
 * Horcrux key generation for the sandbox, in Horcrux v3's file format, from fresh random keys (Horcrux itself
 * is not built here). What `horcrux create-ecies-shards --shards n` and
 * `horcrux create-ed25519-shards --chain-id <id> --threshold t --shards n` leave in the working directory:
 *
 *   cosigner_<N>/ecies_keys.json        {"eciesKey":"<b64 32-byte secp256k1 scalar>","eciesPubs":["<b64 65-byte 0x04‖X‖Y>",…],"id":N}
 *   cosigner_<N>/<chain-id>_shard.json  {"pubKey":"<b64 0x0a 0x20 ‖ ed25519 pub>","privateShard":"<b64 32-byte LE scalar>","id":N}
 *
 * (Go's encoding/json field order and padded standard base64; no trailing newline; files 0600 in 0700 dirs.)
 * The Ed25519 shards are a Shamir sharing, with threshold t, of the expanded secret scalar of a fresh Ed25519
 * validator key, evaluated at x = N; the ECIES keys are fresh secp256k1 keys (node:crypto ECDH).
 */
import { createECDH, createHash, generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { dealShares, expandSeed } from '../../src/horcrux/ed25519.ts';

export interface HorcruxKeyGenOptions {
  shards: number;
  threshold: number;
  chainId: string;
}

export interface GeneratedCosignerKeys {
  shardId: number;
  /** Exact file contents. */
  ecies: string;
  shard: string;
}

export interface GeneratedKeySet {
  cosigners: GeneratedCosignerKeys[];
  /** Validator Ed25519 public key, base64 (32 bytes). */
  validatorPubKey: string;
}

/** Generates a key set in memory (the files' exact text). */
export function generateHorcruxKeys(o: HorcruxKeyGenOptions): GeneratedKeySet {
  const ecies = Array.from({ length: o.shards }, () => {
    const ecdh = createECDH('secp256k1');
    ecdh.generateKeys();
    const d = ecdh.getPrivateKey();
    // Fixed-width 32 bytes, as Horcrux v3 writes the scalar (left zero padding).
    const priv = Buffer.concat([Buffer.alloc(32 - d.length), d]);
    return { priv, pub: ecdh.getPublicKey(null, 'uncompressed') };
  });
  const pubs = ecies.map((k) => k.pub.toString('base64'));

  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const seed = Buffer.from(privateKey.export({ format: 'jwk' }).d!, 'base64url');
  const pub = Buffer.from(publicKey.export({ format: 'jwk' }).x!, 'base64url');
  const scalar = expandSeed(createHash('sha512').update(seed).digest());
  seed.fill(0);
  const shares = dealShares(scalar, o.threshold, o.shards, randomBytes);
  const protoPub = Buffer.concat([Buffer.from([0x0a, 0x20]), pub]).toString('base64');

  return {
    validatorPubKey: pub.toString('base64'),
    cosigners: ecies.map((k, i) => ({
      shardId: i + 1,
      ecies: JSON.stringify({ eciesKey: k.priv.toString('base64'), eciesPubs: pubs, id: i + 1 }),
      shard: JSON.stringify({ pubKey: protoPub, privateShard: shares[i]!.toString('base64'), id: i + 1 }),
    })),
  };
}

/** Writes a generated set as `<dir>/cosigner_<N>/{ecies_keys.json,<chain-id>_shard.json}` (dirs 0700, files 0600). */
export function writeHorcruxKeys(dir: string, set: GeneratedKeySet, chainId: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  for (const c of set.cosigners) {
    const d = join(dir, `cosigner_${c.shardId}`);
    mkdirSync(d, { recursive: true, mode: 0o700 });
    writeFileSync(join(d, 'ecies_keys.json'), c.ecies, { mode: 0o600 });
    writeFileSync(join(d, `${chainId}_shard.json`), c.shard, { mode: 0o600 });
  }
}

/** Horcrux's smallest safe threshold for `shards`: more than half. */
export function defaultThreshold(shards: number): number {
  return Math.floor(shards / 2) + 1;
}
