/**
 * Just enough edwards25519 arithmetic (RFC 8032 section 5.1) to check Horcrux Ed25519 shards against the
 * validator's public key WITHOUT reconstructing the secret: each shard's public share `s_i·B` is computed,
 * and the shares are combined by Lagrange interpolation "in the exponent" (`Σ λ_i·(s_i·B)`), which only
 * ever handles points. BigInt, constant-time is NOT a goal here (this runs once, on the operator's laptop,
 * over key material the operator already holds); no private value is ever combined with another.
 *
 * Horcrux deals shards with Shamir sharing over the scalar field of order L (gitlab.com/unit410/threshold-ed25519
 * `DealShares`): shard `id` is the polynomial evaluated at x = id, encoded as 32 little-endian bytes; the
 * constant term is the validator's expanded secret scalar, whose public point is the validator public key.
 */

/** Field prime 2^255 - 19. */
const P = (1n << 255n) - 19n;
/** Order of the base point. */
export const L = (1n << 252n) + 27742317777372353535851937790883648493n;

function mod(a: bigint, m: bigint): bigint {
  const r = a % m;
  return r >= 0n ? r : r + m;
}

function powMod(base: bigint, exp: bigint, m: bigint): bigint {
  let result = 1n;
  let b = mod(base, m);
  let e = exp;
  while (e > 0n) {
    if (e & 1n) result = (result * b) % m;
    b = (b * b) % m;
    e >>= 1n;
  }
  return result;
}

/** Multiplicative inverse mod a prime `m` (Fermat). */
function inv(a: bigint, m: bigint): bigint {
  if (mod(a, m) === 0n) throw new Error('no inverse of 0');
  return powMod(a, m - 2n, m);
}

const D = mod(-121665n * inv(121666n, P), P);
const D2 = (2n * D) % P;

/** A point in extended coordinates (X:Y:Z:T), x = X/Z, y = Y/Z, x·y = T/Z. */
export interface Point {
  X: bigint;
  Y: bigint;
  Z: bigint;
  T: bigint;
}

const BX = 15112221349535400772501151409588531511454012693041857206046113283949847762202n;
const BY = 46316835694926478169428394003475163141307993866256225615783033603165251855960n;
export const BASE: Point = { X: BX, Y: BY, Z: 1n, T: (BX * BY) % P };
export const IDENTITY: Point = { X: 0n, Y: 1n, Z: 1n, T: 0n };

/** Point addition (complete for a = -1; also used for doubling). */
export function add(p: Point, q: Point): Point {
  const a = ((p.Y - p.X) * (q.Y - q.X)) % P;
  const b = ((p.Y + p.X) * (q.Y + q.X)) % P;
  const c = (((p.T * D2) % P) * q.T) % P;
  const d = (2n * p.Z * q.Z) % P;
  const e = b - a;
  const f = d - c;
  const g = d + c;
  const h = b + a;
  return { X: mod(e * f, P), Y: mod(g * h, P), Z: mod(f * g, P), T: mod(e * h, P) };
}

/** `k·p` by double-and-add (k taken mod L). */
export function multiply(p: Point, k: bigint): Point {
  let n = mod(k, L);
  let acc = IDENTITY;
  let cur = p;
  while (n > 0n) {
    if (n & 1n) acc = add(acc, cur);
    cur = add(cur, cur);
    n >>= 1n;
  }
  return acc;
}

/** RFC 8032 point encoding: y little-endian with the sign of x in the top bit. */
export function encode(p: Point): Buffer {
  const zi = inv(p.Z, P);
  const x = (p.X * zi) % P;
  const y = (p.Y * zi) % P;
  const out = Buffer.alloc(32);
  let v = y;
  for (let i = 0; i < 32; i++) {
    out[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  if (x & 1n) out[31]! |= 0x80;
  return out;
}

/** A 32-byte little-endian scalar. */
export function scalarFromLE(bytes: Uint8Array): bigint {
  let v = 0n;
  for (let i = bytes.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(bytes[i]!);
  return v;
}

/** `v` as 32 little-endian bytes (v < 2^256). */
export function scalarToLE(v: bigint): Buffer {
  const out = Buffer.alloc(32);
  let x = v;
  for (let i = 0; i < 32; i++) {
    out[i] = Number(x & 0xffn);
    x >>= 8n;
  }
  return out;
}

/** Lagrange coefficient of `xi` among `xs`, evaluated at `at` (mod L). */
export function lagrange(xs: readonly number[], xi: number, at: number): bigint {
  let num = 1n;
  let den = 1n;
  for (const xj of xs) {
    if (xj === xi) continue;
    num = mod(num * BigInt(at - xj), L);
    den = mod(den * BigInt(xi - xj), L);
  }
  return mod(num * inv(den, L), L);
}

/** `Σ λ_i(at)·P_i` over the given public shares: the sharing polynomial's public point at x = `at`. */
export function interpolatePublic(shares: readonly { x: number; point: Point }[], at: number): Point {
  const xs = shares.map((s) => s.x);
  let acc = IDENTITY;
  for (const s of shares) acc = add(acc, multiply(s.point, lagrange(xs, s.x, at)));
  return acc;
}

/** True when both points are the same group element. */
export function equal(p: Point, q: Point): boolean {
  return mod(p.X * q.Z - q.X * p.Z, P) === 0n && mod(p.Y * q.Z - q.Y * p.Z, P) === 0n;
}

/**
 * Shamir-deals `secret` (a scalar) into `n` shares with threshold `t` (polynomial of degree t-1 with random
 * coefficients from `random`), evaluated at x = 1..n, each as 32 little-endian bytes mod L. For the sandbox's
 * key generation and the tests; krypton-secrets itself never deals or combines secrets.
 */
export function dealShares(secret: bigint, t: number, n: number, random: (bytes: number) => Buffer): Buffer[] {
  const coeffs = [mod(secret, L)];
  for (let i = 1; i < t; i++) coeffs.push(mod(scalarFromLE(random(64)), L));
  const out: Buffer[] = [];
  for (let x = 1; x <= n; x++) {
    let y = 0n;
    for (let i = coeffs.length - 1; i >= 0; i--) y = mod(y * BigInt(x) + coeffs[i]!, L);
    out.push(scalarToLE(y));
  }
  return out;
}

/** The RFC 8032 secret scalar of a 32-byte seed: SHA-512, first half, clamped (little-endian). */
export function expandSeed(sha512: Buffer): bigint {
  const h = Buffer.from(sha512.subarray(0, 32));
  h[0]! &= 248;
  h[31]! &= 127;
  h[31]! |= 64;
  return scalarFromLE(h);
}
