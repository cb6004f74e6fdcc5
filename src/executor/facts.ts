import { randomBytes } from 'node:crypto';
import { KryptonError, scrubText } from '../core/errors.ts';
import type { FactSpec, GatherEnv, RemoteFact } from '../model/task.ts';
import type { Transport } from '../core/transport.ts';

/**
 * Gathers a step's facts: every remote fact in ONE exec (one SSH channel: the snippets run in a subshell
 * each, their stdout fenced by a random boundary, stderr discarded), laptop facts concurrently.
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
  const laptopDone = Promise.all(
    laptop.map(async ([k, s]) => {
      if (s.kind === 'laptop') out[k] = await s.gather(env);
    }),
  );
  // Awaited below, after the remote exec: a laptop fact failing meanwhile (a stored value that is not valid) must
  // not be an unhandled rejection, which kills the process with a stack trace.
  laptopDone.catch(() => undefined);
  try {
    if (remote.length) await gatherRemote(remote, transport, out);
  } catch (err) {
    // The step fails with the remote error, but only once its laptop facts (an Engine API probe, a store read)
    // are done: none may run on past the step, nor reject later with no one to catch it.
    await laptopDone.catch(() => undefined);
    throw err;
  }
  await laptopDone;
  return out;
}

/** The remote facts in ONE exec, parsed into `out`. Throws E_FACT (see {@link gatherFacts}). */
async function gatherRemote(remote: [string, RemoteFact<unknown>][], transport: Transport, out: Record<string, unknown>): Promise<void> {
  const b = `KF${randomBytes(6).toString('hex')}`;
  // The exit fence starts on a new line even when a snippet's output lacks a final newline; the parser
  // drops that one extra line break again.
  const script = remote.map(([k, s]) => `echo '@@${b} ${k}'\n( ${s.script}\n) </dev/null 2>/dev/null\nprintf '\\n@@${b}-exit %s\\n' "$?"`).join('\n');
  // Bounded by the transport's exec bound (timeouts.exec_seconds / exec_timeout_seconds / --timeout; 120 s).
  const res = await transport.exec(['sh', '-c', script]);
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
