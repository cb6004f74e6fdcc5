/**
 * The canary leak matrix's driver (issue 10): one sandbox per backend, canaries put in the store or captured from
 * the run, every command run through the real CLI, and after each run every place searched (./places.ts) for
 * every form of every canary (./canaries.ts). One figure case per run.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'vitest';
import { Secret } from '../../src/core/secret.ts';
import { NETWORK_SCOPE, type SecretRef } from '../../src/model/layout.ts';
import type { SecretStore } from '../../src/model/store.ts';
import { recordFigure } from '../figures/record.ts';
import { cli, type CliResult } from '../integration/helpers.ts';
import { sandboxDown, sandboxUp, type SandboxInfo, type SandboxUpOptions } from '../sandbox/index.ts';
import { CanarySet, describeHit, type Canary } from './canaries.ts';
import { LeakSearch, ProcSampler } from './places.ts';
import { AuditTail } from './vault-audit.ts';

process.env['AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED'] ??= 'true';

export const PROVISION = 'playbooks/provision.yml';
export const ROTATE = 'playbooks/rotate-jwt.yml';
export const MIGRATE = 'playbooks/migrate-plaintext.yml';
export const BRINGUP = 'playbooks/cosigner-bringup.yml';

/** The env-secret variables the test imports (values chosen with a `"` and a `%`, so JSON- and URL-escaping change them). */
export function envCanaries(): Record<string, string> {
  return {
    CANARY_ENV_SECRET: `cnry"env%${randomBytes(12).toString('hex')}`,
    CANARY_API_KEY: randomBytes(20).toString('base64url'),
  };
}

export interface Matrix {
  info: SandboxInfo;
  canaries: CanarySet;
  search: LeakSearch;
  sampler: ProcSampler;
  audit?: AuditTail;
  /** Dir of the test's own fixtures (never searched): the env file to import, the render output's parent. */
  fixtures: string;
  /** Removes the sandbox, the sampler and the audit log. */
  close(): Promise<void>;
}

/**
 * Brings up one sandbox for the matrix: an audit device on a tmpfs (Vault), the sampler, the searcher, and the
 * canaries known from the start (the Horcrux key generation output, the sandbox's env-secret, the chosen JWT,
 * which it writes as the store's current value).
 */
export async function openMatrix(up: SandboxUpOptions & { jwt: string }): Promise<Matrix> {
  const backend = up.backend ?? 'vault';
  const auditDir = backend === 'vault' ? join('/dev/shm', `krypton-canary-audit-${process.pid}-${randomBytes(4).toString('hex')}`) : undefined;
  if (auditDir) mkdirSync(auditDir, { mode: 0o700 });
  const auditLog = auditDir ? join(auditDir, 'audit.log') : undefined;
  let info: SandboxInfo | undefined;
  const sampler = new ProcSampler();
  try {
    info = await sandboxUp({ ...up, ...(auditLog ? { vaultAuditLog: auditLog } : {}) });
    const fixtures = join(info.dir, 'canary-fixtures');
    mkdirSync(fixtures, { recursive: true, mode: 0o700 });
    const canaries = new CanarySet();
    const search = new LeakSearch({
      info,
      // Written on purpose: the key generation output to import, the test's fixtures, the raw audit log.
      fixtures: [...(info.files.horcruxKeys ? [info.files.horcruxKeys] : []), fixtures, ...(auditDir ? [auditDir] : [])],
    });
    for (const c of horcruxCanaries(info)) canaries.add(c);
    canaries.add({ kind: 'jwt', text: up.jwt, encoding: 'hex' });
    await withStore(info, async (store, ref) => {
      await store.write(ref('engine-jwt'), new Secret(up.jwt), await store.head(ref('engine-jwt')));
    });
    await sampler.start();
    const m: Matrix = {
      info,
      canaries,
      search,
      sampler,
      fixtures,
      ...(auditLog ? { audit: new AuditTail(auditLog, new Set([info.vault.token])) } : {}),
      async close() {
        await sampler.stop();
        await sandboxDown(info!.dir);
        if (auditDir) rmSync(auditDir, { recursive: true, force: true });
      },
    };
    await capture(m);
    return m;
  } catch (e) {
    await sampler.stop();
    if (info) await sandboxDown(info.dir).catch(() => {});
    if (auditDir) rmSync(auditDir, { recursive: true, force: true });
    throw e;
  }
}

/** The private halves of the sandbox's Horcrux key generation output: each cosigner's ECIES key and shard. */
function horcruxCanaries(info: SandboxInfo): Canary[] {
  const dir = info.files.horcruxKeys;
  if (!dir) return [];
  const out: Canary[] = [];
  for (const [i] of info.cosigners.entries()) {
    const d = join(dir, `cosigner_${i + 1}`);
    const ecies = JSON.parse(readFileSync(join(d, 'ecies_keys.json'), 'utf8')) as { eciesKey: string };
    const shard = JSON.parse(readFileSync(join(d, `${info.network}_shard.json`), 'utf8')) as { privateShard: string };
    out.push({ kind: 'horcrux-ecies-key', text: ecies.eciesKey, encoding: 'base64' }, { kind: 'horcrux-shard', text: shard.privateShard, encoding: 'base64' });
  }
  return out;
}

/**
 * Runs `fn` with the tool's own store for the sandbox's inventory, as the operator (the AWS SDK reads its
 * credentials from process.env: the sandbox's are lent for the call).
 */
export async function withStore<T>(info: SandboxInfo, fn: (store: SecretStore, ref: (kind: SecretRef['kind']) => SecretRef) => Promise<T>): Promise<T> {
  const [{ loadInventory }, { openStore }] = await Promise.all([import('../../src/inventory/loader.ts'), import('../../src/backends/index.ts')]);
  const vars = info.env;
  const saved = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]]));
  Object.assign(process.env, vars);
  try {
    const env = { ...process.env };
    const inv = await loadInventory(info.files.inventory, env);
    const store = await openStore(inv, env);
    return await fn(store, (kind) => ({ kind, network: inv.network, scope: NETWORK_SCOPE }));
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

/** The values of a canonical env file (`NAME='value'` lines, `\'` for a quote). */
function envValues(text: string): string[] {
  return text
    .split('\n')
    .map((l) => /^[A-Za-z_][A-Za-z0-9_]*='(.*)'$/.exec(l)?.[1])
    .filter((v): v is string => v !== undefined)
    .map((v) => v.replace(/\\'/g, "'"));
}

/**
 * Adds what the last run made to the canaries: the store's current JWT and env-secrets, and with Vault the
 * wrapping tokens, secret_ids, role_ids and tokens in the audit log, and every AppRole role's role_id read
 * from OpenBao.
 */
async function capture(m: Matrix): Promise<void> {
  await withStore(m.info, async (store, ref) => {
    const jwt = await store.current(ref('engine-jwt')).catch(() => undefined);
    if (jwt) m.canaries.add({ kind: 'jwt', text: jwt.secret.revealText(), encoding: 'hex' });
    const env = await store.current(ref('node-env')).catch(() => undefined);
    if (env) for (const v of envValues(env.secret.revealText())) m.canaries.add({ kind: 'env-value', text: v });
  });
  if (!m.audit) return;
  for (const c of m.audit.read()) m.canaries.add(c);
  const api = async (path: string, method = 'GET') => {
    const res = await fetch(`${m.info.vault.address}/v1/${path}`, { method, headers: { 'X-Vault-Token': m.info.vault.token } });
    return res.status === 200 ? ((await res.json()) as { data?: Record<string, unknown> }) : undefined;
  };
  const roles = ((await api('auth/approle/role', 'LIST'))?.data?.['keys'] as string[] | undefined) ?? [];
  for (const r of roles) {
    const id = (await api(`auth/approle/role/${encodeURIComponent(r)}/role-id`))?.data?.['role_id'];
    if (typeof id === 'string') m.canaries.add({ kind: 'role_id', text: id });
  }
  // The test's own reads above are in the audit log too (role_ids again): read them now, not next run.
  for (const c of m.audit.read()) m.canaries.add(c);
}

export interface RunOptions {
  /** Extra env for the CLI (e.g. a wrong token). */
  env?: Record<string, string>;
  /** Canaries to add before the search (e.g. the wrong token itself). */
  also?: Canary[];
  /** Exit codes the run may end with (default [0]). */
  codes?: number[];
}

/**
 * One run of the matrix: the CLI with `args`, then capture and search; records the figure case and fails the
 * test on a hit (naming place, kind, form and fingerprint, never the value) or an unexpected exit code.
 */
export async function canaryRun(m: Matrix, id: string, args: string[], o: RunOptions = {}): Promise<CliResult> {
  await m.sampler.drain(); // what ran before (the test's own setup) is not this run's
  const since = Date.now();
  const r = await cli(m.info, args, o.env ?? {});
  const ran = Date.now();
  const cmdlines = await m.sampler.drain();
  await capture(m);
  for (const c of o.also ?? []) m.canaries.add(c);
  const res = await m.search.search({ stdout: r.stdout, stderr: r.stderr, since, cmdlines }, m.canaries);
  recordFigure({ suite: 'canary', id: `${m.info.backend}: ${id}`, places: res.places, found: res.hits.length });
  if (process.env['KRYPTON_CANARY_TIMES']) console.log(`${m.info.backend}: ${id}: exit ${r.code}, run ${ran - since} ms, search ${Date.now() - ran} ms, ${m.canaries.size} canaries, files ${JSON.stringify(res.files)}`);
  expect(res.hits.map(describeHit), `${id}: canaries found`).toEqual([]);
  // The exit code is checked without printing the output (it could hold what we look for: the search passed, but be safe).
  const codes = o.codes ?? [0];
  expect(codes.includes(r.code), `${id}: exit ${r.code}, expected ${codes.join('|')}; stderr: ${firstLines(r.stderr)}; hosts: ${JSON.stringify(r.summary?.hosts ?? r.events.filter((e) => e['type'] === 'error' || e['ok'] === false))}`).toBe(true);
  return r;
}

/** The first lines of a stream already searched clean, for a failure message. */
function firstLines(s: string): string {
  return s.split('\n').slice(0, 6).join(' | ').slice(0, 600);
}

/** Writes the env file to import into the fixtures dir; returns its path. */
export function writeEnvFixture(m: Matrix, vars: Record<string, string>): string {
  const file = join(m.fixtures, 'node-secrets.env');
  writeFileSync(file, Object.entries(vars).map(([k, v]) => `${k}='${v}'\n`).join(''), { mode: 0o600 });
  for (const v of Object.values(vars)) m.canaries.add({ kind: 'env-value', text: v });
  return file;
}
