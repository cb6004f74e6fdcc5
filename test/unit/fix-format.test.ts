/**
 * `apply --fix-format` (issue 10 item 1): the run's preflight refuses a stored Engine-API JWT that is not canonical
 * before any host — naming path, version and problem, its hint naming --fix-format when only the form is wrong —
 * and with the flag writes the canonical form as a new version (check-and-set on the version read) before any
 * host, reported by fingerprint, then runs. The real executor over the fake fleet (whose store checks formats as
 * the real ones do); test/integration/fix-format.int.test.ts does the same on OpenBao and KMS.
 */
import { join, dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { inspect } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import type { RunEvent } from '../../src/core/events.ts';
import { KryptonError } from '../../src/core/errors.ts';
import { Secret, sha256Hex } from '../../src/core/secret.ts';
import { runPlaybook } from '../../src/executor/run.ts';
import { parseInventory } from '../../src/inventory/loader.ts';
import { canonicalHex64, hex64Problem } from '../../src/model/formats.ts';
import { JWT_FILE, refFor } from '../../src/model/layout.ts';
import { loadPlaybook } from '../../src/playbook/loader.ts';
import { formatStoreFixed } from '../../src/cli/render-events.ts';
import { FakeFleet } from './fake-fleet.ts';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const HEX = 'a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90';
const MIXED = `0x${HEX.toUpperCase().slice(0, 10)}${HEX.slice(10)}`; // 0xA1B2C3D4E5f607…
const CRLF = `${HEX}\r\n`;
const SHORT = HEX.slice(0, 62);

const inventoryText = (perNode = false) => `network: "473374"
vault:
  address: https://vault.fake.invalid:8200
${perNode ? '  jwt_per_node: true\n' : ''}nodes:
  val-1: { role: validator, address: 10.0.0.1 }
  val-2: { role: validator, address: 10.0.0.2 }
`;

const fleets: FakeFleet[] = [];
afterEach(async () => {
  await Promise.all(fleets.splice(0).map((f) => f.close()));
});

function fleet(perNode = false): FakeFleet {
  const f = new FakeFleet(parseInventory('unit-inventory.yml', inventoryText(perNode)));
  fleets.push(f);
  for (const n of f.inventory.nodes) f.host(n.name).writeFile(n.envFile, 'COMPOSE_PROJECT_NAME=krypton\n', 0o644);
  return f;
}

async function apply(f: FakeFleet, o: { fixFormat?: boolean; mode?: 'plan' | 'apply'; playbook?: string } = {}) {
  const events: RunEvent[] = [];
  try {
    const summary = await runPlaybook({
      inventory: f.inventory,
      playbook: await loadPlaybook(join(ROOT, 'playbooks', o.playbook ?? 'provision.yml')),
      mode: o.mode ?? 'apply',
      sink: (e) => events.push(e),
      store: f.store,
      connect: f.connect,
      fixFormat: o.fixFormat ?? false,
    });
    return { summary, events, error: undefined };
  } catch (err) {
    return { summary: undefined, events, error: err as KryptonError };
  }
}

const fixedEvents = (events: RunEvent[]) => events.filter((e): e is Extract<RunEvent, { type: 'store-fixed' }> => e.type === 'store-fixed');

describe('the problem words (model/formats.ts), never the value', () => {
  it('names the byte offset, the prefix, the case, the CR LF and the length', () => {
    expect(hex64Problem(new Secret(MIXED))).toBe('byte 0: `0x` prefix; uppercase hex at byte 2');
    expect(hex64Problem(new Secret(CRLF))).toBe('trailing CR LF');
    expect(hex64Problem(new Secret(SHORT))).toBe('31 bytes, expected 32 (64 hex)');
    expect(canonicalHex64(new Secret(MIXED))?.revealText()).toBe(HEX);
    expect(canonicalHex64(new Secret(CRLF))?.revealText()).toBe(HEX);
    expect(canonicalHex64(new Secret(SHORT))).toBeUndefined();
  });
});

describe('preflight: a non-canonical stored JWT', () => {
  for (const [label, value] of [
    ['0x + mixed case', MIXED],
    ['trailing CR LF', CRLF],
  ] as const) {
    it(`${label}: without --fix-format, E_INPUT before any host, the hint names --fix-format; nothing written`, async () => {
      const f = fleet();
      const ref = refFor(f.inventory, 'engine-jwt', 'val-1');
      f.store.seed(ref, new Secret(value));
      const r = await apply(f);
      expect(r.error).toBeInstanceOf(KryptonError);
      expect(r.error).toMatchObject({ code: 'E_INPUT', message: expect.stringMatching(/^secret\/krypton\/473374\/engine-jwt version 1: .*\(needed by val-1, val-2\); nothing was changed on any host$/) });
      expect(r.error!.message).toContain(hex64Problem(new Secret(value))!);
      expect(r.error!.hint).toMatch(/--fix-format/);
      expect(r.error!.hint).not.toMatch(/rotate-jwt/);
      expect(f.connects, 'no host was touched').toEqual([]);
      expect(f.store.writes()).toEqual([]);
      expect(r.error!.message + r.error!.hint).not.toContain(HEX);
    });

    it(`${label}: with --fix-format, the canonical form is v2 before any host, reported by fingerprint, then the fleet is provisioned`, async () => {
      const f = fleet();
      const ref = refFor(f.inventory, 'engine-jwt', 'val-1');
      f.store.seed(ref, new Secret(value));
      const r = await apply(f, { fixFormat: true });
      expect(r.error).toBeUndefined();
      expect(r.summary).toMatchObject({ ok: true, failed: 0 });
      expect(f.store.peek(ref)?.revealText()).toBe(HEX);
      const [fixed, ...more] = fixedEvents(r.events);
      expect(more).toEqual([]);
      expect(fixed).toEqual({
        type: 'store-fixed',
        source: 'secret/krypton/473374/engine-jwt',
        fromVersion: 1,
        toVersion: 2,
        fromSha256: sha256Hex(value),
        toSha256: sha256Hex(HEX),
        problem: hex64Problem(new Secret(value)),
        hosts: ['val-1', 'val-2'],
      });
      // before any host: the fix is the first event, and the first write
      expect(r.events[0]).toBe(fixed);
      expect(f.store.writes()[0]).toEqual({ method: 'write', path: 'secret/krypton/473374/engine-jwt' });
      for (const n of ['val-1', 'val-2']) expect(f.host(n).files.get(JWT_FILE)?.content.toString(), n).toBe(HEX);
      const line = formatStoreFixed(fixed!);
      expect(line).toBe(`fixed  secret/krypton/473374/engine-jwt: v1 (sha256:${sha256Hex(value).slice(0, 12)}) -> v2 (sha256:${sha256Hex(HEX).slice(0, 12)}), 64 lowercase hex (was: ${hex64Problem(new Secret(value))}; needed by val-1, val-2)`);
      for (const text of [JSON.stringify(r.events, (_k, v) => (v instanceof KryptonError ? v.toJSON() : v)), inspect(r.events, { depth: 8 }), line]) {
        expect(text).not.toContain(HEX);
        expect(text).not.toContain(HEX.toUpperCase().slice(0, 10));
      }
      // A second apply with the flag: nothing left to fix, nothing written.
      const writes = f.store.writes().length;
      const again = await apply(f, { fixFormat: true });
      expect(fixedEvents(again.events)).toEqual([]);
      expect(again.summary).toMatchObject({ ok: true, changed: 0 });
      expect(f.store.writes().length).toBe(writes);
    });
  }

  it('a wrong length has no canonical form: still a refusal with --fix-format, saying so; nothing written', async () => {
    const f = fleet();
    f.store.seed(refFor(f.inventory, 'engine-jwt', 'val-1'), new Secret(SHORT));
    const r = await apply(f, { fixFormat: true });
    expect(r.error).toMatchObject({ code: 'E_INPUT', message: expect.stringContaining('31 bytes, expected 32 (64 hex)') });
    expect(r.error!.hint).toMatch(/--fix-format cannot fix it/);
    expect(fixedEvents(r.events)).toEqual([]);
    expect(f.store.writes()).toEqual([]);
    expect(f.connects).toEqual([]);
  });

  it('jwt_per_node: a node\'s own path is fixed alone; a second node with a wrong length stops the run with nothing fixed', async () => {
    const f = fleet(true);
    const own = refFor(f.inventory, 'engine-jwt', 'val-2');
    f.store.seed(own, new Secret(CRLF));
    const r = await apply(f, { fixFormat: true });
    expect(r.error).toBeUndefined();
    expect(fixedEvents(r.events).map((e) => [e.source, e.hosts])).toEqual([['secret/krypton/473374/nodes/val-2/engine-jwt', ['val-2']]]);
    expect(f.store.peek(own)?.revealText()).toBe(HEX);
    expect(f.host('val-2').files.get(JWT_FILE)?.content.toString()).toBe(HEX);

    const g = fleet(true);
    g.store.seed(refFor(g.inventory, 'engine-jwt', 'val-1'), new Secret(MIXED));
    g.store.seed(refFor(g.inventory, 'engine-jwt', 'val-2'), new Secret(SHORT));
    const mixed = await apply(g, { fixFormat: true });
    expect(mixed.error).toMatchObject({ code: 'E_INPUT' });
    expect(mixed.error!.message).toMatch(/nodes\/val-1\/engine-jwt version 1: byte 0: `0x` prefix/);
    expect(mixed.error!.message).toMatch(/nodes\/val-2\/engine-jwt version 1: 31 bytes, expected 32 \(64 hex\)/);
    expect(mixed.error!.hint).toMatch(/can fix only the form/);
    expect(g.store.writes()).toEqual([]);
    expect(g.connects).toEqual([]);
  });

  it('plan never writes: with the flag it refuses and says only apply fixes', async () => {
    const f = fleet();
    f.store.seed(refFor(f.inventory, 'engine-jwt', 'val-1'), new Secret(MIXED));
    const r = await apply(f, { fixFormat: true, mode: 'plan' });
    expect(r.error).toMatchObject({ code: 'E_INPUT' });
    expect(r.error!.hint).toMatch(/only apply writes the canonical form/);
    expect(f.store.writes()).toEqual([]);
  });

  it('rotate-jwt: the fix comes first, then the rotation writes its own version', async () => {
    const f = fleet();
    const first = await apply(f);
    expect(first.summary?.ok).toBe(true);
    const ref = refFor(f.inventory, 'engine-jwt', 'val-1');
    f.store.seed(ref, new Secret(CRLF)); // someone wrote the value back with a newline
    const refused = await apply(f, { playbook: 'rotate-jwt.yml' });
    expect(refused.error).toMatchObject({ code: 'E_INPUT' });
    expect(refused.error!.hint).toMatch(/--fix-format/);
    const r = await apply(f, { playbook: 'rotate-jwt.yml', fixFormat: true });
    expect(r.error).toBeUndefined();
    expect(r.summary?.ok).toBe(true);
    expect(fixedEvents(r.events).map((e) => [e.fromVersion, e.toVersion])).toEqual([[2, 3]]);
    expect(f.store.peek(ref)?.revealText()).not.toBe(HEX); // rotated after the fix
    expect(f.store.peek(ref)?.revealText()).toMatch(/^[0-9a-f]{64}$/);
  });
});
