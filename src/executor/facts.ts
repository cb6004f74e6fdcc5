import { randomBytes } from 'node:crypto';
import { KryptonError, scrubText } from '../core/errors.ts';
import type { FactSpec, GatherEnv, RemoteFact } from '../model/task.ts';
import type { Transport } from '../core/transport.ts';
import { HOST_CLOCK_COMMAND, hostClockFrom, parseDateSeconds, type HostClock, type LaptopInstant } from '../model/clock.ts';

/** Each connection's latest host clock reading (model/clock.ts), from its latest facts exec. */
const lastClock = new WeakMap<Transport, HostClock>();

/** The host's latest clock reading on this connection (from its latest facts exec), or undefined. */
export function lastHostClock(transport: Transport): HostClock | undefined {
  return lastClock.get(transport);
}

const laptopInstant = (): LaptopInstant => ({ wallMs: Date.now(), monotonicMs: performance.now() });

/** The shell line that prints one fenced clock reading (`@@<b>-clock <unix seconds>`). */
const clockLine = (b: string): string => `printf '@@${b}-clock %s\\n' "$(${HOST_CLOCK_COMMAND} 2>/dev/null)"`;

/**
 * Reads the host's clock in an exec of its own (two readings, bracketed by the laptop's clocks); undefined when
 * the host gives no usable reading or the exec fails. Never throws.
 */
export async function readHostClock(transport: Transport): Promise<HostClock | undefined> {
  const b = `KC${randomBytes(6).toString('hex')}`;
  try {
    const before = laptopInstant();
    const res = await transport.exec(['sh', '-c', `${clockLine(b)}\n${clockLine(b)}`], { timeoutMs: 10_000 });
    const clock = clockOf(res.stdout, b, before, laptopInstant());
    if (clock) lastClock.set(transport, clock);
    return clock;
  } catch {
    return undefined;
  }
}

function clockOf(stdout: string, b: string, before: LaptopInstant, after: LaptopInstant): HostClock | undefined {
  const readings = stdout
    .split('\n')
    .filter((l) => l.startsWith(`@@${b}-clock `))
    .map((l) => parseDateSeconds(l.slice(b.length + 9)));
  return hostClockFrom(readings[0], readings.at(-1), before, after);
}

/**
 * Gathers a step's facts: every remote fact in ONE exec (one SSH channel: the snippets run in a subshell
 * each, their stdout fenced by a random boundary, stderr discarded), laptop facts concurrently. The exec also
 * reads the host's clock first and last (model/clock.ts); laptop facts get it from `env.hostClock()`, which
 * waits for this exec (or, with no remote fact to gather, gives the host's latest reading).
 * Throws E_FACT when the host's output cannot be split back into facts (or a parser refuses it with E_FACT), and
 * E_INTERNAL when a parser fails otherwise (a bug); a laptop fact's own error as it is.
 */
export async function gatherFacts(
  specs: Record<string, FactSpec<unknown>>,
  transport: Transport,
  env: GatherEnv,
  /** Remote facts already gathered (by {@link prefetchRemoteFacts}) and still valid: not gathered again. */
  prefetched?: Record<string, unknown>,
): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {};
  const remote = Object.entries(specs).filter((e): e is [string, RemoteFact<unknown>] => {
    if (e[1].kind !== 'remote') return false;
    if (prefetched && e[0] in prefetched) {
      out[e[0]] = prefetched[e[0]];
      return false;
    }
    return true;
  });
  const laptop = Object.entries(specs).filter(([, s]) => s.kind === 'laptop');
  let clockDone: (c: HostClock | undefined) => void = () => undefined;
  const clockOfThisExec = remote.length ? new Promise<HostClock | undefined>((r) => (clockDone = r)) : undefined;
  const laptopEnv: GatherEnv = {
    ...env,
    hostClock: async (o) => {
      if (o?.fresh) return readHostClock(transport);
      return (await clockOfThisExec) ?? lastClock.get(transport) ?? (await env.hostClock?.(o));
    },
  };
  const laptopDone = Promise.all(
    laptop.map(async ([k, s]) => {
      if (s.kind === 'laptop') out[k] = await s.gather(laptopEnv);
    }),
  );
  // Awaited below, after the remote exec: a laptop fact failing meanwhile (a stored value that is not valid) must
  // not be an unhandled rejection, which kills the process with a stack trace.
  laptopDone.catch(() => undefined);
  try {
    if (remote.length) await gatherRemote(remote, transport, out, clockDone);
  } catch (err) {
    // The step fails with the remote error, but only once its laptop facts (an Engine API probe, a store read)
    // are done: none may run on past the step, nor reject later with no one to catch it.
    await laptopDone.catch(() => undefined);
    throw err;
  }
  await laptopDone;
  return out;
}

/**
 * The remote facts in ONE exec, parsed into `out`; the host's clock is read before the first snippet and after the
 * last, and handed to `clockDone` (undefined when the exec fails, so no laptop fact waits for it forever).
 * Throws E_FACT (see {@link gatherFacts}).
 */
async function gatherRemote(remote: [string, RemoteFact<unknown>][], transport: Transport, out: Record<string, unknown>, clockDone: (c: HostClock | undefined) => void): Promise<void> {
  const b = `KF${randomBytes(6).toString('hex')}`;
  // The exit fence starts on a new line even when a snippet's output lacks a final newline; the parser
  // drops that one extra line break again.
  const script = [clockLine(b), ...remote.map(([k, s]) => `echo '@@${b} ${k}'\n( ${s.script}\n) </dev/null 2>/dev/null\nprintf '\\n@@${b}-exit %s\\n' "$?"`), clockLine(b)].join('\n');
  const before = laptopInstant();
  let clock: HostClock | undefined;
  let res;
  try {
    // Bounded by the transport's exec bound (timeouts.exec_seconds / exec_timeout_seconds / --timeout; 120 s).
    res = await transport.exec(['sh', '-c', script]);
    clock = clockOf(res.stdout, b, before, laptopInstant());
  } finally {
    clockDone(clock);
  }
  if (clock) lastClock.set(transport, clock);
  const sections = splitSections(res.stdout, b);
  for (const [k, s] of remote) {
    const sec = sections.get(k);
    if (!sec) {
      throw new KryptonError('E_FACT', `could not read fact ${k} from the host (exit ${res.code}${res.stderr ? `: ${res.stderr.trim().slice(-200)}` : ''})`, {
        hint: 'the host needs a POSIX sh with coreutils and util-linux (findmnt, stat, sha256sum)',
      });
    }
    try {
      out[k] = s.parse(sec.stdout, sec.exit);
    } catch (err) {
      // A parser refuses output with a KryptonError; anything else it throws is a bug in that parser.
      if (err instanceof KryptonError) throw err;
      throw new KryptonError('E_INTERNAL', `the parser of fact ${k} failed on the host's output: ${scrubText(err instanceof Error ? err.message : String(err))}`, {
        hint: 'this is a bug in krypton-secrets: please report it with the output of the same command with --debug (it prints the stack trace)',
        cause: err,
      });
    }
  }
}

function splitSections(stdout: string, b: string): Map<string, { stdout: string; exit: number }> {
  const map = new Map<string, { stdout: string; exit: number }>();
  const lines = stdout.split('\n');
  let cur: string | undefined;
  let buf: string[] = [];
  for (const line of lines) {
    if (line.startsWith(`@@${b}-exit `)) {
      if (cur !== undefined) map.set(cur, { stdout: buf.join('\n').replace(/\n$/, ''), exit: Number(line.slice(b.length + 8)) });
      cur = undefined;
      buf = [];
    } else if (line.startsWith(`@@${b} `)) {
      cur = line.slice(b.length + 3);
      buf = [];
    } else if (cur !== undefined) {
      buf.push(line);
    }
  }
  return map;
}

/**
 * Gathers the remote facts of several steps in ONE exec, keyed `<step>:<fact>`. Valid for a step as long as
 * no earlier step changed the host (a converged host then costs one round trip for all its facts).
 */
export async function prefetchRemoteFacts(
  steps: { index: number; specs: Record<string, FactSpec<unknown>> }[],
  transport: Transport,
  env: GatherEnv,
): Promise<Map<number, Record<string, unknown>>> {
  const combined: Record<string, FactSpec<unknown>> = {};
  for (const s of steps) for (const [k, spec] of Object.entries(s.specs)) if (spec.kind === 'remote') combined[`${s.index}:${k}`] = spec;
  const all = Object.keys(combined).length ? await gatherFacts(combined, transport, env) : {};
  const out = new Map<number, Record<string, unknown>>();
  for (const s of steps) {
    const mine: Record<string, unknown> = {};
    for (const k of Object.keys(s.specs)) if (`${s.index}:${k}` in all) mine[k] = all[`${s.index}:${k}`];
    out.set(s.index, mine);
  }
  return out;
}
