/**
 * Wait bounds, in one place: how long one remote command may run (the exec bound) and how long a step waits for
 * the host to converge after it applied (the step bound). Users set them in seconds; each bound carries the words
 * that tell the user which setting raises it, so every timeout message names its setting.
 *
 * Exec bound, first set wins: `--timeout`, the step's `exec_timeout_seconds`, the host's `timeouts.exec_seconds`
 * (its own, then `defaults.timeouts`), else {@link DEFAULT_EXEC_SECONDS}.
 *
 * Step bound (tasks that wait, e.g. agent.start, node.restart-lockstep): `--timeout`, the step's `timeout_seconds`,
 * the host's `timeouts.step_seconds`, else the task's default — which grows with the work (30 s per service a
 * restart waits for, 10 s per file the agent renders, …) — plus {@link RTT_POLLS} times the host's slowest fact
 * round trip measured in this run: every poll of the wait costs one such round trip, so a loaded host gets the
 * same number of polls as a quiet one.
 */
import type { Transport, ExecOptions } from '../core/transport.ts';
import type { Host, Inventory } from '../model/inventory.ts';
import type { Settle } from '../model/task.ts';
import type { Step } from '../playbook/loader.ts';

/** Default bound of one remote command, seconds. */
export const DEFAULT_EXEC_SECONDS = 120;
/** Polls' worth of the host's measured fact round trip added to a step's default wait. */
export const RTT_POLLS = 10;

/** What every timeout hint offers, after the setting in force. */
const RAISE_EXEC = 'timeouts.exec_seconds in the inventory (defaults: or the host), exec_timeout_seconds on the playbook step, or --timeout <seconds>';
const RAISE_STEP = 'timeout_seconds on the playbook step, timeouts.step_seconds in the inventory (defaults: or the host), or --timeout <seconds>';

/** A bound: milliseconds, and the hint that names the setting that raises it. */
export interface Bound {
  ms: number;
  /** "… is --timeout 30: raise it …" — where this bound came from and what to change. */
  hint: string;
  /** One phrase for messages: "--timeout 30", "timeouts.exec_seconds of val-1 (45 s)", "the default 120 s". */
  source: string;
}

/** The exec bound for `host` (and `step`, when a step runs the command). See the module doc for the order. */
export function execBound(host: Host, step?: Pick<Step, 'execTimeoutSeconds' | 'task'>, cliSeconds?: number): Bound {
  const t = host.timeouts;
  const [s, source] =
    cliSeconds !== undefined
      ? [cliSeconds, `--timeout ${cliSeconds}`]
      : step?.execTimeoutSeconds !== undefined
        ? [step.execTimeoutSeconds, `exec_timeout_seconds: ${step.execTimeoutSeconds} on the ${step.task.id} step`]
        : t?.execSeconds !== undefined
          ? [t.execSeconds, `${t.execFrom ?? 'timeouts.exec_seconds'}: ${t.execSeconds}`]
          : [DEFAULT_EXEC_SECONDS, `the default ${DEFAULT_EXEC_SECONDS} s`];
  // --timeout wins over every other setting: it is the one to raise (or drop) when it is the bound.
  const raise = cliSeconds !== undefined ? 'a larger --timeout (or leave it out for the inventory\'s and playbook\'s settings)' : RAISE_EXEC;
  return { ms: s * 1000, source, hint: `the bound is ${source}; raise it with ${raise}, or check why the command hangs on ${host.name}` };
}

/**
 * The step bound for a task that settles: see the module doc. `rttMs` is the host's slowest fact round trip so far.
 * Returns the poll interval with the bound.
 */
export function stepBound(
  settle: Settle,
  host: Host,
  step: Pick<Step, 'timeoutSeconds' | 'task'>,
  rttMs: number,
  cliSeconds?: number,
): Bound & { intervalMs: number } {
  const t = host.timeouts;
  let ms: number;
  let source: string;
  if (cliSeconds !== undefined) [ms, source] = [cliSeconds * 1000, `--timeout ${cliSeconds}`];
  else if (step.timeoutSeconds !== undefined) [ms, source] = [step.timeoutSeconds * 1000, `timeout_seconds: ${step.timeoutSeconds} on the ${step.task.id} step`];
  else if (t?.stepSeconds !== undefined) [ms, source] = [t.stepSeconds * 1000, `${t.stepFrom ?? 'timeouts.step_seconds'}: ${t.stepSeconds}`];
  else {
    const extra = Math.ceil((RTT_POLLS * rttMs) / 1000) * 1000;
    ms = settle.timeoutMs + extra;
    source = `the default ${Math.round(ms / 1000)} s (${settle.basis ?? `${Math.round(settle.timeoutMs / 1000)} s for ${step.task.id}`}${extra ? ` + ${RTT_POLLS} × ${(rttMs / 1000).toFixed(1)} s measured round trip` : ''})`;
  }
  const raise = cliSeconds !== undefined ? 'a larger --timeout (or leave it out for the inventory\'s and playbook\'s settings)' : RAISE_STEP;
  return { ms, intervalMs: settle.intervalMs, source, hint: `the bound is ${source}; raise it with ${raise}` };
}

/** The task's settle (default bound) for this host, when it waits at all. */
export function settleOf(step: Pick<Step, 'task' | 'params'>, host: Host, inventory: Inventory): Settle | undefined {
  const s = step.task.settle;
  return typeof s === 'function' ? s(step.params, host, inventory) : s;
}

/**
 * `t` with `bound` as the default of every exec (and hold): a command given its own `timeoutMs` keeps it. The
 * timeout's message then names the setting that raises the bound.
 */
export function boundTransport(t: Transport, bound: Bound): Transport {
  const exec = (argv: string[], opts: ExecOptions = {}) =>
    t.exec(argv, { ...opts, timeoutMs: opts.timeoutMs ?? bound.ms, timeoutHint: opts.timeoutHint ?? bound.hint });
  return {
    name: t.name,
    exec,
    put: (path, content, opts) => t.put(path, content, opts),
    forward: (host, port) => t.forward(host, port),
    ...(t.hold ? { hold: (argv: string[], ready: string, ms?: number) => t.hold!(argv, ready, ms ?? bound.ms) } : {}),
    close: () => t.close(),
  };
}
