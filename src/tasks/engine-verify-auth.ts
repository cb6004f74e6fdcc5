import { defineTask, noChange, refuse } from '../model/task.ts';
import { engineProbe } from '../facts/inputs.ts';
import { noParams } from './common.ts';

/**
 * engine.verify-auth — prove the node's Engine API (authrpc 127.0.0.1:8551, reached through an SSH tunnel)
 * accepts an HS256 token minted now with the backend's JWT held in memory, `iat` from the host's clock (read in
 * the step's facts exec, src/facts/inputs.ts). A check: it never changes anything. HTTP 401/403 or a JSON-RPC auth
 * error fails the host with E_ENGINE_AUTH; a refusal while the laptop–host clock skew is beyond the Engine API's
 * ±60 s with E_CLOCK_SKEW ("clock skew of N s (±60 s allowed)"); no answer, with E_ENGINE_UNREACHABLE.
 */
export const engineVerifyAuth = defineTask({
  id: 'engine.verify-auth',
  summary: 'verify the Engine API accepts the JWT',
  appliesTo: 'node',
  params: noParams,
  facts: () => ({ probe: engineProbe() }),
  plan(_p, { probe }, { host }) {
    if (!probe) return refuse('E_INPUT', 'the store holds no Engine-API JWT for this node', 'run secret.seed first (playbooks/provision.yml does)');
    if (probe.outcome === 'accepted') return noChange(`Engine API accepted a token signed with the current JWT v${probe.version} (${probe.detail})`);
    if (probe.outcome === 'skewed') {
      return refuse('E_CLOCK_SKEW', `${host.name}'s Engine API refused the token, and the clocks disagree: ${probe.detail}`, 'set the clocks right (NTP: timedatectl, chronyc tracking) on the laptop and the host, then run again; nothing was restarted');
    }
    if (probe.outcome === 'rejected') {
      return refuse('E_ENGINE_AUTH', `${host.name}'s Engine API rejected a token signed with the backend's JWT: ${probe.detail}`, 'el and cl may run on another JWT: re-run apply, or check JWT_PATH in the compose env file');
    }
    return refuse('E_ENGINE_UNREACHABLE', `the Engine API on ${host.name} (127.0.0.1:8551) did not answer: ${probe.detail}`, 'check that el is running (nodectl status / docker compose ps)');
  },
});
