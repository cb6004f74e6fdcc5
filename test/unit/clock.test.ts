/**
 * Laptop–host clock skew (issue 10 item 2): the arithmetic of model/clock.ts, the `iat` the probe mints, the
 * readings gatherFacts takes in the step's own exec, verify's `clock` row, and — with the real executor and tasks
 * over the fake fleet (test/unit/fake-fleet.ts, whose el judges `iat` within ±60 s of the host's clock) — that a
 * skew never restarts el and cl. The same runs for real under libfaketime in test/integration/clock.int.test.ts.
 */
import { join, dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import type { RunEvent } from '../../src/core/events.ts';
import { ERROR_CODES } from '../../src/core/errors.ts';
import {
  CLOCK_SKEW_BOUND_SECONDS,
  ENGINE_IAT_WINDOW_SECONDS,
  describeSkew,
  hostClockFrom,
  hostNowSeconds,
  parseDateSeconds,
  skewBeyond,
  skewPhrase,
  type HostClock,
} from '../../src/model/clock.ts';
import { iatSeconds } from '../../src/facts/engine.ts';
import { gatherFacts, lastHostClock } from '../../src/executor/facts.ts';
import { runPlaybook } from '../../src/executor/run.ts';
import { parseInventory } from '../../src/inventory/loader.ts';
import { laptopFact, type GatherEnv } from '../../src/model/task.ts';
import { loadPlaybook } from '../../src/playbook/loader.ts';
import { clockRow } from '../../src/verify/checks.ts';
import { FakeFleet, fakeInventoryText } from './fake-fleet.ts';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

const clock = (o: Partial<HostClock>): HostClock => ({ hostSeconds: 1_700_000_000, monotonicMs: 5_000, skewSeconds: 0, uncertaintySeconds: 0, ...o });

describe('model/clock.ts: the skew arithmetic', () => {
  it('parses date -u +%s.%N, and whole seconds from a date without %N', () => {
    expect(parseDateSeconds('1700000000.250000000\n')).toBe(1_700_000_000.25);
    expect(parseDateSeconds('1700000000.%N')).toBe(1_700_000_000);
    expect(parseDateSeconds('1700000000.N')).toBe(1_700_000_000);
    expect(parseDateSeconds('1700000000')).toBe(1_700_000_000);
    expect(parseDateSeconds('')).toBeUndefined();
    expect(parseDateSeconds('date: invalid option')).toBeUndefined();
  });

  it('NTP-style: offset from the midpoints, uncertainty = half the round trip not spent between the host\'s readings', () => {
    // The laptop is 95 s ahead. The exec took 400 ms; the host read its clock 100 ms apart, 150 ms after the
    // laptop sent it (so 150 ms before the answer arrived).
    const laptop0 = 1_700_000_095_000;
    const c = hostClockFrom(1_700_000_000.15, 1_700_000_000.25, { wallMs: laptop0, monotonicMs: 1_000 }, { wallMs: laptop0 + 400, monotonicMs: 1_400 })!;
    expect(c.skewSeconds).toBeCloseTo(95, 6);
    expect(c.uncertaintySeconds).toBeCloseTo(0.15, 6);
    expect(c.hostSeconds).toBeCloseTo(1_700_000_000.2, 6);
    expect(c.monotonicMs).toBe(1_200);
    // A host behind by 95 s is the same as a laptop ahead by 95 s; a host ahead gives a negative skew.
    const ahead = hostClockFrom(1_700_000_190, 1_700_000_190, { wallMs: laptop0, monotonicMs: 0 }, { wallMs: laptop0, monotonicMs: 0 })!;
    expect(ahead.skewSeconds).toBeCloseTo(-95, 6);
  });

  it('an asymmetric delay moves the estimate, but never out of its stated uncertainty', () => {
    // The exec waited 4 s for a channel before the host ran it: the host's readings come late in the interval.
    const t0 = 1_700_000_095_000;
    const c = hostClockFrom(1_700_000_004, 1_700_000_004.1, { wallMs: t0, monotonicMs: 0 }, { wallMs: t0 + 4_200, monotonicMs: 4_200 })!;
    expect(Math.abs(c.skewSeconds - 95)).toBeLessThanOrEqual(c.uncertaintySeconds + 1e-9);
    expect(c.skewSeconds).toBeLessThan(95);
  });

  it('refuses unusable readings (missing, out of order, time running backwards)', () => {
    const i = { wallMs: 0, monotonicMs: 10 };
    expect(hostClockFrom(undefined, 1, i, i)).toBeUndefined();
    expect(hostClockFrom(2, 1, i, i)).toBeUndefined();
    expect(hostClockFrom(1, 1, i, { wallMs: 0, monotonicMs: 5 })).toBeUndefined();
  });

  it("the host's now advances by the laptop's monotonic time since the reading", () => {
    const c = clock({ hostSeconds: 1_000, monotonicMs: 2_000 });
    expect(hostNowSeconds(c, 2_000)).toBe(1_000);
    expect(hostNowSeconds(c, 32_500)).toBe(1_030.5);
  });

  it('skewBeyond gives the reading the benefit of its uncertainty', () => {
    expect(skewBeyond(clock({ skewSeconds: 95 }), ENGINE_IAT_WINDOW_SECONDS)).toBe(true);
    expect(skewBeyond(clock({ skewSeconds: -95 }), ENGINE_IAT_WINDOW_SECONDS)).toBe(true);
    expect(skewBeyond(clock({ skewSeconds: 59 }), ENGINE_IAT_WINDOW_SECONDS)).toBe(false);
    expect(skewBeyond(clock({ skewSeconds: 62, uncertaintySeconds: 3 }), ENGINE_IAT_WINDOW_SECONDS)).toBe(false);
    expect(skewBeyond(clock({ skewSeconds: 31 }), CLOCK_SKEW_BOUND_SECONDS)).toBe(true);
  });

  it('words: ahead/behind, whole seconds, and the ±60 s the Engine API allows', () => {
    expect(describeSkew(95.4, 'val-1')).toBe("the laptop's clock is 95 s ahead of val-1's");
    expect(describeSkew(-95.6, 'val-1')).toBe("the laptop's clock is 96 s behind val-1's");
    expect(describeSkew(0.3, 'val-1')).toBe("the laptop's clock agrees with val-1's (within 1 s)");
    expect(skewPhrase(-95.2)).toBe('clock skew of 95 s (±60 s allowed)');
  });

  it("iat comes from the host's clock when there is a reading, else from the laptop's", () => {
    const c = clock({ hostSeconds: 1_700_000_000.9, monotonicMs: 1_000 });
    expect(iatSeconds(c, 1_000, 1_700_000_095_000)).toBe(1_700_000_000);
    expect(iatSeconds(c, 3_200, 1_700_000_095_000)).toBe(1_700_000_003);
    expect(iatSeconds(undefined, 3_200, 1_700_000_095_500)).toBe(1_700_000_095);
  });

  it('E_CLOCK_SKEW has its own exit code', () => {
    expect(ERROR_CODES.E_CLOCK_SKEW).toBe(52);
    expect(Object.entries(ERROR_CODES).filter(([, v]) => v === 52).map(([k]) => k)).toEqual(['E_CLOCK_SKEW']);
  });
});

describe("verify's clock row", () => {
  it('passes within ±30 s, fails beyond it with E_CLOCK_SKEW, and fails when the host gave no reading', () => {
    expect(clockRow('val-1', clock({ skewSeconds: 12 }))).toMatchObject({ ok: true, check: 'clock', detail: expect.stringContaining("the laptop's clock is 12 s ahead of val-1's") });
    expect(clockRow('val-1', clock({ skewSeconds: 12 })).code).toBeUndefined();
    const bad = clockRow('val-1', clock({ skewSeconds: -95 }));
    expect(bad).toMatchObject({ ok: false, code: 'E_CLOCK_SKEW' });
    expect(bad.detail).toMatch(/^clock skew of 95 s \(verify allows ±30 s; the Engine API ±60 s\): the laptop's clock is 95 s behind val-1's/);
    expect(clockRow('val-1', undefined)).toMatchObject({ ok: false, code: 'E_CLOCK_SKEW', detail: expect.stringContaining("could not read val-1's clock") });
  });
});

// ------------------------------------------------------------------------------ the executor and the tasks

const INVENTORY = fakeInventoryText({ validators: 2 });

const fleets: FakeFleet[] = [];
afterEach(async () => {
  await Promise.all(fleets.splice(0).map((f) => f.close()));
});

/** Two nodes as a fresh deployment has them: the compose env file, el/cl not yet on any JWT. */
function fleet(): FakeFleet {
  const f = new FakeFleet(parseInventory('unit-inventory.yml', INVENTORY));
  fleets.push(f);
  for (const n of f.inventory.nodes) f.host(n.name).writeFile(n.envFile, 'COMPOSE_PROJECT_NAME=krypton\n', 0o644);
  return f;
}

async function apply(f: FakeFleet, playbook = 'provision.yml', limit?: string[]) {
  const events: RunEvent[] = [];
  const summary = await runPlaybook({
    inventory: f.inventory,
    playbook: await loadPlaybook(join(ROOT, 'playbooks', playbook)),
    mode: 'apply',
    sink: (e) => events.push(e),
    store: f.store,
    connect: f.connect,
    ...(limit ? { limit } : {}),
  });
  const steps = (host: string) => events.filter((e): e is Extract<RunEvent, { type: 'step' }> => e.type === 'step' && e.host === host);
  return { summary, events, steps };
}

describe('gatherFacts reads the host clock in the same exec', () => {
  it("a laptop fact gets the host's clock from the step's one exec (no exec of its own)", async () => {
    const f = fleet();
    const h = f.host('val-1');
    h.clockOffsetSeconds = -95;
    const t = await f.connect(f.inventory.nodes[0]!);
    const env: GatherEnv = { host: h.host, inventory: f.inventory, transport: t, store: f.store, runState: new Map(), memo: (_k, get) => get() };
    const before = f.execsOf('val-1').length;
    const out = await gatherFacts(
      {
        kernel: { kind: 'remote', script: 'uname -r; echo "@swaps $(grep -c . /proc/swaps)"', parse: (s: string) => s.split('\n')[0] },
        clock: laptopFact(async (e) => e.hostClock?.()),
      },
      t,
      env,
    );
    expect(f.execsOf('val-1').length - before).toBe(1);
    const c = out['clock'] as HostClock;
    expect(c.skewSeconds).toBeGreaterThan(94);
    expect(c.skewSeconds).toBeLessThan(96);
    expect(lastHostClock(t)).toEqual(c);
  });
});

describe('runPlaybook with the host clock 95 s behind the laptop', () => {
  it('provision converges (iat from the host clock), and a second apply restarts nothing', async () => {
    const f = fleet();
    for (const n of ['val-1', 'val-2']) f.host(n).clockOffsetSeconds = -95;
    const first = await apply(f);
    expect(first.summary, JSON.stringify(first.summary.hosts)).toMatchObject({ ok: true, failed: 0 });
    const restarts = f.host('val-1').restarts;
    const second = await apply(f, 'provision.yml', ['val-1']);
    expect(second.summary).toMatchObject({ ok: true, changed: 0, failed: 0 });
    expect(f.host('val-1').restarts).toBe(restarts);
    const auth = second.steps('val-1').find((s) => s.task === 'engine.verify-auth');
    expect(auth?.reason).toMatch(/iat from val-1's clock \(the laptop's clock is 9[4-6] s ahead of val-1's\)/);
  });

  it("an Engine API that still refuses while the skew is beyond ±60 s is E_CLOCK_SKEW: nothing is restarted", async () => {
    const f = fleet();
    const first = await apply(f);
    expect(first.summary.ok, JSON.stringify(first.summary.hosts)).toBe(true);
    // The host shell's clock is 95 s behind the laptop, and el's clock is the laptop's: every token refused.
    const h = f.host('val-1');
    h.clockOffsetSeconds = -95;
    h.elClockOffsetSeconds = 0;
    const restarts = h.restarts;
    const r = await apply(f, 'provision.yml', ['val-1']);
    expect(h.restarts, 'no restart for a clock skew').toBe(restarts);
    expect(r.summary.hosts['val-1']).toMatchObject({ status: 'failed', error: { code: 'E_CLOCK_SKEW', message: expect.stringMatching(/not restarting el and cl: clock skew of 9[4-6] s \(±60 s allowed\): the laptop's clock is 9[4-6] s ahead of val-1's/) } });
    expect(r.summary.hosts['val-1']?.error?.hint).toMatch(/NTP/);
  });

  it('control: the same refusal with the clocks in step is a wrong JWT, and el and cl are restarted', async () => {
    const f = fleet();
    const first = await apply(f);
    expect(first.summary.ok, JSON.stringify(first.summary.hosts)).toBe(true);
    const h = f.host('val-1');
    h.el.key = Buffer.alloc(32, 7); // el runs on another value than the store's
    const restarts = h.restarts;
    const r = await apply(f, 'provision.yml', ['val-1']);
    expect(r.summary.hosts['val-1']?.status).toBe('changed');
    expect(h.restarts).toBe(restarts + 1);
  });
});
