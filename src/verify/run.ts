import { toKryptonError } from '../core/errors.ts';
import { Secret } from '../core/secret.ts';
import type { GatherEnv } from '../model/task.ts';
import { laptopFact } from '../model/task.ts';
import type { SecretStore } from '../model/store.ts';
import { agentState, secretFiles, storedFingerprints } from '../facts/secrets.ts';
import { envValueCopies, hexCopies } from '../facts/copies.ts';
import { gitStatusOf } from '../facts/git.ts';
import { envKey, fileAt } from '../facts/file.ts';
import { engineProbe } from '../facts/inputs.ts';
import { COMPOSE_SERVICES, composeContainers, storedJwtCrc32 } from '../facts/containers.ts';
import { factList } from '../facts/list.ts';
import { kernel, mountAt } from '../facts/mount.ts';
import { gatherFacts } from '../executor/facts.ts';
import { Semaphore } from '../executor/semaphore.ts';
import { SECRETS_DIR, type CosignerHost, type Host, type Inventory, type NodeHost } from '../model/inventory.ts';
import { AGENT_FILES, cosignerSettings, hostSecrets, kvDataPath, kvPath, policyName, refKey, tmpfsDirs } from '../model/layout.ts';
import { envVarsOf } from '../model/formats.ts';
import { sha256Hex } from '../core/secret.ts';
import { capabilities as storeCapabilities } from '../executor/run.ts';
import { homeState, type HomeFact } from '../facts/dir.ts';
import { horcruxVerifyKeys } from '../tasks/horcrux-verify-keys.ts';
import { secretPutHostCopy } from '../tasks/secret-put-host-copy.ts';
import { kmsInstallBootStep } from '../tasks/kms-install-boot-step.ts';
import type { AnyTask, FactSpec } from '../model/task.ts';
import type { Transport } from '../core/transport.ts';
import { clockRow, hostChecks, type CheckRow, type HostAuditFacts } from './checks.ts';
import type { HostClock } from '../model/clock.ts';

export interface VerifyOptions {
  inventory: Inventory;
  limit?: Set<string>;
  concurrency?: number;
  store: SecretStore;
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
 * `sys/capabilities` what it grants, revoked right after. Per node ONE exec gathers the host facts (on a compose
 * host also what el's and cl's containers hold, and the crc32 geth logged); the Engine API is probed through the
 * SSH connection. Returns the summary; rows go to `onRow`.
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
          for (const r of await auditHost(o, h, transport, memo)) emit(r);
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
    store: o.store,
    runState: new Map(),
    memo<T>(key: string, get: () => Promise<T>): Promise<T> {
      let p = memo.get(key) as Promise<T> | undefined;
      if (!p) {
        memo.set(key, (p = get()));
        // Awaited by whichever fact needs it; a rejection (e.g. a stored value that is not valid) fails that
        // host's audit row, and must never surface as an unhandled rejection when another fact failed first.
        p.catch(() => undefined);
      }
      return p;
    },
  };
}

async function auditHost(o: VerifyOptions, host: Host, transport: Transport, memo: Map<string, Promise<unknown>>): Promise<CheckRow[]> {
  const inv = o.inventory;
  const env = gatherEnv(o, host, transport, memo);
  const agent = o.store.delivery === 'agent';
  const ss = hostSecrets(inv, host);
  const dirs = tmpfsDirs(inv, host);
  const node = host.kind === 'node' ? host : undefined;
  // The host-fetch pieces are judged by their own tasks (converged = pass), in the same exec.
  const checks = (o.store.delivery === 'host-fetch' ? ([[secretPutHostCopy, 'kms.blob'], [kmsInstallBootStep, 'kms.boot-step']] as const) : []).filter(
    ([task]) => task.id !== secretPutHostCopy.id || o.store.hostFetch?.keepsCopy,
  );
  const cosignerChecks = host.kind === 'cosigner' ? ([[horcruxVerifyKeys, 'cosigner.keys']] as const) : [];
  const { rows: taskRows, extra } = await taskChecks([...cosignerChecks, ...checks], host, transport, env, {
    mounts: factList(dirs.map((d) => mountAt(d)), 'mount'),
    kernel: kernel(),
    clock: laptopFact(async (e) => e.hostClock?.()),
    agent: agentState(ss),
    files: secretFiles(ss),
    stored: storedFingerprints(ss),
    ...(node
      ? {
          copies: hexCopies([node.deployDir, node.envFile, node.legacyJwtPath], node.legacyJwtPath),
          legacyGit: gitStatusOf(node.legacyJwtPath),
          legacy: fileAt(node.legacyJwtPath),
          jwtPath: envKey(node.envFile, 'JWT_PATH'),
          probe: engineProbe(),
          containers: composeContainers(node.deployDir, COMPOSE_SERVICES),
          jwtCrc32: storedJwtCrc32(),
          ...(node.env ? { envCopies: envValueCopies(node.deployDir), envValueFingerprints: laptopFact((e) => envValueFingerprints(e, host)) } : {}),
        }
      : { home: homeState(cosignerSettings(inv, host as CosignerHost)) }),
    ...(agent && inv.vault.agentMode === 'daemon' ? { token: laptopFact((e) => agentToken(e)) } : {}),
    ...(agent ? { capabilities: laptopFact((e) => policyCapabilities(e, host)) } : {}),
  });
  // The laptop–host clock skew, from the clock readings of the same exec (model/clock.ts).
  const rows = [clockRow(host.name, extra['clock'] as HostClock | undefined), ...hostChecks(inv, host, o.store.delivery, dirs, extra as unknown as HostAuditFacts)];
  if (host.kind === 'cosigner') rows.push(stateRow(inv, host, extra['home'] as HomeFact));
  return [...rows, ...taskRows];
}

/** SHA-256 of each stored env-secret value of 8 characters or more (shorter ones would match by chance). */
async function envValueFingerprints(env: GatherEnv, host: Host): Promise<string[]> {
  const s = hostSecrets(env.inventory, host).find((x) => x.ref.kind === 'node-env');
  if (!s) return [];
  const v = await env.memo(`stored:${refKey(s.ref)}`, () => env.store.current(s.ref));
  if (!v) return [];
  return Object.values(envVarsOf(v.secret, v.source))
    .filter((x) => x.length >= 8)
    .map((x) => sha256Hex(x));
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
    const plan = task.plan(params, facts, { host, inventory: inv, restartPending: false, resume: false, store: storeCapabilities(env.store) });
    if (plan.kind === 'noChange') return { host: host.name, check, ok: true, detail: plan.reason };
    if (plan.kind === 'refuse') return { host: host.name, check, ok: false, detail: plan.error.message };
    return { host: host.name, check, ok: false, detail: `not current: apply would ${plan.actions.map((a) => a.description).join('; ')}` };
  });
  return { rows, extra: Object.fromEntries(Object.keys(extra).map((k) => [k, all[`extra:${k}`]])) };
}

/** Reads the agent's token from its sink over SSH (into memory only) and asks Vault about it. */
async function agentToken(env: GatherEnv): Promise<HostAuditFacts['token']> {
  const res = await env.transport.exec(['cat', '--', AGENT_FILES.tokenSink]);
  if (res.code !== 0 || !res.stdout.trim()) return undefined;
  try {
    const info = await env.store.vault!.tokenLookupSelf(new Secret(res.stdout.trim()));
    return { renewable: info.renewable, ttlSeconds: info.ttlSeconds, policies: info.policies };
  } catch (err) {
    return { error: toKryptonError(err).message };
  }
}

/** What a fresh 60 s token of the host's policy may do on its own paths and on paths it must not reach. */
async function policyCapabilities(env: GatherEnv, host: Host): Promise<HostAuditFacts['capabilities']> {
  const inv = env.inventory;
  const vault = env.store.vault!;
  const m = inv.vault.kvMount;
  const own = hostSecrets(inv, host).map((s) => kvDataPath(m, kvPath(s.ref)));
  const others = [
    ...hostSecrets(inv, host).map((s) => `${m}/metadata/${kvPath(s.ref)}`),
    `${m}/data/krypton/${inv.network}/nodes/${host.name}-other/engine-jwt`,
    `${m}/data/krypton/${inv.network}/horcrux/${host.name}-other/shard`,
    `${m}/data/krypton/${inv.network}/${host.kind === 'node' ? 'horcrux/any/shard' : 'engine-jwt'}`,
    `auth/${inv.vault.approleMount}/role/${policyName(inv, host)}/secret-id`,
    'sys/policies/acl',
  ].filter((p) => !own.includes(p));
  let token: Secret | undefined;
  try {
    token = await vault.createToken({ policies: [policyName(inv, host)], ttlSeconds: 60, displayName: `krypton-verify-${host.name}` });
    const caps = await vault.capabilities(token, [...own, ...others]);
    return { ownPaths: own, own: Object.fromEntries(own.map((p) => [p, caps[p] ?? ['deny']])), others: Object.fromEntries(others.map((p) => [p, caps[p] ?? ['deny']])) };
  } catch (err) {
    return { error: toKryptonError(err).message };
  } finally {
    if (token) await vault.write('auth/token/revoke', { token }).catch(() => undefined);
  }
}

const TMPFS_LIKE = new Set(['tmpfs', 'ramfs']);

/** `cosigner.state`: `state/` (the double-sign high-water marks) must be on persistent disk. */
function stateRow(inv: Inventory, c: CosignerHost, home: HomeFact): CheckRow {
  const s = cosignerSettings(inv, c);
  return {
    host: c.name,
    check: 'cosigner.state',
    ok: home.state === 'dir' && !TMPFS_LIKE.has(home.stateFsType),
    detail:
      home.state !== 'dir'
        ? `${s.stateDir} is ${home.state === 'absent' ? 'missing' : 'not a directory'}`
        : TMPFS_LIKE.has(home.stateFsType)
          ? `${s.stateDir} is on ${home.stateFsType}: the double-sign state would vanish at reboot`
          : `${s.stateDir} is on persistent disk (${home.stateFsType})`,
  };
}
