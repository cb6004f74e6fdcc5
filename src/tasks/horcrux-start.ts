import { act } from '../model/action.ts';
import { defineTask, change, noChange, refuse } from '../model/task.ts';
import { cosignerSettings, hostSecrets } from '../model/layout.ts';
import { horcruxProcess } from '../facts/dir.ts';
import { loadedState, recordLoadedScript, secretFiles } from '../facts/secrets.ts';
import { asCosigner, fileName, noParams } from './common.ts';

/**
 * horcrux.start — start Horcrux on the cosigner with its configured command (`horcrux.start`, default
 * `systemctl start horcrux`) and wait (30 s by default; the step's `timeout_seconds`, `timeouts.step_seconds`
 * or `--timeout` replace it) until its status command (default
 * `systemctl is-active horcrux`) says it runs. Restarts it (stop, start) when an earlier step of the play changed
 * config.yaml, or when a key file differs from what Horcrux loaded at its last (re)start by the tool — Horcrux
 * reads both at start. Records the key files' SHA-256 after each start. Does nothing while it runs and nothing
 * changed. Refuses when a key file is missing (it would start without keys). Never signs anything itself.
 */
export const horcruxStart = defineTask({
  id: 'horcrux.start',
  summary: 'start (or restart) Horcrux',
  appliesTo: 'cosigner',
  params: noParams,
  facts: (_p, host, inv) => {
    const s = cosignerSettings(inv, asCosigner(host));
    return { proc: horcruxProcess(s.status), files: secretFiles(hostSecrets(inv, host)), loaded: loadedState() };
  },
  plan(_p, { proc, files, loaded }, { inventory, host, restartPending }) {
    const s = cosignerSettings(inventory, asCosigner(host));
    const ss = hostSecrets(inventory, host);
    const missing = ss.filter((k) => !files[k.name]?.exists).map((k) => fileName(k));
    if (missing.length) return refuse('E_PLAN_CONFLICT', `${missing.join(' and ')} missing from ${s.keyDir}: Horcrux would start without its keys`, 'run agent.start (or secret.fetch-on-host) before horcrux.start');
    const changedKeys = ss.filter((k) => loaded['horcrux']?.[k.name] !== files[k.name]!.sha256).map((k) => fileName(k));
    const record = recordLoadedScript(['horcrux'], ss);
    const thenRecord = (argv: string[]) => ['sh', '-c', `"$@" || exit $?\n${record}`, 'sh', ...argv];
    if (proc.running && !restartPending && !changedKeys.length) return noChange(`Horcrux is running (${s.status.join(' ')} exits 0) on its current key files`);
    if (proc.running) {
      const why = restartPending ? 'config.yaml changed' : `${changedKeys.join(' and ')} changed since it started`;
      return change(act.exec(s.stop, `stop Horcrux: ${why}`), act.exec(thenRecord(s.start), 'start Horcrux on the new key files / config'));
    }
    return change(act.exec(thenRecord(s.start), `start Horcrux (${s.status.join(' ')} exited ${proc.statusExit})`));
  },
  settle: { intervalMs: 250, timeoutMs: 30_000, basis: '30 s for Horcrux to report running' },
});
