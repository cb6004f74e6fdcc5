/**
 * What every SecretStore must do (src/model/store.ts), as one vitest suite run against each implementation:
 * in unit tests over fakes of our own low-level clients (VaultBackend, KmsBackend, SecretsManagerBackend), and
 * in test/integration/store.int.test.ts over a real OpenBao and a real moto.
 *
 * For each kind (engine-jwt network-wide and per node, node-env, horcrux-ecies, horcrux-shard): absent state,
 * write/current/head/versions, check-and-set conflicts, restore, undo, invalid values refused before anything
 * is written, mint only for mintable kinds, and a value stored in a non-canonical form making `current` throw
 * E_INPUT with a message naming where, which version and what is wrong — never the value (nor its hex/base64
 * variants) in message, hint or JSON.
 */
import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import { KryptonError } from '../../../../src/core/errors.ts';
import { Secret } from '../../../../src/core/secret.ts';
import { renderEnvFile } from '../../../../src/model/formats.ts';
import { KIND_SPECS, type SecretKind, type SecretRef } from '../../../../src/model/layout.ts';
import type { SecretStore, StoredValue } from '../../../../src/model/store.ts';

/** A raw value planted behind the store's back: the text of a single-field kind, or env variables. */
export type RawValue = string | Record<string, string>;

export interface ContractHarness {
  /** The store under test (may be created lazily, e.g. after a sandbox is up). */
  store: () => SecretStore;
  /** Stores `raw` as a new version of `ref` without the store's checks (KV field / SecretString / blob bytes). */
  plant: (ref: SecretRef, raw: RawValue) => Promise<void>;
  /** The network refs are in (the integration test needs the one its IAM policies name). */
  network: string;
  /** What undo of a first write leaves: nothing (KV v2 destroy, blob removal), or a refusal (Secrets Manager). */
  undoOfCreate: 'absent' | 'throws';
}

const HEX_A = 'a1b2c3d4'.repeat(8);
const HEX_B = '0f1e2d3c'.repeat(8);
const ENV_A = { API_KEY: "it's-a-secret-value-A", DB_URL: 'postgres://u:p@db/x?a=1#frag', Z_LAST: '' };
const ENV_B = { API_KEY: 'another-secret-value-B' };
const json = (tag: string) => `{\n  "key": "${Buffer.from(`horcrux-${tag}-secret-material`).toString('base64')}",\n  "id": 1\n}\n`;

export function valuesOf(kind: SecretKind): [Secret, Secret] {
  switch (KIND_SPECS[kind].format) {
    case 'hex64':
      return [new Secret(HEX_A), new Secret(HEX_B)];
    case 'env':
      return [renderEnvFile(ENV_A, 't'), renderEnvFile(ENV_B, 't')];
    case 'json':
      return [new Secret(json(`${kind}-A`)), new Secret(json(`${kind}-B`))];
  }
}

/** Every string a message must not contain for `value`: the text, and its hex and base64 forms. */
export function variants(value: string): string[] {
  const b = Buffer.from(value);
  const core = value.replace(/^0[xX]/, '').trim();
  return [...new Set([value, value.trim(), core, core.toLowerCase(), core.toUpperCase(), b.toString('hex'), b.toString('base64'), Buffer.from(core).toString('base64')])].filter((s) => s.length >= 8);
}

export function expectNoValue(err: unknown, values: string[]): void {
  expect(err).toBeInstanceOf(KryptonError);
  const e = err as KryptonError;
  const texts = [e.message, e.hint ?? '', JSON.stringify(e), inspect(e, { depth: 8 }), String(e.stack)];
  for (const v of values.flatMap(variants)) for (const t of texts) expect(t, `the error shows (a form of) the value`).not.toContain(v);
}

async function rejection(p: Promise<unknown>): Promise<KryptonError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(KryptonError);
    return e as KryptonError;
  }
  throw new Error('expected a rejection');
}

const KINDS: { kind: SecretKind; scope: string; title: string }[] = [
  { kind: 'engine-jwt', scope: '*', title: 'engine-jwt (network-wide)' },
  { kind: 'engine-jwt', scope: 'val-1', title: 'engine-jwt (per node)' },
  { kind: 'node-env', scope: 'val-1', title: 'node-env (per node; the sandbox seeds the network one)' },
  { kind: 'horcrux-ecies', scope: 'cosigner-1', title: 'horcrux-ecies' },
  { kind: 'horcrux-shard', scope: 'cosigner-1', title: 'horcrux-shard' },
];

/** Registers the contract suite for one store. */
export function storeContract(name: string, h: ContractHarness): void {
  const ref = (kind: SecretKind, scope: string): SecretRef => ({ kind, network: h.network, scope });

  describe(`${name}: the SecretStore contract`, () => {
    for (const { kind, scope, title } of KINDS) {
      it(`${title}: write, current, head, versions, check-and-set, restore, undo`, async () => {
        const s = h.store();
        const r = ref(kind, scope);
        const [a, b] = valuesOf(kind);
        expect(s.describe(r)).toBeTruthy();
        expect(await s.current(r)).toBeUndefined();
        expect(await s.head(r)).toBe(0);
        expect(await s.versions(r)).toEqual([]);

        const v1 = (await s.write(r, a, 0)).version;
        expect(v1).toBeGreaterThanOrEqual(1);
        const cur1 = (await s.current(r))!;
        expect(cur1.version).toBe(v1);
        expect(cur1.ref).toEqual(r);
        expect(cur1.secret.reveal()).toEqual(a.reveal());
        expect(cur1.source).toContain(s.describe(r));
        expect(await s.head(r)).toBe(v1);

        // check-and-set: absent-only and stale versions are refused, nothing changes
        for (const stale of [0, v1 + 5]) {
          const e = await rejection(s.write(r, b, stale));
          expect(e.code).toBe('E_PLAN_CONFLICT');
          expectNoValue(e, [a.revealText(), b.revealText()]);
        }
        expect((await s.current(r))!.secret.equals(a)).toBe(true);
        expect(await s.head(r)).toBe(v1);

        const v2 = (await s.write(r, b, v1)).version;
        expect(v2).toBeGreaterThan(v1);
        expect(await s.head(r)).toBe(v2);
        const cur2 = (await s.current(r))!;
        expect(cur2.secret.equals(b)).toBe(true);
        expect(await s.versions(r)).toEqual([
          { version: v2, fingerprint: b.fingerprint() },
          { version: v1, fingerprint: a.fingerprint() },
        ]);
        expect((await s.versions(r, 1)).map((v) => v.version)).toEqual([v2]);

        // restore: the old value again, as the newest version
        const back = await s.restore(r, v1);
        expect(back.restoredFrom).toBe(v1);
        expect(back.version).toBeGreaterThan(v2);
        expect((await s.current(r))!.secret.equals(a)).toBe(true);
        expect((await s.versions(r))[0]).toEqual({ version: back.version, fingerprint: a.fingerprint() });
        expect((await rejection(s.restore(r, 999))).code).toBe('E_INPUT');

        // undo of this run's write: the previous value is current again
        await s.undo(r, back.version, cur2);
        const after = (await s.current(r))!;
        expect(after.secret.equals(b)).toBe(true);
        expect((await s.versions(r))[0]!.fingerprint).toBe(b.fingerprint());
      });
    }

    it('undo of a first write (no previous value)', async () => {
      const s = h.store();
      const r = ref('engine-jwt', 'val-undo');
      const { version } = await s.write(r, new Secret(HEX_A), 0);
      if (h.undoOfCreate === 'absent') {
        await s.undo(r, version, undefined);
        expect(await s.current(r)).toBeUndefined();
        expect(await s.versions(r)).toEqual([]);
      } else {
        const e = await rejection(s.undo(r, version, undefined));
        expectNoValue(e, [HEX_A]);
      }
    });

    it('mint makes a fresh 64-hex Engine-API JWT with check-and-set; other kinds are refused (E_INPUT)', async () => {
      const s = h.store();
      const r = ref('engine-jwt', 'val-mint');
      const m1 = await s.mint(r, 0);
      const c1 = (await s.current(r))!;
      expect(c1.version).toBe(m1.version);
      expect(c1.secret.revealText()).toMatch(/^[0-9a-f]{64}$/);
      expect((await rejection(s.mint(r, 0))).code).toBe('E_PLAN_CONFLICT');
      const m2 = await s.mint(r, m1.version);
      expect((await s.current(r))!.secret.equals(c1.secret)).toBe(false);
      expect(m2.version).toBeGreaterThan(m1.version);
      for (const kind of ['node-env', 'horcrux-ecies', 'horcrux-shard'] as const) {
        const e = await rejection(s.mint(ref(kind, kind === 'node-env' ? 'val-mint' : 'cosigner-9'), 0));
        expect(e.code).toBe('E_INPUT');
        expect(e.message).toMatch(/imported, not minted/);
        expect(await s.head(ref(kind, kind === 'node-env' ? 'val-mint' : 'cosigner-9'))).toBe(0);
      }
    });

    it('an invalid value is refused (E_INPUT) before anything is written, without the value', async () => {
      const s = h.store();
      const cases: [SecretRef, string][] = [
        [ref('engine-jwt', 'val-bad-write'), `0x${HEX_A.toUpperCase()}`],
        [ref('engine-jwt', 'val-bad-write'), `${HEX_A}\n`],
        [ref('node-env', 'val-bad-write'), "API_KEY=not-quoted-secret-value\n"],
        [ref('horcrux-shard', 'cosigner-bad'), 'not json secret material'],
      ];
      for (const [r, raw] of cases) {
        const e = await rejection(s.write(r, new Secret(raw), 0));
        expect(e.code).toBe('E_INPUT');
        expect(e.message).toMatch(/nothing was written/);
        expectNoValue(e, [raw]);
        expect(await s.head(r)).toBe(0);
      }
    });

    describe('a value stored in a non-canonical form: current throws E_INPUT naming where, which version and what, never the value', () => {
      const cases: { title: string; kind: SecretKind; raw: RawValue; problem: RegExp }[] = [
        { title: 'hex with 0x and uppercase', kind: 'engine-jwt', raw: `0x${HEX_A.toUpperCase()}`, problem: /`0x` prefix.*uppercase hex/ },
        { title: 'hex with CR LF', kind: 'engine-jwt', raw: `${HEX_B}\r\n`, problem: /trailing CR LF/ },
        { title: 'hex too short', kind: 'engine-jwt', raw: HEX_A.slice(0, 62), problem: /31 bytes, expected 32/ },
        { title: 'env value with CR LF', kind: 'node-env', raw: { API_KEY: 'first-line-secret\r\nSECOND=1' }, problem: /API_KEY: the value has a line break at character 17|line/ },
        { title: 'horcrux file that is not JSON', kind: 'horcrux-ecies', raw: 'not-json-secret-material', problem: /not JSON/ },
      ];
      for (const [i, c] of cases.entries()) {
        it(c.title, async () => {
          const s = h.store();
          const r = ref(c.kind, c.kind.startsWith('horcrux') ? `cosigner-raw${i}` : `val-raw${i}`);
          await h.plant(r, c.raw);
          const version = await s.head(r);
          expect(version).toBeGreaterThanOrEqual(1);
          const e = await rejection(s.current(r));
          expect(e.code).toBe('E_INPUT');
          expect(e.message).toContain(s.describe(r));
          expect(e.message).toMatch(new RegExp(`version ${version}\\b|v${version}\\.enc`));
          expect(e.message).toMatch(c.problem);
          const secrets = typeof c.raw === 'string' ? [c.raw] : Object.values(c.raw);
          expectNoValue(e, secrets);
          // versions() skips it rather than failing the whole list
          expect(await s.versions(r)).toEqual([]);
        });
      }
    });

    it('checkWrite passes for refs the credentials may write', async () => {
      const s = h.store();
      await s.checkWrite([ref('engine-jwt', '*'), ref('horcrux-shard', 'cosigner-1')]);
    });

    it('keyDrift is undefined for a value written by the store itself', async () => {
      const s = h.store();
      const r = ref('engine-jwt', '*');
      expect(await s.keyDrift(r)).toBeUndefined();
    });
  });
}

/** A StoredValue of `secret` for undo's `previous` (as the caller read it before writing). */
export function storedValue(ref: SecretRef, secret: Secret, version: number, source = 'test'): StoredValue {
  return { ref, secret, version, source };
}
