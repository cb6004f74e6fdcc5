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
 *   expect: { skipped: true }                                 the executor does not run the task for this host
 *                                                             and store (appliesTo / delivery); plan is not called
 *
 * The plan context is what the executor gives: the host, the inventory, `restart_pending`, `resume`, and the
 * store's capabilities as `openStore` would choose them for the inventory (vault: delivery `agent`; kms: `host-fetch`
 * with host copies, or `operator` with `kms.decrypt: operator`; secrets-manager: `host-fetch`, no host copies).
 *
 * YAML tags understood here:
 *   !secret <text>                 a Secret holding <text>; the runner fails the fixture when that text appears
 *                                  in JSON.stringify(plan) or util.inspect(plan, {depth: 10})
 *   !rendered_sha256 <which>       SHA-256 of what the renderer produces for this fixture's inventory and host:
 *                                  `vault-agent.hcl`, any host secret's template by file name (`jwt.ctmpl`,
 *                                  `node-env.ctmpl`, `ecies_keys.ctmpl`, `shard.ctmpl`), `policy` (the host's ACL
 *                                  policy), `horcrux-config.yaml`, `krypton-secrets-boot` / `krypton-secrets-boot.service`
 *                                  (the boot step as kms.install-boot-step renders it from this fixture's params and
 *                                  `fetches` fact) — so a renderer change does not need every "current" digest pasted again
 *   !rendered <which>              the rendered text itself (e.g. a live policy that is current, or the body an
 *                                  action must carry); both tags work in facts and in `expect`
 *
 * A top-level fact given as `null` is handed to `plan` as `undefined` (facts say "absent" with undefined).
 * The runner also fails: a noChange without a non-empty reason, a refusal without a message or hint, a plan that
 * holds a Secret anywhere (plans carry references, never values), an unknown/missing fixture key, facts whose keys
 * differ from the task's declared facts, a fixture for a host/store the task is not run for (unless it expects
 * `skipped`), and a task in TASKS without a fixture directory (or a directory naming no task).
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
import { change, defineTask, noChange, refuse, type AnyTask, type Plan, type PlanContext, type StoreCapabilities } from '../../../src/model/task.ts';
import { act } from '../../../src/model/action.ts';
import { parseInventory } from '../../../src/inventory/loader.ts';
import type { CosignerHost, Host, Inventory } from '../../../src/model/inventory.ts';
import { hostSecrets, templatePath, tmpfsDirs } from '../../../src/model/layout.ts';
import { renderHorcruxConfig } from '../../../src/horcrux/config.ts';
import { renderAgentConfig, renderPolicy, renderTemplate } from '../../../src/render/vault-agent.ts';
import { BOOT_FILES, renderBootScript, renderBootUnit, type BootFetch } from '../../../src/render/boot.ts';
import { TASKS } from '../../../src/tasks/index.ts';

const HERE = dirname(fileURLToPath(import.meta.url));
const FIXTURE_INVENTORIES = join(HERE, '..', 'fixtures');

/** Placeholder for `!rendered_sha256 <which>` / `!rendered <which>`, resolved once the inventory and host are known. */
class RenderedDigest {
  constructor(readonly which: string, readonly text = false) {}
}

/** What a renderer may use: the fixture's inventory and host, its validated params and its raw facts. */
interface RenderContext {
  inv: Inventory;
  host: Host;
  params: Record<string, unknown>;
  facts: Record<string, unknown>;
}

/** The boot step's options as kms.install-boot-step derives them from its params. */
const bootOptions = (p: Record<string, unknown>) => ({ tmpfsSizeBytes: p['tmpfs_size_bytes'] as number, attempts: p['attempts'] as number, before: p['before'] as string[] });

const RENDERERS: Record<string, (c: RenderContext) => string> = {
  'vault-agent.hcl': ({ inv, host }) => renderAgentConfig(inv, host),
  policy: ({ inv, host }) => renderPolicy(inv, host),
  'horcrux-config.yaml': ({ inv, host }) => renderHorcruxConfig(inv, host as CosignerHost),
  [BOOT_FILES.script.slice(BOOT_FILES.script.lastIndexOf('/') + 1)]: ({ inv, host, params, facts }) =>
    renderBootScript(inv, host, tmpfsDirs(inv, host), (facts['fetches'] as { list: BootFetch[] }).list, bootOptions(params)),
  [BOOT_FILES.unitName]: ({ inv, host, params }) => renderBootUnit(inv, host, bootOptions(params)),
};

/** A renderer by name, or a host secret's agent template by its file name (`jwt.ctmpl`, `node-env.ctmpl`, …). */
function renderer(which: string, inv: Inventory, host: Host): ((c: RenderContext) => string) | undefined {
  if (RENDERERS[which]) return RENDERERS[which];
  const s = hostSecrets(inv, host).find((x) => templatePath(x).endsWith(`/${which}`));
  return s ? ({ inv: i }) => renderTemplate(i, s) : undefined;
}

/** The store's capabilities for an inventory, as `openStore` chooses the store (src/backends/*-store.ts). */
function storeOf(inv: Inventory): StoreCapabilities {
  if (inv.backend === 'vault') return { delivery: 'agent', hostCopies: false };
  if (inv.backend === 'kms') return { delivery: inv.kms?.decrypt === 'operator' ? 'operator' : 'host-fetch', hostCopies: true };
  return { delivery: 'host-fetch', hostCopies: false };
}

/** Whether the executor runs `task` on `host` with this store (src/executor/run.ts `applicable`). */
function runsFor(task: AnyTask, host: Host, store: StoreCapabilities): boolean {
  return (task.appliesTo === 'any' || task.appliesTo === host.kind) && (!task.delivery || task.delivery.includes(store.delivery));
}

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
    z.strictObject({ skipped: z.literal(true) }),
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
function resolvePlaceholders(v: unknown, c: RenderContext): unknown {
  if (v instanceof RenderedDigest) {
    const render = renderer(v.which, c.inv, c.host);
    if (!render) throw new Error(`!rendered ${v.which}: expected one of ${Object.keys(RENDERERS).join(', ')} or a template of ${c.host.name} (${hostSecrets(c.inv, c.host).map((s) => templatePath(s).split('/').pop()).join(', ')})`);
    return v.text ? render(c) : sha256Hex(render(c));
  }
  if (Array.isArray(v)) return v.map((x) => resolvePlaceholders(x, c));
  if (v !== null && typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype) {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, resolvePlaceholders(x, c)]));
  }
  return v;
}

/** Where in `v` a Secret sits (a path like `actions.0.content`), or undefined. */
function secretIn(v: unknown, path = 'plan', seen = new Set<unknown>()): string | undefined {
  if (v instanceof Secret) return path;
  if (v === null || typeof v !== 'object' || seen.has(v)) return undefined;
  seen.add(v);
  for (const [k, x] of Object.entries(v)) {
    const found = secretIn(x, `${path}.${k}`, seen);
    if (found) return found;
  }
  return undefined;
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
  const store = storeOf(inv);
  const runs = runsFor(task, host, store);
  if ('skipped' in fixture.expect) {
    expect(runs, `${file}: expected ${taskId} to be skipped for ${host.name} (a ${host.kind}, delivery ${store.delivery})`).toBe(false);
    return;
  }
  if (!runs) {
    throw new Error(`${file}: the executor does not run ${taskId} (applies to ${task.appliesTo}, delivery ${task.delivery?.join('/') ?? 'any'}) for ${host.name} (a ${host.kind}, delivery ${store.delivery}); expect: { skipped: true }`);
  }

  const params = task.params.parse(fixture.params ?? {});

  // The fixture's facts are exactly what plan receives: same keys as the task declares.
  const declared = Object.keys(task.facts(params, host, inv)).sort();
  expect(Object.keys(fixture.facts).sort(), `${file}: facts keys must be the task's fact names`).toEqual(declared);
  const rc: RenderContext = { inv, host, params: params as Record<string, unknown>, facts: fixture.facts };
  const facts = Object.fromEntries(Object.entries(fixture.facts).map(([k, v]) => [k, v === null ? undefined : resolvePlaceholders(v, rc)]));

  const ctx: PlanContext = { host, inventory: inv, restartPending: fixture.restart_pending, resume: fixture.resume, store };
  const plan: Plan = task.plan(params, facts, ctx);

  // Invariant: no secret given to the task shows up in what it returns.
  const json = JSON.stringify(plan);
  const inspected = inspect(plan, { depth: 10 });
  for (const s of secrets) {
    const text = s.revealText();
    expect(json.includes(text), `${file}: a !secret value appears in JSON.stringify(plan)`).toBe(false);
    expect(inspected.includes(text), `${file}: a !secret value appears in util.inspect(plan)`).toBe(false);
  }

  // Plans carry references and versions, never values.
  expect(secretIn(plan), `${file}: the plan holds a Secret`).toBeUndefined();

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
      for (const [k, v] of Object.entries(resolvePlaceholders(w, rc) as Record<string, unknown>)) {
        expect(actual[k], `${file}: action ${i} key ${k}`).toEqual(v);
      }
    });
  } else if ('no_change' in want) {
    expect(plan.kind, `${file}: expected no change, got ${describePlan(plan)}`).toBe('noChange');
    if (plan.kind !== 'noChange') return;
    expect(plan.reason).toMatch(new RegExp(want.no_change));
  } else if ('refuse' in want) {
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

  it('fails a plan that holds a Secret anywhere, even one whose text is not a !secret of the fixture', () => {
    const carrier = defineTask({
      id: 'test.carrier',
      summary: 'a task that puts a value into its plan',
      appliesTo: 'any',
      params: z.strictObject({}).prefault({}),
      facts: () => ({}),
      plan: (): Plan => change({ kind: 'put', path: '/run/krypton-secrets/x', content: new Secret('value-from-nowhere') as unknown as string, mode: '0600', description: 'write x' }),
    }) as AnyTask;
    const { fixture, secrets } = readFixture('carrier.yaml', 'description: d\nhost: val-1\nfacts: {}\nexpect: { change: [{ kind: put }] }\n');
    expect(() => checkFixture(carrier, fixture, secrets, 'carrier.yaml')).toThrow(/the plan holds a Secret/);
  });

  it('fails a refusal without a hint', () => {
    const noHint = defineTask({
      id: 'test.no-hint',
      summary: 'refuses without a hint',
      appliesTo: 'any',
      params: z.strictObject({}).prefault({}),
      facts: () => ({}),
      plan: (): Plan => refuse('E_INPUT', 'no', ''),
    }) as AnyTask;
    const { fixture, secrets } = readFixture('no-hint.yaml', 'description: d\nhost: val-1\nfacts: {}\nexpect: { refuse: E_INPUT }\n');
    expect(() => checkFixture(noHint, fixture, secrets, 'no-hint.yaml')).toThrow(/needs a hint/);
  });

  it('a task the executor skips for the host or store needs `skipped`, and `skipped` needs a task the executor skips', () => {
    const agentOnly = TASKS.get('vault.policy')!;
    const onKms = readFixture('kms.yaml', 'description: d\nhost: val-1\ninventory: kms.yml\nfacts: { policy: null }\nexpect: { no_change: x }\n');
    expect(() => checkFixture(agentOnly, onKms.fixture, onKms.secrets, 'kms.yaml')).toThrow(/does not run vault.policy .*delivery host-fetch.*skipped/);
    const skipped = readFixture('skip.yaml', 'description: d\nhost: val-1\ninventory: kms.yml\nfacts: {}\nexpect: { skipped: true }\n');
    expect(() => checkFixture(agentOnly, skipped.fixture, skipped.secrets, 'skip.yaml')).not.toThrow();
    const onVault = readFixture('vault.yaml', 'description: d\nhost: val-1\nfacts: {}\nexpect: { skipped: true }\n');
    expect(() => checkFixture(agentOnly, onVault.fixture, onVault.secrets, 'vault.yaml')).toThrow(/expected vault.policy to be skipped/);
    const nodeOnly = TASKS.get('node.set-jwt-path')!;
    const onCosigner = readFixture('c.yaml', 'description: d\nhost: cosigner-1\nfacts: {}\nexpect: { skipped: true }\n');
    expect(() => checkFixture(nodeOnly, onCosigner.fixture, onCosigner.secrets, 'c.yaml')).not.toThrow();
  });

  it('the store capabilities of each fixture inventory are those of the store openStore would open for it', async () => {
    // Loaded here only, so that a backend module under change cannot take every fixture down with it.
    const [{ capabilities }, { createKmsStore }, { createSmStore }, { createVaultStore }] = await Promise.all([
      import('../../../src/executor/run.ts'),
      import('../../../src/backends/kms-store.ts'),
      import('../../../src/backends/sm-store.ts'),
      import('../../../src/backends/vault-store.ts'),
    ]);
    const unused = () => {
      throw new Error('not called: creating a store contacts nothing');
    };
    const real = (inv: Inventory) =>
      capabilities(inv.backend === 'vault' ? createVaultStore(inv, {} as never) : inv.backend === 'kms' ? createKmsStore(inv, unused) : createSmStore(inv, unused, unused));
    const files = readdirSync(FIXTURE_INVENTORIES).filter((f) => f.endsWith('.yml'));
    expect(files.length).toBeGreaterThan(5);
    for (const f of files) expect(storeOf(inventory(f)), f).toEqual(real(inventory(f)));
    expect(storeOf(inventory('inventory.yml'))).toEqual({ delivery: 'agent', hostCopies: false });
    expect(storeOf(inventory('kms.yml'))).toEqual({ delivery: 'host-fetch', hostCopies: true });
    expect(storeOf(inventory('kms-operator.yml'))).toEqual({ delivery: 'operator', hostCopies: true });
    expect(storeOf(inventory('secrets-manager.yml'))).toEqual({ delivery: 'host-fetch', hostCopies: false });
  });

  it('rejects an unknown or missing expectation key, and unknown fixture keys', () => {
    const bad = ['{ changes: [{ kind: exec }] }', '{ no_change: x, refuse: E_INPUT }', '{}', 'E_INPUT', '{ refuse: not-a-code }'];
    for (const b of bad) expect(() => readFixture('bad.yaml', fixtureText('value: null', b)), b).toThrow(/not a valid task fixture/);
    expect(() => readFixture('bad.yaml', 'description: d\nhost: val-1\nfacts: {}\n')).toThrow(/not a valid task fixture/);
    expect(() => readFixture('bad.yaml', 'description: d\nhost: val-1\nfacts: {}\nexpect: { no_change: x }\nrestart: true\n')).toThrow(/not a valid task fixture/);
  });
});
