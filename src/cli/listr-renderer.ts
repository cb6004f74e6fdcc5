import { Listr } from 'listr2';
import type { RunEvent, RunSummary } from '../core/events.ts';
import { formatFailure, formatStoreFixed, formatSummary, type LineWriter } from './render-events.ts';

/** What the terminal shows for one host: its row's title and the lines under it. */
export interface HostView {
  title: string;
  lines: string[];
}

/**
 * The terminal display's state, from run events alone (pure, so it is unit-tested): per host a title that says
 * where it stands — waiting for its wave, in wave N, its current step, done with its status, or halted with the
 * reason — and under it one line per step that changed (or would: plan) with the plan's action descriptions,
 * each skipped step with its reason, and a failed step with its code. Steps with nothing to do are counted, not
 * listed, so a converged host stays one line.
 */
export class FleetView {
  readonly #hosts = new Map<string, HostView & { wave?: number; ok: number; status?: string }>();
  #waves = 0;

  constructor(hosts: readonly string[]) {
    for (const h of hosts) this.#hosts.set(h, { title: h, lines: [], ok: 0 });
  }

  /** Applies one event; returns the hosts whose view changed. */
  apply(e: RunEvent): string[] {
    if (e.type === 'wave-start') {
      this.#waves = Math.max(this.#waves, e.wave);
      for (const h of e.hosts) {
        const v = this.#hosts.get(h);
        if (v) v.wave = e.wave;
      }
      return this.#retitle([...this.#hosts.keys()]);
    }
    if (e.type === 'play-start') {
      for (const h of e.hosts) {
        const v = this.#hosts.get(h);
        if (v && !v.status) v.wave = undefined;
      }
      this.#waves = 0;
      return this.#retitle(e.hosts);
    }
    if (!('host' in e) || !e.host) return [];
    const v = this.#hosts.get(e.host);
    if (!v) return [];
    if (e.type === 'step-start') v.title = `${this.#prefix(e.host)}${e.task}: ${e.name}`;
    else if (e.type === 'step') {
      if (e.status === 'ok') v.ok++;
      else if (e.status === 'changed') v.lines.push(`${e.task}: ${(e.actions ?? []).join('; ')}`);
      else if (e.status === 'skipped') v.lines.push(`${e.task}: skipped — ${e.reason ?? ''}`);
      else if (e.status === 'failed') v.lines.push(`${e.task}: FAILED ${e.error?.code ?? ''} ${e.error?.message.split('\n')[0] ?? ''}`.trimEnd());
    } else if (e.type === 'host-done') {
      v.status = e.status;
      const why = e.status === 'skipped' && e.error ? ` — ${e.error.message.split('\n')[0]}` : e.status === 'failed' && e.error && !e.error.task ? ` — ${e.error.code} ${e.error.message.split('\n')[0]}` : '';
      v.title = `${e.host}  ${e.status}${v.ok ? ` (${v.ok} step${v.ok === 1 ? '' : 's'} already in place)` : ''}${why}`;
    } else if (e.type === 'warning') v.lines.push(`warning: ${e.message}`);
    return [e.host];
  }

  view(host: string): HostView | undefined {
    const v = this.#hosts.get(host);
    return v ? { title: v.title, lines: [...v.lines] } : undefined;
  }

  #prefix(host: string): string {
    const v = this.#hosts.get(host)!;
    return this.#waves > 1 && v.wave ? `${host} [wave ${v.wave}]  ` : `${host}  `;
  }

  #retitle(hosts: readonly string[]): string[] {
    const out: string[] = [];
    for (const h of hosts) {
      const v = this.#hosts.get(h);
      if (!v || v.status) continue;
      v.title = v.wave === undefined ? `${h}  waiting for its wave` : `${this.#prefix(h)}starting`;
      out.push(h);
    }
    return out;
  }
}

/**
 * Interactive progress for a terminal (listr2): one row per host (see {@link FleetView}), the change lines kept under
 * each row after it finishes. listr2's own SIGINT listener is off, so Ctrl-C reaches the CLI's handler in a terminal
 * exactly as in a pipe (steps under way finish, summary, exit 130). Returns the event sink and a `done()` that
 * waits for the display to finish and prints failures and the summary below it.
 */
export function listrRenderer(hosts: string[], write: LineWriter): { sink: (e: RunEvent) => void; done: () => Promise<void> } {
  const view = new FleetView(hosts);
  const rows = new Map<string, { resolve: (err?: Error) => void; set: (v: { title: string; lines: string[] }) => void }>();
  const failures: string[] = [];
  const fixes: string[] = [];
  let summary: RunSummary | undefined;
  const finished = new Set<string>();

  const list = new Listr(
    hosts.map((h) => ({
      title: h,
      task: (_ctx: unknown, task: { output: string; title: string }) =>
        new Promise<void>((resolve, reject) => {
          let shown = 0;
          rows.set(h, {
            resolve: (err) => (err ? reject(err) : resolve()),
            set: (v) => {
              task.title = v.title;
              for (const l of v.lines.slice(shown)) task.output = l;
              shown = v.lines.length;
            },
          });
          rows.get(h)!.set(view.view(h)!);
        }),
      rendererOptions: { outputBar: Infinity, persistentOutput: true },
    })),
    { concurrent: true, exitOnError: false, registerSignalListeners: false, rendererOptions: { collapseErrors: false } },
  );
  const running = list.run().catch(() => undefined);

  const handle = (e: RunEvent): void => {
    if (e.type === 'summary') {
      summary = e.summary;
      for (const h of hosts) if (!finished.has(h)) rows.get(h)?.resolve();
      return;
    }
    if (e.type === 'store-fixed') {
      fixes.push(formatStoreFixed(e)); // printed below the display, before the failures
      return;
    }
    for (const h of view.apply(e)) rows.get(h)?.set(view.view(h)!);
    if (e.type === 'step' && e.status === 'failed' && e.error) failures.push(formatFailure(e.error, e.host, e.task));
    if (e.type === 'host-done') {
      finished.add(e.host);
      if (e.status === 'failed' && e.error && !e.error.task) failures.push(formatFailure(e.error, e.host));
      rows.get(e.host)?.resolve(e.status === 'failed' ? new Error(view.view(e.host)!.title) : undefined);
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
