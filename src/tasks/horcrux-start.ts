import { z } from 'zod';
import { act } from '../core/action.ts';
import { defineTask, change, noChange, refuse } from '../core/task.ts';
import { cosignerSettings } from '../horcrux/config.ts';
import { horcruxProcess, keyDirState } from '../horcrux/facts.ts';
import { asCosigner } from './cosigner-common.ts';

/**
 * horcrux.start — start Horcrux on the cosigner with its configured command (`horcrux.start`, default
 * `systemctl start horcrux`) and wait until its status command (default `systemctl is-active horcrux`) says it
 * runs. Restarts it (stop, start) when an earlier step of the play changed its key files or config.yaml — Horcrux
 * reads both at start. Does nothing while it runs and nothing changed. Refuses when the key files are not in the
 * key dir (it would start without keys). Never signs anything itself.
 */
export const horcruxStart = defineTask({
  id: 'horcrux.start',
  summary: 'start (or restart) Horcrux',
  appliesTo: 'cosigner',
  params: z.strictObject({ timeout_seconds: z.number().int().min(1).max(600).default(30) }).prefault({}),
  facts: (_p, host, inv) => {
    const s = cosignerSettings(inv, asCosigner(host));
    return { proc: horcruxProcess(s.status), keyDir: keyDirState(s.keyDir) };
  },
  plan(_p, { proc, keyDir }, { inventory, host, restartPending }) {
    const s = cosignerSettings(inventory, asCosigner(host));
    const names = keyDir.entries.filter((e) => e.type === 'file').map((e) => e.name);
    const missing = [s.keyFiles.ecies, s.keyFiles.shard].map((f) => f.slice(s.keyDir.length + 1)).filter((n) => !names.includes(n));
    if (missing.length) return refuse('E_PLAN_CONFLICT', `${missing.join(' and ')} missing from ${s.keyDir}: Horcrux would start without its keys`, 'run cosigner.agent-start (or the KMS decrypt step) before horcrux.start');
    if (proc.running && !restartPending) return noChange(`Horcrux is running (${s.status.join(' ')} exits 0)`);
    if (proc.running) {
      return change(act.exec(s.stop, 'stop Horcrux: its key files or config.yaml changed'), act.exec(s.start, 'start Horcrux on the new key files / config'));
    }
    return change(act.exec(s.start, `start Horcrux (${s.status.join(' ')} exited ${proc.statusExit})`));
  },
  settle: (p) => ({ intervalMs: 250, timeoutMs: p.timeout_seconds * 1000 }),
});
