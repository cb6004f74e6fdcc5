import { act } from '../model/action.ts';
import { defineTask, change, noChange } from '../model/task.ts';
import { agentState, secretFiles, storedFingerprints } from '../facts/secrets.ts';
import { mountAt } from '../facts/mount.ts';
import { SECRETS_DIR } from '../model/inventory.ts';
import { AGENT_FILES, hostSecrets, roleName } from '../model/layout.ts';
import { agentRestartReason, noParams, refuseMissing, refuseNotTmpfs } from './common.ts';

/**
 * vault.deliver-secret-id — trusted-orchestrator delivery of AppRole credentials: when the host's agent must
 * (re)authenticate, the laptop generates a response-wrapped secret_id for the host's own role (wrap TTL from the
 * inventory), checks the wrapping token's creation path, and writes `role_id` and the wrapping token into the
 * tmpfs (0600, SFTP, never on a command line). Judged by the agent's state and the rendered files against the
 * store, not by the secret_id file — the agent removes it after reading. Does nothing while the agent runs with a
 * token on its current config and every file matches; removes temp files an interrupted upload left. Refuses when
 * the store holds nothing for one of the host's secrets.
 */
export const vaultDeliverSecretId = defineTask({
  id: 'vault.deliver-secret-id',
  summary: 'deliver role_id and a wrapped secret_id',
  appliesTo: 'any',
  delivery: ['agent'],
  params: noParams,
  facts: (_p, host, inv) => {
    const ss = hostSecrets(inv, host);
    return { mount: mountAt(SECRETS_DIR), agent: agentState(ss), files: secretFiles(ss), stored: storedFingerprints(ss) };
  },
  plan(_p, { mount, agent, files, stored }, { inventory, host }) {
    const ss = hostSecrets(inventory, host);
    const bad = refuseNotTmpfs(SECRETS_DIR, mount) ?? refuseMissing(host, ss, stored);
    if (bad) return bad;
    const why = agentRestartReason(inventory.vault.agentMode, agent, ss, files, stored);
    if (!why && agent.leftoverTempFiles > 0) {
      return change(
        act.exec(['find', SECRETS_DIR, '-maxdepth', '1', '-name', '.*.krypton-*.tmp', '-delete'], `remove ${agent.leftoverTempFiles} temp file(s) of an interrupted upload (one may hold a wrapping token)`),
      );
    }
    if (!why) return noChange(`agent authenticated (pid ${agent.pid ?? '-'}) and every file matches the store; no secret_id needed`);
    const role = roleName(inventory, host);
    return change({
      kind: 'deliver-credentials',
      approleMount: inventory.vault.approleMount,
      role,
      roleIdPath: AGENT_FILES.roleId,
      secretIdPath: AGENT_FILES.secretId,
      wrapTtlSeconds: inventory.vault.wrapTtlSeconds,
      description: `deliver role_id and a secret_id of ${role} wrapped for ${inventory.vault.wrapTtlSeconds} s (${why})`,
    });
  },
});
