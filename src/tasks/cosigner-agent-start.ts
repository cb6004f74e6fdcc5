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
 * values (daemon mode: also a running agent holding a token). Does nothing when that already holds. Refuses
 * when the backend holds no key files for the cosigner, or when the files match but have a wider mode.
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
      const wide = keyFileStatus(keyDir, stored, s).filter((f) => f.mode !== '0600' || (s.owner && f.owner !== s.owner));
      if (wide.length) {
        return refuse('E_PLAN_CONFLICT', `${wide.map((f) => `${f.name} has mode ${f.mode} owner ${f.owner}`).join(', ')}; expected 0600${s.owner ? ` owned by ${s.owner}` : ''}`, 'check the template perms/user in vault-agent.hcl, then apply again');
      }
      return noChange(`key files in ${s.keyDir} match the backend (${describeStored(stored, s)}), mode 0600`);
    }
    return change(
      ...(agent.running ? [act.exec(c.agent.stop, `stop the agent (pid ${agent.pid})`)] : []),
      act.exec(c.agent.start, `start the agent: ${why}`),
    );
  },
  settle: { intervalMs: 250, timeoutMs: 30_000 },
  triggersRestart: true,
});
