import type { AgentFact } from '../facts/agent.ts';
import type { HexCopy } from '../facts/copies.ts';
import type { EngineProbe } from '../facts/engine.ts';
import type { GitFact } from '../facts/git.ts';
import type { FileFact } from '../facts/file.ts';
import type { KernelFact, MountFact } from '../facts/mount.ts';
import type { EngineJwtValue } from '../backends/registry.ts';
import { SECRETS_DIR, type Inventory, type NodeHost } from '../inventory/model.ts';
import { AGENT_FILES } from '../render/vault-agent.ts';

/** One line of the audit: a host, a check id, pass or fail, and why — never a secret value. */
export interface CheckRow {
  host: string;
  check: string;
  ok: boolean;
  detail: string;
}

/** What verify gathers from one node (remote facts in one exec, the rest on the laptop). */
export interface NodeAuditFacts {
  mount?: MountFact;
  kernel: KernelFact;
  agent: AgentFact;
  copies: HexCopy[];
  legacyGit: GitFact;
  /** The old plaintext JWT file (bootstrap.sh's). */
  legacy: FileFact;
  /** JWT_PATH lines of the compose env file. */
  jwtPath: { fileExists: boolean; values: string[] };
  expected?: EngineJwtValue;
  probe?: EngineProbe;
  /** Daemon mode: the agent's token as Vault sees it (undefined when there is none to look up). */
  token?: { renewable: boolean; ttlSeconds: number; policies: string[] } | { error: string };
  /** `sys/capabilities` of a short-lived token of the node's policy on each probed path. */
  capabilities?: { ownPath: string; own: string[]; others: Record<string, string[]> } | { error: string };
}

/**
 * The audit of one node, pure: facts in, rows out (check ids: tmpfs, jwt.file, jwt.backend, jwt.copies,
 * agent, secret_id, engine.auth, vault.policy). A reboot or a dead agent shows as the clear statement that
 * the node must be re-provisioned (`apply playbooks/provision.yml --limit <node>`).
 */
export function nodeChecks(inv: Inventory, node: NodeHost, f: NodeAuditFacts): CheckRow[] {
  const rows: CheckRow[] = [];
  const row = (check: string, ok: boolean, detail: string) => rows.push({ host: node.name, check, ok, detail });
  const reprovision = `re-provision it: krypton-secrets apply playbooks/provision.yml -i ${inv.file} --limit ${node.name}`;

  // tmpfs
  if (!f.mount) row('tmpfs', false, `${SECRETS_DIR} is not mounted (a reboot wipes it): ${reprovision}`);
  else if (f.mount.fsType !== 'tmpfs') row('tmpfs', false, `${SECRETS_DIR} is ${f.mount.fsType}, not tmpfs: secrets would be on persistent disk`);
  else if (f.mount.mode !== '0700') row('tmpfs', false, `${SECRETS_DIR} has mode ${f.mount.mode}, expected 0700`);
  else if (f.kernel.swapActive && !f.mount.options.includes('noswap'))
    row('tmpfs', false, `swap is on and the tmpfs lacks noswap (kernel ${f.kernel.release}): its pages may be written to the swap device`);
  else row('tmpfs', true, `tmpfs, mode 0700${f.mount.options.includes('noswap') ? ', noswap' : f.kernel.swapActive ? '' : ', no swap active'}`);

  // jwt.hex itself
  const j = f.agent.jwt;
  if (!j.exists) row('jwt.file', false, `${AGENT_FILES.jwt} is missing: ${reprovision}`);
  else if (j.mode !== node.jwt.mode) row('jwt.file', false, `${AGENT_FILES.jwt} has mode ${j.mode}, expected ${node.jwt.mode}`);
  else if (node.jwt.owner && j.owner !== node.jwt.owner) row('jwt.file', false, `${AGENT_FILES.jwt} is owned by ${j.owner}, expected ${node.jwt.owner}`);
  else if (!j.isHex64) row('jwt.file', false, `${AGENT_FILES.jwt} is not exactly 64 lowercase hex characters`);
  else row('jwt.file', true, `mode ${j.mode}, owner ${j.owner}, 64 lowercase hex`);

  // matches the backend
  if (!f.expected) row('jwt.backend', false, 'the backend holds no Engine-API JWT for this network');
  else if (!j.exists) row('jwt.backend', false, `no jwt.hex to compare with ${f.expected.source} v${f.expected.version}`);
  else if (j.sha256 !== f.expected.secret.fingerprint())
    row('jwt.backend', false, `jwt.hex (sha256:${(j.sha256 ?? '').slice(0, 12)}) differs from ${f.expected.source} v${f.expected.version} (${f.expected.secret.shortFingerprint()})`);
  else row('jwt.backend', true, `equals ${f.expected.source} v${f.expected.version} (${f.expected.secret.shortFingerprint()})`);

  // stray copies of the current value
  if (f.expected) {
    const fp = f.expected.secret.fingerprint();
    const leaks = f.copies.filter((c) => c.fingerprint === fp).map((c) => c.where);
    if (leaks.length) row('jwt.copies', false, `a copy of the current JWT is in ${leaks.join(', ')}: remove it and rotate (playbooks/rotate-jwt.yml)`);
    else row('jwt.copies', true, `no copy of the current value in ${node.deployDir}, ${node.envFile}, ${node.legacyJwtPath} or its git history`);
  }
  if (f.legacyGit.tracked) row('jwt.git', false, `${node.legacyJwtPath} is tracked by the git work tree ${f.legacyGit.repo}`);

  // where el and cl read it from, and what bootstrap.sh left behind
  const paths = f.jwtPath.values;
  if (!f.jwtPath.fileExists) row('jwt.path', false, `the compose env file ${node.envFile} does not exist`);
  else if (paths.length === 0 || !paths.every((p) => p === AGENT_FILES.jwt))
    row('jwt.path', false, `JWT_PATH in ${node.envFile} is ${paths.length ? paths.join(', ') : 'unset'}, not ${AGENT_FILES.jwt}`);
  else row('jwt.path', true, `JWT_PATH=${AGENT_FILES.jwt} in ${node.envFile}`);
  if (f.legacy.exists) {
    row('jwt.legacy', false, `the old plaintext JWT file ${node.legacyJwtPath} is still there (mode ${f.legacy.mode}): apply playbooks/migrate-plaintext.yml`);
  }

  // the agent
  if (inv.backend === 'vault') {
    if (inv.vault.agentMode === 'oneshot') {
      row('agent', !f.agent.tokenSink, f.agent.tokenSink ? `a token sink ${AGENT_FILES.tokenSink} exists in oneshot mode` : 'oneshot mode: no agent token stays on the host');
    } else if (!f.agent.running) {
      row('agent', false, `the Vault Agent is not running (reboot, crash, or stopped); its single-use secret_id is spent, so it cannot re-authenticate: ${reprovision}`);
    } else if (!f.token || 'error' in f.token) {
      row('agent', false, `the agent (pid ${f.agent.pid}) holds no usable token${f.token && 'error' in f.token ? ` (${f.token.error})` : ''}: ${reprovision}`);
    } else if (!f.token.renewable) {
      row('agent', false, `the agent's token is not renewable (ttl ${f.token.ttlSeconds} s): it will expire and the agent cannot log in again`);
    } else {
      row('agent', true, `running (pid ${f.agent.pid}) with a renewable token (ttl ${f.token.ttlSeconds} s, policies ${f.token.policies.join(', ')})`);
    }
    const leftovers = f.agent.leftoverTempFiles ?? 0;
    row(
      'secret_id',
      !f.agent.secretIdFile && leftovers === 0,
      f.agent.secretIdFile
        ? `${AGENT_FILES.secretId} is still there (not consumed by the agent)`
        : leftovers
          ? `${leftovers} temp file(s) of an interrupted upload (.*.krypton-*.tmp) in ${SECRETS_DIR}, possibly holding a wrapping token: apply removes them`
          : 'no secret_id file left',
    );
  }

  // the Engine API
  if (!f.probe) row('engine.auth', false, 'no value to test the Engine API with');
  else row('engine.auth', f.probe.outcome === 'accepted', f.probe.outcome === 'accepted' ? 'the Engine API accepts the current JWT' : f.probe.detail);

  // the policy
  if (f.capabilities) {
    if ('error' in f.capabilities) row('vault.policy', false, `could not check the policy: ${f.capabilities.error}`);
    else {
      const c = f.capabilities;
      const wide = Object.entries(c.others).filter(([, caps]) => !(caps.length === 1 && caps[0] === 'deny'));
      if (!(c.own.length === 1 && c.own[0] === 'read')) row('vault.policy', false, `the node's policy grants ${c.own.join(', ')} on ${c.ownPath}, expected read only`);
      else if (wide.length) row('vault.policy', false, `the node's policy also grants ${wide.map(([p, caps]) => `${caps.join('+')} on ${p}`).join('; ')}`);
      else row('vault.policy', true, `read on ${c.ownPath} only (checked with sys/capabilities)`);
    }
  }
  return rows;
}
