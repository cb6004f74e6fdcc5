/**
 * Timeouts are settings (issue 10, item 4): the inventory's `timeouts:` (defaults and per host), a playbook step's
 * `timeout_seconds` / `exec_timeout_seconds`, and `--timeout` (RunOptions.timeoutSeconds); defaults that grow with
 * the work; every timeout message names the setting that raises it. Runs the real executor and tasks over the
 * recording fake fleet.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { KryptonError } from '../../src/core/errors.ts';
import type { RunEvent } from '../../src/core/events.ts';
import type { ExecOptions, Transport } from '../../src/core/transport.ts';
import { runPlaybook, type RunOptions } from '../../src/executor/run.ts';
import { DEFAULT_EXEC_SECONDS, RTT_POLLS, boundTransport, execBound, settleOf, stepBound } from '../../src/executor/timeouts.ts';
import { parseInventory } from '../../src/inventory/loader.ts';
import type { Host } from '../../src/model/inventory.ts';
import { loadPlaybook, type Playbook } from '../../src/playbook/loader.ts';
import { TASKS } from '../../src/tasks/index.ts';
import { FakeFleet } from './fake-fleet.ts';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const TMP = mkdtempSync(join(tmpdir(), 'krypton-timeouts-test-'));
afterAll(() => rmSync(TMP, { recursive: true, force: true }));

const INV = (extra = '') => `network: "473374"
vault:
  address: https://vault.fake.invalid:8200
${extra}nodes:
  val-1: { role: validator, address: 10.0.0.1 }
  val-2: { role: validator, address: 10.0.0.2, timeouts: { exec_seconds: 90 } }
`;

function refusal(f: () => unknown): KryptonError {
  try {
    f();
  } catch (e) {
    return e as KryptonError;
  }
  throw new Error('expected a refusal');
}

let n = 0;
async function playbook(text: string): Promise<Playbook> {
  const file = join(TMP, `pb-${n++}.yml`);
  writeFileSync(file, text);
  return loadPlaybook(file);
}

describe('inventory timeouts:', () => {
  it('defaults.timeouts apply to every host; a host\'s own keys win key by key, each saying where it was set', () => {
    const inv = parseInventory('/inv.yml', INV('defaults:\n  timeouts: { exec_seconds: 45, step_seconds: 200 }\n'));
    expect(inv.nodes[0]!.timeouts).toEqual({ execSeconds: 45, execFrom: 'defaults.timeouts.exec_seconds', stepSeconds: 200, stepFrom: 'defaults.timeouts.step_seconds' });
    expect(inv.nodes[1]!.timeouts).toEqual({ execSeconds: 90, execFrom: 'nodes.val-2.timeouts.exec_seconds', stepSeconds: 200, stepFrom: 'defaults.timeouts.step_seconds' });
  });

  it('unset: no inventory bound (the computed defaults apply)', () => {
    expect(parseInventory('/inv.yml', INV()).nodes[0]!.timeouts).toEqual({});
  });

  it('an unknown key is refused at file:line:col, listing the keys', () => {
    const e = refusal(() => parseInventory('/inv.yml', INV('defaults:\n  timeouts: { exec_timeout: 45 }\n')));
    expect(e.code).toBe('E_INVENTORY');
    expect(e.message).toContain('/inv.yml:5:15: defaults.timeouts.exec_timeout: unknown key (expected one of: exec_seconds, step_seconds)');
  });

  it('a bound below 1 s or not whole seconds is refused', () => {
    expect(refusal(() => parseInventory('/inv.yml', INV('defaults:\n  timeouts: { step_seconds: 0 }\n'))).message).toMatch(/inv\.yml:5:29: defaults\.timeouts\.step_seconds: Too small/);
    expect(refusal(() => parseInventory('/inv.yml', INV('defaults:\n  timeouts: { exec_seconds: 1.5 }\n'))).code).toBe('E_INVENTORY');
  });
});

describe('playbook step timeouts', () => {
  it('every task takes timeout_seconds and exec_timeout_seconds beside its params; they are not its params', async () => {
    const pb = await playbook('- name: p\n  hosts: nodes\n  tasks:\n    - mount.tmpfs: { size_bytes: 65536, exec_timeout_seconds: 20 }\n    - agent.start: { timeout_seconds: 90 }\n    - vault.policy\n');
    const [a, b, c] = pb.plays[0]!.steps;
    expect([a!.params, a!.execTimeoutSeconds, a!.timeoutSeconds]).toEqual([{ size_bytes: 65536, mode: '0700' }, 20, undefined]);
    expect([b!.params, b!.timeoutSeconds]).toEqual([{}, 90]);
    expect([c!.timeoutSeconds, c!.execTimeoutSeconds]).toEqual([undefined, undefined]);
  });

  it('a bad value is refused at its line:col', async () => {
    const file = join(TMP, 'bad.yml');
    writeFileSync(file, '- name: p\n  hosts: nodes\n  tasks:\n    - vault.policy: { exec_timeout_seconds: -3 }\n');
    const e = await loadPlaybook(file).then(() => undefined, (x: KryptonError) => x);
    expect(e?.code).toBe('E_PLAYBOOK');
    expect(e?.message).toContain(`${file}:4:45: 0.tasks.0.vault.policy.exec_timeout_seconds: Too small`);
  });
});

describe('bounds: order and defaults that grow with the work', () => {
  const inv = parseInventory('/inv.yml', INV('defaults:\n  env: { services: [el, cl, mev-boost] }\n'));
  const host = inv.nodes[0]!;
  const restart = { task: TASKS.get('node.restart-lockstep')!, params: {} };
  const agent = { task: TASKS.get('agent.start')!, params: {} };

  it('exec: --timeout, then the step, then the host, then 120 s', () => {
    const step = { task: restart.task, execTimeoutSeconds: 15 };
    expect(execBound(host).ms).toBe(DEFAULT_EXEC_SECONDS * 1000);
    expect(execBound(host).hint).toMatch(/the default 120 s; raise it with timeouts\.exec_seconds in the inventory .*exec_timeout_seconds on the playbook step, or --timeout <seconds>/);
    expect(execBound(inv.nodes[1]!).source).toBe('nodes.val-2.timeouts.exec_seconds: 90');
    expect(execBound(inv.nodes[1]!, step).source).toBe('exec_timeout_seconds: 15 on the node.restart-lockstep step');
    expect(execBound(inv.nodes[1]!, step, 7)).toMatchObject({ ms: 7000, source: '--timeout 7' });
  });

  it('a restart waits 30 s per service it may restart; the agent 20 s + 10 s per rendered file', () => {
    expect(settleOf(restart, host, inv)).toMatchObject({ timeoutMs: 90_000, basis: '30 s per service it may restart (el, cl, mev-boost)' });
    expect(settleOf(agent, host, inv)).toMatchObject({ timeoutMs: 40_000 });
    const bare = parseInventory('/inv.yml', INV());
    expect(settleOf(restart, bare.nodes[0]!, bare)!.timeoutMs).toBe(60_000);
    expect(settleOf(agent, bare.nodes[0]!, bare)!.timeoutMs).toBe(30_000);
  });

  it(`the default grows by ${RTT_POLLS} of the host's measured round trips; settings replace it`, () => {
    const s = settleOf(restart, host, inv)!;
    expect(stepBound(s, host, restart, 0).ms).toBe(90_000);
    const slow = stepBound(s, host, restart, 2500);
    expect(slow.ms).toBe(90_000 + RTT_POLLS * 2500);
    expect(slow.source).toBe(`the default 115 s (30 s per service it may restart (el, cl, mev-boost) + ${RTT_POLLS} × 2.5 s measured round trip)`);
    expect(stepBound(s, host, { ...restart, timeoutSeconds: 20 }, 2500)).toMatchObject({ ms: 20_000, source: 'timeout_seconds: 20 on the node.restart-lockstep step' });
    const set = parseInventory('/inv.yml', INV('defaults:\n  timeouts: { step_seconds: 300 }\n'));
    expect(stepBound(s, set.nodes[0]!, restart, 2500)).toMatchObject({ ms: 300_000, source: 'defaults.timeouts.step_seconds: 300' });
    expect(stepBound(s, set.nodes[0]!, { ...restart, timeoutSeconds: 20 }, 0, 600).ms).toBe(600_000);
  });

  it('boundTransport fills the bound and its hint into every exec and hold that sets none', async () => {
    const seen: ExecOptions[] = [];
    const raw: Transport = {
      name: 'x',
      exec: async (_a, o = {}) => (seen.push(o), { code: 0, stdout: '', stderr: '' }),
      put: async () => undefined,
      forward: async () => {
        throw new Error('no');
      },
      close: async () => undefined,
    };
    const t = boundTransport(raw, execBound(host, undefined, 9));
    await t.exec(['true']);
    await t.exec(['true'], { timeoutMs: 1234 });
    expect(seen.map((o) => o.timeoutMs)).toEqual([9000, 1234]);
    expect(seen[0]!.timeoutHint).toMatch(/the bound is --timeout 9; raise it with/);
  });
});

describe('runPlaybook: the settings reach every command, and a wait that runs out names its setting', () => {
  const fleets: FakeFleet[] = [];
  afterEach(async () => {
    await Promise.all(fleets.splice(0).map((f) => f.close()));
  });

  async function run(invText: string, pbText: string, extra: Partial<RunOptions> = {}) {
    const inv = parseInventory('/inv.yml', invText);
    const fleet = new FakeFleet(inv);
    fleets.push(fleet);
    const bounds: Record<string, (number | undefined)[]> = {};
    const connect = async (h: Host): Promise<Transport> => {
      const t = await fleet.connect(h);
      return {
        name: t.name,
        exec: (argv, o) => ((bounds[h.name] ??= []).push(o?.timeoutMs), t.exec(argv, o)),
        put: (p, c, o) => t.put(p, c, o),
        forward: (a, b) => t.forward(a, b),
        close: () => t.close(),
      };
    };
    const events: RunEvent[] = [];
    const summary = await runPlaybook({ inventory: inv, playbook: await playbook(pbText), mode: 'apply', sink: (e) => events.push(e), store: fleet.store, connect, ...extra });
    return { fleet, bounds, summary, events };
  }

  const provisionLike = '- name: p\n  hosts: nodes\n  tasks:\n    - secret.seed\n    - mount.tmpfs\n    - vault.policy: { exec_timeout_seconds: 33 }\n';

  it('each host\'s commands carry its exec bound; --timeout wins over every setting', async () => {
    const r = await run(INV('defaults:\n  timeouts: { exec_seconds: 45 }\n'), provisionLike);
    expect(r.summary.ok, JSON.stringify(r.summary)).toBe(true);
    expect(new Set(r.bounds['val-1'])).toEqual(new Set([45_000]));
    expect(new Set(r.bounds['val-2'])).toEqual(new Set([90_000]));
    const cli = await run(INV('defaults:\n  timeouts: { exec_seconds: 45 }\n'), provisionLike, { timeoutSeconds: 7 });
    expect(new Set([...cli.bounds['val-1']!, ...cli.bounds['val-2']!])).toEqual(new Set([7000]));
  });

  it('agent.start waiting for an agent that never renders: E_TIMEOUT naming the step setting, then --timeout', async () => {
    const pb = '- name: p\n  hosts: [val-1]\n  tasks:\n    - secret.seed\n    - vault.policy\n    - vault.approle\n    - mount.tmpfs\n    - agent.render-config\n    - vault.deliver-secret-id\n    - agent.start: { timeout_seconds: 1 }\n';
    const stall = (fleet: FakeFleet) => (fleet.host('val-1').failExec = (argv) => (argv.includes('systemd-run') ? { code: 0, stdout: '', stderr: '' } : undefined));
    const inv = INV();
    const fleetRun = async (extra: Partial<RunOptions>) => {
      const parsed = parseInventory('/inv.yml', inv);
      const fleet = new FakeFleet(parsed);
      fleets.push(fleet);
      stall(fleet);
      const events: RunEvent[] = [];
      const summary = await runPlaybook({ inventory: parsed, playbook: await playbook(pb), mode: 'apply', sink: (e) => events.push(e), store: fleet.store, connect: fleet.connect, ...extra });
      return summary.hosts['val-1']!.error!;
    };
    const e = await fleetRun({});
    expect(e.code).toBe('E_TIMEOUT');
    expect(e.message).toMatch(/^agent\.start did not converge within 1 s \(timeout_seconds: 1 on the agent\.start step\): still /);
    expect(e.hint).toMatch(/raise it with timeout_seconds on the playbook step, timeouts\.step_seconds in the inventory .*, or --timeout <seconds>/);
    const viaCli = await fleetRun({ timeoutSeconds: 2 });
    expect(viaCli.message).toMatch(/within 2 s \(--timeout 2\)/);
  });
});
