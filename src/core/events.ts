import type { KryptonError } from './errors.ts';

/** Per host, how a run left it. */
export type HostStatus = 'changed' | 'unchanged' | 'failed' | 'skipped';

/**
 * Events the executor emits; renderers (listr2, plain lines, `--json`) turn them into output. No event ever
 * carries a secret value: actions are represented by their descriptions, secrets by fingerprints.
 */
export type RunEvent =
  | { type: 'run-start'; command: 'plan' | 'apply'; playbook: string; hosts: string[] }
  | { type: 'play-start'; play: string; hosts: string[] }
  | { type: 'wave-start'; play: string; wave: number; hosts: string[] }
  | { type: 'step-start'; host: string; task: string; name: string }
  | {
      type: 'step';
      host: string;
      task: string;
      name: string;
      /** `changed`: actions applied (apply) or would be (plan); `ok`: nothing to do, with `reason`. */
      status: 'changed' | 'ok' | 'failed' | 'skipped';
      reason?: string;
      actions?: string[];
      error?: KryptonError;
      durationMs: number;
    }
  | { type: 'host-done'; host: string; status: HostStatus; error?: KryptonError }
  | { type: 'warning'; host?: string; task?: string; message: string }
  /**
   * `apply --fix-format` wrote a stored value's canonical form as a new version before any host was touched:
   * where, the old and new version with their full SHA-256 fingerprints, what was wrong, and who needs it. Never
   * the value.
   */
  | { type: 'store-fixed'; source: string; fromVersion: number; toVersion: number; fromSha256: string; toSha256: string; problem: string; hosts: string[] }
  | { type: 'summary'; summary: RunSummary };

export interface RunSummary {
  ok: boolean;
  changed: number;
  unchanged: number;
  failed: number;
  skipped: number;
  hosts: Record<string, { status: HostStatus; error?: { code: string; message: string; hint?: string } }>;
  /** Extra facts a playbook wants in its summary, e.g. which node holds which JWT version (never values). */
  notes?: Record<string, unknown>;
}

export type EventSink = (e: RunEvent) => void;
