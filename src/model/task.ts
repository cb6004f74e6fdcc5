import type { z } from 'zod';
import type { Action } from './action.ts';
import { KryptonError, type ErrorCode } from '../core/errors.ts';
import type { Transport } from '../core/transport.ts';
import type { Host, Inventory } from './inventory.ts';
import type { Delivery, SecretStore } from './store.ts';
import type { HostClock } from './clock.ts';

/**
 * A fact gathered on the host by a read-only shell snippet. All remote facts of one step run in ONE exec
 * (one SSH channel, one round trip); each snippet's stdout and exit status are handed to `parse`.
 * Snippets use only POSIX sh + coreutils/util-linux; every interpolated value must be `shellQuote`d.
 */
export interface RemoteFact<T> {
  kind: 'remote';
  script: string;
  parse(stdout: string, exitCode: number): T;
}

/** A fact gathered on the laptop: from a backend, or through the host's SSH connection (e.g. a tunnel probe). */
export interface LaptopFact<T> {
  kind: 'laptop';
  gather(env: GatherEnv): Promise<T>;
}

export type FactSpec<T> = RemoteFact<T> | LaptopFact<T>;

/** What a laptop fact may use. `transport` is the host's one connection; `store` the inventory's secret store. */
export interface GatherEnv {
  host: Host;
  inventory: Inventory;
  transport: Transport;
  store: SecretStore;
  /** Values gathered by earlier laptop facts in this run (memoised per key, e.g. the JWT read from Vault). */
  memo<T>(key: string, get: () => Promise<T>): Promise<T>;
  /** What earlier steps of this run did that later plans must know (e.g. `rotated:<scope>` -> new version). */
  runState: ReadonlyMap<string, unknown>;
  /**
   * The host's clock against the laptop's (model/clock.ts), for laptop facts: the reading taken in this step's
   * facts exec (awaited until that exec ends), else the host's latest reading in this run; with `fresh`, a new
   * reading in an exec of its own. Undefined when the host's clock could not be read. Set by the executor's
   * gatherFacts; absent in callers that gather no host facts.
   */
  hostClock?(o?: { fresh?: boolean }): Promise<HostClock | undefined>;
}

/** What `plan` receives for each declared fact; a fact a task declares optional (`key?:`) may be absent. */
export type FactValues<F> = { [K in keyof F]: F[K] extends FactSpec<infer T> | undefined ? T : never };

/** Everything `plan` may look at besides params and facts. Pure data: no I/O, no clock. */
export interface PlanContext {
  host: Host;
  inventory: Inventory;
  /** True when an earlier step of this play that `triggersRestart` changed this host (a handler-like trigger). */
  restartPending: boolean;
  /** `--resume`: continue a halted rotation (write no new backend version). */
  resume: boolean;
  /** What the run's store can do (chosen once from the inventory). */
  store: StoreCapabilities;
}

/** What plans may know about the store: how values reach hosts, and whether hosts keep a copy (KMS blobs). */
export interface StoreCapabilities {
  delivery: Delivery;
  /** Hosts keep a non-secret copy of each value to fetch from (KMS blobs). */
  hostCopies: boolean;
}

/** A plan: actions to apply, nothing to do (always with a reason), or a refusal with a code and a hint. */
export type Plan =
  | { kind: 'change'; actions: Action[] }
  | { kind: 'noChange'; reason: string }
  | { kind: 'refuse'; error: KryptonError };

export function change(...actions: Action[]): Plan {
  return { kind: 'change', actions };
}

export function noChange(reason: string): Plan {
  return { kind: 'noChange', reason };
}

export function refuse(code: ErrorCode, message: string, hint: string): Plan {
  return { kind: 'refuse', error: new KryptonError(code, message, { hint }) };
}

/**
 * A task: `id` (`family.verb`), params schema (playbook YAML, snake_case), the facts it needs, and a pure
 * `plan`. After its actions are applied the executor gathers the facts again and plans again; the task has
 * converged when that second plan is `noChange`. With `settle`, it polls that way until it converges or the
 * timeout passes (E_TIMEOUT), e.g. waiting for an agent to render a file.
 */
export interface TaskDef<P = unknown, F extends Record<string, FactSpec<unknown>> = Record<string, FactSpec<unknown>>> {
  id: string;
  /** One line for people. */
  summary: string;
  /** Which hosts the task applies to; others are skipped with a reason. */
  appliesTo: 'node' | 'cosigner' | 'any';
  /**
   * The deliveries the task belongs to (default: all): `agent` tasks are skipped where the hosts fetch values
   * themselves, and so on. So one playbook serves every store.
   */
  delivery?: readonly Delivery[];
  params: z.ZodType<P>;
  facts(params: P, host: Host, inventory: Inventory): F;
  plan(params: P, facts: FactValues<F>, ctx: PlanContext): Plan;
  /**
   * Poll after apply until the plan is noChange: the interval and the default bound, grown with the host's work
   * (e.g. the services a restart waits for). The executor adds the host's measured round trip and lets the settings
   * (`timeout_seconds` on the step, `timeouts.step_seconds` in the inventory, `--timeout`) replace the default.
   */
  settle?: Settle | ((params: P, host: Host, inventory: Inventory) => Settle);
  /**
   * `validator-budget`: applying this task takes a node down (a restart). The executor holds the play's
   * budget (`max_validators_down` for validators) from apply until the task converges.
   */
  disruptive?: boolean;
  /** `once`: applied for the first host that reaches it in a run; the others wait and then re-plan. */
  once?: boolean;
  /** When this task changes a host, later steps see `restartPending` (el/cl must restart to read the JWT). */
  triggersRestart?: boolean;
  /**
   * A node's JWT change is one unit (new file, restart, probe): `opens` — applying this task may change what el
   * and cl will read (jwt.hex's content, JWT_PATH); `closes` — once it has converged, el and cl run on that file
   * and the Engine API accepted it. Between the two the executor does not stop the host for Ctrl-C (the steps up
   * to the closing one run). See docs/architecture.md, "A node's JWT change is a unit".
   */
  jwtUnit?: 'opens' | 'closes';
}

/** Identity helper that keeps `TaskDef` generics inferred at the definition site. */
export function defineTask<P, F extends Record<string, FactSpec<unknown>>>(def: TaskDef<P, F>): TaskDef<P, F> {
  return def;
}

/** How to wait for a task to converge after apply: poll interval and default overall bound, milliseconds. */
export interface Settle {
  intervalMs: number;
  timeoutMs: number;
  /** What the default bound is made of, for people (e.g. "30 s per service it restarts: el, cl"). */
  basis?: string;
}

/** A task with its generics erased, as the registry and executor hold it. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyTask = TaskDef<any, any>;

/** A laptop-side fact from a function of the gather environment. */
export function laptopFact<T>(gather: (env: GatherEnv) => Promise<T>): LaptopFact<T> {
  return { kind: 'laptop', gather };
}
