/**
 * Channels of one SSH connection as a shared, shrinkable resource (pure: no I/O, no clock; the caller sleeps).
 *
 * sshd limits the session channels (exec, shell, subsystem such as SFTP) one connection may have open at once —
 * OpenSSH's `MaxSessions`, 10 by default — and refuses one more with SSH_MSG_CHANNEL_OPEN_FAILURE (RFC 4254
 * section 5.1; OpenSSH answers "administratively prohibited: open failed"; other servers say "resource
 * shortage"). That refusal is back-pressure, not a failure of the step: the transport retries the open with a
 * bounded backoff and lowers that connection's channel limit (down to 1), and only after
 * {@link CHANNEL_RETRY}'s attempts does it fail, naming MaxSessions.
 */

/**
 * A counting semaphore whose limit can only go down: at most `max` holders; the rest wait in FIFO order.
 * `lower(n)` shrinks the limit (holders beyond it keep their slot until they release it; no waiter is admitted
 * until fewer than the new limit are held). `fail(err)` rejects every waiter and every later `acquire` (used when
 * the connection is gone). `onWait` is called each time an `acquire` has to queue (e.g. to close an idle SFTP
 * session that holds a slot).
 */
export class ChannelLimiter {
  #max: number;
  #active = 0;
  #queue: Array<{ resolve: (release: () => void) => void; reject: (e: Error) => void }> = [];
  #failed: Error | undefined;
  onWait: (() => void) | undefined;

  constructor(max: number) {
    if (!Number.isInteger(max) || max < 1) throw new RangeError(`channel limit must be a positive integer, got ${max}`);
    this.#max = max;
  }

  /** The current limit (channels at once). */
  get max(): number {
    return this.#max;
  }

  /** Channels held now. */
  get active(): number {
    return this.#active;
  }

  /** Callers waiting for a channel. */
  get waiting(): number {
    return this.#queue.length;
  }

  /** Resolves with a release function (idempotent) once a slot is free. */
  acquire(): Promise<() => void> {
    if (this.#failed) return Promise.reject(this.#failed);
    if (this.#active < this.#max && this.#queue.length === 0) {
      this.#active++;
      return Promise.resolve(this.#releaser());
    }
    const p = new Promise<() => void>((resolve, reject) => this.#queue.push({ resolve, reject }));
    this.onWait?.();
    return p;
  }

  /** Lowers the limit to `n` (at least 1; never raises it). Returns the limit now in force. */
  lower(n: number): number {
    const to = Math.max(1, Math.floor(n));
    if (to < this.#max) this.#max = to;
    return this.#max;
  }

  /** Reject all waiters and all future acquisitions with `err`. */
  fail(err: Error): void {
    this.#failed = err;
    const q = this.#queue;
    this.#queue = [];
    for (const w of q) w.reject(err);
  }

  #releaser(): () => void {
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.#active--;
      this.#drain();
    };
  }

  #drain(): void {
    while (this.#active < this.#max && this.#queue.length > 0) {
      const next = this.#queue.shift()!;
      this.#active++;
      next.resolve(this.#releaser());
    }
  }
}

/** How often and how patiently a refused channel open is tried again. */
export interface ChannelRetryPolicy {
  /** Opens tried in all (the first included). */
  attempts: number;
  /** Delay before the second try, in milliseconds; doubled for each later one. */
  baseDelayMs: number;
  /** Ceiling of one delay, in milliseconds. */
  maxDelayMs: number;
}

/** 8 opens, waiting 0.2, 0.4, 0.8, 1.6, 3.2, 4, 4 s between them (about 18 s in all, at most). */
export const CHANNEL_RETRY: ChannelRetryPolicy = { attempts: 8, baseDelayMs: 200, maxDelayMs: 4000 };

/**
 * Milliseconds to wait after the `failures`-th refused open (1-based) before trying again, or `undefined` when
 * the policy's attempts are used up. Exponential, capped, with jitter in [50 %, 100 %] of the step so connections
 * refused together do not retry together (`random` in [0, 1), default Math.random).
 */
export function channelRetryDelayMs(failures: number, policy: ChannelRetryPolicy = CHANNEL_RETRY, random: () => number = Math.random): number | undefined {
  if (!Number.isInteger(failures) || failures < 1) throw new RangeError(`failures must be a positive integer, got ${failures}`);
  if (failures >= policy.attempts) return undefined;
  const step = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (failures - 1));
  return Math.round(step * (0.5 + 0.5 * random()));
}

/**
 * The channel limit to use after sshd refused an open while `othersOpen` other channels of this connection were
 * open: sshd evidently allows no more than those, so the limit drops to that number (at least 1, never above
 * `current`). With none open, the refusal was momentary (or the server allows a single one): 1.
 */
export function loweredChannelLimit(current: number, othersOpen: number): number {
  return Math.max(1, Math.min(current, othersOpen));
}

/** RFC 4254 section 5.1 reason codes of SSH_MSG_CHANNEL_OPEN_FAILURE that mean "not now / not this many". */
export const OPEN_REFUSED_ADMINISTRATIVELY = 1;
export const OPEN_RESOURCE_SHORTAGE = 4;

/**
 * True when `err` (as ssh2 reports a failed channel open: message "(SSH) Channel open failure: …", `reason` the
 * RFC 4254 code) is sshd's back-pressure: administratively prohibited (OpenSSH's answer beyond MaxSessions) or
 * resource shortage. `kind` `forward`: only resource shortage (a direct-tcpip open refused administratively means
 * AllowTcpForwarding no, which no retry changes; MaxSessions does not count forwards).
 */
export function isChannelBackPressure(err: unknown, kind: 'session' | 'forward' = 'session'): boolean {
  if (!(err instanceof Error)) return false;
  const reason = (err as Error & { reason?: unknown }).reason;
  const msg = err.message;
  if (!/channel open failure/i.test(msg) && typeof reason !== 'number') return false;
  if (reason === OPEN_RESOURCE_SHORTAGE || /resource shortage/i.test(msg)) return true;
  if (kind === 'forward') return false;
  if (reason === OPEN_REFUSED_ADMINISTRATIVELY || /administratively prohibited|open failed/i.test(msg)) return true;
  // ssh2 reports a refusal without a code the same way; any other code (connect failed, unknown type) is not ours.
  return reason === undefined && /channel open failure/i.test(msg);
}
