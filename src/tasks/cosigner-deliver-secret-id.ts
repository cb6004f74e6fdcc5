import { defineTask, change, noChange, refuse } from '../core/task.ts';
import { mountAt } from '../facts/mount.ts';
import { COSIGNER_AGENT_FILES, cosignerRoleName } from '../horcrux/agent.ts';
import { cosignerSettings } from '../horcrux/config.ts';
import { cosignerAgentState, keyDirState } from '../horcrux/facts.ts';
import { storedHorcruxKeys } from '../horcrux/store.ts';
import { SECRETS_DIR } from '../inventory/model.ts';
import { noParams } from './common.ts';
import { asCosigner, cosignerAgentRestartReason, missingKeysHint } from './cosigner-common.ts';

/**
 * cosigner.deliver-secret-id — trusted-orchestrator delivery for a cosigner's Vault Agent: when the agent must
 * (re)authenticate, the laptop generates a response-wrapped secret_id for the cosigner's own role (wrap TTL from
 * the inventory), checks the wrapping token's creation path, and writes `role_id` and the wrapping token into
 * `/run/krypton-secrets` (0600, SFTP, never on a command line). Judged by the agent's state and the key files
 * against the backend, not by the secret_id file (the agent removes it after reading). Does nothing while the
 * agent runs with a token on its current config and the key files match. Refuses when nothing was imported.
 */
export const cosignerDeliverSecretId = defineTask({
  id: 'cosigner.deliver-secret-id',
  summary: "deliver the cosigner's role_id and a wrapped secret_id",
  appliesTo: 'cosigner',
  backends: ['vault'],
  params: noParams,
  facts: (_p, host, inv) => ({
    mount: mountAt(SECRETS_DIR),
    agent: cosignerAgentState(),
    keyDir: keyDirState(cosignerSettings(inv, asCosigner(host)).keyDir),
    stored: storedHorcruxKeys(host.name),
  }),
  plan(_p, { mount, agent, keyDir, stored }, { inventory, host }) {
    if (mount?.fsType !== 'tmpfs') return refuse('E_PLAN_CONFLICT', `${SECRETS_DIR} is not a tmpfs mount`, 'run mount.tmpfs (path /run/krypton-secrets) first');
    if (!stored.ecies || !stored.shard) return refuse('E_INPUT', `the backend holds no Horcrux key files for ${host.name}`, missingKeysHint());
    const s = cosignerSettings(inventory, asCosigner(host));
    const why = cosignerAgentRestartReason(inventory.vault.agentMode, agent, keyDir, stored, s);
    if (!why) return noChange(`agent authenticated (pid ${agent.pid ?? '-'}) and the key files match the backend; no secret_id needed`);
    const role = cosignerRoleName(inventory, host.name);
    return change({
      kind: 'vault.deliver-secret-id',
      approleMount: inventory.vault.approleMount,
      role,
      roleIdPath: COSIGNER_AGENT_FILES.roleId,
      secretIdPath: COSIGNER_AGENT_FILES.secretId,
      wrapTtlSeconds: inventory.vault.wrapTtlSeconds,
      description: `deliver role_id and a secret_id of ${role} wrapped for ${inventory.vault.wrapTtlSeconds} s (${why})`,
    });
  },
});
