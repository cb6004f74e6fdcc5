import { KryptonError, toKryptonError } from '../core/errors.ts';
import type { EventSink, HostStatus, RunSummary } from '../core/events.ts';
import type { GatherEnv, Plan, PlanContext, StoreCapabilities } from '../model/task.ts';
import type { RawValue, SecretStore } from '../model/store.ts';
import type { Secret } from '../core/secret.ts';
import { touchesHost } from '../model/action.ts';
import { KIND_SPECS, hostSecrets, refKey, type SecretRef } from '../model/layout.ts';
import { canonicalHex64, hex64Problem } from '../model/formats.ts';
import type { Host, Inventory } from '../model/inventory.ts';
import type { Play, Playbook, Step } from '../playbook/loader.ts';
import type { Transport } from '../core/transport.ts';
import { storedKeyFileProblem } from '../horcrux/keys.ts';
import { applyAction } from './apply.ts';
import { gatherFacts, prefetchRemoteFacts } from './facts.ts';
import { checkLimit, selectHosts } from './select.ts';
import { Budget, Semaphore } from './semaphore.ts';
import { computeWaves } from './waves.ts';
import { boundTransport, execBound, settleOf, stepBound } from './timeouts.ts';

export interface RunOptions {
  inventory: Inventory;
  playbook: Playbook;
  /** `plan`: gather facts and plan every step, change nothing. `apply`: do it. */
  mode: 'plan' | 'apply';
  /** Only these hosts (inventory names). */
  limit?: string[];
  /** Hosts worked on at once (default 16). */
  concurrency?: number;
  sink: EventSink;
  /** The inventory's secret store (chosen once, by `openStore`). */
  store: SecretStore;
  /** Opens (or reuses) the host's one connection. Host keys are verified before it resolves. */
  connect(host: Host): Promise<Transport>;
  /** `--resume`: continue a halted rotation without writing a new backend version. */
  resume?: boolean;
  /**
   * Host run locks already taken (by `acquireHostLocks`, e.g. before a rollback writes its backend version);
   * the run adds the ones it takes itself and releases them all at its end.
   */
  locks?: Map<string, Promise<HostLock>>;
  /** Aborted (Ctrl-C): no new step or wave starts; steps under way finish, so no host is left half-written. */
  signal?: AbortSignal;
  /**
   * `--timeout <seconds>`: every step's wait bound and every remote command's bound, over the playbook's and the
   * inventory's settings (src/executor/timeouts.ts).
   */
  timeoutSeconds?: number;
  /** Extra facts for the summary's `notes` (e.g. which node holds which JWT version), gathered after the run. */
  report?: (hosts: Host[], summary: RunSummary) => Promise<Record<string, unknown>>;
  /**
   * `apply --fix-format`: a stored Engine-API JWT whose only fault is its form (`0x`, uppercase, surrounding
   * whitespace or CR LF) is written back in canonical form as a new version (check-and-set on the version read)
   * before any host is touched, and reported by fingerprint ({@link RunEvent} `store-fixed`).
   */
  fixFormat?: boolean;
}

interface HostState {
  status: HostStatus;
  error?: KryptonError;
}

/**
 * Runs a playbook over the inventory: plays in order; in each play, hosts in waves (`serial`), up to
 * `concurrency` hosts at once, each host's steps in order over its one connection. A step gathers facts
 * (one exec for all remote facts), plans purely, applies the actions, then — when the task settles —
 * re-gathers and re-plans until the plan is noChange. A failed host stops its own steps; the others go on;
 * later waves of the play are halted. Disruptive steps hold the play's validator / RPC budget until they
 * converge; one that fails keeps its slot (the node may be down), and once no slot is left the hosts that need one
 * stop before their disruptive step (skipped, E_HALTED). Returns the summary (also emitted as the last event). Throws only for bad usage (E_USAGE).
 */
export async function runPlaybook(o: RunOptions): Promise<RunSummary> {
  const limit = checkLimit(o.inventory, o.limit);
  const states = new Map<string, HostState>();
  const hostSlots = new Semaphore(o.concurrency ?? 16);
  const memo = new Map<string, Promise<unknown>>();
  const runState = new Map<string, unknown>();
  const locks = o.locks ?? new Map<string, Promise<HostLock>>();
  const allHosts = o.playbook.plays.flatMap((p) => selectHosts(o.inventory, p.hosts, p.hostsAt)).filter((h) => !limit || limit.has(h.name));
  for (const h of allHosts) states.set(h.name, { status: 'unchanged' });
  const uniqueHosts = [...new Map(allHosts.map((h) => [h.name, h])).values()];
  await preflight(o, uniqueHosts, memo);
  if (o.mode === 'apply') await lockAll(o, uniqueHosts, locks);
  o.sink({ type: 'run-start', command: o.mode, playbook: o.playbook.file, hosts: [...states.keys()] });

  for (const play of o.playbook.plays) {
    const hosts = selectHosts(o.inventory, play.hosts, play.hostsAt).filter((h) => (!limit || limit.has(h.name)) && states.get(h.name)?.status !== 'failed');
    if (!hosts.length) continue;
    o.sink({ type: 'play-start', play: play.name, hosts: hosts.map((h) => h.name) });
    const budgets: Budgets = { validator: disruptionBudget(play, 'validator'), rpc: disruptionBudget(play, 'rpc') };
    const onceLocks = new Map<number, Semaphore>();
    const waves = computeWaves(hosts, play.serial);
    let halted = false;
    for (const [w, wave] of waves.entries()) {
      if (o.signal?.aborted) halted = true;
      if (halted) {
        for (const h of wave) {
          const st = states.get(h.name)!;
          if (st.status !== 'failed') {
            st.status = 'skipped'; // whatever earlier plays did, this host did not reach the playbook's end state
            st.error = o.signal?.aborted
              ? new KryptonError('E_HALTED', `not run: interrupted before "${play.name}" reached ${h.name}`, { host: h.name, hint: 'run the same command again (a rotation: with --resume): completed steps are not repeated' })
              : new KryptonError('E_HALTED', `not run: an earlier wave of "${play.name}" failed before ${h.name}'s`, { host: h.name, hint: 'fix the failed host, then run again (or --resume)' });
            o.sink({ type: 'host-done', host: h.name, status: 'skipped', error: st.error });
          }
        }
        continue;
      }
      o.sink({ type: 'wave-start', play: play.name, wave: w + 1, hosts: wave.map((h) => h.name) });
      await Promise.all(
        wave.map((h) =>
          hostSlots.use(() =>
            // the one place an exception that escaped a host's play is caught: a bug, reported for that host
            runHostPlay(o, play, h, states.get(h.name)!, budgets, onceLocks, memo, runState, locks).catch((err) => fail(o, h, states.get(h.name)!, internalError(err))),
          ),
        ),
      );
      if (wave.some((h) => states.get(h.name)?.status === 'failed') && w < waves.length - 1) halted = true;
    }
  }

  for (const l of locks.values()) await l.then((x) => x.release()).catch(() => undefined);
  const summary = summarise(states);
  if (o.report) {
    try {
      summary.notes = await o.report(allHosts, summary);
    } catch (err) {
      o.sink({ type: 'warning', message: `could not gather the report: ${toKryptonError(err).message}` });
    }
  }
  o.sink({ type: 'summary', summary });
  return summary;
}

async function runHostPlay(
  o: RunOptions,
  play: Play,
  host: Host,
  state: HostState,
  budgets: Budgets,
  onceLocks: Map<number, Semaphore>,
  memo: Map<string, Promise<unknown>>,
  runState: Map<string, unknown>,
  locks: Map<string, Promise<HostLock>>,
): Promise<void> {
  let transport: Transport;
  try {
    transport = boundTransport(await o.connect(host), execBound(host, undefined, o.timeoutSeconds));
    if (o.mode === 'apply') {
      if (!locks.has(host.name)) locks.set(host.name, lockHost(host, transport));
      const lock = await locks.get(host.name)!;
      if (lock.warning) o.sink({ type: 'warning', host: host.name, message: lock.warning });
    }
  } catch (err) {
    fail(o, host, state, toKryptonError(err, 'E_SSH_CONNECT'), undefined);
    return;
  }
  const env: GatherEnv = {
    host,
    inventory: o.inventory,
    transport,
    store: o.store,
    runState,
    memo<T>(key: string, get: () => Promise<T>): Promise<T> {
      let p = memo.get(key) as Promise<T> | undefined;
      if (!p) {
        p = get();
        memo.set(key, p);
        p.catch(() => memo.delete(key));
      }
      return p;
    },
  };
  let restartPending = false;
  // The host's slowest fact gathering so far: a step's default wait grows with it (timeouts.ts).
  const rtt = { ms: 0 };
  const applicable = (step: Step) =>
    (step.task.appliesTo === 'any' || step.task.appliesTo === host.kind) && (!step.task.delivery || step.task.delivery.includes(o.store.delivery));
  const caps = capabilities(o.store);
  // One round trip for every step's host facts; valid until a step changes something on this host.
  let prefetched: Map<number, Record<string, unknown>> | undefined;
  try {
    const t0 = Date.now();
    prefetched = await prefetchRemoteFacts(
      play.steps.flatMap((s, index) => (applicable(s) ? [{ index, specs: s.task.facts(s.params, host, o.inventory) }] : [])),
      transport,
      env,
    );
    rtt.ms = Math.max(rtt.ms, Date.now() - t0);
  } catch {
    prefetched = undefined; // each step gathers its own facts (and reports its own error)
  }
  // A node's JWT change is one unit (new file, restart, probe): once a step may have changed what el/cl will read,
  // Ctrl-C does not stop this host before the step that restarts them on it has converged (no node is left with
  // jwt.hex on one value and el/cl on another because of an interrupt).
  let jwtUnitOpen = false;
  for (const [i, step] of play.steps.entries()) {
    const task = step.task;
    if (!applicable(step)) continue;
    if (o.signal?.aborted && !jwtUnitOpen) {
      state.status = state.status === 'failed' ? 'failed' : 'skipped';
      const e = new KryptonError('E_HALTED', `${host.name}: interrupted before ${task.id}`, { host: host.name, task: task.id, hint: 'run the same command again: completed steps are not repeated' });
      state.error ??= e;
      o.sink({ type: 'host-done', host: host.name, status: 'skipped', error: e });
      return;
    }
    const started = Date.now();
    o.sink({ type: 'step-start', host: host.name, task: task.id, name: step.name });
    try {
      const lock = task.once ? (onceLocks.get(i) ?? onceLocks.set(i, new Semaphore(1)).get(i)!) : undefined;
      const release = lock ? await lock.acquire() : undefined;
      let result: { plan: Plan; applied: boolean };
      try {
        result = await runStep(o, step, host, env, memo, { host, inventory: o.inventory, restartPending, resume: o.resume ?? false, store: caps }, budgets, runState, rtt, prefetched?.get(i));
      } finally {
        release?.();
      }
      const { plan } = result;
      if (host.kind === 'node' && o.mode === 'apply') {
        if (task.jwtUnit === 'opens' && plan.kind === 'change') jwtUnitOpen = true;
        else if (task.jwtUnit === 'closes') jwtUnitOpen = false;
      }
      // Once this host has changed, facts gathered before are stale: later steps gather their own.
      if (plan.kind === 'change' && o.mode === 'apply' && plan.actions.some(touchesHost)) prefetched = undefined;
      if (plan.kind === 'noChange') {
        o.sink({ type: 'step', host: host.name, task: task.id, name: step.name, status: 'ok', reason: plan.reason, durationMs: Date.now() - started });
      } else if (plan.kind === 'change') {
        state.status = 'changed';
        if (task.triggersRestart) restartPending = true;
        o.sink({ type: 'step', host: host.name, task: task.id, name: step.name, status: 'changed', actions: plan.actions.map((a) => a.description), durationMs: Date.now() - started });
      }
    } catch (err) {
      const e = internalError(err, task.id);
      // plan: once an earlier step would change this host, later steps see today's state, not the planned
      // one — a refusal there (e.g. "not a tmpfs mount" before mount.tmpfs ran, or the Engine API refusing the
      // stored JWT while el still runs on the plaintext one a migration replaces) is no failure, only unknown.
      if (o.mode === 'plan' && state.status === 'changed' && (e.code === 'E_PLAN_CONFLICT' || e.code === 'E_INPUT' || e.code === 'E_FACT' || e.code === 'E_ENGINE_AUTH')) {
        o.sink({ type: 'step', host: host.name, task: task.id, name: step.name, status: 'skipped', reason: `depends on the changes planned above (today: ${e.message})`, durationMs: Date.now() - started });
        continue;
      }
      if (e.code === 'E_HALTED') {
        // the play's budget is taken by nodes whose disruptive step failed: this host stops before its own
        state.status = 'skipped';
        state.error = e;
        e.host ??= host.name;
        e.task ??= task.id;
        o.sink({ type: 'step', host: host.name, task: task.id, name: step.name, status: 'skipped', reason: e.message, durationMs: Date.now() - started });
        o.sink({ type: 'host-done', host: host.name, status: 'skipped', error: e });
        return;
      }
      fail(o, host, state, e, task.id, step.name, Date.now() - started);
      return;
    }
  }
  o.sink({ type: 'host-done', host: host.name, status: state.status });
}

interface Budgets {
  validator: Budget;
  rpc: Budget;
}

/**
 * The play's validator or RPC budget. When every slot is held by a node whose disruptive step failed (it may still
 * be down), the next node to need one stops with E_HALTED before it is disrupted too.
 */
function disruptionBudget(play: Play, role: 'validator' | 'rpc'): Budget {
  const setting = role === 'validator' ? 'max_validators_down' : 'max_rpc_down';
  const limit = role === 'validator' ? play.maxValidatorsDown : play.maxRpcDown;
  return new Budget(limit, (lost) =>
    new KryptonError('E_HALTED', `not disrupted: ${lost.join(', ')} failed in a disruptive step and may still be down (${setting}: ${limit})`, {
      hint: `fix ${lost.join(', ')}, then run again (or --resume)`,
    }),
  );
}

/** Plans one step and, in apply mode, applies and settles it. Throws the refusal or apply error. */
async function runStep(
  o: RunOptions,
  step: Step,
  host: Host,
  env: GatherEnv,
  memo: Map<string, Promise<unknown>>,
  ctx: PlanContext,
  budgets: Budgets,
  runState: Map<string, unknown>,
  rtt: { ms: number },
  prefetched?: Record<string, unknown>,
): Promise<{ plan: Plan; applied: boolean }> {
  const task = step.task;
  // This step's commands run under its exec bound (the step's exec_timeout_seconds, the host's, --timeout).
  const transport = step.execTimeoutSeconds !== undefined ? boundTransport(env.transport, execBound(host, step, o.timeoutSeconds)) : env.transport;
  const stepEnv: GatherEnv = transport === env.transport ? env : { ...env, transport };
  const plan = async (c: PlanContext, pre?: Record<string, unknown>): Promise<Plan> => {
    const t0 = Date.now();
    const facts = await gatherFacts(task.facts(step.params, host, o.inventory), transport, stepEnv, pre);
    if (!pre) rtt.ms = Math.max(rtt.ms, Date.now() - t0);
    return task.plan(step.params, facts, c);
  };
  const first = await plan(ctx, prefetched);
  if (first.kind === 'refuse') throw first.error;
  if (first.kind === 'noChange' || o.mode === 'plan') return { plan: first, applied: false };

  const budget = task.disruptive && host.kind === 'node' ? (host.role === 'validator' ? budgets.validator : budgets.rpc) : undefined;
  const release = budget ? await budget.acquire(host.name) : undefined;
  let converged = false;
  try {
    for (const action of first.actions) {
      const wroteStore = await applyAction(action, { host, inventory: o.inventory, transport, store: o.store, runState });
      if (wroteStore) memo.clear();
    }
    const settle = settleOf(step, host, o.inventory);
    if (settle) {
      const bound = stepBound(settle, host, step, rtt.ms, o.timeoutSeconds);
      const deadline = Date.now() + bound.ms;
      // The pending restart (if any) was this step's to do: converged now means "nothing left to do".
      const after = { ...ctx, restartPending: false };
      let last: Plan = await plan(after);
      while (last.kind !== 'noChange') {
        if (last.kind === 'refuse' && Date.now() >= deadline) throw last.error;
        if (Date.now() >= deadline) {
          throw new KryptonError('E_TIMEOUT', `${task.id} did not converge within ${Math.round(bound.ms / 1000)} s (${bound.source}): still ${describePlan(last)}`, {
            hint: `${bound.hint}; look at the service logs on the host (e.g. /var/log/krypton/, journalctl -u krypton-vault-agent)`,
          });
        }
        await new Promise((r) => setTimeout(r, bound.intervalMs));
        last = await plan(after);
      }
    }
    converged = true;
  } finally {
    release?.(converged); // not converged: the node may be down, its slot stays taken
  }
  return { plan: first, applied: true };
}

/**
 * Before any host is touched: read every stored value the selected hosts need, once each (the run's facts reuse
 * these reads), so that a value in the store that is not valid for its kind — a JWT with `0x`, CR LF or the
 * wrong length, an env-secret with a bad name, a key file that is not JSON — fails the whole run here, naming the
 * store path, version, what is wrong and which hosts need it, and nothing changes anywhere. A value that is
 * absent is no error here (secret.seed mints or refuses it per host). Backend faults (no token, no rights) are
 * thrown as they are, with their own codes.
 *
 * An Engine-API JWT whose only fault is its form (it has a canonical 64-lowercase-hex form: `0x` stripped,
 * lowercased, surrounding whitespace / CR LF stripped) is written back in that form as a new version when
 * `fixFormat` is set (apply only; check-and-set on the version read, so a concurrent writer wins and this run
 * stops with E_PLAN_CONFLICT), reported as a `store-fixed` event; without it the refusal's hint names
 * `--fix-format`. A wrong length or a non-hex byte has no canonical form and stays a refusal.
 */
async function preflight(o: RunOptions, hosts: readonly Host[], memo: Map<string, Promise<unknown>>): Promise<void> {
  const needers = new Map<string, { ref: SecretRef; hosts: string[]; shardId?: number }>();
  for (const h of hosts) {
    for (const s of hostSecrets(o.inventory, h)) {
      const k = refKey(s.ref);
      const e = needers.get(k) ?? { ref: s.ref, hosts: [], ...(h.kind === 'cosigner' ? { shardId: h.shardId } : {}) };
      e.hosts.push(h.name);
      needers.set(k, e);
    }
  }
  const failures: { e: KryptonError; hosts: string[]; ref: SecretRef }[] = [];
  await Promise.all(
    [...needers.entries()].map(async ([k, { ref, hosts: hs, shardId }]) => {
      const p = o.store.current(ref);
      memo.set(`stored:${k}`, p);
      try {
        const v = await p;
        // A Horcrux key file must be one Horcrux accepts, not only JSON: the same checks as import-horcrux.
        if (v && (ref.kind === 'horcrux-ecies' || ref.kind === 'horcrux-shard') && shardId !== undefined) {
          const problem = storedKeyFileProblem(ref.kind, v.secret, shardId);
          if (problem) throw new KryptonError('E_INPUT', `${v.source} version ${v.version}: ${problem}`, { hint: 'import the key generation output again: krypton-secrets import-horcrux <dir> -i <inventory> --replace' });
        }
      } catch (err) {
        memo.delete(`stored:${k}`);
        failures.push({ e: toKryptonError(err), hosts: hs, ref });
      }
    }),
  );
  if (!failures.length) return;
  // A backend fault (a context, a right, a region) keeps its own code; invalid values are E_INPUT (exit 3).
  const backendFault = failures.find((f) => f.e.code !== 'E_INPUT');
  const forms = backendFault ? [] : await Promise.all(failures.map((f) => formFix(o.store, f.ref)));
  if (!backendFault && o.fixFormat && o.mode === 'apply' && forms.every((x) => x !== undefined)) {
    for (const [i, f] of failures.entries()) {
      const fix = forms[i]!;
      const w = await o.store.write(f.ref, fix.canonical, fix.raw.version);
      o.sink({ type: 'store-fixed', source: fix.raw.source, fromVersion: fix.raw.version, toVersion: w.version, fromSha256: fix.raw.secret.fingerprint(), toSha256: fix.canonical.fingerprint(), problem: fix.problem, hosts: f.hosts });
      const k = refKey(f.ref);
      const p = o.store.current(f.ref);
      memo.set(`stored:${k}`, p);
      await p; // the canonical form reads back as valid, or this throws with the store's own words
    }
    return;
  }
  const lead = backendFault ?? failures[0]!;
  const lines = failures.map((f) => `${f.e.message} (needed by ${f.hosts.join(', ')})`);
  const fixable = forms.filter((x) => x !== undefined).length;
  const hint = backendFault
    ? (lead.e.hint ?? 'fix the value in the store, then run again')
    : fixable === failures.length
      ? o.fixFormat && o.mode !== 'apply'
        ? 'only apply writes the canonical form: run apply with --fix-format (this plan changed nothing)'
        : `only the form is wrong: run apply with --fix-format to write the canonical form (64 lowercase hex, no 0x, no newline) as a new version, reported by fingerprint`
      : fixable > 0
        ? `--fix-format can fix only the form (0x, case, CR LF), not a wrong length or a non-hex byte: write a valid value (64 lowercase hex) as a new version of the others, e.g. with \`bao kv put\`, then run again`
        : KIND_SPECS[lead.ref.kind].format === 'hex64'
          ? 'no canonical form exists (a wrong length or a non-hex byte: --fix-format cannot fix it): write a valid value, 64 lowercase hex, as a new version in the store, then run again'
          : (lead.e.hint ?? 'fix the value in the store, then run again');
  throw new KryptonError(lead.e.code, `${lines.length === 1 ? lines[0] : `the store's values cannot be used:\n${lines.map((l) => `- ${l}`).join('\n')}`}; nothing was changed on any host`, { hint });
}

/** A hex64 value whose only fault is its form: what is wrong, and its canonical form; undefined otherwise. */
async function formFix(store: SecretStore, ref: SecretRef): Promise<{ raw: RawValue; canonical: Secret; problem: string } | undefined> {
  if (KIND_SPECS[ref.kind].format !== 'hex64' || !store.raw) return undefined;
  const raw = await store.raw(ref);
  const canonical = raw ? canonicalHex64(raw.secret) : undefined;
  return raw && canonical ? { raw, canonical, problem: hex64Problem(raw.secret) ?? 'not canonical' } : undefined;
}

/**
 * apply: takes the run lock on every selected host before the first step anywhere — not wave by wave — so a second
 * run cannot reach a later wave's node while this one is in its canary wave (and a rotation cannot be overtaken).
 * When another run holds any host's lock, every lock taken here is released and the run stops with that host's
 * E_PLAN_CONFLICT: nothing has changed. A host that cannot be reached keeps its connect error, and fails alone
 * when its turn comes.
 */
async function lockAll(o: RunOptions, hosts: readonly Host[], locks: Map<string, Promise<HostLock>>): Promise<void> {
  const connect = async (h: Host) => boundTransport(await o.connect(h), execBound(h, undefined, o.timeoutSeconds));
  const taken = await lockInOrder(hosts.filter((h) => !locks.has(h.name)), connect, { stopOn: 'E_PLAN_CONFLICT' });
  for (const [name, p] of taken) locks.set(name, p);
}

/**
 * Connects to every host at once, then takes the run locks one host after another in name order — the same order
 * in every run, so two runs started together never each hold part of the other's hosts: the first to lock the
 * first shared host gets all of them, the other stops. `stopOn`: the error codes that release every lock taken and
 * throw (E_PLAN_CONFLICT: another run holds one; `any`: also a host that cannot be reached).
 */
async function lockInOrder(hosts: readonly Host[], connect: (h: Host) => Promise<Transport>, o: { stopOn: 'E_PLAN_CONFLICT' | 'any' }): Promise<Map<string, Promise<HostLock>>> {
  const conns = new Map(hosts.map((h) => [h.name, connect(h)] as const));
  for (const c of conns.values()) c.catch(() => undefined);
  const out = new Map<string, Promise<HostLock>>();
  const held: HostLock[] = [];
  for (const h of [...hosts].sort((x, y) => (x.name < y.name ? -1 : x.name > y.name ? 1 : 0))) {
    const p = conns.get(h.name)!.then((t) => lockHost(h, t));
    p.catch(() => undefined); // awaited here, and again by the host's own play
    out.set(h.name, p);
    try {
      held.push(await p);
    } catch (err) {
      const e = toKryptonError(err, 'E_SSH_CONNECT');
      if (o.stopOn === 'any' || e.code === 'E_PLAN_CONFLICT') {
        for (const l of held) l.release();
        throw e.code === 'E_PLAN_CONFLICT'
          ? new KryptonError('E_PLAN_CONFLICT', `${e.message}; this run took no step on any host`, { hint: e.hint ?? 'wait for the other run to finish, then run again', ...(e.host ? { host: e.host } : {}) })
          : e;
      }
    }
  }
  return out;
}

/** What plans may know about the store. */
export function capabilities(store: SecretStore): StoreCapabilities {
  return { delivery: store.delivery, hostCopies: store.hostFetch?.keepsCopy === true };
}

/**
 * What a step (or a host's play) threw, as the error reported for that host: a KryptonError as it is; anything
 * else is a bug in a task or in the executor — E_INTERNAL naming the task, the original (scrubbed) message and,
 * in `cause`, the stack (`--debug` prints it); never a stack trace in the message.
 */
function internalError(err: unknown, task?: string): KryptonError {
  if (err instanceof KryptonError) return err;
  const msg = toKryptonError(err).message;
  return new KryptonError('E_INTERNAL', `${task ?? 'the executor'} failed with an internal error: ${msg}`, {
    hint: 'this is a bug in krypton-secrets: please report it with the output of the same command with --debug (it prints the stack trace)',
    cause: err,
    ...(task ? { task } : {}),
  });
}

function describePlan(p: Plan): string {
  if (p.kind === 'change') return `wants to ${p.actions.map((a) => a.description).join('; ')}`;
  if (p.kind === 'refuse') return p.error.message;
  return p.reason;
}

function fail(o: RunOptions, host: Host, state: HostState, e: KryptonError, task?: string, name?: string, durationMs = 0): void {
  e.host ??= host.name;
  e.task ??= task;
  state.status = 'failed';
  state.error = e;
  if (task) o.sink({ type: 'step', host: host.name, task, name: name ?? task, status: 'failed', error: e, durationMs });
  o.sink({ type: 'host-done', host: host.name, status: 'failed', error: e });
}

function summarise(states: Map<string, HostState>): RunSummary {
  const hosts: RunSummary['hosts'] = {};
  let changed = 0;
  let unchanged = 0;
  let failed = 0;
  let skipped = 0;
  for (const [name, st] of states) {
    hosts[name] = { status: st.status, ...(st.error ? { error: st.error.toJSON() } : {}) };
    if (st.status === 'changed') changed++;
    else if (st.status === 'unchanged') unchanged++;
    else if (st.status === 'failed') failed++;
    else skipped++;
  }
  return { ok: failed === 0 && skipped === 0, changed, unchanged, failed, skipped, hosts };
}

export interface HostLock {
  release(): void;
  warning?: string;
}

/**
 * Takes the run lock on every host in `hosts` before anything is written anywhere (a rollback writes its
 * backend version first). Resolves with the locks for {@link RunOptions.locks}; if any host refuses, releases
 * the others and throws that host's E_PLAN_CONFLICT (or connection error): nothing has changed.
 */
export async function acquireHostLocks(hosts: Host[], connect: (h: Host) => Promise<Transport>): Promise<Map<string, Promise<HostLock>>> {
  return lockInOrder(hosts, connect, { stopOn: 'any' });
}

/** The host-side lock file; /run is a tmpfs, so a reboot clears it with everything else. */
const LOCK_FILE = '/run/lock/krypton-secrets.lock';
const LOCK_READY = 'krypton-secrets-lock-held';

/**
 * Takes the host's run lock: `flock -n` on LOCK_FILE, held by a host-side process whose stdin is a channel of
 * a connection of its own (Transport.hold: with sshd's MaxSessions 1 a lock on the task connection would starve
 * every exec) — released at the end of the run, or by the host itself when that connection dies (no stale locks). A second concurrent apply (another operator, another terminal) fails that host with
 * E_PLAN_CONFLICT instead of interleaving restarts or JWT_PATH edits. Hosts without flock run unlocked, with a
 * warning. Transports without `hold` (tests' fakes) are not locked.
 */
async function lockHost(host: Host, t: Transport): Promise<HostLock> {
  if (!t.hold) return { release: () => undefined };
  const script = `mkdir -p /run/lock 2>/dev/null; command -v flock >/dev/null 2>&1 || exit 127; exec flock -n -E 75 ${LOCK_FILE} sh -c 'echo ${LOCK_READY}; exec cat >/dev/null'`;
  const r = await t.hold(['sh', '-c', script], LOCK_READY);
  if (r.held) return { release: r.release };
  if (r.code === 127) return { release: () => undefined, warning: 'flock is not installed: this run does not lock the host against a concurrent run' };
  if (r.code === 75) {
    throw new KryptonError('E_PLAN_CONFLICT', `another krypton-secrets run is working on ${host.name} (it holds ${LOCK_FILE})`, {
      hint: 'wait for it to finish, then run again (the lock goes when that run ends or its connection drops)',
      host: host.name,
    });
  }
  throw new KryptonError('E_SSH_EXEC', `could not take the run lock on ${host.name} (exit ${r.code}${r.stderr ? `: ${r.stderr}` : ''})`, { host: host.name, hint: 'check /run/lock on the host' });
}
