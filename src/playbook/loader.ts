import { resolve } from 'node:path';
import { z } from 'zod';
import { KryptonError } from '../core/errors.ts';
import type { AnyTask } from '../model/task.ts';
import { loadYaml, locate, validate, type YamlSource } from '../core/yaml-source.ts';
import { RENAMED_TASKS, TASKS } from '../tasks/index.ts';

/** One entry of `serial`: a host count or a percentage of the play's hosts. */
export type SerialStep = number | `${number}%`;

export interface Step {
  /** Display name (the entry's `name`, else the task's summary). */
  name: string;
  task: AnyTask;
  /** Validated params (after the task's schema filled in defaults). */
  params: unknown;
  /** `timeout_seconds` on the step: how long it waits to converge after it applied (replaces the task's default). */
  timeoutSeconds?: number;
  /** `exec_timeout_seconds` on the step: the bound of each remote command the step runs. */
  execTimeoutSeconds?: number;
}

/**
 * Keys every task entry takes beside its own params (seconds): the step's wait bound and its per-command bound.
 * They win over the inventory's `timeouts:` for this step; `--timeout` wins over both.
 */
export const STEP_TIMEOUT_KEYS = {
  timeout_seconds: z.number().int().min(1).max(3600).optional(),
  exec_timeout_seconds: z.number().int().min(1).max(3600).optional(),
};

/** The task's params schema with the step keys added (a strict object, so unknown keys stay errors). */
function withStepKeys(schema: z.ZodType): z.ZodType {
  // Every task's params are `z.strictObject({...}).prefault({})`: add the keys to the inner object.
  const inner = schema instanceof z.ZodPrefault ? (schema.unwrap() as z.ZodType) : schema;
  if (!(inner instanceof z.ZodObject)) return schema;
  return inner.extend(STEP_TIMEOUT_KEYS).prefault({});
}

export interface Play {
  name: string;
  /** `nodes`, `validators`, `rpc`, `cosigners`, `all`, a group of the inventory's `groups:`, or host/group names. */
  hosts: string | string[];
  /** `file:line:col` of each name in a `hosts:` list (same order), for errors about a name the inventory lacks. */
  hostsAt?: string[];
  /** Wave sizes; the last repeats until every host has had its turn. Empty: one wave with every host. */
  serial: SerialStep[];
  /** At most this many validators in a disruptive step (a restart) at once. */
  maxValidatorsDown: number;
  /** At most this many RPC nodes in a disruptive step at once (default: no limit). */
  maxRpcDown: number;
  steps: Step[];
}

export interface Playbook {
  file: string;
  plays: Play[];
}

const serialStep = z.union([
  z.number().int().min(1),
  z.string().regex(/^([1-9][0-9]?|100)%$/, 'expected a percentage such as "25%"'),
]);

const playSchema = z.strictObject({
  name: z.string().min(1),
  // A built-in selection or a group name of the inventory (checked against it when the play runs), or a list of host/group names.
  hosts: z.union([z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'expected nodes, validators, rpc, cosigners, all, a group name, or a list of host names'), z.array(z.string().min(1)).min(1)]),
  serial: z.union([serialStep, z.array(serialStep).min(1)]).optional(),
  max_validators_down: z.number().int().min(1).default(1),
  max_rpc_down: z.number().int().min(1).optional(),
  tasks: z.array(z.union([z.string(), z.record(z.string(), z.unknown())])).min(1),
});

const playbookSchema = z.array(playSchema, { error: 'expected a list of plays (each with name, hosts, tasks)' }).min(1);

/**
 * Loads a playbook: a YAML list of plays, each naming its hosts, its wave sizes (`serial`), the validator
 * budget, and its tasks (a task id, or a one-key map `task.id: {params}` with an optional `name`). Task ids
 * and params are checked against the task registry; every task's params may also hold `timeout_seconds` (the
 * step's wait bound) and `exec_timeout_seconds` (each of its remote commands), seconds 1..3600. Throws KryptonError E_PLAYBOOK at `file:line:col`.
 */
export async function loadPlaybook(file: string): Promise<Playbook> {
  const abs = resolve(file);
  const { source, value } = await loadYaml(abs, 'E_PLAYBOOK');
  const raw = validate(source, playbookSchema, value, 'E_PLAYBOOK', 'playbook');
  return {
    file: abs,
    plays: raw.map((p, i) => ({
      name: p.name,
      hosts: p.hosts,
      ...(Array.isArray(p.hosts) ? { hostsAt: p.hosts.map((_, k) => locate(source, [i, 'hosts', k])) } : {}),
      serial: p.serial === undefined ? [] : ((Array.isArray(p.serial) ? p.serial : [p.serial]) as SerialStep[]),
      maxValidatorsDown: p.max_validators_down,
      maxRpcDown: p.max_rpc_down ?? Number.MAX_SAFE_INTEGER,
      steps: p.tasks.map((t, j) => toStep(source, [i, 'tasks', j], t)),
    })),
  };
}

function toStep(source: YamlSource, path: (string | number)[], entry: string | Record<string, unknown>): Step {
  let id: string;
  let params: unknown = {};
  let name: string | undefined;
  if (typeof entry === 'string') {
    id = entry;
  } else {
    const keys = Object.keys(entry).filter((k) => k !== 'name');
    if (keys.length !== 1) {
      throw new KryptonError('E_PLAYBOOK', `${locate(source, path)}: a task entry needs exactly one task id (and optionally name:), found ${keys.length ? keys.join(', ') : 'none'}`, {
        hint: `e.g. - mount.tmpfs: { size_bytes: 1048576 }; known tasks: ${[...TASKS.keys()].join(', ')}`,
      });
    }
    id = keys[0]!;
    params = entry[id] ?? {};
    name = typeof entry['name'] === 'string' ? entry['name'] : undefined;
  }
  const task = TASKS.get(id);
  const renamed = RENAMED_TASKS.get(id);
  if (!task && renamed) {
    throw new KryptonError('E_PLAYBOOK', `${locate(source, path, typeof entry === 'string' ? undefined : id)}: task ${JSON.stringify(id)} was replaced by ${JSON.stringify(renamed)} (one task per concern, for nodes and cosigners alike)`, {
      hint: `write ${renamed} instead (see playbooks/ for the current playbooks)`,
    });
  }
  if (!task) {
    throw new KryptonError('E_PLAYBOOK', `${locate(source, path, typeof entry === 'string' ? undefined : id)}: unknown task ${JSON.stringify(id)}`, {
      hint: `known tasks: ${[...TASKS.keys()].join(', ')}`,
    });
  }
  const validated = validate(source, withStepKeys(task.params), params, 'E_PLAYBOOK', 'playbook', typeof entry === 'string' ? path : [...path, id]) as Record<string, unknown>;
  const { timeout_seconds: timeoutSeconds, exec_timeout_seconds: execTimeoutSeconds, ...own } = validated;
  return {
    name: name ?? task.summary,
    task,
    params: own,
    ...(typeof timeoutSeconds === 'number' ? { timeoutSeconds } : {}),
    ...(typeof execTimeoutSeconds === 'number' ? { execTimeoutSeconds } : {}),
  };
}

