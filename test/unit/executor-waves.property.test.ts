/**
 * A property-based test (fast-check) of the wave scheduler, driving the REAL runPlaybook and the real tasks of
 * playbooks/rotate-jwt.yml over the fake fleet (test/unit/fake-fleet.ts). Over random fleets (validators, RPC
 * nodes, cosigners), random `serial` specs in every form the playbook loader takes (a count, a percentage, a
 * list of both; none), random `max_validators_down` / `max_rpc_down`, host orders, concurrency, and injected
 * failures (an exec of a given step on a given host exits non-zero — a fact gathering, an action, or a settle
 * re-check after a restart — or the host cannot be reached), it asserts:
 *
 * 1. never more validators down at once than `max_validators_down` (RPC nodes: `max_rpc_down`). A node is down
 *    from the first action of its disruptive step (`disruptive: true`: node.restart-lockstep) until that step
 *    converged — the last host I/O of the step; a step that failed after its first action leaves the node down
 *    until the end of the run;
 * 2. a run is halted behind a failure: after a wave with a failed host no later wave starts, nothing runs on its
 *    hosts, and they are reported `skipped` with E_HALTED;
 * 3. `--resume` with the failures removed completes the rotation: every host converged, every node's el/cl on
 *    the store's current JWT, and the resumed run wrote no backend version.
 *
 * fast-check prints the seed and the shrunk counterexample on failure (re-run with `{ seed, path }`).
 */
import { generateHorcruxKeys } from '../sandbox/horcrux-keys.ts';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import type { Duplex } from 'node:stream';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import type { RunEvent, RunSummary } from '../../src/core/events.ts';
import { Secret } from '../../src/core/secret.ts';
import type { ExecOptions, ExecResult, PutOptions, Transport } from '../../src/core/transport.ts';
import { KryptonError } from '../../src/core/errors.ts';
import { runPlaybook } from '../../src/executor/run.ts';
import { Budget } from '../../src/executor/semaphore.ts';
import { computeWaves } from '../../src/executor/waves.ts';
import { parseInventory } from '../../src/inventory/loader.ts';
import type { Host } from '../../src/model/inventory.ts';
import { JWT_FILE, refFor, refKey } from '../../src/model/layout.ts';
import { loadPlaybook, type Playbook } from '../../src/playbook/loader.ts';
import { FakeFleet } from './fake-fleet.ts';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const OLD_HEX = '2d63f2a04490150d356332e9f48d9d9f933198716e5a0c3d40839777e0147b56';
const DISRUPTIVE = 'node.restart-lockstep';
const KEY_DIR = '/run/horcrux-keys';
/** Generated once (key generation is the slow part): real ECIES and shard files for cosigner i (up to 3). */
const HORCRUX = generateHorcruxKeys({ shards: 3, threshold: 2, chainId: '473374' }).cosigners;
const horcruxKeys = (i: number) => HORCRUX[i]!;

const tmp = mkdtempSync(join(tmpdir(), 'krypton-waves-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

// ------------------------------------------------------------------------------------------- the case

type SerialSpec = { form: 'none' } | { form: 'scalar'; v: number | string } | { form: 'list'; v: (number | string)[] };

interface Failure {
  host: number;
  kind: 'exec' | 'connect';
  /** The step (a task id of rotate-jwt.yml) whose k-th exec on that host exits non-zero. */
  task: string;
  k: number;
}

interface Case {
  validators: number;
  rpc: number;
  cosigners: number;
  hosts: { form: 'nodes' } | { form: 'all' } | { form: 'list'; order: number[] };
  serial: SerialSpec;
  maxValidatorsDown: number;
  maxRpcDown: number | undefined;
  concurrency: number;
  failures: Failure[];
}

const ROTATE_TASKS = [
  'jwt.rotate',
  'mount.tmpfs',
  'agent.render-config',
  'vault.deliver-secret-id',
  'agent.start',
  'secret.put-host-copy',
  'secret.fetch-on-host',
  'node.set-jwt-path',
  'node.restart-lockstep',
  'engine.verify-auth',
];

// Small waves are where the budgets and the halting matter: most entries are small, some are large.
const serialEntry = fc.oneof(
  { arbitrary: fc.integer({ min: 1, max: 3 }), weight: 3 },
  { arbitrary: fc.integer({ min: 1, max: 60 }).map((p) => `${p}%`), weight: 2 },
  { arbitrary: fc.integer({ min: 4, max: 9 }), weight: 1 },
  { arbitrary: fc.integer({ min: 61, max: 100 }).map((p) => `${p}%`), weight: 1 },
);
const caseArb: fc.Arbitrary<Case> = fc
  .record({
    validators: fc.integer({ min: 1, max: 6 }),
    rpc: fc.integer({ min: 0, max: 2 }),
    cosigners: fc.integer({ min: 0, max: 2 }),
    hostsForm: fc.constantFrom('nodes' as const, 'all' as const, 'list' as const),
    shuffle: fc.array(fc.nat(), { minLength: 9, maxLength: 9 }),
    serial: fc.oneof(
      { arbitrary: fc.constant<SerialSpec>({ form: 'none' }), weight: 1 },
      { arbitrary: serialEntry.map((v): SerialSpec => ({ form: 'scalar', v })), weight: 2 },
      { arbitrary: fc.array(serialEntry, { minLength: 1, maxLength: 4 }).map((v): SerialSpec => ({ form: 'list', v })), weight: 3 },
    ),
    maxValidatorsDown: fc.integer({ min: 1, max: 3 }),
    maxRpcDown: fc.option(fc.integer({ min: 1, max: 2 }), { nil: undefined }),
    concurrency: fc.integer({ min: 1, max: 6 }),
    failures: fc.oneof(
      { arbitrary: fc.constant<Failure[]>([]), weight: 1 },
      {
        arbitrary: fc.array(
          fc.record({
            host: fc.nat(),
            kind: fc.constantFrom('exec' as const, 'exec' as const, 'exec' as const, 'connect' as const),
            // the disruptive step weighs more: a failure there (after the restart, or of the restart) tests the budget
            task: fc.constantFrom(...ROTATE_TASKS, DISRUPTIVE, DISRUPTIVE, DISRUPTIVE),
            k: fc.constantFrom<number>(1, 2, 2, 3),
          }),
          { minLength: 1, maxLength: 3 },
        ),
        weight: 4,
      },
    ),
  })
  .map((r) => {
    const n = r.validators + r.rpc + r.cosigners;
    // A permutation of every host (a random key per host, stable by index).
    const order = [...Array(n).keys()].sort((a, b) => (r.shuffle[a]! - r.shuffle[b]!) || a - b);
    const hosts: Case['hosts'] = r.hostsForm === 'list' ? { form: 'list', order } : r.hostsForm === 'all' ? { form: 'all' } : { form: 'nodes' };
    return {
      validators: r.validators,
      rpc: r.rpc,
      cosigners: r.cosigners,
      hosts,
      serial: r.serial,
      maxValidatorsDown: r.maxValidatorsDown,
      maxRpcDown: r.maxRpcDown,
      concurrency: r.concurrency,
      failures: r.failures.map((f) => ({ ...f, host: f.host % n })),
    };
  });

function names(c: Case): { validators: string[]; rpc: string[]; cosigners: string[]; all: string[] } {
  const validators = Array.from({ length: c.validators }, (_, i) => `val-${i + 1}`);
  const rpc = Array.from({ length: c.rpc }, (_, i) => `rpc-${i + 1}`);
  const cosigners = Array.from({ length: c.cosigners }, (_, i) => `cosigner-${i + 1}`);
  return { validators, rpc, cosigners, all: [...validators, ...rpc, ...cosigners] };
}

function inventoryText(c: Case): string {
  const n = names(c);
  const lines = ['network: "473374"', 'vault:', '  address: https://vault.fake.invalid:8200', 'nodes:'];
  n.validators.forEach((v, i) => lines.push(`  ${v}: { role: validator, address: 10.0.0.${i + 1} }`));
  n.rpc.forEach((v, i) => lines.push(`  ${v}: { role: rpc, address: 10.0.0.${i + 21} }`));
  if (n.cosigners.length) {
    lines.push('cosigners:');
    n.cosigners.forEach((v, i) => lines.push(`  ${v}: { address: 10.0.1.${i + 1}, shard_id: ${i + 1}, key_dir: ${KEY_DIR} }`));
  }
  return `${lines.join('\n')}\n`;
}

/** The rotation playbook as YAML, `serial` in the form the case names, so the real loader reads it. */
function playbookText(c: Case): string {
  const all = names(c).all;
  const hosts = c.hosts.form === 'list' ? `[${c.hosts.order.map((i) => all[i]).join(', ')}]` : c.hosts.form;
  const q = (v: number | string) => (typeof v === 'number' ? String(v) : `"${v}"`);
  const serial = c.serial.form === 'none' ? [] : [`  serial: ${c.serial.form === 'scalar' ? q(c.serial.v) : `[${c.serial.v.map(q).join(', ')}]`}`];
  return [
    '- name: Rotate (property)',
    `  hosts: ${hosts}`,
    ...serial,
    `  max_validators_down: ${c.maxValidatorsDown}`,
    ...(c.maxRpcDown !== undefined ? [`  max_rpc_down: ${c.maxRpcDown}`] : []),
    '  tasks:',
    ...ROTATE_TASKS.map((t) => `    - ${t}`),
    '',
  ].join('\n');
}

// ------------------------------------------------------------------------------------------- recording

interface Recorded {
  events: { t: number; e: RunEvent }[];
  /** Per host: when each host operation (exec, put, forwarded stream traffic) completed. */
  ioDone: Map<string, number[]>;
}

/** A transport that notes when each of the host's operations completed (the fake notes when they started). */
class TimedTransport implements Transport {
  readonly name: string;
  constructor(private readonly inner: Transport, private readonly done: (t: number) => void, private readonly now: () => number) {
    this.name = inner.name;
  }
  async exec(argv: string[], opts?: ExecOptions): Promise<ExecResult> {
    try {
      return await this.inner.exec(argv, opts);
    } finally {
      this.done(this.now());
    }
  }
  async put(path: string, content: Secret | string | Buffer, opts: PutOptions): Promise<void> {
    try {
      await this.inner.put(path, content, opts);
    } finally {
      this.done(this.now());
    }
  }
  async forward(host: string, port: number): Promise<Duplex> {
    const s = await this.inner.forward(host, port);
    const note = () => this.done(this.now());
    s.on('data', note).on('end', note).on('close', note);
    note();
    return s;
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

// A facts exec (fenced snippets), or a clock reading of its own (the Engine API probe after a 401): neither acts.
const isFactExec = (argv: string[]) => argv[0] === 'sh' && argv[1] === '-c' && (/^echo '@@\S+ \S+'$/m.test(argv[2] ?? '') || /^printf '@@\S+-clock %s\\n'/.test(argv[2] ?? ''));

async function runOnce(fleet: FakeFleet, playbook: Playbook, o: { concurrency: number; resume?: boolean; inject?: (host: string, task: string | undefined) => void }): Promise<{ summary: RunSummary } & Recorded> {
  const rec: Recorded = { events: [], ioDone: new Map() };
  const summary = await runPlaybook({
    inventory: fleet.inventory,
    playbook,
    mode: 'apply',
    concurrency: o.concurrency,
    resume: o.resume ?? false,
    store: fleet.store,
    sink: (e) => {
      rec.events.push({ t: fleet.now(), e });
      if (e.type === 'step-start') o.inject?.(e.host, e.task);
    },
    connect: async (h: Host) => {
      const t = await fleet.connect(h);
      return new TimedTransport(t, (at) => rec.ioDone.set(h.name, [...(rec.ioDone.get(h.name) ?? []), at]), () => fleet.now());
    },
  });
  return { summary, ...rec };
}

/**
 * Per node of `role`: the interval it was down in this run's disruptive step (see the file's doc), from the
 * fake host's records (execs with their start time) and the run's events.
 */
function downIntervals(fleet: FakeFleet, r: Recorded, opsFrom: number, hostsOfRole: string[]): { host: string; from: number; to: number }[] {
  const out: { host: string; from: number; to: number }[] = [];
  const ops = fleet.ops.slice(opsFrom);
  for (const host of hostsOfRole) {
    const start = r.events.find(({ e }) => e.type === 'step-start' && e.host === host && e.task === DISRUPTIVE);
    if (!start) continue;
    const end = r.events.find(({ e, t }) => e.type === 'step' && e.host === host && e.task === DISRUPTIVE && t >= start.t);
    const first = ops.find((o) => o.host === host && o.t >= start.t && o.kind === 'exec' && !isFactExec(o.argv) && (!end || o.t <= end.t));
    if (!first) continue; // planned noChange or failed before any action: never down
    const status = end?.e.type === 'step' ? end.e.status : undefined;
    const to = status === 'changed' ? Math.max(...(r.ioDone.get(host) ?? []).filter((t) => t <= end!.t)) : Infinity;
    out.push({ host, from: first.t, to });
  }
  return out;
}

/** The most intervals that overlap at any instant (an interval is [from, to)). */
function maxOverlap(iv: { from: number; to: number }[]): number {
  const pts = iv.flatMap((i) => [
    { t: i.from, d: 1 },
    { t: i.to, d: -1 },
  ]);
  pts.sort((a, b) => a.t - b.t || a.d - b.d);
  let cur = 0;
  let max = 0;
  for (const p of pts) max = Math.max(max, (cur += p.d));
  return max;
}

// ------------------------------------------------------------------------------------------- setup

/** A fleet as provision.yml (and, for cosigners, the agent part of cosigner-bringup.yml) left it, on v1 of the JWT. */
async function provisionedFleet(c: Case): Promise<FakeFleet> {
  const inv = parseInventory('property-inventory.yml', inventoryText(c));
  const fleet = new FakeFleet(inv);
  for (const n of inv.nodes) {
    const h = fleet.host(n.name);
    h.restartDownMs = 5;
    h.writeFile(n.legacyJwtPath, OLD_HEX, 0o644);
    h.writeFile(n.envFile, `COMPOSE_PROJECT_NAME=krypton\nJWT_PATH=${n.legacyJwtPath}\n`, 0o644);
    h.startEl();
  }
  for (const [i, co] of inv.cosigners.entries()) {
    fleet.host(co.name).mountTmpfs(KEY_DIR);
    // Real key files: the run's preflight checks them as import-horcrux does.
    const keys = horcruxKeys(i);
    fleet.store.seed(refFor(inv, 'horcrux-ecies', co.name), new Secret(keys.ecies));
    fleet.store.seed(refFor(inv, 'horcrux-shard', co.name), new Secret(keys.shard));
  }
  const provision = await loadPlaybook(join(ROOT, 'playbooks', 'provision.yml'));
  const setup: Playbook = { file: provision.file, plays: [...provision.plays] };
  if (inv.cosigners.length) {
    const bringup = await loadPlaybook(join(ROOT, 'playbooks', 'cosigner-bringup.yml'));
    const horcrux = (id: string) => id.startsWith('horcrux.');
    setup.plays.push(...bringup.plays.map((p) => ({ ...p, steps: p.steps.filter((s) => !horcrux(s.task.id)) })));
  }
  const r = await runOnce(fleet, setup, { concurrency: 16 });
  if (!r.summary.ok) throw new Error(`setup: provisioning the fake fleet failed: ${JSON.stringify(r.summary.hosts)}`);
  return fleet;
}

// ------------------------------------------------------------------------------------------- the property

let caseNo = 0;

async function checkCase(c: Case): Promise<void> {
  const fleet = await provisionedFleet(c);
  try {
    const n = names(c);
    const file = join(tmp, `rotate-${++caseNo}.yml`);
    writeFileSync(file, playbookText(c));
    const playbook = await loadPlaybook(file);
    const play = playbook.plays[0]!;
    const inv = fleet.inventory;
    const jwtRef = refFor(inv, 'engine-jwt', n.validators[0]!);
    const jwtVersions = () => fleet.store.kv.get(refKey(jwtRef))!.versions.length;
    const versionsBefore = jwtVersions();

    // --- the run with failures injected
    const byHost = new Map<string, Failure>();
    for (const f of c.failures) if (!byHost.has(n.all[f.host]!)) byHost.set(n.all[f.host]!, f);
    const triggered = new Set<string>();
    for (const [host, f] of byHost) {
      if (f.kind === 'connect') fleet.unreachable.add(host);
    }
    const stepOf = new Map<string, { task: string; execs: number }>();
    for (const [host, f] of byHost) {
      if (f.kind !== 'exec') continue;
      fleet.host(host).failExec = () => {
        const s = stepOf.get(host);
        if (!s || s.task !== f.task || ++s.execs !== f.k) return undefined;
        triggered.add(host);
        return { code: 1, stdout: '', stderr: `injected failure in ${f.task}` };
      };
    }
    const opsFrom = fleet.ops.length;
    const first = await runOnce(fleet, playbook, { concurrency: c.concurrency, inject: (host, task) => task !== undefined && stepOf.set(host, { task, execs: 0 }) });
    for (const h of fleet.unreachable) triggered.add(h);

    const inPlay = new Set((first.events.find(({ e }) => e.type === 'play-start')?.e as { hosts: string[] } | undefined)?.hosts ?? []);
    const done = new Map(first.events.flatMap(({ e }) => (e.type === 'host-done' ? [[e.host, e] as const] : [])));
    const failed = [...inPlay].filter((h) => first.summary.hosts[h]?.status === 'failed');
    // Only an injected failure fails a host (so every other outcome below is the scheduler's doing).
    for (const h of failed) expect(triggered.has(h), `${h} failed without an injected failure: ${JSON.stringify(first.summary.hosts[h])}`).toBe(true);

    // (1) the budgets hold
    const opsAfterFirst = fleet.ops.length;
    expect(maxOverlap(downIntervals(fleet, first, opsFrom, n.validators)), 'validators down at once').toBeLessThanOrEqual(c.maxValidatorsDown);
    if (c.maxRpcDown !== undefined) expect(maxOverlap(downIntervals(fleet, first, opsFrom, n.rpc)), 'RPC nodes down at once').toBeLessThanOrEqual(c.maxRpcDown);
    // every restart the fake hosts saw lies inside a down interval the check above counted
    const counted = downIntervals(fleet, first, opsFrom, [...n.validators, ...n.rpc]);
    for (const w of fleet.windows.filter((x) => x.enter >= (first.events[0]?.t ?? 0))) {
      expect(counted.some((iv) => iv.host === w.host && iv.from <= w.enter), `restart of ${w.host} not counted as down`).toBe(true);
    }

    // (2) halted behind a failure
    const waves = first.events.flatMap(({ e }) => (e.type === 'wave-start' ? [e.hosts] : []));
    const expectedWaves = computeWaves([...inPlay], play.serial);
    const firstFailedWave = expectedWaves.findIndex((w) => w.some((h) => failed.includes(h)));
    const startedWaves = firstFailedWave === -1 ? expectedWaves.length : firstFailedWave + 1;
    expect(waves, 'waves started: up to and including the first with a failed host').toEqual(expectedWaves.slice(0, startedWaves));
    for (const h of expectedWaves.slice(startedWaves).flat()) {
      expect(done.get(h), `${h} in a halted wave`).toMatchObject({ status: 'skipped', error: { code: 'E_HALTED' } });
      expect(first.events.some(({ e }) => e.type === 'step-start' && e.host === h), `a step ran on ${h} behind a failure`).toBe(false);
      expect(fleet.ops.slice(opsFrom, opsAfterFirst).filter((o) => o.host === h), `host operations on ${h} behind a failure`).toEqual([]);
    }
    // hosts of the started waves ran to their end or failed; a skip there is the validator/RPC budget halting
    for (const h of expectedWaves.slice(0, startedWaves).flat()) {
      const st = done.get(h);
      if (st?.status === 'skipped') expect(st.error?.code, `${h} skipped in a started wave`).toBe('E_HALTED');
      else expect(st?.status, `${h} in a started wave`).toMatch(/^(changed|unchanged|failed)$/);
    }
    if (failed.length === 0) expect(first.summary, 'no failure: the rotation completes').toMatchObject({ ok: true, failed: 0, skipped: 0 });
    const versionsMid = jwtVersions();
    expect(versionsMid - versionsBefore, 'at most one new version per rotation').toBeLessThanOrEqual(1);

    // (3) --resume, the failures removed, completes it
    fleet.unreachable.clear();
    for (const h of n.all) fleet.host(h).failExec = undefined;
    const writesBefore = fleet.store.writes().filter((w) => w.method === 'mint' || w.method === 'write' || w.method === 'restore').length;
    const resumeFrom = fleet.ops.length;
    const resumed = await runOnce(fleet, playbook, { concurrency: c.concurrency, resume: true });
    expect(resumed.summary, `--resume: ${JSON.stringify(resumed.summary.hosts)}`).toMatchObject({ ok: true, failed: 0, skipped: 0 });
    expect(fleet.store.writes().filter((w) => w.method === 'mint' || w.method === 'write' || w.method === 'restore').length, '--resume wrote a backend version').toBe(writesBefore);
    expect(jwtVersions()).toBe(versionsMid);
    expect(maxOverlap(downIntervals(fleet, resumed, resumeFrom, n.validators)), 'validators down at once (--resume)').toBeLessThanOrEqual(c.maxValidatorsDown);
    const current = fleet.store.peek(jwtRef)!;
    for (const node of inv.nodes) {
      if (!inPlay.has(node.name)) continue;
      const h = fleet.host(node.name);
      expect(h.files.get(JWT_FILE)?.content.toString(), `${node.name}: jwt.hex`).toBe(current.revealText());
      expect(h.el.key?.toString('hex'), `${node.name}: el/cl on the current JWT`).toBe(current.revealText());
    }
    if (failed.length === 0) expect(versionsMid, 'a complete rotation wrote a new version').toBe(versionsBefore + 1);
  } finally {
    await fleet.close();
  }
}

describe('wave scheduler (property): budgets, halting, --resume', () => {
  it('over random fleets, serial specs, budgets and injected failures', async () => {
    await fc.assert(fc.asyncProperty(caseArb, checkCase), { numRuns: 40 });
  });
});

describe('the disruption budget keeps the slot of a node whose disruptive step failed', () => {
  it('Budget: a failed holder keeps its slot; once none is left, the waiting and the later ones are refused', async () => {
    const b = new Budget(2, (lost) => new KryptonError('E_HALTED', `lost: ${lost.join(',')}`));
    const r1 = await b.acquire('a');
    const r2 = await b.acquire('b');
    const third = b.acquire('c');
    let thirdDone = false;
    void third.then(() => (thirdDone = true), () => (thirdDone = true));
    r1(false); // a may be down: c still waits
    await new Promise((r) => setTimeout(r, 10));
    expect(thirdDone).toBe(false);
    r2(false); // b too: no slot will ever come free
    await expect(third).rejects.toMatchObject({ code: 'E_HALTED', message: 'lost: a,b' });
    await expect(b.acquire('d')).rejects.toMatchObject({ code: 'E_HALTED' });
    const ok = new Budget(1, () => new Error('never'));
    const x = await ok.acquire('x');
    const y = ok.acquire('y');
    x(true); // converged: the slot goes to the next in line
    (await y)(true);
  });

  it('one wave, max_validators_down: 1: val-1 fails after its restart, so val-2 and val-3 stop before theirs (skipped, E_HALTED); --resume completes', async () => {
    const c: Case = { validators: 3, rpc: 1, cosigners: 0, hosts: { form: 'nodes' }, serial: { form: 'none' }, maxValidatorsDown: 1, maxRpcDown: undefined, concurrency: 1, failures: [] };
    const fleet = await provisionedFleet(c);
    try {
      const file = join(tmp, 'rotate-one-wave.yml');
      writeFileSync(file, playbookText(c));
      const playbook = await loadPlaybook(file);
      let inRestart = false;
      let restarted = false;
      // val-1's restart runs; the first facts exec after it (the settle re-check) fails: the node may be down.
      fleet.host('val-1').failExec = (argv) => {
        if (!inRestart) return undefined;
        const script = argv.join(' ');
        if (script.includes('setsid -w')) restarted = true;
        else if (restarted && script.includes('@@KF')) return { code: 1, stdout: '', stderr: 'injected' };
        return undefined;
      };
      const first = await runOnce(fleet, playbook, { concurrency: 1, inject: (h, t) => h === 'val-1' && ((inRestart = t === DISRUPTIVE), (restarted = false)) });
      expect(fleet.host('val-1').restarts).toBe(2); // provision's restart, and the rotation's
      expect(first.summary.hosts['val-1']).toMatchObject({ status: 'failed', error: { code: 'E_FACT' } });
      for (const v of ['val-2', 'val-3']) {
        expect(first.summary.hosts[v]).toMatchObject({ status: 'skipped', error: { code: 'E_HALTED', message: 'not disrupted: val-1 failed in a disruptive step and may still be down (max_validators_down: 1)' } });
        expect(fleet.host(v).restarts, `${v} not restarted by the rotation`).toBe(1);
      }
      expect(first.summary.hosts['rpc-1']?.status, 'the RPC budget is not the validators\'').toBe('changed');
      fleet.host('val-1').failExec = undefined;
      const resumed = await runOnce(fleet, playbook, { concurrency: 1, resume: true });
      expect(resumed.summary).toMatchObject({ ok: true, failed: 0, skipped: 0 });
      const current = fleet.store.peek(refFor(fleet.inventory, 'engine-jwt', 'val-1'))!;
      for (const n of fleet.inventory.nodes) expect(fleet.host(n.name).el.key?.toString('hex')).toBe(current.revealText());
    } finally {
      await fleet.close();
    }
  });
});
