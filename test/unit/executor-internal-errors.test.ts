/**
 * An exception escaping a task is a bug: the executor catches it at one place and reports it as E_INTERNAL for that
 * host (naming the task), the other hosts go on, and no stack trace is in any message; the CLI prints the stack only
 * with --debug (tested on its printers: a child process of the real CLI would need SSH hosts and a store to reach a
 * task). Tasks here throw plain Errors from their plan, their fact parser, a laptop fact, and their apply.
 */
import { inspect } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { KryptonError } from '../../src/core/errors.ts';
import type { RunEvent } from '../../src/core/events.ts';
import { gatherFacts } from '../../src/executor/facts.ts';
import { runPlaybook } from '../../src/executor/run.ts';
import { parseInventory } from '../../src/inventory/loader.ts';
import type { Host } from '../../src/model/inventory.ts';
import { act } from '../../src/model/action.ts';
import { change, defineTask, laptopFact, noChange, type AnyTask, type GatherEnv } from '../../src/model/task.ts';
import type { Playbook } from '../../src/playbook/loader.ts';
import type { Transport } from '../../src/core/transport.ts';
import { debugStack, formatFailure, plainRenderer, reportError, withDebugStacks } from '../../src/cli/render-events.ts';
import { FakeFleet, fakeInventoryText } from './fake-fleet.ts';

const INVENTORY = fakeInventoryText({ validators: 3, rpc: 1 });
const BAD = 'val-2';
const HEX = 'a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90';

type Where = 'plan' | 'parser' | 'laptop-fact' | 'apply';

/** A task that throws a plain Error (a bug) on BAD only, at `where`; elsewhere it plans a harmless change. */
function throwingTask(where: Where): AnyTask {
  const bug = () => new TypeError(`simulated bug in ${where}: cannot read properties of undefined (reading '${HEX}')`);
  return defineTask({
    id: 'test.throws',
    summary: 'a task with a bug',
    appliesTo: 'node',
    params: z.object({}),
    facts: (_p, host: Host) => ({
      probe: {
        kind: 'remote' as const,
        script: 'true',
        parse: () => {
          if (where === 'parser' && host.name === BAD) throw bug();
          return 'ok';
        },
      },
      local: laptopFact(async () => {
        if (where === 'laptop-fact' && host.name === BAD) throw bug();
        return 1;
      }),
    }),
    plan: (_p, _f, ctx) => {
      if (where === 'plan' && ctx.host.name === BAD) throw bug();
      return where === 'apply' ? change(act.put('/run/krypton-secrets/marker', 'x', '0600', 'write a marker')) : noChange('nothing to do');
    },
  });
}

const fleets: FakeFleet[] = [];
afterEach(async () => {
  await Promise.all(fleets.splice(0).map((f) => f.close()));
});

async function runWith(where: Where): Promise<{ events: RunEvent[]; summary: Awaited<ReturnType<typeof runPlaybook>>; fleet: FakeFleet }> {
  const inv = parseInventory('unit-inventory.yml', INVENTORY);
  const fleet = new FakeFleet(inv);
  fleets.push(fleet);
  for (const n of inv.nodes) fleet.host(n.name).mountTmpfs();
  const task = throwingTask(where);
  const playbook: Playbook = {
    file: 'unit-playbook.yml',
    plays: [{ name: 'bug', hosts: 'nodes', serial: [], maxValidatorsDown: 1, maxRpcDown: Number.MAX_SAFE_INTEGER, steps: [{ name: task.summary, task, params: {} }] }],
  };
  const events: RunEvent[] = [];
  const connect = async (h: Host): Promise<Transport> => {
    const t = await fleet.connect(h);
    if (where !== 'apply' || h.name !== BAD) return t;
    // the apply path throws: a bug below applyAction (here, in the transport's put)
    return { name: t.name, exec: (a, o) => t.exec(a, o), forward: (x, y) => t.forward(x, y), close: () => t.close(), put: async () => { throw new TypeError(`simulated bug in apply: ${HEX}.map is not a function`); } };
  };
  const summary = await runPlaybook({ inventory: inv, playbook, mode: 'apply', sink: (e) => events.push(e), store: fleet.store, connect });
  return { events, summary, fleet };
}

const STACK_FRAME = /^\s+at .+/m;

describe('an exception escaping a task is E_INTERNAL for that host, never a stack trace', () => {
  for (const where of ['plan', 'parser', 'laptop-fact', 'apply'] as const) {
    it(`thrown by the task's ${where}: ${BAD} fails with E_INTERNAL naming host and task; the others go on`, async () => {
      const { events, summary } = await runWith(where);
      expect(summary).toMatchObject({ ok: false, failed: 1, skipped: 0 });
      const err = summary.hosts[BAD]?.error;
      expect(summary.hosts[BAD]?.status).toBe('failed');
      expect(err?.code).toBe('E_INTERNAL');
      expect(err?.message).toContain(`simulated bug in ${where}`);
      expect(err?.message).toMatch(where === 'parser' ? /the parser of fact probe failed/ : /^test\.throws failed with an internal error: /);
      expect(err?.hint).toMatch(/bug in krypton-secrets.*--debug/);
      // where: the step event and its error name the host and the task
      const step = events.find((e): e is Extract<RunEvent, { type: 'step' }> => e.type === 'step' && e.host === BAD);
      expect(step).toMatchObject({ status: 'failed', task: 'test.throws', error: { code: 'E_INTERNAL', host: BAD, task: 'test.throws' } });
      for (const h of ['val-1', 'val-3', 'rpc-1']) expect(summary.hosts[h]?.status, h).toBe(where === 'apply' ? 'changed' : 'unchanged');
      // no stack trace in any message, JSON or rendered line; the 32-byte hex in the thrown message is scrubbed
      const lines: string[] = [];
      for (const e of events) plainRenderer((l) => lines.push(l))(e);
      const text = [JSON.stringify(events), JSON.stringify(summary), lines.join('\n'), formatFailure(step!.error!)].join('\n');
      expect(text).not.toMatch(STACK_FRAME);
      expect(text).not.toContain('.test.ts');
      expect(text).not.toContain(HEX);
      expect(inspect(step!.error!.toJSON())).not.toContain(HEX);
      // for --debug, the stack of the throw site is kept (scrubbed) in the cause
      const stack = debugStack(step!.error);
      expect(stack).toMatch(STACK_FRAME);
      expect(stack, 'the first frame is where the error was made').toMatch(/^\s+at (bug|Object\.put) \(.*executor-internal-errors\.test\.ts:\d+:\d+\)$/m);
      expect(stack).not.toContain(HEX);
    });
  }
});

describe('the CLI prints stack traces only with --debug', () => {
  it('a run: without --debug no stack anywhere; with it, the internal error\'s stack once on stderr, and none for expected errors', async () => {
    const { events } = await runWith('plan');
    const plain = (debug: boolean) => {
      const stdout: string[] = [];
      const stderr: string[] = [];
      const base = plainRenderer((l) => stdout.push(l));
      const sink = debug ? withDebugStacks(base, (l) => stderr.push(l)) : base;
      for (const e of events) sink(e);
      return { stdout: stdout.join('\n'), stderr: stderr.join('\n') };
    };
    const off = plain(false);
    expect(off.stdout).toContain(`✖  ${BAD}  test.throws  E_INTERNAL`);
    expect(off.stdout + off.stderr).not.toMatch(STACK_FRAME);
    const on = plain(true);
    expect(on.stdout).toBe(off.stdout);
    expect(on.stderr).toMatch(new RegExp(`^${BAD}: TypeError: simulated bug in plan`));
    expect(on.stderr).toMatch(STACK_FRAME);
    expect(on.stderr.match(/TypeError: simulated bug/g)).toHaveLength(1); // step and host-done carry the same error
    expect(on.stderr).not.toContain(HEX);
    // an expected error (a refusal, a connect error) gets no trace even with --debug
    const refused: RunEvent = { type: 'host-done', host: 'val-1', status: 'failed', error: new KryptonError('E_SSH_CONNECT', 'cannot reach val-1', { hint: 'h' }) };
    const stderr: string[] = [];
    withDebugStacks(() => undefined, (l) => stderr.push(l))(refused);
    expect(stderr).toEqual([]);
  });

  it('the top-level catch: a plain Error is E_INTERNAL (exit 70) with no stack unless --debug; a KryptonError never has one', () => {
    const thrown = () => {
      try {
        JSON.parse(`{"token": "${HEX}"`);
      } catch (e) {
        return e;
      }
      throw new Error('unreachable');
    };
    const report = (e: unknown, debug: boolean, json = false) => {
      const out: string[] = [];
      const err: string[] = [];
      const code = reportError(e, { json, debug }, (l) => out.push(l), (l) => err.push(l));
      return { code, out: out.join('\n'), err: err.join('\n') };
    };
    const off = report(thrown(), false);
    expect(off.code).toBe(70);
    expect(off.err).toMatch(/^✖  E_INTERNAL\n {2}/);
    expect(off.err).not.toMatch(STACK_FRAME);
    const on = report(thrown(), true);
    expect(on.err.startsWith(off.err)).toBe(true);
    expect(on.err).toMatch(STACK_FRAME);
    expect(on.err).toContain('executor-internal-errors.test.ts');
    const json = report(thrown(), false, true);
    expect(JSON.parse(json.out)).toMatchObject({ type: 'error', error: { code: 'E_INTERNAL' } });
    expect(json.out + json.err).not.toMatch(STACK_FRAME);
    const input = report(new KryptonError('E_INPUT', 'bad value', { hint: 'fix it' }), true);
    expect(input).toEqual({ code: 3, out: '', err: '✖  E_INPUT\n  bad value\n  hint: fix it' });
  });
});

describe('gatherFacts: a failed remote gather does not leave the step\'s laptop facts running', () => {
  it('waits for the laptop facts, then rejects with the remote error; a laptop fact\'s later rejection is not unhandled', async () => {
    const unhandled: unknown[] = [];
    const onUnhandled = (r: unknown) => unhandled.push(r);
    process.on('unhandledRejection', onUnhandled);
    try {
      let laptopSettled = false;
      const t: Transport = {
        name: 'x',
        exec: async () => {
          throw new KryptonError('E_SSH_EXEC', 'channel open failure', { hint: 'h' });
        },
        put: async () => {},
        forward: async () => {
          throw new Error('no');
        },
        close: async () => {},
      };
      const slow = laptopFact(async () => {
        await new Promise((r) => setTimeout(r, 50));
        laptopSettled = true;
        throw new Error('store read failed after the step');
      });
      const env = { transport: t } as unknown as GatherEnv;
      await expect(gatherFacts({ m: { kind: 'remote', script: 'true', parse: () => 1 }, slow }, t, env)).rejects.toMatchObject({ code: 'E_SSH_EXEC' });
      expect(laptopSettled, 'the laptop fact was done before the step failed').toBe(true);
      await new Promise((r) => setTimeout(r, 20));
      expect(unhandled).toEqual([]);
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
  });
});
