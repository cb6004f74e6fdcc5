import type { EventSink, RunEvent, RunSummary } from '../core/events.ts';
import { ERROR_CODES, KryptonError, scrubText, toKryptonError } from '../core/errors.ts';
import { shortFingerprint } from '../core/secret.ts';

/** Writes one line of text (no trailing newline needed). */
export type LineWriter = (line: string) => void;

/** The `--json` form of an event: one JSON object per line; the summary is flattened (`{"type":"summary","ok":…}`). */
export function eventToJson(e: RunEvent, meta?: JsonMeta): string {
  const head = meta ? { ts: (meta.now?.() ?? new Date()).toISOString(), run_id: meta.runId } : {};
  if (e.type === 'summary') return JSON.stringify({ type: 'summary', ...head, ...e.summary });
  const { type, ...rest } = e;
  if ((e.type === 'step' || e.type === 'host-done') && e.error) return JSON.stringify({ type, ...head, ...rest, error: e.error.toJSON() });
  return JSON.stringify({ type, ...head, ...rest });
}

/** What every `--json` / `--log` line carries besides the event: `ts` (ISO 8601, UTC, milliseconds) and `run_id`. */
export interface JsonMeta {
  /** One id per CLI run (16 hex), the same on every line of the run. */
  runId: string;
  now?: () => Date;
}

/** Plain, greppable lines for logs and non-TTY output: `<host>  <task>  <status>  <detail>`. */
export function plainRenderer(write: LineWriter): (e: RunEvent) => void {
  return (e) => {
    switch (e.type) {
      case 'run-start':
        write(`${e.command} ${e.playbook} on ${e.hosts.length} host(s): ${e.hosts.join(', ')}`);
        break;
      case 'play-start':
        write(`== ${e.play} (${e.hosts.length} host(s))`);
        break;
      case 'wave-start':
        write(`-- wave ${e.wave}: ${e.hosts.join(', ')}`);
        break;
      case 'step':
        if (e.status === 'ok') write(`${e.host}  ${e.task}  ok  ${e.reason ?? ''}`);
        else if (e.status === 'changed') write(`${e.host}  ${e.task}  changed  ${(e.actions ?? []).join('; ')}`);
        else if (e.status === 'skipped') write(`${e.host}  ${e.task}  skipped  ${e.reason ?? ''}`);
        else if (e.status === 'failed' && e.error) write(formatFailure(e.error, e.host, e.task));
        break;
      case 'host-done':
        if (e.status === 'failed' && e.error && !e.error.task) write(formatFailure(e.error, e.host));
        else if (e.status === 'skipped') write(`${e.host}  skipped  ${e.error?.message ?? ''}`);
        break;
      case 'warning':
        write(`warning${e.host ? ` ${e.host}` : ''}: ${e.message}`);
        break;
      case 'store-fixed':
        write(formatStoreFixed(e));
        break;
      case 'summary':
        write(formatSummary(e.summary));
        break;
      default:
        break;
    }
  };
}

/** `fixed  <source>: v1 (sha256:…) -> v2 (sha256:…) in canonical form (was: …; needed by …)` — fingerprints, never the value. */
export function formatStoreFixed(e: Extract<RunEvent, { type: 'store-fixed' }>): string {
  return `fixed  ${e.source}: v${e.fromVersion} (${shortFingerprint(e.fromSha256)}) -> v${e.toVersion} (${shortFingerprint(e.toSha256)}), 64 lowercase hex (was: ${e.problem}; needed by ${e.hosts.join(', ')})`;
}

/** CONVENTIONS.md "Errors a user sees": what failed where, why, and a hint. */
export function formatFailure(err: KryptonError, host?: string, task?: string): string {
  const head = ['✖', host ?? err.host, task ?? err.task, err.code].filter(Boolean).join('  ');
  return [head, `  ${err.message.split('\n').join('\n  ')}`, ...(err.hint ? [`  hint: ${err.hint}`] : [])].join('\n');
}

/**
 * For `--debug`: the stack trace of an internal error, scrubbed of secrets — of what was thrown (an E_INTERNAL's
 * `cause`), or of anything thrown that is not a KryptonError. Undefined for the errors a user is meant to see
 * (every other code): they carry their what, why and hint, not a trace.
 */
export function debugStack(err: unknown): string | undefined {
  if (err instanceof KryptonError && err.code !== 'E_INTERNAL') return undefined;
  const c = err instanceof KryptonError ? err.cause : err;
  const stack = c instanceof Error && c.stack ? c.stack : err instanceof Error ? err.stack : undefined;
  return scrubText(stack ?? String(err));
}

/** `--debug`: passes every event on, then writes the stack of each host's internal error once (to `write`: stderr). */
export function withDebugStacks(sink: EventSink, write: LineWriter): EventSink {
  const shown = new Set<unknown>();
  return (e) => {
    sink(e);
    if ((e.type !== 'step' && e.type !== 'host-done') || !e.error || shown.has(e.error)) return;
    shown.add(e.error);
    const stack = debugStack(e.error);
    if (stack) write(`${e.host}: ${stack}`);
  };
}

/**
 * The CLI's one top-level catch: what escaped a command, as one failure (a `--json` error object on `out`, else the
 * three lines on `err`), its stack on `err` only with `debug` and only for an internal error. Returns the exit code.
 */
export function reportError(
  e: unknown,
  o: { json: boolean; debug: boolean; jsonLine?: (line: { type: string } & Record<string, unknown>) => string },
  out: LineWriter,
  err: LineWriter,
): number {
  const ke = toKryptonError(e);
  if (o.json) out((o.jsonLine ?? JSON.stringify)({ type: 'error', error: ke.toJSON() }));
  else err(formatFailure(ke));
  const stack = o.debug ? debugStack(e) : undefined;
  if (stack) err(stack);
  return ERROR_CODES[ke.code] ?? 1;
}

export function formatSummary(s: RunSummary): string {
  const parts = [`${s.changed} changed`, `${s.unchanged} unchanged`, `${s.failed} failed`, ...(s.skipped ? [`${s.skipped} skipped`] : [])];
  const total = s.changed + s.unchanged + s.failed + s.skipped;
  const good = s.changed + s.unchanged;
  return `${s.ok ? '✔' : '✖'} ${good} of ${total} host(s) ok: ${parts.join(', ')}${s.changed === 0 && s.ok ? ' — nothing to change' : ''}`;
}
