/**
 * Process helpers for the sandbox harness: run a command to completion, poll for readiness, kill and
 * wait. Argv arrays only; nothing here builds a shell string except `shQuote` for the few `sh -c`
 * scripts the harness itself writes.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';

/** Outcome of a finished command. `code` is the exit status, or 128 + signal number when killed. */
export interface RunResult {
  code: number;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  /** Written to the command's stdin, which is then closed. */
  input?: string | Buffer;
  /** Replaces the environment (default: the harness's own). */
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** SIGKILL after this many milliseconds (default 60 000). */
  timeoutMs?: number;
}

/** An exec failure, with the exit status in words and a trimmed stderr tail. */
export class SandboxError extends Error {
  override name = 'SandboxError';
}

const SIGNALS: Record<string, number> = { SIGHUP: 1, SIGINT: 2, SIGKILL: 9, SIGTERM: 15, SIGPIPE: 13, SIGABRT: 6, SIGSEGV: 11 };

/** Runs `cmd args` to completion; never throws for a non-zero exit (see `runOk`). */
export function run(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: opts.env ?? process.env, cwd: opts.cwd, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => err.push(d));
    child.stdin.on('error', () => {}); // EPIPE when the command ignores its stdin
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(new SandboxError(`cannot run ${cmd}: ${e.message}`));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({
        code: code ?? 128 + (signal ? (SIGNALS[signal] ?? 0) : 0),
        signal,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
      });
    });
    child.stdin.end(opts.input ?? '');
  });
}

/** Like `run`, but throws a SandboxError naming the command, its exit status and stderr tail. */
export async function runOk(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const r = await run(cmd, args, opts);
  if (r.code !== 0) {
    const tailOf = (s: string) => s.trim().split('\n').slice(-5).join('\n');
    throw new SandboxError(`${[cmd, ...args].join(' ')} exited with ${r.signal ?? `code ${r.code}`}: ${tailOf(r.stderr) || tailOf(r.stdout)}`);
  }
  return r;
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * Polls `check` every `intervalMs` (default 20) until it returns a truthy value, which is returned.
 * Throws a SandboxError "timed out after <timeoutMs> ms waiting for <what>" (default timeout 15 000).
 */
export async function waitFor<T>(what: string, check: () => T | Promise<T>, opts: { timeoutMs?: number; intervalMs?: number } = {}): Promise<NonNullable<T>> {
  const timeoutMs = opts.timeoutMs ?? 15_000;
  const until = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v) return v as NonNullable<T>;
    if (Date.now() > until) throw new SandboxError(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(opts.intervalMs ?? 20);
  }
}

/** True when a TCP connection to host:port is accepted within `timeoutMs` (default 500). */
export function tcpOpen(host: string, port: number, timeoutMs = 500): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect({ host, port });
    const done = (ok: boolean) => {
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(timeoutMs, () => done(false));
    sock.once('connect', () => done(true));
    sock.once('error', () => done(false));
  });
}

/** The process state letter from /proc/<pid>/stat, or undefined when the process is gone. */
function procState(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  } catch {
    return undefined;
  }
}

/** True when `pid` exists and is not a zombie. */
export function pidAlive(pid: number | undefined | null): boolean {
  if (!pid || pid <= 0) return false;
  const s = procState(pid);
  return s !== undefined && s !== 'Z' && s !== 'X';
}

/** The process's argv (empty when it is gone). */
export function procArgv(pid: number): string[] {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
  } catch {
    return [];
  }
}

/** The process's comm (short name), '' when gone. */
export function procComm(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return '';
  }
}

/** Sends `signal` to each pid (ignoring the gone), then waits up to `timeoutMs` for all to exit. */
export async function killAndWait(pids: readonly number[], signal: NodeJS.Signals = 'SIGKILL', timeoutMs = 5000): Promise<void> {
  for (const pid of pids) {
    try {
      process.kill(pid, signal);
    } catch {
      /* already gone */
    }
  }
  const until = Date.now() + timeoutMs;
  while (pids.some(pidAlive)) {
    if (Date.now() > until) {
      if (signal !== 'SIGKILL') return killAndWait(pids.filter(pidAlive), 'SIGKILL', timeoutMs);
      throw new SandboxError(`processes ${pids.filter(pidAlive).join(' ')} survived SIGKILL`);
    }
    await sleep(10);
  }
}

/** The last `lines` lines of a log file, indented for an error message ('' when unreadable). */
export function logTail(file: string, lines = 8): string {
  try {
    const t = readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines);
    return t.length && t[0] ? `\n  ${file}:\n    ${t.join('\n    ')}` : '';
  } catch {
    return '';
  }
}

/** Single-quotes `s` for a POSIX shell. */
export function shQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}
