import type { RunEvent, RunSummary } from '../core/events.ts';
import type { KryptonError } from '../core/errors.ts';
import { shortFingerprint } from '../core/secret.ts';

/** Writes one line of text (no trailing newline needed). */
export type LineWriter = (line: string) => void;

/** The `--json` form of an event: one JSON object per line; the summary is flattened (`{"type":"summary","ok":…}`). */
export function eventToJson(e: RunEvent): string {
  if (e.type === 'summary') return JSON.stringify({ type: 'summary', ...e.summary });
  if ((e.type === 'step' || e.type === 'host-done') && e.error) return JSON.stringify({ ...e, error: e.error.toJSON() });
  return JSON.stringify(e);
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

export function formatSummary(s: RunSummary): string {
  const parts = [`${s.changed} changed`, `${s.unchanged} unchanged`, `${s.failed} failed`, ...(s.skipped ? [`${s.skipped} skipped`] : [])];
  const total = s.changed + s.unchanged + s.failed + s.skipped;
  const good = s.changed + s.unchanged;
  return `${s.ok ? '✔' : '✖'} ${good} of ${total} host(s) ok: ${parts.join(', ')}${s.changed === 0 && s.ok ? ' — nothing to change' : ''}`;
}
