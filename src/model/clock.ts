/**
 * The laptop–host clock arithmetic behind the Engine API probe — pure, no I/O, no clock of its own.
 *
 * The Engine API (ethereum/execution-apis src/engine/authentication.md) refuses a token whose `iat` is more than
 * 60 s from the execution client's clock. The probe therefore mints `iat` from the **host's** clock: every facts
 * exec reads it twice (`date -u +%s.%N`, first and last thing in the exec), and the laptop notes its own wall and
 * monotonic clocks just before and after the exec. As NTP does with one exchange, the offset is estimated from the
 * midpoints, and the uncertainty is half of what the round trip took beyond the host's own time between its two
 * readings. The host's "now" later on is the midpoint reading plus the laptop's monotonic time elapsed since.
 */

/** Maximum |now - iat| the Engine API accepts, seconds (authentication.md: "±60 seconds"). */
export const ENGINE_IAT_WINDOW_SECONDS = 60;

/**
 * verify's `clock` check fails beyond this laptop–host skew, seconds: half the Engine API's window, so a skew is
 * reported well before a token minted on either side could be refused, and far inside AWS SigV4's 5 minutes.
 */
export const CLOCK_SKEW_BOUND_SECONDS = 30;

/** The host-side reading: Unix seconds with nanoseconds (GNU/busybox date; a `date` without %N gives whole seconds). */
export const HOST_CLOCK_COMMAND = 'date -u +%s.%N';

/** One laptop–host clock comparison. All times in seconds except `monotonicMs`. */
export interface HostClock {
  /** The host's wall clock (Unix seconds) at the midpoint of its two readings. */
  hostSeconds: number;
  /** The laptop's monotonic clock (`performance.now()`, milliseconds) at the midpoint of the exec's round trip. */
  monotonicMs: number;
  /** Laptop minus host, seconds: positive when the laptop's clock is ahead (the host's behind). */
  skewSeconds: number;
  /** How far `skewSeconds` may be off, seconds (half the round trip not spent between the host's two readings). */
  uncertaintySeconds: number;
}

/** The laptop's two clocks at one instant: wall (Unix milliseconds, `Date.now()`) and monotonic (`performance.now()`). */
export interface LaptopInstant {
  wallMs: number;
  monotonicMs: number;
}

/**
 * One `date -u +%s.%N` output line as Unix seconds, or undefined when it is not one. A `date` that does not know
 * %N prints `%N` or `N` after the dot: whole seconds then.
 */
export function parseDateSeconds(text: string): number | undefined {
  const m = /^\s*(\d{1,12})(?:\.(\d{1,9}|%?N))?\s*$/.exec(text);
  if (!m) return undefined;
  const frac = m[2] && /^\d+$/.test(m[2]) ? Number(`0.${m[2]}`) : 0;
  return Number(m[1]) + frac;
}

/**
 * The comparison from the host's two readings (`hostFirst` ≤ `hostLast`, Unix seconds) taken inside an exec that
 * the laptop started at `before` and saw end at `after`. Undefined when the readings are unusable (missing,
 * out of order).
 */
export function hostClockFrom(hostFirst: number | undefined, hostLast: number | undefined, before: LaptopInstant, after: LaptopInstant): HostClock | undefined {
  if (hostFirst === undefined || hostLast === undefined || hostLast < hostFirst || after.monotonicMs < before.monotonicMs) return undefined;
  const laptopMid = (before.wallMs + after.wallMs) / 2000;
  const hostMid = (hostFirst + hostLast) / 2;
  const roundTrip = (after.monotonicMs - before.monotonicMs) / 1000;
  return {
    hostSeconds: hostMid,
    monotonicMs: (before.monotonicMs + after.monotonicMs) / 2,
    skewSeconds: laptopMid - hostMid,
    uncertaintySeconds: Math.max(0, (roundTrip - (hostLast - hostFirst)) / 2),
  };
}

/** The host's wall clock (Unix seconds) when the laptop's monotonic clock reads `monotonicNowMs`. */
export function hostNowSeconds(c: HostClock, monotonicNowMs: number): number {
  return c.hostSeconds + (monotonicNowMs - c.monotonicMs) / 1000;
}

/** True when the skew is beyond `boundSeconds` even at the edge of the reading's uncertainty. */
export function skewBeyond(c: HostClock, boundSeconds: number): boolean {
  return Math.abs(c.skewSeconds) - c.uncertaintySeconds > boundSeconds;
}

/** Whole seconds of a skew (laptop minus host, seconds) for people; the sign goes into words ({@link describeSkew}). */
export function skewWholeSeconds(skewSeconds: number): number {
  return Math.round(Math.abs(skewSeconds));
}

/** "the laptop's clock is 95 s ahead of val-1's" (or "behind"; "agrees with val-1's (within 1 s)"). */
export function describeSkew(skewSeconds: number, host: string): string {
  const n = skewWholeSeconds(skewSeconds);
  if (n === 0) return `the laptop's clock agrees with ${host}'s (within 1 s)`;
  return `the laptop's clock is ${n} s ${skewSeconds > 0 ? 'ahead of' : 'behind'} ${host}'s`;
}

/** "clock skew of 95 s (±60 s allowed)": the Engine API's limit, as the messages of E_CLOCK_SKEW say it. */
export function skewPhrase(skewSeconds: number, allowedSeconds = ENGINE_IAT_WINDOW_SECONDS): string {
  return `clock skew of ${skewWholeSeconds(skewSeconds)} s (±${allowedSeconds} s allowed)`;
}
