import { act, type Action } from '../model/action.ts';
import { defineTask, change, noChange } from '../model/task.ts';
import { agentState, secretFiles, storedFingerprints } from '../facts/secrets.ts';
import { AGENT_FILES, hostSecrets } from '../model/layout.ts';
import { agentRestartReason, describeStored, metaProblem, noParams, ownerSpec, refuseMissing } from './common.ts';

/**
 * agent.start — (re)start the host's Vault Agent with its configured command and wait (by default 20 s + 10 s per
 * rendered file; the step's `timeout_seconds`, `timeouts.step_seconds` or `--timeout` replace it) until
 * every host secret's file exists with its mode, and its SHA-256 equals the store's fingerprint (daemon mode: also
 * a running agent holding a token, started after its config). The old token sink goes first, so only a token the
 * new agent writes proves it logged in. Does nothing when that already holds; puts mode/owner back when a file
 * matches but was chmod-ed or chown-ed. Refuses when the store holds nothing for one of the host's secrets.
 * The services reading a re-rendered file restart in their own step (node.restart-lockstep, horcrux.start).
 */
export const agentStart = defineTask({
  id: 'agent.start',
  summary: 'start the Vault Agent and wait for the rendered secrets',
  appliesTo: 'any',
  delivery: ['agent'],
  params: noParams,
  facts: (_p, host, inv) => {
    const ss = hostSecrets(inv, host);
    return { agent: agentState(ss), files: secretFiles(ss), stored: storedFingerprints(ss) };
  },
  plan(_p, { agent, files, stored }, { inventory, host }) {
    const ss = hostSecrets(inventory, host);
    const missing = refuseMissing(host, ss, stored);
    if (missing) return missing;
    const why = agentRestartReason(inventory.vault.agentMode, agent, ss, files, stored);
    if (why) {
      return change(
        ...(agent.running ? [act.exec(host.agent.stop, `stop the agent (pid ${agent.pid})`)] : []),
        ...(agent.tokenSink ? [act.remove(AGENT_FILES.tokenSink, 'remove the old agent token sink')] : []),
        act.exec(host.agent.start, `start the agent: ${why}`),
      );
    }
    const repairs: Action[] = ss.flatMap((s) => {
      const f = files[s.name]!;
      const p = metaProblem(s, f);
      if (!p) return [];
      const own = ownerSpec(s);
      return [
        ...(f.mode !== s.mode ? [act.exec(['chmod', s.mode, '--', s.path], `restore mode ${s.mode} on ${s.path} (was ${f.mode})`)] : []),
        ...(own && f.mode === s.mode ? [act.exec(['chown', own, '--', s.path], `give ${s.path} back to ${own}: ${p}`)] : []),
      ];
    });
    if (repairs.length) return change(...repairs);
    return noChange(`${describeStored(ss, stored)}; modes ${[...new Set(ss.map((s) => s.mode))].join(', ')}`);
  },
  // Each rendered file is one more Vault read and template for the agent: 30 s for a JWT alone, as before.
  settle: (_p, host, inv) => {
    const n = hostSecrets(inv, host).length;
    return { intervalMs: 250, timeoutMs: (20 + 10 * n) * 1000, basis: `20 s + 10 s per rendered file (${n})` };
  },
  jwtUnit: 'opens',
});
