import { z } from 'zod';
import type { NodeHost, Host } from '../inventory/model.ts';
import type { AgentFact } from '../facts/agent.ts';
import type { EngineJwtValue } from '../backends/registry.ts';

/** Params schema of tasks that take none. */
export const noParams = z.strictObject({}).prefault({});

/** Narrow a host to a node (tasks with `appliesTo: 'node'` only ever see nodes). */
export function asNode(h: Host): NodeHost {
  if (h.kind !== 'node') throw new Error(`internal: ${h.name} is not a node`);
  return h;
}

/**
 * Why the node's Vault Agent must be (re)started with a fresh secret_id, or undefined when it is fine.
 * Daemon mode: the agent must be running, hold a token, have started after its config was last written, and
 * have rendered the backend's current JWT. Oneshot mode: only the rendered JWT matters (the agent exits).
 */
export function agentRestartReason(mode: 'daemon' | 'oneshot', a: AgentFact, expected: EngineJwtValue | undefined): string | undefined {
  const jwtOk = expected !== undefined && a.jwt.exists && a.jwt.sha256 === expected.secret.fingerprint();
  if (mode === 'oneshot') {
    if (a.running) return 'an agent is still running (oneshot mode runs it only to render)';
    if (a.tokenSink) return 'a token sink is left on the host (oneshot mode keeps no token)';
    return jwtOk ? undefined : a.jwt.exists ? 'jwt.hex differs from the backend' : 'jwt.hex is not rendered';
  }
  if (!a.running) return 'the agent is not running';
  if (!a.tokenSink) return 'the agent holds no token';
  if (a.configMtime !== undefined && a.startedAt !== undefined && a.configMtime > a.startedAt) return 'its config changed after it started';
  if (!jwtOk) return a.jwt.exists ? 'jwt.hex differs from the backend' : 'jwt.hex is not rendered';
  return undefined;
}
