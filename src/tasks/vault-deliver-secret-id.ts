import { act } from '../core/action.ts';
import { defineTask, change, noChange, refuse } from '../core/task.ts';
import { agentState } from '../facts/agent.ts';
import { expectedEngineJwt } from '../facts/inputs.ts';
import { mountAt } from '../facts/mount.ts';
import { SECRETS_DIR } from '../inventory/model.ts';
import { AGENT_FILES, nodeRoleName } from '../render/vault-agent.ts';
import { agentRestartReason, noParams } from './common.ts';

/**
 * vault.deliver-secret-id — trusted-orchestrator delivery of AppRole credentials: when the node's agent must
 * (re)authenticate, the laptop generates a response-wrapped secret_id (wrap TTL from the inventory), checks
 * the wrapping token's creation path, and writes `role_id` and the wrapping token into the tmpfs (0600, SFTP,
 * never on a command line). Judged by the agent's state, not by the secret_id file — the agent removes the
 * file after reading it. Does nothing while the agent runs with a token on the current config and JWT.
 */
export const vaultDeliverSecretId = defineTask({
  id: 'vault.deliver-secret-id',
  summary: 'deliver role_id and a wrapped secret_id',
  appliesTo: 'node',
  backends: ['vault'],
  params: noParams,
  facts: () => ({ mount: mountAt(SECRETS_DIR), agent: agentState(), jwt: expectedEngineJwt() }),
  plan(_p, { mount, agent, jwt }, { inventory, host }) {
    if (mount?.fsType !== 'tmpfs') return refuse('E_PLAN_CONFLICT', `${SECRETS_DIR} is not a tmpfs mount`, 'run mount.tmpfs first');
    if (!jwt) return refuse('E_INPUT', 'the backend holds no Engine-API JWT for this network', 'run vault.seed-engine-jwt first');
    const why = agentRestartReason(inventory.vault.agentMode, agent, jwt);
    if (!why && agent.leftoverTempFiles > 0) {
      return change(
        act.exec(['find', SECRETS_DIR, '-maxdepth', '1', '-name', '.*.krypton-*.tmp', '-delete'], `remove ${agent.leftoverTempFiles} temp file(s) of an interrupted upload (one may hold a wrapping token)`),
      );
    }
    if (!why) return noChange(`agent authenticated (pid ${agent.pid ?? '-'}); no secret_id needed`);
    const role = nodeRoleName(inventory.network, host.name);
    return change({
      kind: 'vault.deliver-secret-id',
      approleMount: inventory.vault.approleMount,
      role,
      roleIdPath: AGENT_FILES.roleId,
      secretIdPath: AGENT_FILES.secretId,
      wrapTtlSeconds: inventory.vault.wrapTtlSeconds,
      description: `deliver role_id and a secret_id wrapped for ${inventory.vault.wrapTtlSeconds} s (${why})`,
    });
  },
});
