import { toKryptonError } from '../core/errors.ts';
import { Secret } from '../core/secret.ts';
import type { GatherEnv } from '../core/task.ts';
import { laptopFact } from '../core/task.ts';
import type { Backends } from '../backends/registry.ts';
import { agentState } from '../facts/agent.ts';
import { hexCopies } from '../facts/copies.ts';
import { gitStatusOf } from '../facts/git.ts';
import { envKey, fileAt } from '../facts/file.ts';
import { engineProbe, expectedEngineJwt } from '../facts/inputs.ts';
import { kernel, mountAt } from '../facts/mount.ts';
import { gatherFacts } from '../executor/facts.ts';
import { Semaphore } from '../executor/semaphore.ts';
import { SECRETS_DIR, type CosignerHost, type Host, type Inventory, type NodeHost } from '../inventory/model.ts';
import { cosignerSettings } from '../horcrux/config.ts';
import { homeState, type HomeFact } from '../horcrux/facts.ts';
import { horcruxVerifyKeys } from '../tasks/horcrux-verify-keys.ts';
import { kmsPutBlob } from '../tasks/kms-put-blob.ts';
import { kmsInstallBootStep } from '../tasks/kms-install-boot-step.ts';
import type { AnyTask, FactSpec } from '../core/task.ts';
import { AGENT_FILES, engineJwtKvPath, nodeRoleName } from '../render/vault-agent.ts';
import type { Transport } from '../transport/transport.ts';
import { nodeChecks, type CheckRow, type NodeAuditFacts } from './checks.ts';

export interface VerifyOptions {
  inventory: Inventory;
  limit?: Set<string>;
  concurrency?: number;
  backends: Backends;
  connect(host: Host): Promise<Transport>;
  /** Called with each row as soon as it is known. */
  onRow(row: CheckRow): void;
}

export interface VerifySummary {
  ok: boolean;
  passed: number;
  failed: number;
  hosts: Record<string, { ok: boolean; failed: string[] }>;
}

/**
 * `krypton-secrets verify`: a read-only audit of every node (and cosigner) — nothing on any host or in any
 * backend is changed, except a short-lived (60 s) token of each node's policy created to ask Vault's
 * `sys/capabilities` what it grants, revoked right after. Per node ONE exec gathers the host facts; the
 * Engine API is probed through the SSH connection. Returns the summary; rows go to `onRow`.
 */
export async function runVerify(o: VerifyOptions): Promise<VerifySummary> {
  const slots = new Semaphore(o.concurrency ?? 16);
  const memo = new Map<string, Promise<unknown>>();
  const hosts = [...o.inventory.nodes, ...o.inventory.cosigners].filter((h) => !o.limit || o.limit.has(h.name));
  const rows: CheckRow[] = [];
  const emit = (r: CheckRow) => {
    rows.push(r);
    o.onRow(r);
  };
  await Promise.all(
    hosts.map((h) =>
      slots.use(async () => {
        let transport: Transport;
        try {
          transport = await o.connect(h);
        } catch (err) {
          const e = toKryptonError(err, 'E_SSH_CONNECT');
          emit({ host: h.name, check: 'ssh', ok: false, detail: `${e.code}: ${e.message}` });
          return;
        }
        try {
          if (h.kind === 'node') for (const r of await auditNode(o, h, transport, memo)) emit(r);
          else for (const r of await auditCosigner(o, h, transport, memo)) emit(r);
        } catch (err) {
          const e = toKryptonError(err);
          emit({ host: h.name, check: 'audit', ok: false, detail: `${e.code}: ${e.message}` });
        }
      }),
    ),
  );
  const summary: VerifySummary = { ok: true, passed: 0, failed: 0, hosts: {} };
  for (const h of hosts) summary.hosts[h.name] = { ok: true, failed: [] };
  for (const r of rows) {
    const hs = summary.hosts[r.host]!;
    if (r.ok) summary.passed++;
    else {
      summary.failed++;
      summary.ok = false;
      hs.ok = false;
      hs.failed.push(r.check);
    }
  }
  return summary;
}

function gatherEnv(o: VerifyOptions, host: Host, transport: Transport, memo: Map<string, Promise<unknown>>): GatherEnv {
  return {
    host,
    inventory: o.inventory,
    transport,
    backends: o.backends,
    runState: new Map(),
    memo<T>(key: string, get: () => Promise<T>): Promise<T> {
      let p = memo.get(key) as Promise<T> | undefined;
      if (!p) memo.set(key, (p = get()));
      return p;
    },
  };
}

async function auditNode(o: VerifyOptions, node: NodeHost, transport: Transport, memo: Map<string, Promise<unknown>>): Promise<CheckRow[]> {
  const inv = o.inventory;
  const env = gatherEnv(o, node, transport, memo);
  const vault = inv.backend === 'vault';
  // The AWS backends' host-side pieces are judged by their own tasks (converged = pass), in the same exec.
  const awsChecks = ([
    [kmsPutBlob, 'kms.blob'],
    [kmsInstallBootStep, 'kms.boot-step'],
  ] as const).filter(([task]) => task.backends?.includes(inv.backend));
  const { rows: awsRows, extra } = await taskChecks(awsChecks, node, transport, env, {
    mount: mountAt(SECRETS_DIR),
    kernel: kernel(),
    agent: agentState(),
    copies: hexCopies([node.deployDir, node.envFile, node.legacyJwtPath], node.legacyJwtPath),
    legacyGit: gitStatusOf(node.legacyJwtPath),
    legacy: fileAt(node.legacyJwtPath),
    jwtPath: envKey(node.envFile, 'JWT_PATH'),
    expected: expectedEngineJwt(),
    probe: engineProbe(),
    ...(vault && inv.vault.agentMode === 'daemon' ? { token: laptopFact((e) => agentToken(e)) } : {}),
    ...(vault ? { capabilities: laptopFact((e) => policyCapabilities(e, node)) } : {}),
  });
  return [...nodeChecks(inv, node, extra as unknown as NodeAuditFacts), ...awsRows];
}

/**
 * Verify rows from tasks' plans on the live host: noChange passes (its reason), anything else fails. Every
 * task's host facts and the `extra` facts are gathered in ONE exec; the extra facts are returned.
 */
async function taskChecks(
  checks: readonly (readonly [AnyTask, string])[],
  host: Host,
  transport: Transport,
  env: GatherEnv,
  extra: Record<string, FactSpec<unknown>>,
): Promise<{ rows: CheckRow[]; extra: Record<string, unknown> }> {
  const inv = env.inventory;
  const prepared = checks.map(([task, check], i) => {
    const params = task.params.parse({});
    return { task, check, params, prefix: `${i}:`, specs: task.facts(params, host, inv) as Record<string, FactSpec<unknown>> };
  });
  const all = await gatherFacts(
    { ...Object.fromEntries(Object.entries(extra).map(([k, v]) => [`extra:${k}`, v])), ...Object.fromEntries(prepared.flatMap((p) => Object.entries(p.specs).map(([k, v]) => [p.prefix + k, v]))) },
    transport,
    env,
  );
  const rows = prepared.map(({ task, check, params, prefix, specs }): CheckRow => {
    const facts = Object.fromEntries(Object.keys(specs).map((k) => [k, all[prefix + k]]));
    const plan = task.plan(params, facts, { host, inventory: inv, restartPending: false, resume: false });
    if (plan.kind === 'noChange') return { host: host.name, check, ok: true, detail: plan.reason };
    if (plan.kind === 'refuse') return { host: host.name, check, ok: false, detail: plan.error.message };
    return { host: host.name, check, ok: false, detail: `not current: apply would ${plan.actions.map((a) => a.description).join('; ')}` };
  });
  return { rows, extra: Object.fromEntries(Object.keys(extra).map((k) => [k, all[`extra:${k}`]])) };
}

/** Reads the agent's token from its sink over SSH (into memory only) and asks Vault about it. */
async function agentToken(env: GatherEnv): Promise<NodeAuditFacts['token']> {
  const res = await env.transport.exec(['cat', '--', AGENT_FILES.tokenSink]);
  if (res.code !== 0 || !res.stdout.trim()) return undefined;
  try {
    const info = await env.backends.vault().tokenLookupSelf(new Secret(res.stdout.trim()));
    return { renewable: info.renewable, ttlSeconds: info.ttlSeconds, policies: info.policies };
  } catch (err) {
    return { error: toKryptonError(err).message };
  }
}

/** What a fresh 60 s token of the node's policy may do on its own path and on paths it must not reach. */
async function policyCapabilities(env: GatherEnv, node: NodeHost): Promise<NodeAuditFacts['capabilities']> {
  const inv = env.inventory;
  const vault = env.backends.vault();
  const m = inv.vault.kvMount;
  const ownPath = `${m}/data/${engineJwtKvPath(inv, node.name)}`;
  const others = [
    `${m}/metadata/${engineJwtKvPath(inv, node.name)}`,
    `${m}/data/krypton/${inv.network}/nodes/${node.name}-other/engine-jwt`,
    `${m}/data/krypton/${inv.network}/horcrux/any/shard`,
    `${m}/data/krypton/${inv.network}/env`,
    `auth/${inv.vault.approleMount}/role/${nodeRoleName(inv.network, node.name)}/secret-id`,
    'sys/policies/acl',
  ].filter((p) => p !== ownPath);
  let token: Secret | undefined;
  try {
    token = await vault.createToken({ policies: [nodeRoleName(inv.network, node.name)], ttlSeconds: 60, displayName: `krypton-verify-${node.name}` });
    const caps = await vault.capabilities(token, [ownPath, ...others]);
    return { ownPath, own: caps[ownPath] ?? ['deny'], others: Object.fromEntries(others.map((p) => [p, caps[p] ?? ['deny']])) };
  } catch (err) {
    return { error: toKryptonError(err).message };
  } finally {
    if (token) await vault.write('auth/token/revoke', { token }).catch(() => undefined);
  }
}

const TMPFS_LIKE = new Set(['tmpfs', 'ramfs']);

/**
 * A cosigner's audit: `cosigner.keys` is horcrux.verify-keys's judgement (key dir a tmpfs, 0700, holding only
 * this cosigner's two files, 0600, equal to the backend's, Horcrux running); `cosigner.state` checks that
 * `state/` (the double-sign high-water marks) is on persistent disk.
 */
async function auditCosigner(o: VerifyOptions, c: CosignerHost, transport: Transport, memo: Map<string, Promise<unknown>>): Promise<CheckRow[]> {
  const inv = o.inventory;
  const s = cosignerSettings(inv, c);
  const env = gatherEnv(o, c, transport, memo);
  const keys = await taskChecks([[horcruxVerifyKeys, 'cosigner.keys']], c, transport, env, { home: homeState(s) });
  const home = keys.extra['home'] as HomeFact;
  return [
    ...keys.rows,
    {
      host: c.name,
      check: 'cosigner.state',
      ok: home.state === 'dir' && !TMPFS_LIKE.has(home.stateFsType),
      detail:
        home.state !== 'dir'
          ? `${s.stateDir} is ${home.state === 'absent' ? 'missing' : 'not a directory'}`
          : TMPFS_LIKE.has(home.stateFsType)
            ? `${s.stateDir} is on ${home.stateFsType}: the double-sign state would vanish at reboot`
            : `${s.stateDir} is on persistent disk (${home.stateFsType})`,
    },
  ];
}
