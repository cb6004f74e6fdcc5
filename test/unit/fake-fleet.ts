/**
 * A recording fake fleet for executor unit tests: a Transport per host that simulates just enough of a node
 * (mounts, files on the tmpfs, the Vault Agent rendering every host secret, the compose env file, el/cl and the
 * services reading an env file, the Engine API) for the real executor and the real tasks to run against it, and a
 * fake {@link SecretStore} (`delivery: agent`) over an in-memory KV v2 and Vault API ({@link MemoryStore}).
 *
 * Everything the executor sends is recorded: every exec (argv, cwd, a fingerprint of stdin), every put
 * (path, mode, a fingerprint of the content), every forward; every store and Vault call. Contents are kept only
 * as SHA-256 fingerprints in the records. Fact scripts are answered by recognising each snippet of the one
 * gathering exec (and each part of a `factList`) and printing what the real script would print for the simulated
 * state (formats as in the fixtures under test/unit/facts/; the scripts themselves run for real in
 * test/unit/facts/scripts.test.ts).
 *
 * The Engine API is a real HTTP server on 127.0.0.1 per host, verifying the HS256 token with the key el
 * read at its last (re)start from the file JWT_PATH names — so a lockstep restart is what makes a new JWT
 * accepted, as on a real node. A restart runs the task's own restart script: the restart command, then the
 * `loaded` record it appends (parsed from the script, so the record the task writes is the one later facts read).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { jwtVerify } from 'jose';
import { KryptonError } from '../../src/core/errors.ts';
import { mintEngineJwtHex, Secret, sha256Hex } from '../../src/core/secret.ts';
import { LOADED_FILE } from '../../src/facts/secrets.ts';
import { RESTART_PRELUDE } from '../../src/tasks/node-restart-lockstep.ts';
import { renderEnvFile, valueProblem } from '../../src/model/formats.ts';
import { SECRETS_DIR, type Host, type Inventory, type NodeHost } from '../../src/model/inventory.ts';
import { AGENT_FILES, KIND_SPECS, cosignerSettings, describeRef, hostSecrets, kvSource, refKey, roleName, type SecretRef } from '../../src/model/layout.ts';
import type { Delivery, HostFetch, SecretStore, StoredValue, StoredVersion, VaultApi, WrappedSecretId } from '../../src/model/store.ts';
import type { ExecOptions, ExecResult, PutOptions, Transport } from '../../src/core/transport.ts';

export const KERNEL_RELEASE = '6.8.0-49-generic';

const nowSeconds = (): number => (performance.timeOrigin + performance.now()) / 1000;

function bytesOf(c: Secret | string | Buffer): Buffer {
  if (c instanceof Secret) return c.reveal();
  return Buffer.isBuffer(c) ? Buffer.from(c) : Buffer.from(c, 'utf8');
}

// ---------------------------------------------------------------------------------------------- records

export interface ExecRecord {
  kind: 'exec';
  host: string;
  t: number;
  argv: string[];
  cwd?: string;
  stdinSha256?: string;
  /** For a fact-gathering exec: the fact keys it asked for, in order. */
  factKeys?: string[];
}
export interface PutRecord {
  kind: 'put';
  host: string;
  t: number;
  path: string;
  mode: number;
  owner?: string;
  group?: string;
  contentSha256: string;
  secret: boolean;
}
export interface ForwardRecord {
  kind: 'forward';
  host: string;
  t: number;
  target: string;
}
export type OpRecord = ExecRecord | PutRecord | ForwardRecord;

/** A disruptive window on one node: from the restart exec to the first accepted Engine API call after it. */
export interface DownWindow {
  host: string;
  role: string;
  enter: number;
  exit?: number;
}

// ------------------------------------------------------------------------------------------------ vault

/** The Vault/OpenBao API of the agent side, in memory: policies, AppRole roles, role_ids, response wrapping. */
export class FakeVault implements VaultApi {
  readonly address = 'https://vault.fake.invalid:8200';
  readonly policies = new Map<string, string>();
  readonly roles = new Map<string, Record<string, unknown>>();
  readonly roleIds = new Map<string, Secret>();
  readonly wrapped = new Map<string, { creationPath: string; used: boolean; role: string; secretId: Secret }>();

  constructor(private readonly log: (method: string, path: string) => void, private readonly keep: (s: Secret) => void) {}

  async read(path: string): Promise<Record<string, unknown> | undefined> {
    this.log('read', path);
    const r = this.roles.get(path);
    return r && structuredClone(r);
  }

  async write(path: string, body: Record<string, unknown>): Promise<Record<string, unknown> | undefined> {
    this.log('write', path);
    const pol = /^sys\/policies\/acl\/(.+)$/.exec(path);
    if (pol) {
      // Vault stores policy text as given and hands it back without a trailing newline.
      this.policies.set(pol[1]!, String(body['policy']).replace(/\n$/, ''));
      return undefined;
    }
    if (/^auth\/[^/]+\/role\/[^/]+$/.test(path)) {
      const old = this.roles.get(path) ?? {
        local_secret_ids: false,
        secret_id_bound_cidrs: null,
        token_bound_cidrs: [],
        token_explicit_max_ttl: 0,
        token_no_default_policy: false,
        token_type: 'default',
      };
      const merged = { ...old, ...structuredClone(body) };
      merged['policies'] = merged['token_policies'];
      merged['period'] = merged['token_period'];
      this.roles.set(path, merged);
      return undefined;
    }
    throw new KryptonError('E_VAULT', `fake vault: no handler for write ${path}`, { hint: 'extend test/unit/fake-fleet.ts' });
  }

  async policyRead(name: string): Promise<string | undefined> {
    this.log('policyRead', `sys/policies/acl/${name}`);
    return this.policies.get(name);
  }

  async roleId(approleMount: string, role: string): Promise<Secret> {
    const path = `auth/${approleMount}/role/${role}`;
    this.log('roleId', `${path}/role-id`);
    if (!this.roles.has(path)) throw new KryptonError('E_VAULT', `role ${role} not found`, { hint: 'run vault.approle' });
    let id = this.roleIds.get(path);
    if (!id) {
      id = new Secret(randomUUID());
      this.roleIds.set(path, id);
      this.keep(id);
    }
    return id;
  }

  async wrappedSecretId(approleMount: string, role: string, wrapTtlSeconds: number): Promise<WrappedSecretId> {
    const path = `auth/${approleMount}/role/${role}/secret-id`;
    this.log('wrappedSecretId', path);
    if (!this.roles.has(`auth/${approleMount}/role/${role}`)) throw new KryptonError('E_VAULT', `role ${role} not found`, { hint: 'run vault.approle' });
    const token = new Secret(`hvs.CAES${randomBytes(30).toString('base64url')}`);
    const secretId = new Secret(randomUUID());
    this.wrapped.set(token.revealText(), { creationPath: path, used: false, role, secretId });
    this.keep(token);
    this.keep(secretId);
    return { wrappingToken: token, accessor: randomBytes(12).toString('base64url'), creationPath: path, ttlSeconds: wrapTtlSeconds };
  }

  async wrapLookup(token: Secret): Promise<{ creationPath: string; creationTtl: number; creationTime: string }> {
    this.log('wrapLookup', 'sys/wrapping/lookup');
    const w = this.wrapped.get(token.revealText());
    if (!w || w.used) throw new KryptonError('E_VAULT_WRAP', 'wrapping token is not valid or does not exist', { hint: 'retry' });
    return { creationPath: w.creationPath, creationTtl: 120, creationTime: new Date().toISOString() };
  }

  /** What an agent does with a delivered wrapping token: unwrap it once, for its own role. */
  agentUnwrap(tokenText: string, role: string): boolean {
    const w = this.wrapped.get(tokenText);
    if (!w || w.used || w.role !== role) return false;
    w.used = true;
    return true;
  }

  async tokenLookupSelf(): Promise<{ renewable: boolean; ttlSeconds: number; policies: string[] }> {
    throw new Error('fake vault: tokenLookupSelf is not used by the executor');
  }
  async createToken(): Promise<Secret> {
    throw new Error('fake vault: createToken is not used by the executor');
  }
  async capabilities(): Promise<Record<string, string[]>> {
    throw new Error('fake vault: capabilities is not used by the executor');
  }
}

// ------------------------------------------------------------------------------------------------ store

interface StoredEntry {
  /** Index = version - 1; a destroyed version keeps its number (check-and-set counts it) but has no value. */
  versions: (Secret | undefined)[];
}

/**
 * A {@link SecretStore} in memory that behaves like the KV v2 store where the tasks and the executor can tell:
 * versions with check-and-set (a destroyed version still counts), canonical values checked on write, mint only
 * for mintable kinds, restore, undo (write the previous value back, destroy ours), and Vault's agent-side API.
 * Every call is recorded (method and where, never a value); every value it holds or handed out is kept for
 * leak checks.
 */
export class MemoryStore implements SecretStore {
  readonly backend = 'vault' as const;
  readonly delivery: Delivery;
  readonly kv = new Map<string, StoredEntry>();
  readonly calls: { method: string; path: string }[] = [];
  readonly secrets: Secret[] = [];
  readonly vault: FakeVault;
  /** The nth call of `write` (1-based, mint included) throws. */
  failOnWrite?: number;
  /** checkWrite refuses (the operator's token may not write). */
  denied = false;
  private writesSeen = 0;

  /**
   * With `delivery: host-fetch`: the hosts' own fetch, as a command the fake host understands
   * (`krypton-fake-fetch <ref key> <path> <mode> <sha256>`: the host "decrypts" the store's current value itself).
   */
  readonly hostFetch?: HostFetch;

  static readonly WRITES = new Set(['write', 'mint', 'restore', 'undo', 'vault.write', 'vault.wrappedSecretId', 'vault.roleId']);

  constructor(private readonly inv: Inventory, o: { delivery?: Delivery } = {}) {
    this.delivery = o.delivery ?? 'agent';
    this.vault = new FakeVault(
      (m, p) => this.calls.push({ method: `vault.${m}`, path: p }),
      (s) => this.secrets.push(s),
    );
    if (this.delivery === 'host-fetch') {
      this.hostFetch = {
        keepsCopy: false,
        copy: async () => undefined,
        target: async () => ({ region: 'eu-west-1' }),
        fetchArgv: (_i, _h, s, _t, sha256) => ['krypton-fake-fetch', refKey(s.ref), s.path, s.mode, sha256],
        failure: (host, s, code, stderr) => new KryptonError('E_KMS', `${host.name}: fetching ${s.path} failed (exit ${code}): ${stderr}`, { hint: 'look at the host' }),
      };
    }
  }

  /** Store calls that write something (to the KV store or to Vault). */
  writes(): { method: string; path: string }[] {
    return this.calls.filter((c) => MemoryStore.WRITES.has(c.method));
  }

  /** Puts `value` as the next version of `ref` directly (test setup; not recorded). */
  seed(ref: SecretRef, value: Secret): void {
    const e = this.kv.get(refKey(ref)) ?? { versions: [] };
    e.versions.push(value);
    this.kv.set(refKey(ref), e);
    this.secrets.push(value);
  }

  /** Seeds env-secrets from variables, as import-env would store them (canonical form). */
  seedEnv(ref: SecretRef, vars: Record<string, string>): Secret {
    const v = renderEnvFile(vars, describeRef(ref));
    for (const x of Object.values(vars)) this.secrets.push(new Secret(x));
    this.seed(ref, v);
    return v;
  }

  /** The current value, synchronously (for the fake agent and the fake host-side fetch). */
  peek(ref: SecretRef | string): Secret | undefined {
    return this.kv.get(typeof ref === 'string' ? ref : refKey(ref))?.versions.at(-1);
  }

  describe(ref: SecretRef): string {
    return kvSource(this.inv, ref);
  }

  /** As the real stores do: a stored value that is not valid for its kind is E_INPUT naming path, version, problem. */
  async current(ref: SecretRef): Promise<StoredValue | undefined> {
    this.calls.push({ method: 'current', path: this.describe(ref) });
    const e = this.kv.get(refKey(ref));
    const v = e?.versions.at(-1);
    if (!v || !e) return undefined;
    const p = valueProblem(KIND_SPECS[ref.kind].format, v);
    if (p) throw new KryptonError('E_INPUT', `${this.describe(ref)} version ${e.versions.length}: ${p}`, { hint: 'write a valid value as a new version' });
    return { ref, secret: v, version: e.versions.length, source: this.describe(ref) };
  }

  async raw(ref: SecretRef): Promise<{ ref: SecretRef; secret: Secret; version: number; source: string } | undefined> {
    this.calls.push({ method: 'raw', path: this.describe(ref) });
    const e = this.kv.get(refKey(ref));
    const v = e?.versions.at(-1);
    return v && e ? { ref, secret: v, version: e.versions.length, source: this.describe(ref) } : undefined;
  }

  async head(ref: SecretRef): Promise<number> {
    this.calls.push({ method: 'head', path: this.describe(ref) });
    return this.kv.get(refKey(ref))?.versions.length ?? 0;
  }

  async versions(ref: SecretRef, limit = 10): Promise<StoredVersion[]> {
    this.calls.push({ method: 'versions', path: this.describe(ref) });
    const vs = this.kv.get(refKey(ref))?.versions ?? [];
    return vs
      .map((s, i) => (s ? { version: i + 1, fingerprint: s.fingerprint() } : undefined))
      .filter((x): x is StoredVersion => x !== undefined)
      .reverse()
      .slice(0, limit);
  }

  async write(ref: SecretRef, value: Secret, expectVersion: number): Promise<{ version: number }> {
    this.calls.push({ method: 'write', path: this.describe(ref) });
    return this.put(ref, value, expectVersion);
  }

  async mint(ref: SecretRef, expectVersion: number): Promise<{ version: number }> {
    this.calls.push({ method: 'mint', path: this.describe(ref) });
    if (!KIND_SPECS[ref.kind].mintable) throw new KryptonError('E_INPUT', `${describeRef(ref)} is imported, not minted`, { hint: KIND_SPECS[ref.kind].missingHint });
    return this.put(ref, mintEngineJwtHex(), expectVersion);
  }

  async restore(ref: SecretRef, version: number): Promise<{ version: number; restoredFrom: number }> {
    this.calls.push({ method: 'restore', path: this.describe(ref) });
    const e = this.kv.get(refKey(ref));
    const old = e?.versions[version - 1];
    if (!e || !old) throw new KryptonError('E_INPUT', `${this.describe(ref)} has no version ${version}`, { hint: 'list the versions' });
    return { ...(await this.put(ref, old, e.versions.length)), restoredFrom: version };
  }

  async undo(ref: SecretRef, version: number, previous: StoredValue | undefined): Promise<void> {
    this.calls.push({ method: 'undo', path: this.describe(ref) });
    const e = this.kv.get(refKey(ref));
    if (!e) return;
    if (previous && e.versions.length === version) e.versions.push(previous.secret);
    e.versions[version - 1] = undefined;
  }

  async checkWrite(refs: readonly SecretRef[]): Promise<void> {
    this.calls.push({ method: 'checkWrite', path: refs.map((r) => this.describe(r)).join(',') });
    if (this.denied) throw new KryptonError('E_VAULT_DENIED', `the token may not write ${refs.map((r) => this.describe(r)).join(', ')}`, { hint: 'use a token with create+update there' });
  }

  async keyDrift(): Promise<undefined> {
    return undefined;
  }

  private put(ref: SecretRef, value: Secret, expectVersion: number): { version: number } {
    this.writesSeen++;
    if (this.failOnWrite === this.writesSeen) throw new KryptonError('E_VAULT', `simulated write failure at ${this.describe(ref)}`, { hint: 'h' });
    const p = valueProblem(KIND_SPECS[ref.kind].format, value);
    if (p) throw new KryptonError('E_INPUT', `${this.describe(ref)}: ${p}`, { hint: 'write a valid value' });
    const e = this.kv.get(refKey(ref)) ?? { versions: [] };
    if (e.versions.length !== expectVersion) {
      throw new KryptonError('E_PLAN_CONFLICT', `${this.describe(ref)} is at version ${e.versions.length}, not ${expectVersion}: someone else wrote meanwhile`, { hint: 'run again' });
    }
    e.versions.push(value);
    this.kv.set(refKey(ref), e);
    this.secrets.push(value);
    return { version: e.versions.length };
  }
}

// ------------------------------------------------------------------------------------------------ hosts

interface FakeFile {
  content: Buffer;
  mode: number;
  owner: string;
  group: string;
  mtime: number;
}

interface FakeMount {
  fsType: string;
  sizeBytes?: number;
  mode: string;
  noswap: boolean;
  owner?: string;
  group?: string;
  flags?: boolean;
}

/** The simulated state of one host. Tests may set it up directly before a run and inspect it after. */
export class FakeHost {
  readonly dirs = new Set<string>(['/', '/run', '/opt', '/opt/krypton', '/srv', '/srv/krypton']);
  readonly mounts = new Map<string, FakeMount>();
  readonly files = new Map<string, FakeFile>();
  agent: { pid: number; startedAt: number } | undefined;
  /** What el/cl run on: the key el read at its last start (undefined: none, every call is rejected). */
  el: { key: Buffer | undefined; up: boolean } = { key: undefined, up: true };
  /** Per service: how often it was restarted, and the SHA-256 of each file it read then (path -> digest). */
  readonly services = new Map<string, { restarts: number; read: Record<string, string> }>();
  /** Return a result to make an exec fail (or anything else) before it is simulated. */
  failExec: ((argv: string[]) => ExecResult | undefined) | undefined;
  /** Horcrux (a cosigner): running or not, and how often it was started. */
  horcrux = { running: false, starts: 0 };
  /** Make the next host-side fetches fail (as a denied KMS Decrypt would), counting down. */
  failFetches = 0;
  /** How long el/cl are down after a restart (milliseconds). */
  restartDownMs = 120;
  /** Restart commands run (each restarts one or more services). */
  restarts = 0;
  /**
   * The host's clock minus the laptop's, seconds (e.g. -95: the host is 95 s behind). `date` in fact execs and el's
   * Engine API (which judges `iat` within ±60 s of the host's clock) both run on it. `elClockOffsetSeconds`, when
   * set, is el's alone (an el whose clock is not the host shell's), to drive the probe's 401-with-skew path.
   */
  clockOffsetSeconds = 0;
  elClockOffsetSeconds: number | undefined;

  constructor(readonly host: Host, readonly fleet: FakeFleet) {}

  /** The host's wall clock, Unix seconds. */
  hostNowSeconds(): number {
    return nowSeconds() + this.clockOffsetSeconds;
  }

  get node(): NodeHost | undefined {
    return this.host.kind === 'node' ? this.host : undefined;
  }

  writeFile(path: string, content: Secret | string | Buffer, mode = 0o600, owner = 'root', group = 'root'): void {
    this.files.set(path, { content: bytesOf(content), mode, owner, group, mtime: nowSeconds() });
  }

  mountTmpfs(path = SECRETS_DIR, sizeBytes = 1 << 20, mode = '700', noswap = true): void {
    this.dirs.add(path);
    this.mounts.set(path, { fsType: 'tmpfs', sizeBytes, mode, noswap });
  }

  envLines(): string[] | undefined {
    const f = this.node && this.files.get(this.node.envFile);
    return f?.content.toString('utf8').split('\n');
  }

  /** el and cl (re)start: they read the file JWT_PATH names (the last JWT_PATH line wins, as with compose). */
  startEl(): void {
    const jwtPath = (this.envLines() ?? [])
      .map((l) => /^\s*(?:export\s+)?JWT_PATH=(.*)$/.exec(l)?.[1]?.trim().replace(/^["']|["']$/g, ''))
      .filter((v): v is string => v !== undefined)
      .at(-1);
    const hex = jwtPath ? this.files.get(jwtPath)?.content.toString('utf8') : undefined;
    this.el = { key: hex && /^(0x)?[0-9a-f]{64}\s*$/i.test(hex) ? Buffer.from(hex.trim().replace(/^0x/i, ''), 'hex') : undefined, up: true };
  }

  /** A service (re)starts and reads the host secrets it is a reader of (the layout's `readers`). */
  private startService(svc: string): void {
    const s = this.services.get(svc) ?? { restarts: 0, read: {} };
    s.restarts++;
    s.read = {};
    for (const sec of hostSecrets(this.fleet.inventory, this.host)) {
      const f = this.files.get(sec.path);
      if (sec.readers.includes(svc) && f) s.read[sec.path] = sha256Hex(f.content);
    }
    this.services.set(svc, s);
    if (svc === 'el') this.startEl();
  }

  // --- fact snippets, answered as the real scripts would print them

  private factOutput(snippet: string): string {
    let m: RegExpExecArray | null;
    const trimmed = snippet.trim();
    if (trimmed === 'true') return '';
    // factList: fenced parts, each in its own subshell
    if ((m = /^echo '(@@krypton-[a-z]+-)0'$/m.exec(trimmed)) && trimmed.startsWith(`echo '${m[1]}0'`)) {
      const fence = m[1]!;
      const parts = trimmed.split(new RegExp(`^echo '${fence}(\\d+)'\\n`, 'm')).slice(1);
      let out = '';
      for (let i = 0; i < parts.length; i += 2) out += `${fence}${parts[i]}\n${this.factOutput(parts[i + 1]!.replace(/^\( /, '').replace(/\n\)\s*$/, ''))}`;
      return out;
    }
    if ((m = /^m=\$\(findmnt -n -r -o FSTYPE,OPTIONS --mountpoint (\S+) \| tail -n 1\)/.exec(trimmed))) return this.dirOutput(unquote(m[1]!));
    if ((m = /^findmnt -n -r -o FSTYPE,OPTIONS --mountpoint (\S+)/.exec(trimmed))) {
      const path = unquote(m[1]!);
      const mt = this.mounts.get(path);
      if (!mt) return `@mode ${this.dirs.has(path) ? '755' : ''}\n`;
      return `${mt.fsType} ${this.mountOptions(mt)}\n@mode ${mt.mode}\n`;
    }
    if (/^uname -r/m.test(trimmed)) return `${KERNEL_RELEASE}\n@swaps 0\n`;
    if (trimmed.includes('echo "@agent running')) return this.agentOutput(trimmed);
    if (/^if \[ -f \S+ \]; then echo "@f\d+ /.test(trimmed)) return this.secretFilesOutput(trimmed);
    if ((m = /^\[ -f (\S+) \] && cat -- \S+; true$/.exec(trimmed))) {
      const f = this.files.get(unquote(m[1]!));
      return f ? f.content.toString('utf8') : '';
    }
    if (/^getent (passwd|group) /m.test(trimmed)) {
      return trimmed
        .split('\n')
        .map((l) => `@${l.startsWith('getent passwd') ? 'user' : 'group'} yes`)
        .join('\n') + '\n';
    }
    if ((m = /^if \[ -f (\S+) \]; then echo present; grep -E (\S+)/m.exec(trimmed))) {
      const f = this.files.get(unquote(m[1]!));
      if (!f) return 'absent\n';
      const key = /\)\?([A-Za-z_][A-Za-z0-9_]*)=/.exec(unquote(m[2]!))?.[1] ?? '';
      const lines = f.content.toString('utf8').split('\n').filter((l) => new RegExp(`^\\s*(export\\s+)?${key}=`).test(l));
      return `present\n${lines.map((l) => `${l}\n`).join('')}`;
    }
    if ((m = /^if \[ -f (\S+) \]; then stat -c '%a %U %G %s %\.9Y' -- [^;\s]+(; sha256sum)?/m.exec(trimmed))) {
      const f = this.files.get(unquote(m[1]!));
      if (!f) return 'absent\n';
      return `${this.statLine(f)}\n${m[2] ? `${sha256Hex(f.content)}\n` : ''}`;
    }
    if ((m = /^\[ -f (\S+) \] && \[ "\$\(wc -c < \S+\)" -le 70 \]/.exec(trimmed))) {
      const f = this.files.get(unquote(m[1]!));
      return f && /^(0x)?[0-9a-fA-F]{64}\r?\n?$/.test(f.content.toString('utf8')) ? 'yes\n' : 'no\n';
    }
    if (trimmed.includes('rev-parse --show-toplevel')) return '@repo none\n';
    // composeContainers: the fake nodes run el/cl without docker (as the sandbox's stand-ins do)
    if (/^cd -- \S+ 2>\/dev\/null \|\| \{ printf '@nocompose /.test(trimmed)) return '@nocompose docker is not on PATH\n';
    if (/ >\/dev\/null 2>&1 <\/dev\/null; echo "@exit \$\?"$/.test(trimmed)) return `@exit ${this.horcrux.running ? 0 : 3}\n`;
    throw new Error(`fake fleet: unrecognised fact snippet on ${this.host.name}:\n${snippet}`);
  }

  private mountOptions(mt: FakeMount): string {
    if (mt.fsType !== 'tmpfs') return 'rw,relatime';
    return ['rw', ...(mt.flags === false ? [] : ['nosuid', 'nodev', 'noexec']), 'relatime', ...(mt.sizeBytes ? [`size=${Math.ceil(mt.sizeBytes / 1024)}k`] : []), `mode=${mt.mode}`, ...(mt.noswap ? ['noswap'] : [])].join(',');
  }

  private statLine(f: FakeFile): string {
    return `${f.mode.toString(8)} ${f.owner} ${f.group} ${f.content.length} ${f.mtime.toFixed(9)}`;
  }

  /** dirState: the mount, the dir, and every entry in it (files with their SHA-256). */
  private dirOutput(dir: string): string {
    const mt = this.mounts.get(dir);
    const lines: string[] = [];
    if (mt) lines.push(`@mount ${mt.fsType} ${this.mountOptions(mt)}`);
    if (!this.dirs.has(dir)) return `${lines.join('\n')}${lines.length ? '\n' : ''}@dir absent\n`;
    lines.push(`@dir ${mt ? mt.mode : '755'} ${mt?.owner ?? 'root'} ${mt?.group ?? 'root'}`);
    for (const [path, f] of this.files) {
      if (path.slice(0, path.lastIndexOf('/')) !== dir) continue;
      lines.push(`@entry file ${f.mode.toString(8)} ${f.owner} ${f.group} ${f.content.length} ${sha256Hex(f.content)} ${path.slice(dir.length + 1)}`);
    }
    return `${lines.join('\n')}\n`;
  }

  /** secretFiles: one `@f<i>` line per file (stat, SHA-256, and the 64-hex check where the snippet asks for it). */
  private secretFilesOutput(snippet: string): string {
    return snippet
      .split('\n')
      .map((l) => {
        const m = /^if \[ -f (\S+) \]; then echo "@f(\d+) /.exec(l);
        if (!m) throw new Error(`fake fleet: unrecognised secretFiles line: ${l}`);
        const f = this.files.get(unquote(m[1]!));
        if (!f) return `@f${m[2]} absent`;
        const hex = l.includes('wc -c') ? (/^[0-9a-f]{64}$/.test(f.content.toString('utf8')) ? ' hex64' : ' nothex') : '';
        return `@f${m[2]} ${this.statLine(f)} ${sha256Hex(f.content)}${hex}`;
      })
      .join('\n')
      .concat('\n');
  }

  /** agentState: the agent process, its token sink, a secret_id lying around, upload leftovers, config/template mtimes. */
  private agentOutput(snippet: string): string {
    const cfgs = /^for f in (.+); do \[ -f "\$f" \]/m.exec(snippet)?.[1]?.split(' ').map(unquote) ?? [];
    const sink = this.files.get(AGENT_FILES.tokenSink);
    const leftovers = [...this.files.keys()].filter((p) => p.startsWith(`${SECRETS_DIR}/.`) && /\.krypton-[^/]*\.tmp$/.test(p)).length;
    return [
      this.agent ? `@agent running ${this.agent.pid} ${this.agent.startedAt.toFixed(9)}` : '@agent stopped',
      `@sink ${sink && sink.content.length > 0 ? 'yes' : 'no'}`,
      `@secret_id ${this.files.has(AGENT_FILES.secretId) ? 'yes' : 'no'}`,
      `@leftovers ${leftovers}`,
      ...cfgs.flatMap((p) => {
        const f = this.files.get(p);
        return f ? [`@mtime ${f.mtime.toFixed(9)}`] : [];
      }),
      '',
    ].join('\n');
  }

  /** The clock lines of a facts exec (`printf '@@<b>-clock %s\\n' "$(date -u +%s.%N …)"`), answered as date would. */
  clockLines(script: string): { boundary: string; rest: string; line: () => string } | undefined {
    const re = /^printf '@@(\S+)-clock %s\\n' "\$\(date -u \+%s\.%N 2>\/dev\/null\)"$/m;
    const m = re.exec(script);
    if (!m) return undefined;
    const boundary = m[1]!;
    return { boundary, rest: script.split('\n').filter((l) => !re.test(l)).join('\n'), line: () => `@@${boundary}-clock ${this.hostNowSeconds().toFixed(9)}\n` };
  }

  /** The one fact-gathering exec: answer each fenced snippet. */
  answerFacts(full: string): { result: ExecResult; keys: string[] } {
    const clock = this.clockLines(full);
    const script = clock ? clock.rest : full;
    const marker = /^echo '@@(\S+) (\S+)'$/gm;
    const found = [...script.matchAll(marker)];
    let out = '';
    const keys: string[] = [];
    found.forEach((m, i) => {
      const [, boundary, key] = m;
      const end = found[i + 1]?.index ?? script.length;
      const snippet = script
        .slice(m.index! + m[0].length, end)
        .replace(/^\n\( /, '')
        .replace(/\n\) <\/dev\/null 2>\/dev\/null\nprintf '\\n@@\S+-exit %s\\n' "\$\?"\n?$/, '');
      keys.push(key!);
      out += `@@${boundary} ${key}\n${this.factOutput(snippet)}\n@@${boundary}-exit 0\n`;
    });
    if (clock) out = `${clock.line()}${out}${clock.line()}`;
    return { result: { code: 0, stdout: out, stderr: '' }, keys };
  }

  // --- commands a plan may run

  async runCommand(argv: string[], cwd?: string): Promise<ExecResult> {
    const ok: ExecResult = { code: 0, stdout: '', stderr: '' };
    const fail = (code: number, stderr: string): ExecResult => ({ code, stdout: '', stderr });
    const node = this.node;
    const same = (a: readonly string[] | undefined) => a !== undefined && a.length === argv.length && a.every((x, i) => x === argv[i]);
    if (argv[0] === 'mkdir' && argv.includes('-p')) {
      this.dirs.add(argv.at(-1)!);
      return ok;
    }
    if (argv[0] === 'mount' && argv[1] === '-t' && argv[2] === 'tmpfs') {
      const opts = parseOpts(argv[4]!);
      const path = argv[6]!;
      if (!this.dirs.has(path)) return fail(32, `mount: ${path}: mount point does not exist.`);
      this.mounts.set(path, { fsType: 'tmpfs', sizeBytes: opts.size, mode: opts.mode ?? '1777', noswap: opts.noswap });
      return ok;
    }
    if (argv[0] === 'mount' && argv[1] === '-o' && argv[2]!.startsWith('remount,')) {
      const path = argv[3]!;
      const mt = this.mounts.get(path);
      const opts = parseOpts(argv[2]!.slice('remount,'.length));
      if (!mt) return fail(32, `mount: ${path}: not mounted.`);
      if (opts.noswap && !mt.noswap) return fail(32, `mount: ${path}: mount point not mounted or bad option.`);
      if (opts.size) mt.sizeBytes = opts.size;
      mt.flags = true;
      return ok;
    }
    if (argv[0] === 'chmod' && argv[2] === '--') {
      const path = argv[3]!;
      const f = this.files.get(path);
      const mt = this.mounts.get(path);
      if (f) f.mode = parseInt(argv[1]!, 8);
      else if (mt) mt.mode = argv[1]!.replace(/^0(?=\d{3}$)/, '');
      else return fail(1, `chmod: cannot access '${path}': No such file or directory`);
      return ok;
    }
    if (argv[0] === 'chown' && argv[2] === '--') {
      const [owner, group] = argv[1]!.split(':');
      const f = this.files.get(argv[3]!);
      const mt = this.mounts.get(argv[3]!);
      const target = f ?? mt;
      if (!target) return fail(1, `chown: cannot access '${argv[3]}': No such file or directory`);
      if (owner) target.owner = owner;
      if (group) target.group = group;
      return ok;
    }
    if (argv[0] === 'rm' && argv[1] === '-f' && argv[2] === '--') {
      this.files.delete(argv[3]!);
      return ok;
    }
    if (argv[0] === 'sh' && argv[1] === '-c' && argv[2]!.includes('shred -u -- "$1"')) {
      this.files.delete(argv[4]!);
      return ok;
    }
    if (argv[0] === 'find' && argv[1] === SECRETS_DIR && argv.at(-1) === '-delete') {
      for (const p of [...this.files.keys()]) if (p.startsWith(`${SECRETS_DIR}/.`) && /\.krypton-[^/]*\.tmp$/.test(p)) this.files.delete(p);
      return ok;
    }
    if (argv[0] === 'krypton-fake-fetch') {
      const [, key, path, mode, sha] = argv as [string, string, string, string, string];
      if (this.failFetches > 0) {
        this.failFetches--;
        return fail(2, 'An error occurred (AccessDeniedException) when calling the Decrypt operation: not authorized');
      }
      const dir = path.slice(0, path.lastIndexOf('/'));
      if (this.mounts.get(dir)?.fsType !== 'tmpfs') return fail(3, `krypton-secrets: ${dir} is not a tmpfs; nothing written`);
      const v = this.fleet.store.peek(key);
      if (!v) return fail(2, 'An error occurred (ResourceNotFoundException)');
      if (sha && v.fingerprint() !== sha) return fail(5, "krypton-secrets: the value's SHA-256 is not the expected one; nothing written");
      this.writeFile(path, v, parseInt(mode, 8));
      return ok;
    }
    if (this.host.kind === 'cosigner') {
      const c = cosignerSettings(this.fleet.inventory, this.host);
      if (same(c.status)) return this.horcrux.running ? ok : fail(3, '');
      if (same(c.start)) {
        this.horcrux = { running: true, starts: this.horcrux.starts + 1 };
        return ok;
      }
      if (same(c.stop)) {
        this.horcrux.running = false;
        return ok;
      }
    }
    if (same(this.host.agent.start)) {
      this.startAgent();
      return ok;
    }
    if (same(this.host.agent.stop)) {
      this.agent = undefined;
      return ok;
    }
    if (argv[0] === 'sh' && argv[1] === '-c' && argv[2]!.endsWith('printf "%s\\n" "$1" >> "$2"')) {
      const f = this.files.get(argv[5]!);
      if (!f) return fail(1, `sh: ${argv[5]}: No such file or directory`);
      const text = f.content.toString('utf8');
      f.content = Buffer.from(`${text}${text && !text.endsWith('\n') ? '\n' : ''}${argv[4]}\n`);
      f.mtime = nowSeconds();
      return ok;
    }
    if (argv[0] === 'sed' && argv[1] === '-i') {
      const file = argv.at(-1)!;
      const f = this.files.get(file);
      const want = /JWT_PATH=([^#]+)#$/.exec(argv.at(-2)!)?.[1];
      if (!f || !want) return fail(2, `sed: can't read ${file}`);
      f.content = Buffer.from(
        f.content
          .toString('utf8')
          .split('\n')
          .map((l) => l.replace(/^(\s*(?:export\s+)?)JWT_PATH=.*$/, `$1JWT_PATH=${want}`))
          .join('\n'),
      );
      f.mtime = nowSeconds();
      return ok;
    }
    // A command followed by the `loaded` record (node.restart-lockstep, horcrux.start):
    // `sh -c '<RESTART_PRELUDE>\n<record>' sh <argv…>` or `sh -c '"$@" || exit $?\n<record>' sh <argv…>` — the record only after the command succeeded.
    const wrapped =
      argv[0] === 'sh' && argv[1] === '-c' && argv[3] === 'sh'
        ? (argv[2]!.startsWith(`${RESTART_PRELUDE}\n`) ? [argv[2]!, '', argv[2]!.slice(RESTART_PRELUDE.length + 1)] : /^(setsid -w )?"\$@" \|\| exit \$\?\n([\s\S]+)$/.exec(argv[2]!))
        : null;
    if (wrapped) {
      const res = await this.runCommand(argv.slice(4), cwd);
      if (res.code !== 0) return res;
      this.applyRecord(wrapped[2]!);
      return ok;
    }
    if (node && this.isRestart(node, argv)) {
      if (cwd !== node.deployDir) return fail(1, 'no configuration file provided: not found');
      const services = this.restartedServices(node, argv);
      this.restarts++;
      this.fleet.windowOpened(this);
      if (services.includes('el')) this.el = { key: this.el.key, up: false };
      await new Promise((r) => setTimeout(r, this.restartDownMs));
      for (const s of services) this.startService(s);
      return ok;
    }
    return fail(127, `sh: 1: ${argv[0]}: not found`);
  }

  /** The node's restart (or recreate) command that `argv` is, with its trailing `el cl` replaced by the services to restart (as restartArgv does). */
  private commandOf(node: NodeHost, argv: string[]): string[] | undefined {
    return [node.restart, node.recreate].find((r) => {
      if (!(r.length >= 2 && r.at(-2) === 'el' && r.at(-1) === 'cl')) return r.length === argv.length && r.every((x, i) => argv[i] === x);
      const base = r.slice(0, -2);
      return argv.length > base.length && base.every((x, i) => argv[i] === x);
    });
  }

  private isRestart(node: NodeHost, argv: string[]): boolean {
    return this.commandOf(node, argv) !== undefined;
  }

  /** The services a restart command restarts: the ones it names, or (a custom command) every service of the node. */
  private restartedServices(node: NodeHost, argv: string[]): string[] {
    const r = this.commandOf(node, argv)!;
    if (r.length >= 2 && r.at(-2) === 'el' && r.at(-1) === 'cl') return argv.slice(r.length - 2);
    return [...new Set(['el', 'cl', ...hostSecrets(this.fleet.inventory, node).flatMap((s) => s.readers)])];
  }

  /** Runs the `loaded` record script as sh would: drop the restarted services' lines, add one per file they read. */
  private applyRecord(script: string): void {
    const drop = [...script.matchAll(/-e '\^([A-Za-z0-9_.-]+) '/g)].map((m) => m[1]!.replace(/\\\./g, '.'));
    const lines = [...script.matchAll(/\[ -f (\S+) \] && printf '%s %s %s\\n' (\S+) (\S+) "\$\(sha256sum -- \S+ \| cut -d' ' -f1\)"/g)].flatMap((m) => {
      const f = this.files.get(unquote(m[1]!));
      return f ? [`${unquote(m[2]!)} ${unquote(m[3]!)} ${sha256Hex(f.content)}`] : [];
    });
    if (!drop.length) throw new Error(`fake fleet: unrecognised record script on ${this.host.name}:\n${script}`);
    const old = this.files.get(LOADED_FILE)?.content.toString('utf8').split('\n').filter((l) => l && !drop.some((s) => l.startsWith(`${s} `))) ?? [];
    this.writeFile(LOADED_FILE, [...old, ...lines].map((l) => `${l}\n`).join(''), 0o644);
  }

  /**
   * The Vault Agent starts: unwraps the delivered secret_id once (removing the file), then renders every host
   * secret from the store with its mode/owner/group; daemon mode keeps a token in the sink, oneshot mode exits.
   */
  private startAgent(): void {
    const inv = this.fleet.inventory;
    const roleId = this.files.get(AGENT_FILES.roleId);
    const wrapped = this.files.get(AGENT_FILES.secretId);
    const authenticated = !!roleId && !!wrapped && this.fleet.store.vault.agentUnwrap(wrapped.content.toString('utf8'), roleName(inv, this.host));
    if (wrapped) this.files.delete(AGENT_FILES.secretId); // remove_secret_id_file_after_reading
    this.agent = { pid: 1000 + Math.floor(Math.random() * 30000), startedAt: nowSeconds() };
    if (!authenticated) return;
    for (const s of hostSecrets(inv, this.host)) {
      const v = this.fleet.store.peek(s.ref);
      if (v && this.dirs.has(s.dir)) this.writeFile(s.path, v, parseInt(s.mode, 8), s.owner ?? 'root', s.group ?? 'root');
    }
    if (inv.vault.agentMode === 'oneshot') this.agent = undefined;
    else this.writeFile(AGENT_FILES.tokenSink, `hvs.agent-${randomBytes(8).toString('hex')}`, 0o600);
  }
}

function unquote(s: string): string {
  return s.startsWith("'") && s.endsWith("'") ? s.slice(1, -1).replace(/'\\''/g, "'") : s;
}

function parseOpts(s: string): { size?: number; mode?: string; noswap: boolean } {
  const o = s.split(',');
  const size = o.find((x) => x.startsWith('size='))?.slice(5);
  return { size: size ? Number(size) : undefined, mode: o.find((x) => x.startsWith('mode='))?.slice(5), noswap: o.includes('noswap') };
}

// ------------------------------------------------------------------------------------------------ fleet

/** The fleet: one FakeHost per inventory host, the records, the store, and per-host Engine API servers. */
export class FakeFleet {
  readonly hosts = new Map<string, FakeHost>();
  readonly ops: OpRecord[] = [];
  readonly windows: DownWindow[] = [];
  readonly connects: string[] = [];
  readonly store: MemoryStore;
  readonly t0 = performance.now();
  /** Hosts whose connect() fails. */
  readonly unreachable = new Set<string>();
  private readonly servers = new Map<string, Server>();

  /** `delivery`: how the fake store delivers (default `agent`: Vault Agents; `host-fetch`: the hosts fetch themselves). */
  constructor(readonly inventory: Inventory, o: { delivery?: Delivery } = {}) {
    for (const h of [...inventory.nodes, ...inventory.cosigners]) this.hosts.set(h.name, new FakeHost(h, this));
    this.store = new MemoryStore(inventory, o);
  }

  host(name: string): FakeHost {
    const h = this.hosts.get(name);
    if (!h) throw new Error(`no fake host ${name}`);
    return h;
  }

  now(): number {
    return performance.now() - this.t0;
  }

  windowOpened(h: FakeHost): void {
    this.windows.push({ host: h.host.name, role: h.node?.role ?? 'cosigner', enter: this.now() });
  }

  private accepted(h: FakeHost): void {
    const w = this.windows.findLast((x) => x.host === h.host.name);
    if (w && w.exit === undefined) w.exit = this.now();
  }

  /** `connect` for runPlaybook. */
  connect = async (host: Host): Promise<Transport> => {
    this.connects.push(host.name);
    if (this.unreachable.has(host.name)) throw new KryptonError('E_SSH_CONNECT', `cannot reach ${host.name}: connect ECONNREFUSED`, { hint: 'check the address' });
    return new FakeTransport(this.host(host.name), this);
  };

  execsOf(host: string): ExecRecord[] {
    return this.ops.filter((o): o is ExecRecord => o.kind === 'exec' && o.host === host);
  }
  putsOf(host: string): PutRecord[] {
    return this.ops.filter((o): o is PutRecord => o.kind === 'put' && o.host === host);
  }

  /** Every secret value in play: the store's (JWT versions, env values, role_ids, wrapping tokens, secret_ids) and any extra. */
  secretTexts(extra: (Secret | string)[] = []): string[] {
    return [...this.store.secrets, ...extra].map((s) => (s instanceof Secret ? s.revealText() : s));
  }

  async engineServer(h: FakeHost): Promise<number> {
    let srv = this.servers.get(h.host.name);
    if (!srv) {
      srv = createServer((req, res) => {
        const chunks: Buffer[] = [];
        req.on('data', (c: Buffer) => chunks.push(c));
        req.on('end', async () => {
          const token = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
          let ok = false;
          if (token && h.el.key) {
            try {
              const { payload } = await jwtVerify(token, h.el.key, { algorithms: ['HS256'] });
              const elNow = nowSeconds() + (h.elClockOffsetSeconds ?? h.clockOffsetSeconds);
              ok = typeof payload.iat === 'number' && Math.abs(payload.iat - elNow) <= 60;
            } catch {
              ok = false;
            }
          }
          if (!ok) {
            res.writeHead(401, { 'content-type': 'text/plain' }).end('401 Unauthorized');
            return;
          }
          this.accepted(h);
          res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ jsonrpc: '2.0', id: 1, result: ['engine_exchangeCapabilities'] }));
        });
      });
      const s = srv;
      await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
      this.servers.set(h.host.name, srv);
    }
    return (srv.address() as AddressInfo).port;
  }

  async close(): Promise<void> {
    await Promise.all([...this.servers.values()].map((s) => new Promise<void>((r) => s.close(() => r()))));
    this.servers.clear();
  }
}

/** The recording Transport of one fake host. */
export class FakeTransport implements Transport {
  readonly name: string;
  constructor(private readonly h: FakeHost, private readonly fleet: FakeFleet) {
    this.name = h.host.name;
  }

  async exec(argv: string[], opts: ExecOptions = {}): Promise<ExecResult> {
    const rec: ExecRecord = { kind: 'exec', host: this.name, t: this.fleet.now(), argv: [...argv] };
    if (opts.cwd !== undefined) rec.cwd = opts.cwd;
    if (opts.stdin !== undefined) rec.stdinSha256 = sha256Hex(bytesOf(opts.stdin));
    this.fleet.ops.push(rec);
    const injected = this.h.failExec?.(argv);
    if (injected) return injected;
    if (argv[0] === 'sh' && argv[1] === '-c' && /^echo '@@\S+ \S+'$/m.test(argv[2] ?? '')) {
      const { result, keys } = this.h.answerFacts(argv[2]!);
      rec.factKeys = keys;
      return result;
    }
    // A clock reading of its own (the Engine API probe after a 401): the clock lines only.
    const clock = argv[0] === 'sh' && argv[1] === '-c' ? this.h.clockLines(argv[2] ?? '') : undefined;
    if (clock && clock.rest.trim() === '') {
      rec.factKeys = [];
      return { code: 0, stdout: `${clock.line()}${clock.line()}`, stderr: '' };
    }
    return this.h.runCommand(argv, opts.cwd);
  }

  async put(path: string, content: Secret | string | Buffer, opts: PutOptions): Promise<void> {
    const bytes = bytesOf(content);
    this.fleet.ops.push({
      kind: 'put',
      host: this.name,
      t: this.fleet.now(),
      path,
      mode: opts.mode,
      ...(opts.owner !== undefined ? { owner: opts.owner } : {}),
      ...(opts.group !== undefined ? { group: opts.group } : {}),
      contentSha256: sha256Hex(bytes),
      secret: content instanceof Secret,
    });
    const dir = path.slice(0, path.lastIndexOf('/')) || '/';
    if (!this.h.dirs.has(dir)) throw new KryptonError('E_SFTP', `cannot write ${path}: no such directory`, { hint: 'create it first' });
    this.h.writeFile(path, bytes, opts.mode, opts.owner ?? 'root', opts.group ?? 'root');
  }

  async forward(host: string, port: number): Promise<Duplex> {
    this.fleet.ops.push({ kind: 'forward', host: this.name, t: this.fleet.now(), target: `${host}:${port}` });
    if (!this.h.el.up || this.h.host.kind !== 'node') {
      throw new KryptonError('E_SSH_EXEC', `${this.name}: the host refused to forward to ${host}:${port} (connect failed)`, { hint: 'is el running?' });
    }
    const p = await this.fleet.engineServer(this.h);
    return connect(p, '127.0.0.1');
  }

  async close(): Promise<void> {}
}

/**
 * The unit tests' inventory text: validators val-1…val-N and RPC nodes rpc-1…rpc-M on 10.0.0.x (RPC from .21),
 * cosigners cosigner-1… on 10.0.1.x with key_dir /opt/horcrux/keys, Vault at a name that never resolves.
 */
export function fakeInventoryText(o: { validators: number; rpc?: number; cosigners?: number }): string {
  const lines = ['network: "473374"', 'vault:', '  address: https://vault.fake.invalid:8200', 'nodes:'];
  for (let i = 1; i <= o.validators; i++) lines.push(`  val-${i}: { role: validator, address: 10.0.0.${i} }`);
  for (let i = 1; i <= (o.rpc ?? 0); i++) lines.push(`  rpc-${i}: { role: rpc, address: 10.0.0.${20 + i} }`);
  if (o.cosigners) {
    lines.push('cosigners:');
    for (let i = 1; i <= o.cosigners; i++) lines.push(`  cosigner-${i}: { address: 10.0.1.${i}, shard_id: ${i}, key_dir: /opt/horcrux/keys }`);
  }
  return `${lines.join('\n')}\n`;
}
