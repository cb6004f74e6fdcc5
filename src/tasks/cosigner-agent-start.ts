import { z } from 'zod';
import { act } from '../core/action.ts';
import { defineTask, change, noChange, refuse } from '../core/task.ts';
import { cosignerSettings } from '../horcrux/config.ts';
import { cosignerAgentState, keyDirState } from '../horcrux/facts.ts';
import { storedHorcruxKeys } from '../horcrux/store.ts';
import { asCosigner, cosignerAgentRestartReason, describeStored, keyFileStatus, missingKeysHint } from './cosigner-common.ts';

/**
 * cosigner.agent-start — (re)start the cosigner's Vault Agent with its configured command and wait until the
 * key dir holds `ecies_keys.json` and `<chain-id>_shard.json`, mode 0600, whose SHA-256 equal the backend's
 * values (daemon mode: also a running agent holding a token). Does nothing when that already holds; puts the
 * mode (and `horcrux.owner`) back when the files match but were chmod-ed. Refuses when the backend holds no key
 * files for the cosigner.
 * A change here makes `horcrux.start` restart Horcrux (it reads its keys at start).
 */
export const cosignerAgentStart = defineTask({
  id: 'cosigner.agent-start',
  summary: "start the cosigner's Vault Agent and wait for its key files",
  appliesTo: 'cosigner',
  backends: ['vault'],
  params: z.strictObject({ timeout_seconds: z.number().int().min(1).max(600).default(30) }).prefault({}),
  facts: (_p, host, inv) => ({
    agent: cosignerAgentState(),
    keyDir: keyDirState(cosignerSettings(inv, asCosigner(host)).keyDir),
    stored: storedHorcruxKeys(host.name),
  }),
  plan(_p, { agent, keyDir, stored }, { inventory, host }) {
    const c = asCosigner(host);
    if (!stored.ecies || !stored.shard) return refuse('E_INPUT', `the backend holds no Horcrux key files for ${host.name}`, missingKeysHint());
    const s = cosignerSettings(inventory, c);
    const why = cosignerAgentRestartReason(inventory.vault.agentMode, agent, keyDir, stored, s);
    if (!why) {
      // Same bytes as the backend, but someone chmod-ed / chown-ed a file: put mode (and owner) back.
      const wide = keyFileStatus(keyDir, stored, s).filter((f) => f.mode !== '0600' || (s.owner && f.owner !== s.owner));
      if (wide.length) {
        const own = s.owner ? `${s.owner}${s.group ? `:${s.group}` : ''}` : undefined;
        return change(
          ...wide.flatMap((f) => {
            const path = s.keyFiles[f.kind];
            return [
              ...(f.mode !== '0600' ? [act.exec(['chmod', '0600', '--', path], `restore mode 0600 on ${path} (was ${f.mode})`)] : []),
              ...(own && f.owner !== s.owner ? [act.exec(['chown', own, '--', path], `give ${path} back to ${own} (was ${f.owner})`)] : []),
            ];
          }),
        );
      }
      return noChange(`key files in ${s.keyDir} match the backend (${describeStored(stored, s)}), mode 0600`);
    }
    return change(
      ...(agent.running ? [act.exec(c.agent.stop, `stop the agent (pid ${agent.pid})`)] : []),
      act.exec(c.agent.start, `start the agent: ${why}`),
    );
  },
  settle: (p) => ({ intervalMs: 250, timeoutMs: p.timeout_seconds * 1000 }),
  triggersRestart: true,
});
