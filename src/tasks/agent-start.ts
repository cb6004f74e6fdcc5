import { z } from 'zod';
import { act } from '../core/action.ts';
import { defineTask, change, noChange, refuse } from '../core/task.ts';
import { agentState } from '../facts/agent.ts';
import { expectedEngineJwt } from '../facts/inputs.ts';
import { AGENT_FILES } from '../render/vault-agent.ts';
import { agentRestartReason, asNode } from './common.ts';

/**
 * agent.start — (re)start the node's Vault Agent with the host's configured command and wait until
 * `jwt.hex` exists with the node's JWT mode, is exactly 64 lowercase hex, and its SHA-256 equals the
 * fingerprint of the backend's value (daemon mode: also a running agent holding a token). Does nothing
 * when that already holds. Refuses when the backend has no JWT yet.
 */
export const agentStart = defineTask({
  id: 'agent.start',
  summary: 'start the Vault Agent and wait for jwt.hex',
  appliesTo: 'node',
  backends: ['vault'],
  params: z.strictObject({ timeout_seconds: z.number().int().min(1).max(600).default(30) }).prefault({}),
  facts: () => ({ agent: agentState(), jwt: expectedEngineJwt() }),
  plan(_p, { agent, jwt }, { inventory, host }) {
    const node = asNode(host);
    if (!jwt) return refuse('E_INPUT', 'the backend holds no Engine-API JWT for this network', 'run vault.seed-engine-jwt first');
    const why = agentRestartReason(inventory.vault.agentMode, agent, jwt);
    const jwtGood = agent.jwt.exists && agent.jwt.isHex64 && agent.jwt.mode === node.jwt.mode && agent.jwt.sha256 === jwt.secret.fingerprint();
    if (!why && jwtGood) {
      return noChange(`jwt.hex matches ${jwt.source} v${jwt.version} (${jwt.secret.shortFingerprint()}), mode ${node.jwt.mode}`);
    }
    if (!why) {
      // Same bytes as the backend (so 64 lowercase hex), wrong mode: someone chmod-ed it. Put the mode back.
      return change(act.exec(['chmod', node.jwt.mode, '--', AGENT_FILES.jwt], `restore mode ${node.jwt.mode} on ${AGENT_FILES.jwt} (was ${agent.jwt.mode})`));
    }
    // The old token sink goes first: only a token the new agent writes proves it logged in.
    return change(
      ...(agent.running ? [act.exec(node.agent.stop, `stop the agent (pid ${agent.pid})`)] : []),
      ...(agent.tokenSink ? [act.remove(AGENT_FILES.tokenSink, 'remove the old agent token sink')] : []),
      act.exec(node.agent.start, `start the agent: ${why}`),
    );
  },
  // No triggersRestart: a re-rendered value shows as an Engine API that rejects it, which restarts el and cl.
  settle: (p) => ({ intervalMs: 250, timeoutMs: p.timeout_seconds * 1000 }),
});
