import { z } from 'zod';
import { act } from '../core/action.ts';
import { defineTask, change, noChange, refuse } from '../core/task.ts';
import { engineProbe } from '../facts/inputs.ts';
import { asNode } from './common.ts';

/**
 * node.restart-lockstep — restart `el` and `cl` together with the node's restart command (default
 * `docker compose restart el cl` in the deploy dir), then wait until the Engine API accepts a token signed
 * with the backend's JWT. Restarts when an earlier step of the play changed JWT_PATH, or when the Engine API
 * does not accept the current value (e.g. the agent just rendered a rotated one); otherwise does nothing. Holds the play's
 * validator budget (`max_validators_down`) from the restart until the node answers again.
 */
export const nodeRestartLockstep = defineTask({
  id: 'node.restart-lockstep',
  summary: 'restart el and cl in lockstep',
  appliesTo: 'node',
  params: z.strictObject({ timeout_seconds: z.number().int().min(1).max(900).default(60) }).prefault({}),
  facts: () => ({ probe: engineProbe() }),
  plan(_p, { probe }, { host, restartPending }) {
    const node = asNode(host);
    if (!probe) return refuse('E_INPUT', 'the backend holds no Engine-API JWT for this network', 'run vault.seed-engine-jwt first');
    if (!restartPending && probe.outcome === 'accepted') return noChange('el and cl already run on the current JWT (Engine API accepted it)');
    const why = restartPending ? 'JWT_PATH changed' : `the Engine API does not accept the current JWT yet (${probe.detail})`;
    // setsid -w: the restart runs in its own session, so a dropped SSH connection (SIGHUP) cannot cut it off
    // between stopping el and starting cl; -w keeps its exit status.
    return change(act.exec(['setsid', '-w', ...node.restart], `restart el and cl together: ${why}`, { cwd: node.deployDir }));
  },
  settle: (p) => ({ intervalMs: 500, timeoutMs: p.timeout_seconds * 1000 }),
  disruptive: true,
});
