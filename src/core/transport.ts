import type { Duplex } from 'node:stream';
import type { Secret } from '../core/secret.ts';

/** Result of a remote command. `code` is the exit status (a signal death gives 128+n, as a shell does). */
export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface ExecOptions {
  /** Bytes written to the command's stdin, then stdin is closed. Secrets go here, never in argv. */
  stdin?: Secret | string | Buffer;
  /** Working directory on the host (the transport prepends a quoted `cd -- <cwd> &&`). */
  cwd?: string;
  /** Kill the channel after this many milliseconds (default 120 000). */
  timeoutMs?: number;
  /** The hint of the timeout's error: which setting raises the bound (default: `timeouts.exec_seconds` / `--timeout`). */
  timeoutHint?: string;
}

export interface PutOptions {
  /** Final file mode as a number, e.g. 0o600. The file is created with it: never a wider window. */
  mode: number;
  /** Owner/group as names or numeric ids; applied before the atomic rename. */
  owner?: string;
  group?: string;
}

/**
 * One authenticated connection to one host, reused by every task that runs there.
 * Implementations bound concurrent channels per connection (8: OpenSSH MaxSessions defaults to 10).
 */
export interface Transport {
  /** Inventory name of the host. */
  readonly name: string;
  /**
   * Run `argv` on the host. Each element is single-quoted by the transport, so no element is ever
   * interpreted by the remote shell. Resolves with the exit code; does not throw on non-zero exit.
   * Throws KryptonError E_SSH_EXEC when the channel cannot be opened or times out.
   */
  exec(argv: string[], opts?: ExecOptions): Promise<ExecResult>;
  /**
   * Write `content` to `path` atomically over SFTP: open a same-directory temp name with flags `wx` and the
   * final mode, write, fsync, chown if asked, then `posix-rename@openssh.com` over `path`.
   * Throws KryptonError E_SFTP (message names the path, never the content).
   */
  put(path: string, content: Secret | string | Buffer, opts: PutOptions): Promise<void>;
  /**
   * A TCP stream to `host:port` as seen from the remote host (SSH `direct-tcpip`, like `ssh -L`), e.g. the
   * Engine API on 127.0.0.1:8551. Throws KryptonError E_SSH_EXEC when the host refuses the forward.
   */
  forward(host: string, port: number): Promise<Duplex>;
  /**
   * Runs `argv` and keeps its channel (and stdin) open until `release()`: for a lock held by a host-side
   * process for as long as this run needs it (and dropped by the host when the connection dies). The SSH
   * transport runs it on a connection of its own, so it never takes one of the task connection's channels
   * (sshd's MaxSessions counts per connection). Resolves once the command prints `readyLine` (held) or exits
   * first (not held: exit code and stderr tail). Throws KryptonError E_SSH_CONNECT / E_SSH_EXEC.
   */
  hold?(argv: string[], readyLine: string, timeoutMs?: number): Promise<{ held: true; release: () => void } | { held: false; code: number; stderr: string }>;
  /** Close the connection (idempotent). */
  close(): Promise<void>;
}

/** Single-quote one argument for a POSIX shell: `it's` -> `'it'\''s'`. */
export function shellQuote(arg: string): string {
  if (arg !== '' && /^[A-Za-z0-9_@%+=:,./-]+$/.test(arg)) return arg;
  return `'${arg.replace(/'/g, `'\\''`)}'`;
}

/** The command line an exec sends: every argv element quoted, optionally prefixed by `cd -- <cwd> &&`. */
export function commandLine(argv: string[], cwd?: string): string {
  const cmd = argv.map(shellQuote).join(' ');
  return cwd === undefined ? cmd : `cd -- ${shellQuote(cwd)} && ${cmd}`;
}
