/**
 * A recording fake fleet for executor unit tests: a Transport per host that simulates just enough of a node
 * (mounts, files on the tmpfs, the Vault Agent, the compose env file, el/cl and their Engine API) for the
 * real executor and the real tasks to run against it, and fake Backends over an in-memory Vault.
 *
 * Everything the executor sends is recorded: every exec (argv, cwd, a fingerprint of stdin), every put
 * (path, mode, a fingerprint of the content), every forward; every Vault call. Contents are kept only as
 * SHA-256 fingerprints in the records. Fact scripts are answered by recognising each snippet of the one
 * gathering exec and printing what the real script would print for the simulated state (formats as in the
 * fixtures under test/unit/facts/).
 *
 * The Engine API is a real HTTP server on 127.0.0.1 per host, verifying the HS256 token with the key el
 * read at its last (re)start from the file JWT_PATH names — so a lockstep restart is what makes a new JWT
 * accepted, as on a real node.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { jwtVerify } from 'jose';
import { KryptonError } from '../../src/core/errors.ts';
import { mintEngineJwtHex, Secret, sha256Hex } from '../../src/core/secret.ts';
import type { KvSecret, VaultBackend, VaultTokenInfo, WrappedSecretId } from '../../src/backends/backend.ts';
import type { Backends, EngineJwtValue } from '../../src/backends/registry.ts';
import { SECRETS_DIR, type Host, type Inventory, type NodeHost } from '../../src/inventory/model.ts';
import { AGENT_FILES, engineJwtKvPath, nodeRoleName } from '../../src/render/vault-agent.ts';
import type { ExecOptions, ExecResult, PutOptions, Transport } from '../../src/transport/transport.ts';

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

interface KvEntry {
  versions: { data: Record<string, Secret | string>; deleted: boolean; destroyed: boolean; createdTime: string }[];
}

/** An in-memory Vault that behaves like the real one where the tasks can tell (CAS, wrapping, role reads). */
export class FakeVault implements VaultBackend {
  readonly address = 'https://vault.fake.invalid:8200';
  readonly kv = new Map<string, KvEntry>();
  readonly policies = new Map<string, string>();
  readonly roles = new Map<string, Record<string, unknown>>();
  readonly roleIds = new Map<string, Secret>();
  readonly wrapped = new Map<string, { creationPath: string; used: boolean; role: string; secretId: Secret }>();
  /** Every call, in order: method and path (never a value). */
  readonly calls: { method: string; path: string }[] = [];
  /** Every secret value this Vault holds or handed out (for leak checks). */
  readonly secrets: Secret[] = [];

  static readonly WRITES = new Set(['kvWrite', 'write', 'wrappedSecretId', 'roleId', 'unwrap', 'createToken']);
  writes(): { method: string; path: string }[] {
    return this.calls.filter((c) => FakeVault.WRITES.has(c.method));
  }

  seed(mount: string, path: string, hex: Secret): void {
    this.kv.set(`${mount}/${path}`, { versions: [{ data: { hex }, deleted: false, destroyed: false, createdTime: new Date().toISOString() }] });
    this.secrets.push(hex);
  }

  current(mount: string, path: string): Secret | undefined {
    const e = this.kv.get(`${mount}/${path}`);
    const v = e?.versions.at(-1);
    return v && !v.deleted && !v.destroyed ? (v.data['hex'] as Secret) : undefined;
  }

  async kvRead(mount: string, path: string, version?: number): Promise<KvSecret | undefined> {
    this.calls.push({ method: 'kvRead', path: `${mount}/data/${path}` });
    const e = this.kv.get(`${mount}/${path}`);
    if (!e) return undefined;
    const n = version ?? e.versions.length;
    const v = e.versions[n - 1];
    if (!v || v.deleted || v.destroyed) return undefined;
    const data: Record<string, Secret> = {};
    for (const [k, x] of Object.entries(v.data)) data[k] = x instanceof Secret ? x : new Secret(x);
    return { version: n, data };
  }

  async kvMetadata(mount: string, path: string) {
    this.calls.push({ method: 'kvMetadata', path: `${mount}/metadata/${path}` });
    const e = this.kv.get(`${mount}/${path}`);
    if (!e) return undefined;
    const versions: Record<string, { createdTime: string; deleted: boolean; destroyed: boolean }> = {};
    e.versions.forEach((v, i) => (versions[String(i + 1)] = { createdTime: v.createdTime, deleted: v.deleted, destroyed: v.destroyed }));
    return { currentVersion: e.versions.length, versions };
  }

  async kvWrite(mount: string, path: string, data: Record<string, Secret | string>, opts: { cas?: number } = {}): Promise<{ version: number }> {
    this.calls.push({ method: 'kvWrite', path: `${mount}/data/${path}` });
    const key = `${mount}/${path}`;
    const e = this.kv.get(key) ?? { versions: [] };
    if (opts.cas !== undefined && opts.cas !== e.versions.length) {
      throw new KryptonError('E_VAULT', `check-and-set parameter did not match the current version of ${key}`, { hint: 'someone else wrote it' });
    }
    for (const v of Object.values(data)) if (v instanceof Secret) this.secrets.push(v);
    e.versions.push({ data: { ...data }, deleted: false, destroyed: false, createdTime: new Date().toISOString() });
    this.kv.set(key, e);
    return { version: e.versions.length };
  }

  async read(path: string): Promise<Record<string, unknown> | undefined> {
    this.calls.push({ method: 'read', path });
    const r = this.roles.get(path);
    return r && structuredClone(r);
  }

  async write(path: string, body: Record<string, unknown>): Promise<Record<string, unknown> | undefined> {
    this.calls.push({ method: 'write', path });
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
    this.calls.push({ method: 'policyRead', path: `sys/policies/acl/${name}` });
    return this.policies.get(name);
  }

  async roleId(approleMount: string, role: string): Promise<Secret> {
    const path = `auth/${approleMount}/role/${role}`;
    this.calls.push({ method: 'roleId', path: `${path}/role-id` });
    if (!this.roles.has(path)) throw new KryptonError('E_VAULT', `role ${role} not found`, { hint: 'run vault.node-approle' });
    let id = this.roleIds.get(path);
    if (!id) {
      id = new Secret(randomUUID());
      this.roleIds.set(path, id);
      this.secrets.push(id);
    }
    return id;
  }

  async wrappedSecretId(approleMount: string, role: string, wrapTtlSeconds: number): Promise<WrappedSecretId> {
    const path = `auth/${approleMount}/role/${role}/secret-id`;
    this.calls.push({ method: 'wrappedSecretId', path });
    if (!this.roles.has(`auth/${approleMount}/role/${role}`)) throw new KryptonError('E_VAULT', `role ${role} not found`, { hint: 'run vault.node-approle' });
    const token = new Secret(`hvs.CAES${randomBytes(30).toString('base64url')}`);
    const secretId = new Secret(randomUUID());
    this.wrapped.set(token.revealText(), { creationPath: path, used: false, role, secretId });
    this.secrets.push(token, secretId);
    return { wrappingToken: token, accessor: randomBytes(12).toString('base64url'), creationPath: path, ttlSeconds: wrapTtlSeconds };
  }

  async wrapLookup(token: Secret): Promise<{ creationPath: string; creationTtl: number; creationTime: string }> {
    this.calls.push({ method: 'wrapLookup', path: 'sys/wrapping/lookup' });
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

  async unwrap(): Promise<Record<string, unknown>> {
    throw new Error('fake vault: unwrap is not used by the executor');
  }
  async createToken(): Promise<Secret> {
    throw new Error('fake vault: createToken is not used by the executor');
  }
  async capabilities(): Promise<Record<string, string[]>> {
    throw new Error('fake vault: capabilities is not used by the executor');
  }
  async tokenLookupSelf(): Promise<VaultTokenInfo> {
    throw new Error('fake vault: tokenLookupSelf is not used by the executor');
  }
}

/** Backends over a FakeVault, reading the Engine-API JWT the way backends/registry.ts does (network scope). */
export function fakeBackends(inv: Inventory, vault: FakeVault): Backends {
  const mount = inv.vault.kvMount;
  return {
    vault: () => vault,
    jwtScope: (node) => (inv.vault.jwtPerNode && node ? node : '*'),
    async engineJwt(node?: string): Promise<EngineJwtValue | undefined> {
      const path = engineJwtKvPath(inv, node);
      const kv = await vault.kvRead(mount, path);
      if (!kv) return undefined;
      return { secret: kv.data['hex']!, version: kv.version, source: `${mount}/${path}` };
    },
    async engineJwtVersions() {
      return [];
    },
    async rotateEngineJwt(node, expectVersion) {
      return vault.kvWrite(mount, engineJwtKvPath(inv, node), { hex: mintEngineJwtHex() }, { cas: expectVersion });
    },
    async restoreEngineJwt() {
      throw new Error('fake backends: restoreEngineJwt is not used here');
    },
  };
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
}

/** The simulated state of one host. Tests may set it up directly before a run and inspect it after. */
export class FakeHost {
  readonly dirs = new Set<string>(['/', '/run', '/opt', '/opt/krypton', '/srv']);
  readonly mounts = new Map<string, FakeMount>();
  readonly files = new Map<string, FakeFile>();
  agent: { pid: number; startedAt: number; token: boolean } | undefined;
  /** What el/cl run on: the key they read at their last start (undefined: none, every call is rejected). */
  el: { key: Buffer | undefined; up: boolean } = { key: undefined, up: true };
  /** Return a result to make an exec fail (or anything else) before it is simulated. */
  failExec: ((argv: string[]) => ExecResult | undefined) | undefined;
  /** How long el/cl are down after a restart (milliseconds). */
  restartDownMs = 120;
  restarts = 0;

  constructor(readonly host: Host, readonly fleet: FakeFleet) {}

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

  // --- fact snippets, answered as the real scripts would print them

  private factOutput(snippet: string): string {
    let m: RegExpExecArray | null;
    if ((m = /findmnt -n -r -o FSTYPE,OPTIONS --mountpoint (\S+)/.exec(snippet))) {
      const path = unquote(m[1]!);
      const mt = this.mounts.get(path);
      if (!mt) return `@mode ${this.dirs.has(path) ? '755' : ''}\n`;
      const opts = mt.fsType === 'tmpfs'
        ? ['rw', 'nosuid', 'nodev', 'noexec', 'relatime', ...(mt.sizeBytes ? [`size=${Math.ceil(mt.sizeBytes / 1024)}k`] : []), `mode=${mt.mode}`, ...(mt.noswap ? ['noswap'] : [])]
        : ['rw', 'relatime'];
      return `${mt.fsType} ${opts.join(',')}\n@mode ${mt.mode}\n`;
    }
    if (/^uname -r/m.test(snippet)) return `${KERNEL_RELEASE}\n@swaps 0\n`;
    if (snippet.includes('@agent')) return this.agentOutput();
    if ((m = /^if \[ -f (\S+) \]; then echo present; grep -E (\S+)/m.exec(snippet))) {
      const f = this.files.get(unquote(m[1]!));
      if (!f) return 'absent\n';
      const key = /\)\?([A-Za-z_][A-Za-z0-9_]*)=/.exec(unquote(m[2]!))?.[1] ?? '';
      const lines = f.content.toString('utf8').split('\n').filter((l) => new RegExp(`^\\s*(export\\s+)?${key}=`).test(l));
      return `present\n${lines.map((l) => `${l}\n`).join('')}`;
    }
    if ((m = /^if \[ -f (\S+) \]; then stat -c '%a %U %G %s %\.9Y' -- [^;\s]+(; sha256sum)?/m.exec(snippet))) {
      const f = this.files.get(unquote(m[1]!));
      if (!f) return 'absent\n';
      return `${this.statLine(f)}\n${m[2] ? `${sha256Hex(f.content)}\n` : ''}`;
    }
    if (snippet.includes('rev-parse --show-toplevel')) return '@repo none\n';
    throw new Error(`fake fleet: unrecognised fact snippet on ${this.host.name}:\n${snippet}`);
  }

  private statLine(f: FakeFile): string {
    return `${f.mode.toString(8)} ${f.owner} ${f.group} ${f.content.length} ${f.mtime.toFixed(9)}`;
  }

  private agentOutput(): string {
    const cfg = this.files.get(AGENT_FILES.config);
    const jwt = this.files.get(AGENT_FILES.jwt);
    const hex64 = jwt && /^[0-9a-f]{64}$/.test(jwt.content.toString('utf8')) ? 'hex64' : 'nothex';
    return [
      this.agent ? `@agent running ${this.agent.pid} ${this.agent.startedAt.toFixed(9)}` : '@agent stopped',
      `@sink ${this.agent?.token ? 'yes' : 'no'}`,
      `@secret_id ${this.files.has(AGENT_FILES.secretId) ? 'yes' : 'no'}`,
      `@config ${cfg ? cfg.mtime.toFixed(9) : ''}`,
      jwt ? `@jwt ${this.statLine(jwt)} ${sha256Hex(jwt.content)} ${hex64}` : '@jwt absent',
      '',
    ].join('\n');
  }

  /** The one fact-gathering exec: answer each fenced snippet. */
  answerFacts(script: string): { result: ExecResult; keys: string[] } {
    const marker = /^echo '@@(\S+) (\S+)'$/gm;
    const found = [...script.matchAll(marker)];
    let out = '';
    const keys: string[] = [];
    found.forEach((m, i) => {
      const [, boundary, key] = m;
      const end = found[i + 1]?.index ?? script.length;
      const snippet = script.slice(m.index! + m[0].length, end);
      keys.push(key!);
      out += `@@${boundary} ${key}\n${this.factOutput(snippet.replace(/^\n\( /, ''))}@@${boundary}-exit 0\n`;
    });
    return { result: { code: 0, stdout: out, stderr: '' }, keys };
  }

  // --- commands a plan may run

  async runCommand(argv: string[], cwd?: string): Promise<ExecResult> {
    const ok: ExecResult = { code: 0, stdout: '', stderr: '' };
    const node = this.node;
    const same = (a: readonly string[] | undefined) => a !== undefined && a.length === argv.length && a.every((x, i) => x === argv[i]);
    if (argv[0] === 'mkdir' && argv.includes('-p')) {
      this.dirs.add(argv.at(-1)!);
      return ok;
    }
    if (argv[0] === 'mount' && argv[1] === '-t' && argv[2] === 'tmpfs') {
      const opts = parseOpts(argv[4]!);
      const path = argv[6]!;
      if (!this.dirs.has(path)) return { code: 32, stdout: '', stderr: `mount: ${path}: mount point does not exist.` };
      this.mounts.set(path, { fsType: 'tmpfs', sizeBytes: opts.size, mode: opts.mode ?? '1777', noswap: opts.noswap });
      return ok;
    }
    if (argv[0] === 'mount' && argv[1] === '-o' && argv[2]!.startsWith('remount,')) {
      const path = argv[3]!;
      const mt = this.mounts.get(path);
      const opts = parseOpts(argv[2]!.slice('remount,'.length));
      if (!mt) return { code: 32, stdout: '', stderr: `mount: ${path}: not mounted.` };
      if (opts.noswap && !mt.noswap) return { code: 32, stdout: '', stderr: `mount: ${path}: mount point not mounted or bad option.` };
      if (opts.size) mt.sizeBytes = opts.size;
      return ok;
    }
    if (node && same(node.agent.start)) {
      this.startAgent(node);
      return ok;
    }
    if (node && same(node.agent.stop)) {
      this.agent = undefined;
      return ok;
    }
    if (argv[0] === 'sh' && argv[1] === '-c' && argv[2] === 'printf "%s\\n" "$1" >> "$2"') {
      const f = this.files.get(argv[5]!);
      if (!f) return { code: 1, stdout: '', stderr: `sh: ${argv[5]}: No such file or directory` };
      f.content = Buffer.concat([f.content, Buffer.from(`${argv[4]}\n`)]);
      f.mtime = nowSeconds();
      return ok;
    }
    if (argv[0] === 'sed' && argv[1] === '-i') {
      const file = argv.at(-1)!;
      const f = this.files.get(file);
      const want = /JWT_PATH=([^#]+)#$/.exec(argv.at(-2)!)?.[1];
      if (!f || !want) return { code: 2, stdout: '', stderr: `sed: can't read ${file}` };
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
    // The executor runs the restart command as `setsid -w <restart…>` (it must survive a dropped connection).
    if (node && argv[0] === 'setsid' && argv[1] === '-w') argv = argv.slice(2);
    if (node && same(node.restart)) {
      if (cwd !== node.deployDir) return { code: 1, stdout: '', stderr: 'no configuration file provided: not found' };
      this.restarts++;
      this.fleet.windowOpened(this);
      this.el = { key: this.el.key, up: false };
      await new Promise((r) => setTimeout(r, this.restartDownMs));
      this.startEl();
      return ok;
    }
    return { code: 127, stdout: '', stderr: `sh: 1: ${argv[0]}: not found` };
  }

  /** The Vault Agent starts: unwraps the delivered secret_id once (removing the file), then renders jwt.hex. */
  private startAgent(node: NodeHost): void {
    const role = nodeRoleName(this.fleet.inventory.network, node.name);
    const roleId = this.files.get(AGENT_FILES.roleId);
    const wrapped = this.files.get(AGENT_FILES.secretId);
    const authenticated = !!roleId && !!wrapped && this.fleet.vault.agentUnwrap(wrapped.content.toString('utf8'), role);
    if (wrapped) this.files.delete(AGENT_FILES.secretId); // remove_secret_id_file_after_reading
    this.agent = { pid: 1000 + Math.floor(Math.random() * 30000), startedAt: nowSeconds(), token: authenticated };
    if (!authenticated) return;
    const hex = this.fleet.vault.current(this.fleet.inventory.vault.kvMount, engineJwtKvPath(this.fleet.inventory, node.name));
    if (hex) this.writeFile(AGENT_FILES.jwt, hex, parseInt(node.jwt.mode, 8), node.jwt.owner ?? 'root', node.jwt.group ?? 'root');
    if (this.fleet.inventory.vault.agentMode === 'oneshot') this.agent = undefined;
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

/** The fleet: one FakeHost per inventory host, the records, and per-host Engine API servers. */
export class FakeFleet {
  readonly hosts = new Map<string, FakeHost>();
  readonly ops: OpRecord[] = [];
  readonly windows: DownWindow[] = [];
  readonly connects: string[] = [];
  readonly vault = new FakeVault();
  readonly backends: Backends;
  readonly t0 = performance.now();
  /** Hosts whose connect() fails. */
  readonly unreachable = new Set<string>();
  private readonly servers = new Map<string, Server>();

  constructor(readonly inventory: Inventory) {
    for (const h of [...inventory.nodes, ...inventory.cosigners]) this.hosts.set(h.name, new FakeHost(h, this));
    this.backends = fakeBackends(inventory, this.vault);
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

  /** Every secret value in play: the Vault's (JWT versions, role_ids, wrapping tokens, secret_ids) and any extra. */
  secretTexts(extra: (Secret | string)[] = []): string[] {
    return [...this.vault.secrets, ...extra].map((s) => (s instanceof Secret ? s.revealText() : s));
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
              ok = typeof payload.iat === 'number' && Math.abs(payload.iat - Date.now() / 1000) <= 60;
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
