import { Listr } from 'listr2';
import type { RunEvent, RunSummary } from '../core/events.ts';
import { formatFailure, formatStoreFixed, formatSummary, type LineWriter } from './render-events.ts';

/**
 * Interactive progress for a terminal: one listr2 row per host showing its current step, ending with ✔/✖.
 * Returns the event sink and a `done()` that waits for the display to finish and prints failures and the
 * summary below it.
 */
export function listrRenderer(hosts: string[], write: LineWriter): { sink: (e: RunEvent) => void; done: () => Promise<void> } {
  const waiters = new Map<string, { resolve: (err?: Error) => void; setOutput: (s: string) => void; setTitle: (s: string) => void }>();
  const pending = new Map<string, RunEvent[]>();
  const failures: string[] = [];
  const fixes: string[] = [];
  let summary: RunSummary | undefined;
  const finished = new Set<string>();

  const list = new Listr(
    hosts.map((h) => ({
      title: h,
      task: (_ctx: unknown, task: { output: string; title: string }) =>
        new Promise<void>((resolve, reject) => {
          waiters.set(h, {
            resolve: (err) => (err ? reject(err) : resolve()),
            setOutput: (s) => (task.output = s),
            setTitle: (s) => (task.title = s),
          });
          for (const e of pending.get(h) ?? []) handle(e);
          pending.delete(h);
        }),
    })),
    { concurrent: true, exitOnError: false, rendererOptions: { collapseErrors: false } },
  );
  const running = list.run().catch(() => undefined);

  const handle = (e: RunEvent): void => {
    if (e.type === 'summary') {
      summary = e.summary;
      for (const h of hosts) if (!finished.has(h)) waiters.get(h)?.resolve();
      return;
    }
    if (e.type === 'store-fixed') {
      fixes.push(formatStoreFixed(e)); // printed below the display, before the failures
      return;
    }
    if (!('host' in e) || !e.host) return;
    const w = waiters.get(e.host);
    if (!w) {
      pending.set(e.host, [...(pending.get(e.host) ?? []), e]);
      return;
    }
    if (e.type === 'step-start') w.setOutput(`${e.task}: ${e.name}`);
    else if (e.type === 'step' && e.status === 'changed') w.setOutput(`${e.task}: ${(e.actions ?? []).join('; ')}`);
    else if (e.type === 'step' && e.status === 'failed' && e.error) failures.push(formatFailure(e.error, e.host, e.task));
    else if (e.type === 'host-done') {
      finished.add(e.host);
      if (e.status === 'failed' && e.error && !e.error.task) failures.push(formatFailure(e.error, e.host));
      w.setTitle(`${e.host}  ${e.status}`);
      w.resolve(e.status === 'failed' ? new Error(e.error ? `${e.error.code} ${e.error.message.split('\n')[0]}` : 'failed') : undefined);
    }
  };

  return {
    sink: handle,
    async done() {
      await running;
      for (const f of fixes) write(f);
      for (const f of failures) write(f);
      if (summary) write(formatSummary(summary));
    },
  };
}
