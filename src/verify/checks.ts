import type { HexCopy } from '../facts/copies.ts';
import type { EngineProbe } from '../facts/engine.ts';
import type { GitFact } from '../facts/git.ts';
import type { FileFact } from '../facts/file.ts';
import type { KernelFact, MountFact } from '../facts/mount.ts';
import type { AgentFact, SecretFileFact, StoredFingerprint } from '../facts/secrets.ts';
import { COMPOSE_SERVICES, inProject, jwtMountForm, type ContainersFact, type JwtMount } from '../facts/containers.ts';
import { shortFingerprint } from '../core/secret.ts';
import { SECRETS_DIR, type Host, type Inventory, type NodeHost } from '../model/inventory.ts';
import { AGENT_FILES, JWT_FILE, hostSecrets, type HostSecret } from '../model/layout.ts';
import type { Delivery } from '../model/store.ts';
import { CLOCK_SKEW_BOUND_SECONDS, ENGINE_IAT_WINDOW_SECONDS, describeSkew, skewBeyond, skewWholeSeconds, type HostClock } from '../model/clock.ts';

/** One line of the audit: a host, a check id, pass or fail, and why — never a secret value. */
export interface CheckRow {
  host: string;
  check: string;
  ok: boolean;
  detail: string;
  /** The error code of a failure that has one of its own (e.g. `E_CLOCK_SKEW`); most rows have none. */
  code?: string;
}

/** A copy of a stored value found on the host: the file, and what it matched (a whole file, or one variable). */
export interface ValueCopy {
  where: string;
  fingerprint: string;
}

/** What verify gathers from one host (remote facts in one exec, the rest on the laptop). */
export interface HostAuditFacts {
  /** The mount at each tmpfs dir, in `tmpfsDirs` order. */
  mounts: (MountFact | undefined)[];
  kernel: KernelFact;
  agent: AgentFact;
  files: Record<string, SecretFileFact>;
  stored: Record<string, StoredFingerprint | undefined>;
  /** Nodes: 64-hex tokens in the deploy dir, env file, old plaintext path and its git history (SHA-256 only). */
  copies?: HexCopy[];
  /** Nodes with env-secrets: files in the deploy dir equal to the env file, and variable values found there (SHA-256 only). */
  envCopies?: ValueCopy[];
  /** The SHA-256 of each stored env-secret value, to compare with `envCopies` (computed on the laptop, never shown). */
  envValueFingerprints?: string[];
  legacyGit?: GitFact;
  /** The old plaintext JWT file (bootstrap.sh's). */
  legacy?: FileFact;
  /** JWT_PATH lines of the compose env file. */
  jwtPath?: { fileExists: boolean; values: string[] };
  probe?: EngineProbe;
  /** Nodes: what el's and cl's containers hold (compose hosts), or why the host is not a compose host. */
  containers?: ContainersFact;
  /** Nodes: geth's crc32 of the stored JWT (computed on the laptop; only the number), to compare with el's log. */
  jwtCrc32?: { version: number; crc32: string; source: string };
  /** Daemon mode: the agent's token as Vault sees it (undefined when there is none to look up). */
  token?: { renewable: boolean; ttlSeconds: number; policies: string[] } | { error: string };
  /** `sys/capabilities` of a short-lived token of the host's policy on its own paths and on paths it must not reach. */
  capabilities?: { ownPaths: string[]; own: Record<string, string[]>; others: Record<string, string[]> } | { error: string };
}

/** The check id of a host secret's rows: `jwt` for the Engine-API JWT (as before), `env`, `ecies`, `shard`. */
export function checkPrefix(s: Pick<HostSecret, 'name'>): string {
  return s.name === 'engine-jwt' ? 'jwt' : s.name === 'node-env' ? 'env' : s.name;
}

/**
 * The audit of one host, pure: facts in, rows out. Check ids: `tmpfs`; per host secret `<p>.file` (mode, owner,
 * format) and `<p>.backend` (SHA-256 against the store) with `<p>` = jwt, env, ecies, shard; nodes also
 * `jwt.copies`, `env.copies`, `jwt.git`, `jwt.path`, `jwt.legacy`, `engine.auth`; with an agent `agent`,
 * `secret_id` and `vault.policy`; on a compose host `el.holds` and `cl.holds` (the SHA-256 of the JWT as each
 * container sees it, against the store) and `el.loaded` (the crc32 geth logged when it loaded its secret, against
 * the stored value's). A reboot or a dead agent shows as the clear statement that the host must be re-provisioned.
 */
export function hostChecks(inv: Inventory, host: Host, delivery: Delivery, dirs: readonly string[], f: HostAuditFacts): CheckRow[] {
  const rows: CheckRow[] = [];
  const row = (check: string, ok: boolean, detail: string, code?: string) => rows.push({ host: host.name, check, ok, detail, ...(code && !ok ? { code } : {}) });
  const playbook = host.kind === 'node' ? 'playbooks/provision.yml' : 'playbooks/cosigner-bringup.yml';
  const reprovision = `re-provision it: krypton-secrets apply ${playbook} -i ${inv.file} --limit ${host.name}`;

  // tmpfs
  dirs.forEach((dir, i) => {
    const m = f.mounts[i];
    const check = i === 0 ? 'tmpfs' : 'tmpfs.key_dir';
    if (!m) row(check, false, `${dir} is not mounted (a reboot wipes it): ${reprovision}`);
    else if (m.fsType !== 'tmpfs') row(check, false, `${dir} is ${m.fsType}, not tmpfs: secrets would be on persistent disk`);
    else if (m.mode !== '0700') row(check, false, `${dir} has mode ${m.mode}, expected 0700`);
    else if (f.kernel.swapActive && !m.options.includes('noswap')) row(check, false, `swap is on and the tmpfs at ${dir} lacks noswap (kernel ${f.kernel.release}): its pages may be written to the swap device`);
    else row(check, true, `${dir}: tmpfs, mode 0700${m.options.includes('noswap') ? ', noswap' : f.kernel.swapActive ? '' : ', no swap active'}`);
  });

  // each secret's file, and the store
  for (const s of hostSecrets(inv, host)) {
    if (host.kind === 'cosigner') continue; // horcrux.verify-keys judges the key dir as a whole (cosigner.keys)
    const p = checkPrefix(s);
    const j = f.files[s.name] ?? { exists: false };
    const want = f.stored[s.name];
    if (!j.exists) row(`${p}.file`, false, `${s.path} is missing: ${reprovision}`);
    else if (j.mode !== s.mode) row(`${p}.file`, false, `${s.path} has mode ${j.mode}, expected ${s.mode}`);
    else if (s.owner && j.owner !== s.owner && !/^\d+$/.test(s.owner)) row(`${p}.file`, false, `${s.path} is owned by ${j.owner}, expected ${s.owner}`);
    else if (s.format === 'hex64' && !j.isHex64) row(`${p}.file`, false, `${s.path} is not exactly 64 lowercase hex characters`);
    else row(`${p}.file`, true, `${s.path}: mode ${j.mode}, owner ${j.owner}${s.format === 'hex64' ? ', 64 lowercase hex' : ''}`);
    if (!want) row(`${p}.backend`, false, `the store holds nothing for ${s.path}`);
    else if (!j.exists) row(`${p}.backend`, false, `no ${s.path} to compare with ${want.source} v${want.version}`);
    else if (j.sha256 !== want.fingerprint) row(`${p}.backend`, false, `${s.path} (${shortFingerprint(j.sha256 ?? '')}) differs from ${want.source} v${want.version} (${shortFingerprint(want.fingerprint)})`);
    else row(`${p}.backend`, true, `${s.path} equals ${want.source} v${want.version} (${shortFingerprint(want.fingerprint)})`);
  }

  if (host.kind === 'node') nodeOnly(inv, host, f, row);

  // the agent
  if (delivery === 'agent') {
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

  // the policy
  if (f.capabilities) {
    if ('error' in f.capabilities) row('vault.policy', false, `could not check the policy: ${f.capabilities.error}`);
    else {
      const c = f.capabilities;
      const wide = Object.entries(c.others).filter(([, caps]) => !(caps.length === 1 && caps[0] === 'deny'));
      const notRead = c.ownPaths.filter((p) => !(c.own[p]?.length === 1 && c.own[p]![0] === 'read'));
      if (notRead.length) row('vault.policy', false, `the ${host.kind}'s policy grants ${notRead.map((p) => `${(c.own[p] ?? []).join(', ')} on ${p}`).join('; ')}, expected read only`);
      else if (wide.length) row('vault.policy', false, `the ${host.kind}'s policy also grants ${wide.map(([p, caps]) => `${caps.join('+')} on ${p}`).join('; ')}`);
      else row('vault.policy', true, `read on ${c.ownPaths.join(', ')} only (checked with sys/capabilities)`);
    }
  }
  return rows;
}

/**
 * `clock`: the laptop–host clock skew (read in the audit's exec, model/clock.ts) is within
 * {@link CLOCK_SKEW_BOUND_SECONDS} (30 s, half the Engine API's ±60 s window); beyond it the row fails with
 * E_CLOCK_SKEW. A host whose `date` gives no reading fails too (its skew is unknown).
 */
export function clockRow(host: string, c: HostClock | undefined): CheckRow {
  const bound = `verify allows ±${CLOCK_SKEW_BOUND_SECONDS} s; the Engine API ±${ENGINE_IAT_WINDOW_SECONDS} s`;
  if (!c) return { host, check: 'clock', ok: false, detail: `could not read ${host}'s clock (date -u +%s.%N gave nothing usable): the laptop–host clock skew is unknown`, code: 'E_CLOCK_SKEW' };
  const within = c.uncertaintySeconds >= 1 ? ` (± ${c.uncertaintySeconds.toFixed(1)} s)` : '';
  if (skewBeyond(c, CLOCK_SKEW_BOUND_SECONDS)) {
    return {
      host,
      check: 'clock',
      ok: false,
      code: 'E_CLOCK_SKEW',
      detail: `clock skew of ${skewWholeSeconds(c.skewSeconds)} s${within} (${bound}): ${describeSkew(c.skewSeconds, host)}; set the clocks right (NTP) — krypton-secrets mints iat from the host's clock, but Vault/AWS request times and tokens minted elsewhere drift with it`,
    };
  }
  return { host, check: 'clock', ok: true, detail: `${describeSkew(c.skewSeconds, host)}${within} (${bound})` };
}

function nodeOnly(inv: Inventory, node: NodeHost, f: HostAuditFacts, row: (check: string, ok: boolean, detail: string, code?: string) => void): void {
  // stray copies of the current JWT
  const jwt = f.stored['engine-jwt'];
  if (jwt && f.copies) {
    const leaks = f.copies.filter((c) => c.fingerprint === jwt.fingerprint).map((c) => c.where);
    if (leaks.length) row('jwt.copies', false, `a copy of the current JWT is in ${leaks.join(', ')}: remove it and rotate (playbooks/rotate-jwt.yml)`);
    else row('jwt.copies', true, `no copy of the current value in ${node.deployDir}, ${node.envFile}, ${node.legacyJwtPath} or its git history`);
  }
  // stray copies of the env-secrets: the whole file, or any one value, on persistent disk in the deploy dir
  const env = f.stored['node-env'];
  if (node.env && env && f.envCopies) {
    const values = new Set(f.envValueFingerprints ?? []);
    const whole = f.envCopies.filter((c) => c.fingerprint === env.fingerprint).map((c) => c.where);
    const parts = f.envCopies.filter((c) => values.has(c.fingerprint)).map((c) => c.where);
    const leaks = [...new Set([...whole, ...parts])];
    if (leaks.length) row('env.copies', false, `a copy of the env-secrets (the file or one of its values) is on persistent disk in ${leaks.join(', ')}: shred it, and change the values it exposed`);
    else row('env.copies', true, `no copy of the env-secrets or of any of their values in ${node.deployDir}`);
  }
  if (f.legacyGit?.tracked) row('jwt.git', false, `${node.legacyJwtPath} is tracked by the git work tree ${f.legacyGit.repo}`);
  // where el and cl read it from, and what bootstrap.sh left behind
  if (f.jwtPath) {
    const paths = f.jwtPath.values;
    if (!f.jwtPath.fileExists) row('jwt.path', false, `the compose env file ${node.envFile} does not exist`);
    else if (paths.length === 0 || !paths.every((p) => p === JWT_FILE)) row('jwt.path', false, `JWT_PATH in ${node.envFile} is ${paths.length ? paths.join(', ') : 'unset'}, not ${JWT_FILE}`);
    else row('jwt.path', true, `JWT_PATH=${JWT_FILE} in ${node.envFile}`);
  }
  if (f.legacy?.exists) row('jwt.legacy', false, `the old plaintext JWT file ${node.legacyJwtPath} is still there (mode ${f.legacy.mode}): apply playbooks/migrate-plaintext.yml`);
  if (f.containers?.compose) containerRows(node, f.containers, jwt, f.jwtCrc32, row);
  // the Engine API
  if (!f.probe) row('engine.auth', false, 'no value to test the Engine API with');
  else {
    const code = f.probe.outcome === 'skewed' ? 'E_CLOCK_SKEW' : f.probe.outcome === 'rejected' ? 'E_ENGINE_AUTH' : f.probe.outcome === 'unreachable' ? 'E_ENGINE_UNREACHABLE' : undefined;
    const skewNote = f.probe.iatFrom === 'host' && f.probe.skewSeconds !== undefined && Math.abs(f.probe.skewSeconds) > CLOCK_SKEW_BOUND_SECONDS ? ` (iat from ${node.name}'s clock: ${describeSkew(f.probe.skewSeconds, node.name)})` : '';
    row('engine.auth', f.probe.outcome === 'accepted', f.probe.outcome === 'accepted' ? `the Engine API accepts the current JWT${skewNote}` : f.probe.detail, code);
  }
  void inv;
}

/** How a container gets the JWT, for people. */
function mountNote(m: JwtMount): string {
  return m.form === 'file'
    ? ` through a single-file bind mount of ${m.source}: each new value needs a restart (node.restart-lockstep does it; the agent's re-render alone does not reach the container)`
    : ` through a bind mount of ${m.source}: the container sees each new file at once, its service reads it at its next start`;
}

/** `el.holds`, `cl.holds`, `el.loaded`: what the containers of a compose host really hold and loaded. */
function containerRows(
  node: NodeHost,
  c: Extract<ContainersFact, { compose: true }>,
  want: StoredFingerprint | undefined,
  crc: HostAuditFacts['jwtCrc32'],
  row: (check: string, ok: boolean, detail: string) => void,
): void {
  const restartHint = `restart el and cl: krypton-secrets apply playbooks/provision.yml -i <inventory> --limit ${node.name}`;
  for (const svc of COMPOSE_SERVICES) {
    if (!inProject(c, svc)) continue; // the compose project has no such service: nothing of it to judge
    const k = c.services[svc];
    const check = `${svc}.holds`;
    const m = k?.jwtMount;
    if (!k || k.state === 'absent') row(check, false, `${svc} has no container in ${node.deployDir} (docker compose ps): apply playbooks/provision.yml creates it`);
    else if (k.state !== 'running') row(check, false, `${svc} (container ${k.id}) is ${k.state}`);
    else if (!m) row(check, false, `${svc} (container ${k.id}) has no bind mount of ${JWT_FILE} or ${SECRETS_DIR}: it does not read the JWT the tool provisions`);
    else if (!m.heldSha256) row(check, false, `could not read ${m.path} inside ${svc} (container ${k.id}, through /proc/${k.pid ?? '?'}/root): the file is missing there, or the check is not run as root`);
    else if (!want) row(check, false, `the store holds no JWT to compare ${svc}'s with`);
    else if (m.heldSha256 !== want.fingerprint) {
      row(
        check,
        false,
        `${svc} (container ${k.id}) holds another JWT (${shortFingerprint(m.heldSha256)}) at ${m.path} than ${want.source} v${want.version} (${shortFingerprint(want.fingerprint)})` +
          (m.form === 'file' ? `: its single-file bind mount of ${m.source} keeps the file the container started with` : '') +
          `; ${restartHint}`,
      );
    } else row(check, true, `${svc} (container ${k.id}) holds ${want.source} v${want.version} (${shortFingerprint(want.fingerprint)}) at ${m.path}${mountNote(m)}`);
  }
  const el = c.services['el'];
  if (!inProject(c, 'el')) return;
  if (!el || el.state !== 'running') row('el.loaded', false, `el is ${el?.state === 'absent' || !el ? 'not created' : el.state}: it holds no loaded JWT`);
  else if (!crc) row('el.loaded', false, 'the store holds no JWT to compare with');
  else if (!el.loadedCrc32) {
    row('el.loaded', true, `el logged no "Loaded JWT secret file … crc32=" line since it started (geth logs one; other clients do not): judged by el.holds and engine.auth`);
  } else if (el.loadedCrc32 !== crc.crc32) {
    row('el.loaded', false, `el loaded another JWT (crc32 ${el.loadedCrc32}) than ${crc.source} v${crc.version} (crc32 ${crc.crc32}) when it last started; ${restartHint}`);
  } else row('el.loaded', true, `el loaded the current JWT (crc32 ${crc.crc32}, ${crc.source} v${crc.version})${jwtMountForm(c) === 'file' ? '; single-file bind mount: each new value needs a restart' : ''}`);
}
