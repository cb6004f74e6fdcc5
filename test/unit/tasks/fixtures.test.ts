/**
 * Task fixture runner: ONE generated test per `test/unit/tasks/<task-id>/<case>.yaml` (pyinfra's layout:
 * facts in, actions out). Each fixture names a host of a fixture inventory (`test/unit/fixtures/*.yml`),
 * params (validated through the task's own schema, defaults filled in), the facts exactly as `plan` receives
 * them, and one expectation:
 *
 *   expect: { change: [ {kind: exec, argv: [...]}, ... ] }   every listed key deep-equals the action's key;
 *                                                             same count, same order; unlisted keys ignored
 *   expect: { no_change: "<regex the reason must match>" }
 *   expect: { refuse: E_PLAN_CONFLICT }                       code; optional refuse_message: "<regex>"
 *
 * YAML tags understood here:
 *   !secret <text>                 a Secret holding <text>; the runner fails the fixture when that text appears
 *                                  in JSON.stringify(plan) or util.inspect(plan, {depth: 10})
 *   !rendered_sha256 <which>       SHA-256 of what the renderer produces for this fixture's inventory and host:
 *                                  `vault-agent.hcl` (node or cosigner), `jwt.ctmpl`, `node-policy`,
 *                                  `ecies_keys.ctmpl`, `shard.ctmpl`, `horcrux-config.yaml`, `cosigner-policy`
 *                                  (so a renderer change does not need every "current" digest pasted again)
 *   !rendered <which>              the rendered text itself (e.g. a live policy that is current)
 *
 * A top-level fact given as `null` is handed to `plan` as `undefined` (facts say "absent" with undefined).
 * The runner also fails: a noChange without a non-empty reason, a refusal without a message or hint, an
 * unknown/missing fixture key, facts whose keys differ from the task's declared facts, and a task in TASKS
 * without a fixture directory (or a directory naming no task).
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import { parse, type ScalarTag } from 'yaml';
import { z } from 'zod';
import { KryptonError } from '../../../src/core/errors.ts';
import { Secret, sha256Hex } from '../../../src/core/secret.ts';
import { change, defineTask, noChange, type AnyTask, type Plan, type PlanContext } from '../../../src/core/task.ts';
import { act } from '../../../src/core/action.ts';
import { parseInventory } from '../../../src/inventory/loader.ts';
import type { CosignerHost, Host, Inventory } from '../../../src/inventory/model.ts';
import { renderCosignerAgentConfig, renderCosignerPolicy, renderKeyTemplate } from '../../../src/horcrux/agent.ts';
import { renderHorcruxConfig } from '../../../src/horcrux/config.ts';
import { renderAgentConfig, renderJwtTemplate, renderNodePolicy } from '../../../src/render/vault-agent.ts';
import { TASKS } from '../../../src/tasks/index.ts';

const HERE = dirname(fileURLToPath(import.meta.url));
const FIXTURE_INVENTORIES = join(HERE, '..', 'fixtures');

/** Placeholder for `!rendered_sha256 <which>` / `!rendered <which>`, resolved once the inventory and host are known. */
class RenderedDigest {
  constructor(readonly which: string, readonly text = false) {}
}

const RENDERERS: Record<string, (inv: Inventory, host: Host) => string> = {
  'vault-agent.hcl': (inv, host) => (host.kind === 'node' ? renderAgentConfig(inv, host) : renderCosignerAgentConfig(inv, host as CosignerHost)),
  'ecies_keys.ctmpl': (inv, host) => renderKeyTemplate(inv, host.name, 'ecies'),
  'shard.ctmpl': (inv, host) => renderKeyTemplate(inv, host.name, 'shard'),
  'horcrux-config.yaml': (inv, host) => renderHorcruxConfig(inv, host as CosignerHost),
  'cosigner-policy': (inv, host) => renderCosignerPolicy(inv, host.name),
  'jwt.ctmpl': (inv, host) => renderJwtTemplate(inv, host.name),
  'node-policy': (inv, host) => renderNodePolicy(inv, host.name),
};

const fixtureSchema = z.strictObject({
  description: z.string().min(1),
  host: z.string().min(1),
  /** A file in test/unit/fixtures (default inventory.yml). */
  inventory: z.string().default('inventory.yml'),
  params: z.record(z.string(), z.unknown()).nullable().default({}),
  restart_pending: z.boolean().default(false),
  /** `--resume` (PlanContext.resume). */
  resume: z.boolean().default(false),
  facts: z.record(z.string(), z.unknown()),
  expect: z.union([
    z.strictObject({ change: z.array(z.record(z.string(), z.unknown())).min(1) }),
    z.strictObject({ no_change: z.string().min(1) }),
    z.strictObject({ refuse: z.string().regex(/^E_[A-Z_]+$/), refuse_message: z.string().min(1).optional() }),
  ]),
});

type Fixture = z.infer<typeof fixtureSchema>;

/** Parses one fixture file; returns it with the Secrets its `!secret` tags created. */
function readFixture(file: string, text = readFileSync(file, 'utf8')): { fixture: Fixture; secrets: Secret[] } {
  const secrets: Secret[] = [];
  const secretTag: ScalarTag = {
    tag: '!secret',
    identify: (v) => v instanceof Secret,
    resolve: (text: string) => {
      const s = new Secret(text);
      secrets.push(s);
      return s;
    },
  };
  const renderedTag: ScalarTag = {
    tag: '!rendered_sha256',
    identify: (v) => v instanceof RenderedDigest && !v.text,
    resolve: (text: string) => new RenderedDigest(text.trim()),
  };
  const renderedTextTag: ScalarTag = {
    tag: '!rendered',
    identify: (v) => v instanceof RenderedDigest && v.text,
    resolve: (text: string) => new RenderedDigest(text.trim(), true),
  };
  const raw: unknown = parse(text, { customTags: [secretTag, renderedTag, renderedTextTag], strict: true, uniqueKeys: true });
  const r = fixtureSchema.safeParse(raw);
  if (!r.success) throw new Error(`${file}: not a valid task fixture:\n${z.prettifyError(r.error)}`);
  return { fixture: r.data, secrets };
}

const inventories = new Map<string, Inventory>();
function inventory(name: string): Inventory {
  let inv = inventories.get(name);
  if (!inv) {
    const file = join(FIXTURE_INVENTORIES, name);
    inv = parseInventory(file, readFileSync(file, 'utf8'));
    inventories.set(name, inv);
  }
  return inv;
}

/** Replaces RenderedDigest placeholders (anywhere in plain data) by the digest of the rendered text. */
function resolvePlaceholders(v: unknown, inv: Inventory, host: Host): unknown {
  if (v instanceof RenderedDigest) {
    const render = RENDERERS[v.which];
    if (!render) throw new Error(`!rendered ${v.which}: expected one of ${Object.keys(RENDERERS).join(', ')}`);
    return v.text ? render(inv, host) : sha256Hex(render(inv, host));
  }
  if (Array.isArray(v)) return v.map((x) => resolvePlaceholders(x, inv, host));
  if (v !== null && typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype) {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, resolvePlaceholders(x, inv, host)]));
  }
  return v;
}

function describePlan(p: Plan): string {
  if (p.kind === 'noChange') return `noChange(${JSON.stringify(p.reason)})`;
  if (p.kind === 'refuse') return `refuse(${p.error.code}: ${p.error.message})`;
  return `change(${JSON.stringify(p.actions, null, 2)})`;
}

function runFixture(taskId: string, file: string): void {
  const task = TASKS.get(taskId);
  if (!task) throw new Error(`${file}: directory ${taskId} names no task in TASKS (known: ${[...TASKS.keys()].join(', ')})`);
  const { fixture, secrets } = readFixture(file);
  checkFixture(task, fixture, secrets, file);
}

function checkFixture(task: AnyTask, fixture: Fixture, secrets: Secret[], file: string): void {
  const taskId = task.id;
  const inv = inventory(fixture.inventory);
  const host = [...inv.nodes, ...inv.cosigners].find((h) => h.name === fixture.host);
  if (!host) throw new Error(`${file}: host ${fixture.host} is not in ${fixture.inventory}`);
  if (task.appliesTo !== 'any' && task.appliesTo !== host.kind) throw new Error(`${file}: ${taskId} applies to ${task.appliesTo}s, ${host.name} is a ${host.kind}`);

  const params = task.params.parse(fixture.params ?? {});

  // The fixture's facts are exactly what plan receives: same keys as the task declares.
  const declared = Object.keys(task.facts(params, host, inv)).sort();
  expect(Object.keys(fixture.facts).sort(), `${file}: facts keys must be the task's fact names`).toEqual(declared);
  const facts = Object.fromEntries(
    Object.entries(fixture.facts).map(([k, v]) => [k, v === null ? undefined : resolvePlaceholders(v, inv, host)]),
  );

  const ctx: PlanContext = { host, inventory: inv, restartPending: fixture.restart_pending, resume: fixture.resume };
  const plan: Plan = task.plan(params, facts, ctx);

  // Invariant: no secret given to the task shows up in what it returns.
  const json = JSON.stringify(plan);
  const inspected = inspect(plan, { depth: 10 });
  for (const s of secrets) {
    const text = s.revealText();
    expect(json.includes(text), `${file}: a !secret value appears in JSON.stringify(plan)`).toBe(false);
    expect(inspected.includes(text), `${file}: a !secret value appears in util.inspect(plan)`).toBe(false);
  }

  // Invariants on every plan, whatever the fixture expects.
  if (plan.kind === 'noChange') expect(plan.reason.trim(), `${file}: a noChange needs a reason`).not.toBe('');
  if (plan.kind === 'refuse') {
    expect(plan.error).toBeInstanceOf(KryptonError);
    expect(plan.error.message.trim(), `${file}: a refusal needs a message`).not.toBe('');
    expect(plan.error.hint?.trim(), `${file}: a refusal needs a hint`).toBeTruthy();
  }
  if (plan.kind === 'change') {
    for (const a of plan.actions) expect(a.description.trim(), `${file}: every action needs a description`).not.toBe('');
  }

  const want = fixture.expect;
  if ('change' in want) {
    expect(plan.kind, `${file}: expected a change, got ${describePlan(plan)}`).toBe('change');
    if (plan.kind !== 'change') return;
    expect(plan.actions.length, `${file}: action count; got ${describePlan(plan)}`).toBe(want.change.length);
    want.change.forEach((w, i) => {
      const actual = plan.actions[i] as unknown as Record<string, unknown>;
      for (const [k, v] of Object.entries(w)) {
        expect(actual[k], `${file}: action ${i} key ${k}`).toEqual(v);
      }
    });
  } else if ('no_change' in want) {
    expect(plan.kind, `${file}: expected no change, got ${describePlan(plan)}`).toBe('noChange');
    if (plan.kind !== 'noChange') return;
    expect(plan.reason).toMatch(new RegExp(want.no_change));
  } else {
    expect(plan.kind, `${file}: expected a refusal, got ${describePlan(plan)}`).toBe('refuse');
    if (plan.kind !== 'refuse') return;
    expect(plan.error.code).toBe(want.refuse);
    if (want.refuse_message) expect(plan.error.message).toMatch(new RegExp(want.refuse_message));
  }
}

const dirs = readdirSync(HERE).filter((d) => statSync(join(HERE, d)).isDirectory()).sort();

describe('task fixtures', () => {
  it('every task in TASKS has a fixture directory, and every directory names a task', () => {
    const missing = [...TASKS.keys()].filter((id) => !existsSync(join(HERE, id)));
    expect(missing, `tasks without fixtures in test/unit/tasks/<task-id>/`).toEqual([]);
    expect(dirs.filter((d) => !TASKS.has(d)), 'fixture directories naming no task').toEqual([]);
  });

  for (const taskId of dirs) {
    const files = readdirSync(join(HERE, taskId)).filter((f) => f.endsWith('.yaml') || f.endsWith('.yml')).sort();
    describe(taskId, () => {
      it('has at least one fixture', () => expect(files.length).toBeGreaterThan(0));
      for (const f of files) {
        it(f.replace(/\.ya?ml$/, ''), () => runFixture(taskId, join(HERE, taskId, f)));
      }
    });
  }
});

// The runner's own failure modes: it must reject what a careless fixture or task would slip through.
describe('task fixture runner', () => {
  const leaky = defineTask({
    id: 'test.leaky',
    summary: 'a broken task for the runner self-test',
    appliesTo: 'any',
    params: z.strictObject({ reason: z.string().default('') }).prefault({}),
    facts: () => ({ value: { kind: 'remote' as const, script: 'true', parse: () => undefined as Secret | undefined } }),
    plan(p, { value }): Plan {
      if (value === undefined) return noChange(p.reason);
      return change(act.exec(['printf', '%s', value.revealText()], 'leak the value into argv'));
    },
  }) as AnyTask;
  const fixtureText = (facts: string, expectation: string, params = '{}') =>
    `description: self-test\nhost: val-1\nparams: ${params}\nfacts:\n  ${facts}\nexpect: ${expectation}\n`;

  it('fails a fixture whose plan carries the text of a !secret (in argv)', () => {
    const { fixture, secrets } = readFixture('leak.yaml', fixtureText('value: !secret 0031fa90a884717ceee535c1cbae9f0bc4542a8cb58eb21d8abcc06978f0ff2e', '{ change: [{ kind: exec }] }'));
    expect(secrets).toHaveLength(1);
    expect(() => checkFixture(leaky, fixture, secrets, 'leak.yaml')).toThrow(/!secret value appears/);
  });

  it('fails a noChange with an empty reason, even when the fixture expects no change', () => {
    const { fixture, secrets } = readFixture('empty-reason.yaml', fixtureText('value: null', '{ no_change: ".*" }', "{ reason: '' }"));
    expect(() => checkFixture(leaky, fixture, secrets, 'empty-reason.yaml')).toThrow(/needs a reason/);
    const ok = readFixture('reason.yaml', fixtureText('value: null', '{ no_change: "^because$" }', '{ reason: because }'));
    expect(() => checkFixture(leaky, ok.fixture, ok.secrets, 'reason.yaml')).not.toThrow();
  });

  it('fails facts whose keys are not the task\'s fact names', () => {
    const { fixture, secrets } = readFixture('keys.yaml', fixtureText('valu: null', '{ no_change: ".*" }', '{ reason: r }'));
    expect(() => checkFixture(leaky, fixture, secrets, 'keys.yaml')).toThrow(/facts keys/);
  });

  it('rejects an unknown or missing expectation key, and unknown fixture keys', () => {
    const bad = ['{ changes: [{ kind: exec }] }', '{ no_change: x, refuse: E_INPUT }', '{}', 'E_INPUT', '{ refuse: not-a-code }'];
    for (const b of bad) expect(() => readFixture('bad.yaml', fixtureText('value: null', b)), b).toThrow(/not a valid task fixture/);
    expect(() => readFixture('bad.yaml', 'description: d\nhost: val-1\nfacts: {}\n')).toThrow(/not a valid task fixture/);
    expect(() => readFixture('bad.yaml', 'description: d\nhost: val-1\nfacts: {}\nexpect: { no_change: x }\nrestart: true\n')).toThrow(/not a valid task fixture/);
  });
});
