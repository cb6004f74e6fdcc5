/**
 * The executor: waves, host selection, and runPlaybook end to end with the REAL executor and tasks over a
 * recording fake Transport and a fake SecretStore (test/unit/fake-fleet.ts). Integration tests elsewhere run the
 * same against real sshd, OpenBao and moto.
 */
import { generateHorcruxKeys } from '../sandbox/horcrux-keys.ts';
import { spawnSync } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { inspect } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { KryptonError } from '../../src/core/errors.ts';
import type { RunEvent, RunSummary } from '../../src/core/events.ts';
import { Secret } from '../../src/core/secret.ts';
import type { FactSpec, GatherEnv } from '../../src/model/task.ts';
import { gatherFacts } from '../../src/executor/facts.ts';
import { runPlaybook, type RunOptions } from '../../src/executor/run.ts';
import { checkLimit, selectHosts } from '../../src/executor/select.ts';
import { computeWaves } from '../../src/executor/waves.ts';
import { parseInventory } from '../../src/inventory/loader.ts';
import type { Host, Inventory } from '../../src/model/inventory.ts';
import { loadPlaybook, type Play, type Playbook, type SerialStep, type Step } from '../../src/playbook/loader.ts';
import { AGENT_FILES, JWT_FILE, refFor } from '../../src/model/layout.ts';
import type { StoreCapabilities } from '../../src/model/task.ts';
import { TASKS } from '../../src/tasks/index.ts';
import type { ExecOptions, ExecResult, Transport } from '../../src/core/transport.ts';
import { FakeFleet, fakeInventoryText, type DownWindow, type ExecRecord } from './fake-fleet.ts';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

// ------------------------------------------------------------------------------------------- waves

describe('computeWaves', () => {
  const hosts = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j'];
  const sizes = (serial: SerialStep[], hs = hosts) => computeWaves(hs, serial).map((w) => w.length);

  it('empty serial: one wave with every host, in order', () => {
    expect(computeWaves(hosts, [])).toEqual([hosts]);
  });
  it('no hosts: no waves', () => {
    expect(computeWaves([], [])).toEqual([]);
    expect(computeWaves([], [1])).toEqual([]);
  });
  it('a number: waves of that size, the last one shorter', () => {
    expect(computeWaves(hosts, [3])).toEqual([['a', 'b', 'c'], ['d', 'e', 'f'], ['g', 'h', 'i'], ['j']]);
    expect(sizes([1])).toEqual(Array(10).fill(1));
    expect(sizes([20])).toEqual([10]);
  });
  it('a list: the last entry repeats', () => {
    expect(sizes([1, 2, 3])).toEqual([1, 2, 3, 3, 1]);
    expect(sizes([1, 5])).toEqual([1, 5, 4]);
  });
  it('percentages of the play\'s hosts, rounded up, at least 1', () => {
    expect(sizes(['25%'])).toEqual([3, 3, 3, 1]);
    expect(sizes(['100%'])).toEqual([10]);
    expect(sizes(['1%'])).toEqual(Array(10).fill(1));
    expect(sizes(['50%'], ['a', 'b', 'c'])).toEqual([2, 1]);
  });
  it('mixed: one canary, then half, then the rest (rotate-jwt.yml)', () => {
    expect(sizes([1, '50%', '100%'])).toEqual([1, 5, 4]);
  });
  it('every host appears exactly once, in order', () => {
    for (const serial of [[], [1], [2, '30%'], ['10%', 3, '100%']] as SerialStep[][]) {
      expect(computeWaves(hosts, serial).flat()).toEqual(hosts);
    }
  });
});

// ------------------------------------------------------------------------------------------- select

const INVENTORY = fakeInventoryText({ validators: 3, rpc: 1, cosigners: 1 });
const inventory = (): Inventory => parseInventory('unit-inventory.yml', INVENTORY);

describe('selectHosts / checkLimit', () => {
  const inv = inventory();
  const names = (hs: { name: string }[]) => hs.map((h) => h.name);
  it('groups', () => {
    expect(names(selectHosts(inv, 'nodes'))).toEqual(['val-1', 'val-2', 'val-3', 'rpc-1']);
    expect(names(selectHosts(inv, 'validators'))).toEqual(['val-1', 'val-2', 'val-3']);
    expect(names(selectHosts(inv, 'rpc'))).toEqual(['rpc-1']);
    expect(names(selectHosts(inv, 'cosigners'))).toEqual(['cosigner-1']);
    expect(names(selectHosts(inv, 'all'))).toEqual(['val-1', 'val-2', 'val-3', 'rpc-1', 'cosigner-1']);
  });
  it('explicit names keep the play\'s order; an unknown name is E_PLAYBOOK', () => {
    expect(names(selectHosts(inv, ['rpc-1', 'val-2']))).toEqual(['rpc-1', 'val-2']);
    expect(() => selectHosts(inv, ['val-9'])).toThrow(expect.objectContaining({ code: 'E_PLAYBOOK', message: expect.stringContaining('val-9') }));
  });
  it('checkLimit: undefined passes through, known names become a set, unknown ones are E_USAGE naming them', () => {
    expect(checkLimit(inv, undefined)).toBeUndefined();
    expect(checkLimit(inv, ['val-1', 'cosigner-1'])).toEqual(new Set(['val-1', 'cosigner-1']));
    let err: unknown;
    try {
      checkLimit(inv, ['val-1', 'nope', 'val-7']);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(KryptonError);
    expect(err).toMatchObject({ code: 'E_USAGE', message: '--limit nope, val-7 match no host of the inventory unit-inventory.yml' });
    expect((err as KryptonError).hint).toContain('val-1, val-2, val-3, rpc-1, cosigner-1');
  });
});

// ------------------------------------------------------------------------------------------- runPlaybook

const OLD_HEX = '2d63f2a04490150d356332e9f48d9d9f933198716e5a0c3d40839777e0147b56';

function play(o: { hosts: Play['hosts']; steps: string[]; serial?: SerialStep[]; maxValidatorsDown?: number; name?: string }): Play {
  return {
    name: o.name ?? 'unit play',
    hosts: o.hosts,
    serial: o.serial ?? [],
    maxValidatorsDown: o.maxValidatorsDown ?? 1,
    maxRpcDown: Number.MAX_SAFE_INTEGER,
    steps: o.steps.map((id) => {
      const task = TASKS.get(id);
      if (!task) throw new Error(`no task ${id}`);
      return { name: task.summary, task, params: task.params.parse({}) };
    }),
  };
}

const fleets: FakeFleet[] = [];
afterEach(async () => {
  await Promise.all(fleets.splice(0).map((f) => f.close()));
});

/** A fleet as bootstrap.sh left it: plaintext jwt.hex in the deploy dir, JWT_PATH pointing at it, el/cl on it. */
function legacyFleet(inv = inventory()): FakeFleet {
  const fleet = new FakeFleet(inv);
  fleets.push(fleet);
  for (const n of inv.nodes) {
    const h = fleet.host(n.name);
    h.writeFile(n.legacyJwtPath, OLD_HEX, 0o644);
    h.writeFile(n.envFile, `COMPOSE_PROJECT_NAME=krypton\nJWT_PATH=${n.legacyJwtPath}\nEL_IMAGE=krypton/el:1.4.2\n`, 0o644);
    h.startEl();
  }
  return fleet;
}

async function run(fleet: FakeFleet, playbook: Playbook, mode: 'plan' | 'apply' = 'apply', extra: Partial<RunOptions> = {}) {
  const events: RunEvent[] = [];
  const summary: RunSummary = await runPlaybook({
    inventory: fleet.inventory,
    playbook,
    mode,
    sink: (e) => events.push(e),
    store: fleet.store,
    connect: fleet.connect,
    ...extra,
  });
  return { summary, events };
}

const pb = (...plays: Play[]): Playbook => ({ file: 'unit-playbook.yml', plays });
const hostDone = (events: RunEvent[]) => events.filter((e): e is Extract<RunEvent, { type: 'host-done' }> => e.type === 'host-done');
const stepsOf = (events: RunEvent[], host: string) => events.filter((e): e is Extract<RunEvent, { type: 'step' }> => e.type === 'step' && e.host === host);
const isFactExec = (argv: string[]) => argv[0] === 'sh' && argv[1] === '-c' && /^echo '@@\S+ \S+'$/m.test(argv[2] ?? '');

/** No secret text in any recorded argv, cwd, put path, or event (JSON and inspect). */
function expectNoSecretLeak(fleet: FakeFleet, events: RunEvent[], extra: (Secret | string)[] = []): void {
  const texts = fleet.secretTexts(extra);
  expect(texts.length).toBeGreaterThan(0);
  const argvText = JSON.stringify(fleet.ops.map((o) => (o.kind === 'exec' ? [o.argv, o.cwd] : o.kind === 'put' ? o.path : o.target)));
  const eventJson = JSON.stringify(events);
  const eventInspect = inspect(events, { depth: 10 });
  for (const t of texts) {
    expect(argvText.includes(t), 'a secret in a remote argv').toBe(false);
    expect(eventJson.includes(t), 'a secret in an event (JSON)').toBe(false);
    expect(eventInspect.includes(t), 'a secret in an event (inspect)').toBe(false);
  }
}

/** Whether the executor runs `step` on `host` (appliesTo and the store's delivery: the fake store delivers `agent`). */
function applies(step: Step, host: Host, _inv: Inventory, store: Pick<StoreCapabilities, 'delivery'> = { delivery: 'agent' }): boolean {
  const t = step.task;
  return (t.appliesTo === 'any' || t.appliesTo === host.kind) && (!t.delivery || t.delivery.includes(store.delivery));
}

/** Per step index: the names of its remote facts (steps without any, or not run on `host`, are left out). */
function remoteFactKeys(p: Play, host: Host, inv: Inventory): Map<number, string[]> {
  const out = new Map<number, string[]>();
  p.steps.forEach((s, i) => {
    if (!applies(s, host, inv)) return;
    const keys = Object.entries(s.task.facts(s.params, host, inv) as Record<string, FactSpec<unknown>>)
      .filter(([, f]) => f.kind === 'remote')
      .map(([k]) => k);
    if (keys.length) out.set(i, keys.sort());
  });
  return out;
}

/**
 * Every exec is a fact-gathering exec; each carries complete steps' fact sets (one step's keys, or
 * several steps' keys prefixed `<index>:` when the executor batches them), and together they gather every
 * step's facts exactly once — so there is never more than one exec per step.
 */
function expectOneGatherPerStep(execs: ExecRecord[], want: Map<number, string[]>): void {
  expect(execs.every((e) => isFactExec(e.argv)), 'only fact-gathering execs').toBe(true);
  expect(execs.length).toBeGreaterThan(0);
  expect(execs.length).toBeLessThanOrEqual(want.size);
  let covered = 0;
  for (const e of execs) {
    const keys = e.factKeys ?? [];
    if (keys.length && keys.every((k) => /^\d+:/.test(k))) {
      const groups = new Map<number, string[]>();
      for (const k of keys) {
        const [i, f] = [Number(k.slice(0, k.indexOf(':'))), k.slice(k.indexOf(':') + 1)];
        groups.set(i, [...(groups.get(i) ?? []), f]);
      }
      for (const [i, fs] of groups) expect(fs.sort(), `step ${i}`).toEqual(want.get(i));
      covered += groups.size;
    } else {
      expect([...want.values()].map((k) => JSON.stringify(k)), `an exec with a partial step: ${keys.join(',')}`).toContain(JSON.stringify([...keys].sort()));
      covered += 1;
    }
  }
  expect(covered, 'every step gathered exactly once').toBe(want.size);
}

/** A Transport exec that runs the command with the local /bin/sh (for gatherFacts' own wrapper). */
async function realSh(argv: string[], opts: ExecOptions = {}): Promise<ExecResult> {
  const r = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8', input: typeof opts.stdin === 'string' ? opts.stdin : undefined, timeout: 10_000 });
  return { code: r.status ?? 128, stdout: r.stdout, stderr: r.stderr };
}

/** Overlapping disruptive windows among the given role. */
function overlaps(windows: DownWindow[], role: string): [DownWindow, DownWindow][] {
  const ws = windows.filter((w) => w.role === role);
  const out: [DownWindow, DownWindow][] = [];
  for (let i = 0; i < ws.length; i++)
    for (let j = i + 1; j < ws.length; j++) {
      const a = ws[i]!;
      const b = ws[j]!;
      if (a.enter < (b.exit ?? Infinity) && b.enter < (a.exit ?? Infinity)) out.push([a, b]);
    }
  return out;
}

describe('runPlaybook: provision.yml on a fleet still using the plaintext JWT', () => {
  it('apply converges every node, a second apply changes nothing, and no secret leaks', async () => {
    const fleet = legacyFleet();
    const playbook = await loadPlaybook(join(ROOT, 'playbooks', 'provision.yml'));
    const first = await run(fleet, playbook);

    expect(first.summary).toMatchObject({ ok: true, changed: 4, unchanged: 0, failed: 0, skipped: 0 });
    const inv = fleet.inventory;
    const jwt = fleet.store.peek(refFor(inv, 'engine-jwt', 'val-1'));
    expect(jwt, 'seeded').toBeInstanceOf(Secret);
    // once: seeded by exactly one host, even though four nodes ran the step
    expect(fleet.store.calls.filter((c) => c.method === 'mint' || c.method === 'write')).toEqual([{ method: 'mint', path: 'secret/krypton/473374/engine-jwt' }]);

    for (const n of inv.nodes) {
      const h = fleet.host(n.name);
      expect(h.mounts.get('/run/krypton-secrets')).toMatchObject({ fsType: 'tmpfs', sizeBytes: 1048576, noswap: true });
      expect(h.files.get(JWT_FILE)?.content.toString()).toBe(jwt!.revealText());
      expect(h.files.get(JWT_FILE)?.mode).toBe(0o600);
      expect(h.files.has(AGENT_FILES.secretId), 'the agent consumed the secret_id file').toBe(false);
      expect(h.envLines()).toContain('JWT_PATH=/run/krypton-secrets/jwt.hex');
      expect(h.el.key?.toString('hex'), 'el/cl run on the new JWT').toBe(jwt!.revealText());
      expect(h.restarts).toBe(1);
      // secrets went only by SFTP, 0600, into the tmpfs
      const secretPuts = fleet.putsOf(n.name).filter((p) => p.secret);
      expect(secretPuts.map((p) => p.path).sort()).toEqual([AGENT_FILES.roleId, AGENT_FILES.secretId].sort());
      for (const p of fleet.putsOf(n.name)) {
        expect(p.mode).toBe(0o600);
        expect(p.path.startsWith('/run/krypton-secrets/')).toBe(true);
      }
      expect(fleet.store.vault.policies.get(`krypton-node-473374-${n.name}`)).toContain('capabilities = ["read"]');
      // el and cl started on the tmpfs JWT, and the record of what they read says so
      expect(h.files.get('/run/krypton-secrets/loaded')?.content.toString()).toBe(`el engine-jwt ${jwt!.fingerprint()}\ncl engine-jwt ${jwt!.fingerprint()}\n`);
    }
    // the cosigner is not in "hosts: nodes"
    expect(fleet.connects).not.toContain('cosigner-1');

    // Restarts of validators never overlapped (max_validators_down: 1 in provision.yml).
    expect(fleet.windows.filter((w) => w.role === 'validator')).toHaveLength(3);
    expect(fleet.windows.every((w) => w.exit !== undefined)).toBe(true);
    expect(overlaps(fleet.windows, 'validator')).toEqual([]);

    // Second apply: nothing to do anywhere, and every step says why.
    const opsBefore = fleet.ops.length;
    const writesBefore = fleet.store.writes().length;
    const second = await run(fleet, playbook);
    expect(second.summary).toMatchObject({ ok: true, changed: 0, unchanged: 4, failed: 0, skipped: 0 });
    for (const n of inv.nodes) {
      const steps = stepsOf(second.events, n.name);
      expect(steps).toHaveLength(playbook.plays[0]!.steps.filter((s) => applies(s, n, inv)).length);
      for (const s of steps) {
        expect(s.status).toBe('ok');
        expect(s.reason?.trim()).toBeTruthy();
      }
    }
    const secondOps = fleet.ops.slice(opsBefore);
    expect(secondOps.filter((o) => o.kind === 'put')).toEqual([]);
    expect(secondOps.filter((o) => o.kind === 'exec' && !isFactExec(o.argv))).toEqual([]);
    expect(fleet.store.writes().length).toBe(writesBefore);

    expectNoSecretLeak(fleet, [...first.events, ...second.events], [OLD_HEX]);
  });

  it('fact gathering is ONE exec per step per host (or fewer), each carrying every remote fact of a step', async () => {
    const fleet = legacyFleet();
    const playbook = await loadPlaybook(join(ROOT, 'playbooks', 'provision.yml'));
    await run(fleet, playbook);
    const before = fleet.ops.length;
    await run(fleet, playbook); // converged: every step gathers (at most) once and plans noChange
    for (const n of fleet.inventory.nodes) {
      const execs = fleet.ops.slice(before).filter((o): o is ExecRecord => o.kind === 'exec' && o.host === n.name);
      expectOneGatherPerStep(execs, remoteFactKeys(playbook.plays[0]!, n, fleet.inventory));
    }
  });
});

describe('gatherFacts', () => {
  const env = (fleet: FakeFleet): GatherEnv => ({
    host: fleet.inventory.nodes[0]!,
    inventory: fleet.inventory,
    transport: undefined as unknown as Transport,
    store: fleet.store,
    runState: new Map(),
    memo: (_k, get) => get(),
  });
  const remote = (script: string, parse: (out: string, code: number) => unknown = (o, c) => ({ out: o, code: c })): FactSpec<unknown> => ({ kind: 'remote', script, parse });

  it('runs every remote fact of a step in ONE exec, laptop facts beside it, each snippet with its own exit status', async () => {
    const fleet = legacyFleet();
    const t = await fleet.connect(fleet.inventory.nodes[0]!);
    const calls: string[][] = [];
    const recording: Transport = { ...t, name: t.name, exec: async (argv, opts) => (calls.push(argv), realSh(argv, opts)), put: t.put.bind(t), forward: t.forward.bind(t), close: t.close.bind(t) };
    const facts = await gatherFacts(
      {
        a: remote('echo one; echo two'),
        b: remote("printf 'last line\\n'; exit 3"),
        c: remote('echo "@@KF000000000000 c"; echo evil >&2; echo after'),
        d: { kind: 'laptop', gather: async () => 'from the laptop' },
      },
      recording,
      { ...env(fleet), transport: recording },
    );
    expect(calls).toHaveLength(1);
    expect(calls[0]!.slice(0, 2)).toEqual(['sh', '-c']);
    expect(facts).toEqual({
      a: { out: 'one\ntwo', code: 0 },
      b: { out: 'last line', code: 3 },
      c: { out: '@@KF000000000000 c\nafter', code: 0 },
      d: 'from the laptop',
    });
  });

  // BUG (reported): the exit marker is echoed right after the snippet's output, so output without a final
  // newline swallows the marker ("text@@KF…-exit 0") and the fact cannot be read (E_FACT).
  it('a snippet whose output has no final newline is still read', async () => {
    const fleet = legacyFleet();
    const t: Transport = { name: 'x', exec: realSh, put: async () => {}, forward: async () => { throw new Error('no'); }, close: async () => {} };
    const facts = await gatherFacts({ b: remote("printf 'no newline'") }, t, { ...env(fleet), transport: t });
    expect(facts).toEqual({ b: { out: 'no newline', code: 0 } });
  });

  it('a parser that throws is a bug: E_INTERNAL naming the fact (a parser\'s own E_FACT refusal stays E_FACT)', async () => {
    const fleet = legacyFleet();
    const t: Transport = { name: 'x', exec: realSh, put: async () => {}, forward: async () => { throw new Error('no'); }, close: async () => {} };
    await expect(gatherFacts({ m: remote('echo x', () => { throw new Error('bad line'); }) }, t, { ...env(fleet), transport: t })).rejects.toMatchObject({
      code: 'E_INTERNAL',
      message: "the parser of fact m failed on the host's output: bad line",
    });
    const refusal = new KryptonError('E_FACT', 'unexpected findmnt output', { hint: 'h' });
    await expect(gatherFacts({ m: remote('echo x', () => { throw refusal; }) }, t, { ...env(fleet), transport: t })).rejects.toBe(refusal);
  });

  it('output that cannot be split back into facts is E_FACT', async () => {
    const fleet = legacyFleet();
    const t: Transport = { name: 'x', exec: async () => ({ code: 127, stdout: '', stderr: 'sh: not found' }), put: async () => {}, forward: async () => { throw new Error('no'); }, close: async () => {} };
    await expect(gatherFacts({ m: remote('echo x') }, t, { ...env(fleet), transport: t })).rejects.toMatchObject({ code: 'E_FACT', message: expect.stringContaining('could not read fact m from the host (exit 127') });
  });
});

describe('runPlaybook: failures stay with their host', () => {
  it('one failed host does not stop the others, and the summary counts it', async () => {
    const fleet = legacyFleet();
    fleet.host('val-2').failExec = (argv) =>
      argv[0] === 'mount' ? { code: 32, stdout: '', stderr: 'mount: /run/krypton-secrets: permission denied.\n' } : undefined;
    const { summary, events } = await run(fleet, pb(play({ hosts: 'nodes', steps: ['mount.tmpfs', 'agent.render-config'] })));

    expect(summary).toMatchObject({ ok: false, changed: 3, unchanged: 0, failed: 1, skipped: 0 });
    expect(summary.hosts['val-2']).toEqual({
      status: 'failed',
      error: {
        code: 'E_SSH_EXEC',
        message: expect.stringMatching(/^mount tmpfs at \/run\/krypton-secrets .*: `mount -t tmpfs -o .* krypton-secrets \/run\/krypton-secrets` exited with code 32: mount: \/run\/krypton-secrets: permission denied\.$/),
        hint: expect.any(String),
      },
    });
    for (const n of ['val-1', 'val-3', 'rpc-1']) {
      expect(summary.hosts[n]?.status).toBe('changed');
      expect(fleet.putsOf(n)).toHaveLength(2);
    }
    // val-2 stopped at its failed step: nothing of the next step ran there
    expect(fleet.putsOf('val-2')).toEqual([]);
    expect(events.some((e) => e.type === 'step-start' && e.host === 'val-2' && e.task === 'agent.render-config')).toBe(false);
    const failedStep = stepsOf(events, 'val-2').find((s) => s.status === 'failed');
    expect(failedStep).toMatchObject({ task: 'mount.tmpfs', error: { code: 'E_SSH_EXEC', host: 'val-2', task: 'mount.tmpfs' } });
    expect(hostDone(events).map((e) => [e.host, e.status]).sort()).toEqual([
      ['rpc-1', 'changed'],
      ['val-1', 'changed'],
      ['val-2', 'failed'],
      ['val-3', 'changed'],
    ]);
    expect(events.at(-1)).toEqual({ type: 'summary', summary });
  });

  it('a host that cannot be reached fails with its connect error; the others go on', async () => {
    const fleet = legacyFleet();
    fleet.unreachable.add('rpc-1');
    const { summary } = await run(fleet, pb(play({ hosts: 'nodes', steps: ['mount.tmpfs'] })));
    expect(summary).toMatchObject({ failed: 1, changed: 3 });
    expect(summary.hosts['rpc-1']).toMatchObject({ status: 'failed', error: { code: 'E_SSH_CONNECT' } });
    expect(fleet.execsOf('rpc-1')).toEqual([]);
  });

  it('a refusal stops only that host, before anything is changed there', async () => {
    const fleet = legacyFleet();
    const v2 = fleet.host('val-2');
    v2.dirs.add('/run/krypton-secrets');
    v2.mounts.set('/run/krypton-secrets', { fsType: 'ext4', mode: '755', noswap: false });
    const { summary, events } = await run(fleet, pb(play({ hosts: 'nodes', steps: ['mount.tmpfs', 'agent.render-config'] })));

    expect(summary).toMatchObject({ ok: false, failed: 1, changed: 3 });
    expect(summary.hosts['val-2']).toMatchObject({ status: 'failed', error: { code: 'E_PLAN_CONFLICT', message: '/run/krypton-secrets is a ext4 mount, not tmpfs' } });
    // only the one fact-gathering exec ran on val-2; no put
    expect(fleet.execsOf('val-2').map((e) => isFactExec(e.argv))).toEqual([true]);
    expect(fleet.putsOf('val-2')).toEqual([]);
    expect(events.filter((e) => e.type === 'step-start' && e.host === 'val-2').map((e) => (e as { task: string }).task)).toEqual(['mount.tmpfs']);
    for (const n of ['val-1', 'val-3', 'rpc-1']) expect(fleet.putsOf(n)).toHaveLength(2);
  });

  it('serial: 1 halts the later waves after a failure (skipped, E_HALTED); nothing runs on them', async () => {
    const fleet = legacyFleet();
    fleet.host('val-1').failExec = (argv) => (argv[0] === 'mkdir' ? { code: 1, stdout: '', stderr: 'mkdir: read-only file system' } : undefined);
    const { summary, events } = await run(fleet, pb(play({ hosts: 'validators', serial: [1], steps: ['mount.tmpfs'] })));

    expect(summary).toMatchObject({ ok: false, changed: 0, unchanged: 0, failed: 1, skipped: 2 });
    expect(summary.hosts['val-2']?.status).toBe('skipped');
    expect(summary.hosts['val-3']?.status).toBe('skipped');
    // apply connects to every host of the run first, to take its run lock before any step; the halted ones then run nothing.
    expect([...new Set(fleet.connects)].sort()).toEqual(['val-1', 'val-2', 'val-3']);
    expect(fleet.execsOf('val-2')).toEqual([]);
    expect(fleet.execsOf('val-3')).toEqual([]);
    const skipped = hostDone(events).filter((e) => e.status === 'skipped');
    expect(skipped.map((e) => e.host)).toEqual(['val-2', 'val-3']);
    for (const e of skipped) expect(e.error?.code).toBe('E_HALTED');
    expect(events.filter((e) => e.type === 'wave-start')).toHaveLength(1);
  });

  it('a failure in the last wave halts nothing', async () => {
    const fleet = legacyFleet();
    fleet.host('val-3').failExec = (argv) => (argv[0] === 'mkdir' ? { code: 1, stdout: '', stderr: 'no' } : undefined);
    const { summary, events } = await run(fleet, pb(play({ hosts: 'validators', serial: [1, 2], steps: ['mount.tmpfs'] })));
    expect(summary).toMatchObject({ failed: 1, changed: 2, skipped: 0 });
    expect(events.filter((e) => e.type === 'wave-start').map((e) => (e as { hosts: string[] }).hosts)).toEqual([['val-1'], ['val-2', 'val-3']]);
  });

  it('a host that failed in one play is not run in the next', async () => {
    const fleet = legacyFleet();
    fleet.host('val-2').failExec = (argv) => (argv[0] === 'mkdir' ? { code: 1, stdout: '', stderr: 'no' } : undefined);
    const { summary, events } = await run(fleet, pb(play({ hosts: 'nodes', steps: ['mount.tmpfs'] }), play({ name: 'second', hosts: 'nodes', steps: ['agent.render-config'] })));
    expect(summary.hosts['val-2']?.status).toBe('failed');
    expect(events.find((e) => e.type === 'play-start' && e.play === 'second')).toMatchObject({ hosts: ['val-1', 'val-3', 'rpc-1'] });
    expect(fleet.putsOf('val-2')).toEqual([]);
  });
});

describe('runPlaybook: the validator budget', () => {
  /** Nodes provisioned on tmpfs with the current JWT, but el/cl still running on an older key. */
  async function staleElFleet(): Promise<FakeFleet> {
    const fleet = legacyFleet();
    const inv = fleet.inventory;
    const hex = new Secret('0031fa90a884717ceee535c1cbae9f0bc4542a8cb58eb21d8abcc06978f0ff2e');
    fleet.store.seed(refFor(inv, 'engine-jwt', 'val-1'), hex);
    for (const n of inv.nodes) {
      const h = fleet.host(n.name);
      h.mountTmpfs();
      h.writeFile(JWT_FILE, hex, 0o600);
      h.writeFile(n.envFile, `JWT_PATH=${JWT_FILE}\n`, 0o644);
      h.el = { key: Buffer.from(OLD_HEX, 'hex'), up: true };
      h.restartDownMs = 150;
    }
    return fleet;
  }

  it('with max_validators_down: 1, two validators are never down at once', async () => {
    const fleet = await staleElFleet();
    const { summary } = await run(fleet, pb(play({ hosts: 'nodes', maxValidatorsDown: 1, steps: ['node.restart-lockstep', 'engine.verify-auth'] })));
    expect(summary).toMatchObject({ ok: true, changed: 4, failed: 0 });
    const v = fleet.windows.filter((w) => w.role === 'validator');
    expect(v).toHaveLength(3);
    expect(v.every((w) => w.exit !== undefined && w.exit > w.enter)).toBe(true);
    expect(overlaps(fleet.windows, 'validator')).toEqual([]);
    // the rpc node is not held by the validator budget
    expect(fleet.windows.filter((w) => w.role === 'rpc')).toHaveLength(1);
  });

  it('control: with max_validators_down: 3 the same run does overlap (so the check above can fail)', async () => {
    const fleet = await staleElFleet();
    const { summary } = await run(fleet, pb(play({ hosts: 'validators', maxValidatorsDown: 3, steps: ['node.restart-lockstep'] })));
    expect(summary).toMatchObject({ ok: true, changed: 3 });
    expect(overlaps(fleet.windows, 'validator').length).toBeGreaterThan(0);
  });
});

describe('runPlaybook: plan mode', () => {
  /** Half-provisioned: tmpfs mounted and the JWT seeded; el/cl already run on it through the legacy file. */
  function halfProvisioned(): { fleet: FakeFleet; hex: Secret } {
    const fleet = legacyFleet();
    const inv = fleet.inventory;
    const hex = new Secret('0031fa90a884717ceee535c1cbae9f0bc4542a8cb58eb21d8abcc06978f0ff2e');
    fleet.store.seed(refFor(inv, 'engine-jwt', 'val-1'), hex);
    for (const n of inv.nodes) {
      const h = fleet.host(n.name);
      h.mountTmpfs();
      h.writeFile(n.legacyJwtPath, hex, 0o644);
      h.startEl();
    }
    return { fleet, hex };
  }

  it('applies nothing: only the one fact-gathering exec per step, no put, no backend write', async () => {
    const { fleet, hex } = halfProvisioned();
    const playbook = await loadPlaybook(join(ROOT, 'playbooks', 'provision.yml'));
    const snapshot = (name: string) => {
      const h = fleet.host(name);
      return JSON.stringify({ files: [...h.files.entries()].map(([p, f]) => [p, f.content.toString('hex'), f.mode]), mounts: [...h.mounts], agent: h.agent, el: h.el.key?.toString('hex') });
    };
    const before = new Map(fleet.inventory.nodes.map((n) => [n.name, snapshot(n.name)]));
    const { summary, events } = await run(fleet, playbook, 'plan');

    expect(summary).toMatchObject({ ok: true, failed: 0, changed: 4 });
    expect(fleet.ops.filter((o) => o.kind === 'put')).toEqual([]);
    expect(fleet.ops.filter((o) => o.kind === 'exec' && !isFactExec(o.argv))).toEqual([]);
    expect(fleet.store.writes()).toEqual([]);
    for (const n of fleet.inventory.nodes) {
      expect(snapshot(n.name), `${n.name} unchanged`).toBe(before.get(n.name));
      expectOneGatherPerStep(fleet.execsOf(n.name), remoteFactKeys(playbook.plays[0]!, n, fleet.inventory));
      // what would change is reported per step, with action descriptions
      const steps = stepsOf(events, n.name);
      expect(steps.find((s) => s.task === 'vault.deliver-secret-id')).toMatchObject({ status: 'changed', actions: [expect.stringContaining('deliver role_id and a secret_id')] });
      expect(steps.find((s) => s.task === 'secret.seed')).toMatchObject({ status: 'ok' });
      // jwt.hex is not on the tmpfs yet (the agent renders it in apply): the restart step depends on the steps above
      expect(steps.find((s) => s.task === 'node.restart-lockstep')).toMatchObject({ status: 'skipped', reason: expect.stringMatching(/^depends on the changes planned above \(today: \/run\/krypton-secrets\/jwt.hex is missing/) });
    }
    expectNoSecretLeak(fleet, events, [hex, OLD_HEX]);
  });

  // On a fresh fleet the steps after mount.tmpfs / vault.seed-engine-jwt plan against facts the earlier
  // (unapplied) steps would change; their refusals must show as "depends on the changes planned above",
  // not as failed nodes.
  it('plan on a fresh fleet reports what would change instead of failing every node', async () => {
    const fleet = legacyFleet();
    const playbook = await loadPlaybook(join(ROOT, 'playbooks', 'provision.yml'));
    const { summary } = await run(fleet, playbook, 'plan');
    expect(summary.failed).toBe(0);
  });

  it('plan migrate-plaintext on a legacy fleet: the Engine API refusing the stored JWT (el still on the plaintext one) is "depends on the changes planned above", not a failed node', async () => {
    const fleet = legacyFleet();
    fleet.store.seed(refFor(fleet.inventory, 'engine-jwt', 'val-1'), new Secret('ab'.repeat(32)));
    const playbook = await loadPlaybook(join(ROOT, 'playbooks', 'migrate-plaintext.yml'));
    const { summary, events } = await run(fleet, playbook, 'plan');
    expect(summary.failed).toBe(0);
    for (const n of fleet.inventory.nodes) {
      const verify = stepsOf(events, n.name).find((s) => s.task === 'engine.verify-auth');
      if (verify) expect(verify.status, n.name).not.toBe('failed');
    }
  });
});

// ------------------------------------------------------------------------------------------- env-secrets

const ENV_INVENTORY = `network: "473374"
vault:
  address: https://vault.fake.invalid:8200
defaults:
  env:
    services: [cl, mev-boost]
nodes:
  val-1: { role: validator, address: 10.0.0.1 }
  val-2:
    role: validator
    address: 10.0.0.2
    env: { per_node: true, path: /run/krypton-secrets/el.env, services: [el], owner: krypton, group: krypton, mode: "0640" }
  rpc-1: { role: rpc, address: 10.0.0.21, env: false }
`;

describe('runPlaybook: provision.yml with node env-secrets', () => {
  /** A legacy fleet whose store already holds the network's env-secrets and val-2's own. */
  function envFleet(): { fleet: FakeFleet; inv: Inventory; network: Secret; own: Secret } {
    const inv = parseInventory('env-inventory.yml', ENV_INVENTORY);
    const fleet = legacyFleet(inv);
    const network = fleet.store.seedEnv(refFor(inv, 'node-env', 'val-1'), { API_KEY: 'k-0123456789abcdef', RPC_PASSWORD: "it's-a-long-secret" });
    const own = fleet.store.seedEnv(refFor(inv, 'node-env', 'val-2'), { EL_EXTRA: 'only-for-val-2-0001' });
    return { fleet, inv, network, own };
  }
  const restartsOf = (fleet: FakeFleet, host: string) => Object.fromEntries([...fleet.host(host).services].map(([s, v]) => [s, v.restarts]));

  it('renders each node\'s env file on the tmpfs with its mode and owner, restarts its readers with el/cl once, and a second apply changes nothing', async () => {
    const { fleet, network, own } = envFleet();
    const playbook = await loadPlaybook(join(ROOT, 'playbooks', 'provision.yml'));
    const first = await run(fleet, playbook);
    expect(first.summary).toMatchObject({ ok: true, changed: 3, failed: 0 });

    const v1 = fleet.host('val-1');
    expect(v1.files.get('/run/krypton-secrets/node.env')).toMatchObject({ mode: 0o600, owner: 'root' });
    expect(v1.files.get('/run/krypton-secrets/node.env')!.content.equals(network.reveal())).toBe(true);
    expect(v1.mounts.get('/run/krypton-secrets')?.fsType).toBe('tmpfs');
    const v2 = fleet.host('val-2');
    expect(v2.files.get('/run/krypton-secrets/el.env')).toMatchObject({ mode: 0o640, owner: 'krypton', group: 'krypton' });
    expect(v2.files.get('/run/krypton-secrets/el.env')!.content.equals(own.reveal())).toBe(true);
    expect(v2.files.has('/run/krypton-secrets/node.env')).toBe(false);
    expect([...fleet.host('rpc-1').files.keys()].filter((p) => p.endsWith('.env') && p.startsWith('/run/'))).toEqual([]);
    // One restart command per node (JWT_PATH changed): el, cl and the env readers together.
    expect(restartsOf(fleet, 'val-1')).toEqual({ el: 1, cl: 1, 'mev-boost': 1 });
    expect(restartsOf(fleet, 'val-2')).toEqual({ el: 1, cl: 1 });
    expect(restartsOf(fleet, 'rpc-1')).toEqual({ el: 1, cl: 1 });
    expect(v1.services.get('mev-boost')!.read).toEqual({ '/run/krypton-secrets/node.env': network.fingerprint() });
    // the policy reads the env path it needs and nothing else
    expect(fleet.store.vault.policies.get('krypton-node-473374-val-2')).toContain('secret/data/krypton/473374/nodes/val-2/env');
    expect(fleet.store.vault.policies.get('krypton-node-473374-val-2')).not.toContain('"secret/data/krypton/473374/env"');
    expect(fleet.store.vault.policies.get('krypton-node-473374-rpc-1')).not.toContain('/env');

    const second = await run(fleet, playbook);
    expect(second.summary).toMatchObject({ ok: true, changed: 0, unchanged: 3 });
    expectNoSecretLeak(fleet, [...first.events, ...second.events], [OLD_HEX]);
  });

  it('one env value changed in the store: the next apply re-renders that file and restarts only the services that read it', async () => {
    const { fleet, inv } = envFleet();
    const playbook = await loadPlaybook(join(ROOT, 'playbooks', 'provision.yml'));
    expect((await run(fleet, playbook)).summary.ok).toBe(true);
    const before = { v1: restartsOf(fleet, 'val-1'), v2: restartsOf(fleet, 'val-2') };
    const el = fleet.host('val-1').el.key?.toString('hex');

    const changed = fleet.store.seedEnv(refFor(inv, 'node-env', 'val-1'), { API_KEY: 'k-fedcba9876543210', RPC_PASSWORD: "it's-a-long-secret" });
    const third = await run(fleet, playbook);
    expect(third.summary).toMatchObject({ ok: true, changed: 1, unchanged: 2 });
    expect(third.summary.hosts['val-1']?.status).toBe('changed');
    const v1 = fleet.host('val-1');
    expect(v1.files.get('/run/krypton-secrets/node.env')!.content.equals(changed.reveal())).toBe(true);
    // cl and mev-boost read node.env: restarted once more; el did not restart (and still runs on the same JWT)
    expect(restartsOf(fleet, 'val-1')).toEqual({ el: before.v1['el'], cl: before.v1['cl']! + 1, 'mev-boost': before.v1['mev-boost']! + 1 });
    expect(v1.el.key?.toString('hex')).toBe(el);
    expect(restartsOf(fleet, 'val-2')).toEqual(before.v2);
    const lockstep = stepsOf(third.events, 'val-1').find((s) => s.task === 'node.restart-lockstep');
    expect(lockstep?.actions).toEqual([expect.stringMatching(/^restart cl and mev-boost together \(`docker compose restart cl mev-boost`\): node\.env changed since cl and mev-boost last started$/)]);

    const fourth = await run(fleet, playbook);
    expect(fourth.summary).toMatchObject({ ok: true, changed: 0 });
    expectNoSecretLeak(fleet, [...third.events, ...fourth.events]);
  });
});

// ------------------------------------------------------------------------------------------- host-fetch

describe('runPlaybook: a host-side fetch makes later steps gather fresh facts (issue 8, defect 1)', () => {
  // Defect 1: a step whose only action was the host-side fetch did not count as changing the host, so later
  // steps planned on facts gathered before it: after a failed cosigner decrypt, re-running apply made
  // horcrux.start refuse ("missing from the key dir") although the fetch had just put the files there.
  const COSIGNER = `network: "473374"
backend: kms
kms: { key_id: alias/krypton-engine-jwt, region: eu-west-1 }
horcrux: { threshold: 1 }
cosigners:
  cosigner-1: { address: 10.0.1.1, shard_id: 1, key_dir: /run/horcrux-keys }
`;

  it('re-running apply after a failed fetch: the fetch puts both key files in place and horcrux.start starts Horcrux on them', async () => {
    const inv = parseInventory('cosigner-inventory.yml', COSIGNER);
    const fleet = new FakeFleet(inv, { delivery: 'host-fetch' });
    fleets.push(fleet);
    const c = fleet.host('cosigner-1');
    c.mountTmpfs('/run/krypton-secrets');
    c.mountTmpfs('/run/horcrux-keys');
    // Real key files (the run's preflight checks them as import-horcrux does).
    const keys = generateHorcruxKeys({ shards: 2, threshold: 2, chainId: '473374' }).cosigners[0]!;
    const ecies = new Secret(keys.ecies);
    const shard = new Secret(keys.shard);
    fleet.store.seed(refFor(inv, 'horcrux-ecies', 'cosigner-1'), ecies);
    fleet.store.seed(refFor(inv, 'horcrux-shard', 'cosigner-1'), shard);
    const pbk = pb(play({ hosts: 'cosigners', steps: ['secret.fetch-on-host', 'horcrux.start'] }));

    c.failFetches = 1;
    const failed = await run(fleet, pbk);
    expect(failed.summary.hosts['cosigner-1']).toMatchObject({ status: 'failed', error: { code: 'E_KMS' } });
    expect(stepsOf(failed.events, 'cosigner-1').find((s) => s.status === 'failed')).toMatchObject({ task: 'secret.fetch-on-host' });
    expect(c.horcrux.running).toBe(false);

    const again = await run(fleet, pbk);
    expect(again.summary).toMatchObject({ ok: true, changed: 1, failed: 0 });
    expect(c.files.get('/run/horcrux-keys/ecies_keys.json')?.content.equals(ecies.reveal())).toBe(true);
    expect(c.files.get('/run/horcrux-keys/473374_shard.json')?.mode).toBe(0o600);
    expect(c.horcrux).toEqual({ running: true, starts: 1 });
    // horcrux.start planned on facts gathered after the fetch: a fact-gathering exec follows the fetches
    const execs = fleet.execsOf('cosigner-1').slice(fleet.execsOf('cosigner-1').findLastIndex((e) => e.argv[0] === 'krypton-fake-fetch'));
    expect(execs.slice(1).some((e) => isFactExec(e.argv))).toBe(true);
    expect(c.files.get('/run/krypton-secrets/loaded')?.content.toString()).toBe(`horcrux ecies ${ecies.fingerprint()}\nhorcrux shard ${shard.fingerprint()}\n`);

    const third = await run(fleet, pbk);
    expect(third.summary).toMatchObject({ ok: true, changed: 0 });
    expectNoSecretLeak(fleet, [...failed.events, ...again.events, ...third.events]);
  });
});

describe('runPlaybook: a node\'s JWT change is a unit (issue 10)', () => {
  it('Ctrl-C after the canary\'s agent rendered a new JWT: the canary still restarts el and cl on it; no later step or wave starts', async () => {
    const fleet = legacyFleet();
    const provision = await loadPlaybook(join(ROOT, 'playbooks', 'provision.yml'));
    expect((await run(fleet, provision)).summary.ok).toBe(true);
    const rotate = await loadPlaybook(join(ROOT, 'playbooks', 'rotate-jwt.yml'));
    const interrupt = new AbortController();
    const events: RunEvent[] = [];
    const { summary } = await run(fleet, rotate, 'apply', {
      signal: interrupt.signal,
      sink: (e) => {
        events.push(e);
        if (e.type === 'step' && e.host === 'val-1' && e.task === 'agent.start') interrupt.abort();
      },
    });
    const inv = fleet.inventory;
    const jwt = fleet.store.peek(refFor(inv, 'engine-jwt', 'val-1'))!;
    const canary = fleet.host('val-1');
    expect(canary.files.get(JWT_FILE)?.content.toString()).toBe(jwt.revealText());
    expect(canary.el.key?.toString('hex'), 'el/cl restarted on the new file').toBe(jwt.revealText());
    expect(stepsOf(events, 'val-1').map((s) => `${s.task} ${s.status}`)).toContain('node.restart-lockstep changed');
    expect(stepsOf(events, 'val-1').map((s) => s.task)).not.toContain('engine.verify-auth'); // the unit is closed: the interrupt holds
    expect(summary.hosts['val-1']).toMatchObject({ status: 'skipped', error: { code: 'E_HALTED' } });
    for (const n of ['val-2', 'val-3', 'rpc-1']) {
      expect(stepsOf(events, n), n).toEqual([]);
      expect(summary.hosts[n], n).toMatchObject({ status: 'skipped', error: { code: 'E_HALTED' } });
      expect(fleet.host(n).el.key?.toString('hex'), `${n} untouched`).not.toBe(jwt.revealText());
    }
  });
});
