/**
 * Shared helpers of the fault matrix's transport half (test/faults/transport.int.test.ts): a CLI run that can be
 * hit at a chosen event (a step of a host done), real SSH faults on a sandbox host (its sshd sessions killed; its
 * sshd's MaxSessions), and what el and cl really read (their own start lines, with the fingerprint of the file
 * they loaded) replayed over time.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { hostExec, readSandboxInfo, startHostSshd, stopHostSshd, type SandboxInfo } from '../sandbox/index.ts';
import { netnsPids } from '../sandbox/hosts.ts';
import { killAndWait, procComm } from '../sandbox/proc.ts';
import { BIN, REPO, sha256, type CliResult } from '../integration/helpers.ts';

/** Runs the real CLI with `--json`; `onEvent` sees each event as it is printed (and may act on the fleet then). */
export function cliWatched(
  info: SandboxInfo,
  args: string[],
  onEvent: (e: Record<string, unknown>, child: ChildProcess) => void | Promise<void> = () => undefined,
): Promise<CliResult> {
  return new Promise((resolveP, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd: REPO, env: { ...process.env, ...info.env, CI: 'true' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let partial = '';
    const acts: Promise<unknown>[] = [];
    child.stdout.on('data', (c: Buffer) => {
      stdout += c.toString();
      partial += c.toString();
      const lines = partial.split('\n');
      partial = lines.pop() ?? '';
      for (const l of lines) {
        if (!l.startsWith('{')) continue;
        acts.push(Promise.resolve(onEvent(JSON.parse(l) as Record<string, unknown>, child)).catch((e: unknown) => (stderr += `\n[test hook failed: ${String(e)}]`)));
      }
    });
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('error', reject);
    child.on('close', async (code) => {
      await Promise.all(acts);
      const events = stdout
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as Record<string, unknown>);
      resolveP({ code: code ?? -1, stdout, stderr, events, summary: events.find((e) => e['type'] === 'summary') as CliResult['summary'] });
    });
  });
}

/** True for the `step` event that ends `task` on `host` (whatever its status). */
export const stepDone = (e: Record<string, unknown>, host: string, task: string): boolean => e['type'] === 'step' && e['host'] === host && e['task'] === task;

/**
 * Drops every SSH connection to `host` at once, as a network cut or a killed sshd would: SIGKILL to each of the
 * host's sshd session processes (those in its network namespace other than the listener, which keeps accepting).
 * Returns how many were killed.
 */
export async function dropSshSessions(host: string): Promise<number> {
  const h = readSandboxInfo().hosts[host]!;
  const pids = (await netnsPids(h.netns)).filter((p) => p !== h.sshdPid && ['sshd', 'sshd-session'].includes(procComm(p)));
  await killAndWait(pids, 'SIGKILL');
  return pids.length;
}

/** Sets `MaxSessions n` in `host`'s sshd_config and restarts its sshd (existing sessions go). */
export async function setMaxSessions(host: string, n: number): Promise<void> {
  const h = readSandboxInfo().hosts[host]!;
  const file = join(h.hostDir, 'sshd_config');
  await writeFile(file, (await readFile(file, 'utf8')).replace(/^MaxSessions \d+$/m, `MaxSessions ${n}`));
  await stopHostSshd(host);
  await startHostSshd(host);
}

/** One start or exit of el or cl, from its own log: the short fingerprint (`sha256:` + 12 hex) of the file it loaded. */
export interface ServiceEvent {
  t: number;
  svc: 'el' | 'cl';
  kind: 'start' | 'exit';
  fingerprint?: string;
  pid?: number;
}

/** el's and cl's start and exit lines since `sinceMs` (el.log, cl-daemon.log: `<ISO time> el: listening on …, jwt <path> (<fp>), pid N`). */
export async function serviceEvents(host: string, sinceMs = 0): Promise<ServiceEvent[]> {
  const out: ServiceEvent[] = [];
  for (const [svc, file] of [['el', 'el.log'], ['cl', 'cl-daemon.log']] as const) {
    const text = (await hostExec(host, ['cat', `/var/log/krypton/${file}`])).stdout;
    for (const line of text.split('\n')) {
      const m = /^(\S+) (el|cl): (.*)$/.exec(line);
      if (!m || m[2] !== svc) continue;
      const t = Date.parse(m[1]!);
      if (!(t >= sinceMs)) continue;
      const start = /(?:listening on \S+|started), jwt \S+ \((sha256:[0-9a-f]{12})\), .*pid (\d+)/.exec(m[3]!);
      if (start) out.push({ t, svc, kind: 'start', fingerprint: start[1]!, pid: Number(start[2]) });
      else if (/exiting/.test(m[3]!)) out.push({ t, svc, kind: 'exit' });
    }
  }
  return out.sort((a, b) => a.t - b.t);
}

/**
 * Replays el's and cl's starts and exits (and `blackouts`: times every process of the host died, e.g. a reboot) and
 * returns each moment both ran on different JWTs: "<time> el <fp> / cl <fp>". Should be empty.
 */
export function splitMoments(events: readonly ServiceEvent[], blackouts: readonly number[] = []): string[] {
  const all = [...events.map((e) => ({ ...e })), ...blackouts.map((t) => ({ t, svc: 'all' as const, kind: 'exit' as const }))].sort((a, b) => a.t - b.t);
  const running: Record<'el' | 'cl', string | undefined> = { el: undefined, cl: undefined };
  const out: string[] = [];
  for (const e of all) {
    if (e.svc === 'all') {
      running.el = running.cl = undefined;
      continue;
    }
    running[e.svc] = e.kind === 'start' ? (e as ServiceEvent).fingerprint : undefined;
    if (running.el && running.cl && running.el !== running.cl) out.push(`${new Date(e.t).toISOString()} el ${running.el} / cl ${running.cl}`);
  }
  return out;
}

/** What the host's el and cl run on now (their newest start line, if that process lives) and jwt.hex's short fingerprint. */
export async function nodeNow(host: string): Promise<{ el?: string; cl?: string; file?: string }> {
  const evs = await serviceEvents(host);
  const now: { el?: string; cl?: string; file?: string } = {};
  for (const svc of ['el', 'cl'] as const) {
    const last = evs.filter((e) => e.svc === svc).at(-1);
    if (last?.kind === 'start' && (await hostExec(host, ['kill', '-0', String(last.pid)])).code === 0) now[svc] = last.fingerprint;
  }
  const f = await hostExec(host, ['cat', '/run/krypton-secrets/jwt.hex']);
  if (f.code === 0) now.file = `sha256:${sha256(f.stdout).slice(0, 12)}`;
  return now;
}

/** 401s in the CL's witness log (`cl.log`: `<unix seconds> <status>`) since `sinceMs`: a CL and an EL on different JWTs. */
export async function cl401s(host: string, sinceMs = 0): Promise<number[]> {
  const text = (await hostExec(host, ['cat', '/var/log/krypton/cl.log'])).stdout;
  return text
    .split('\n')
    .map((l) => l.split(' '))
    .filter((p) => p.length === 2 && Number(p[0]) * 1000 >= sinceMs && p[1] === '401')
    .map((p) => Number(p[0]));
}
