/**
 * OpenSSH client configuration (ssh_config(5)): load `~/.ssh/config` (+ `/etc/ssh/ssh_config`) or one given
 * file, expand `Include`, and compute one host's effective settings with the `ssh-config` library.
 *
 * Deliberately never runs anything: `Match exec` never matches (ssh-config `matchExec: false`), and
 * `CanonicalizeHostName` is dropped before computing (the library would spawn `nslookup` for it).
 * StrictHostKeyChecking is not read: krypton-secrets always verifies host keys.
 * Precedence is OpenSSH's: the first value obtained for a keyword wins (IdentityFile accumulates).
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { homedir, hostname as osHostname, userInfo } from 'node:os';
import { isAbsolute, join } from 'node:path';
import SSHConfig, { LineType, type Line, type Section } from 'ssh-config';
import { KryptonError } from '../core/errors.ts';

/** One ProxyJump hop: `[user@]host[:port]` (ssh_config(5) ProxyJump; `[v6addr]:port` accepted too). */
export interface JumpSpec {
  user?: string;
  host: string;
  port?: number;
}

/** A host's settings as ssh_config gives them; undefined means "not set there". */
export interface SshConfigSettings {
  /** HostName with `%h`/`%%` expanded. */
  hostName?: string;
  user?: string;
  port?: number;
  /** IdentityFile values in order, `~`, `%` tokens and `${ENV}` expanded. */
  identityFiles: string[];
  /** Hops from ProxyJump; `[]` when it is `none`; undefined when not set. */
  proxyJump?: JumpSpec[];
  /** ProxyCommand when set (and not `none`); krypton-secrets does not run it. */
  proxyCommand?: string;
  /** UserKnownHostsFile list (expanded); `[]` for `none`. */
  userKnownHostsFiles?: string[];
  /** GlobalKnownHostsFile list (expanded); `[]` for `none`. */
  globalKnownHostsFiles?: string[];
  hostKeyAlias?: string;
  /** IdentityAgent: `none`, `SSH_AUTH_SOCK` (the default) or a socket path (expanded). */
  identityAgent?: string;
  identitiesOnly?: boolean;
  hashKnownHosts?: boolean;
  /** ConnectTimeout, in seconds. */
  connectTimeoutSeconds?: number;
  /** ServerAliveInterval, in seconds (0 = off in OpenSSH). */
  serverAliveIntervalSeconds?: number;
  serverAliveCountMax?: number;
}

/** A loaded configuration: the parsed tree with Includes expanded, plus what to tell the operator. */
export interface LoadedSshConfig {
  config: SSHConfig;
  /** Files actually read, in order. */
  files: string[];
  /** Things we could not honour (e.g. a Host block inside an Include nested in a specific Host block). */
  warnings: string[];
}

export interface LoadSshConfigOptions {
  /** Home directory for `~` (default os.homedir()). */
  home?: string;
  /** Environment for `${VAR}` (default process.env). */
  env?: NodeJS.ProcessEnv;
}

const MAX_INCLUDE_DEPTH = 16; // OpenSSH READCONF_MAX_DEPTH

/**
 * Load ssh_config. With `file`, only that file is read (like `ssh -F file`); without, `~/.ssh/config` then
 * `/etc/ssh/ssh_config` (first value wins across both, like ssh). Missing files are empty. `Include` is
 * expanded in place (relative paths from `~/.ssh` for user files, `/etc/ssh` for the system file; `*`/`?`
 * globs; depth ≤ 16). Throws KryptonError E_INVENTORY when a file cannot be parsed.
 */
export async function loadSshConfig(file?: string, opts: LoadSshConfigOptions = {}): Promise<LoadedSshConfig> {
  const home = opts.home ?? homedir();
  const out: LoadedSshConfig = { config: new SSHConfig(), files: [], warnings: [] };
  const sources: Array<{ path: string; base: string }> = file
    ? [{ path: expandTilde(file, home), base: join(home, '.ssh') }]
    : [
        { path: join(home, '.ssh', 'config'), base: join(home, '.ssh') },
        { path: '/etc/ssh/ssh_config', base: '/etc/ssh' },
      ];
  for (const s of sources) {
    const lines = await readConfigFile(s.path, s.base, home, out, 0);
    out.config.push(...lines);
  }
  return out;
}

/**
 * Parse ssh_config text that is already in memory (no Include expansion; Include lines are ignored).
 * Throws KryptonError E_INVENTORY on a syntax error.
 */
export function parseSshConfig(text: string, file = 'ssh_config'): SSHConfig {
  try {
    const cfg = SSHConfig.parse(text);
    normalise(cfg);
    return cfg;
  } catch (err) {
    throw new KryptonError('E_INVENTORY', `cannot parse ssh config ${file}: ${(err as Error).message}`, {
      hint: 'fix the file or point krypton-secrets at another one',
      cause: err,
    });
  }
}

export interface LookupOptions {
  /** The remote user if already decided (inventory), so `Match user` and `%r` see it. */
  user?: string;
  /** The port if already decided (inventory), for `%p`. */
  port?: number;
  home?: string;
  localUser?: string;
  env?: NodeJS.ProcessEnv;
}

/**
 * Effective ssh_config settings for `host` (the name you would type after `ssh`). Never executes
 * `Match exec`. Throws KryptonError E_INVENTORY for a value that is malformed (bad Port, bad ProxyJump,
 * an unknown `%` token).
 */
export function lookupSshConfig(config: SSHConfig, host: string, opts: LookupOptions = {}): SshConfigSettings {
  const home = opts.home ?? homedir();
  const localUser = opts.localUser ?? currentUser();
  const env = opts.env ?? process.env;
  const original = host.toLowerCase();
  const raw = config.compute(
    opts.user === undefined ? { Host: original } : { Host: original, User: opts.user },
    { ignoreCase: true, matchExec: false },
  );
  const one = (k: string): string | undefined => {
    const v = raw[k];
    if (v === undefined) return undefined;
    return Array.isArray(v) ? v[0] : v;
  };
  const list = (k: string): string[] | undefined => {
    const v = raw[k];
    if (v === undefined) return undefined;
    return Array.isArray(v) ? v : [v];
  };
  const bad = (what: string, why: string): never => {
    throw new KryptonError('E_INVENTORY', `ssh config for ${host}: ${what} ${why}`, {
      hint: 'fix ~/.ssh/config (or the file given), or set the value explicitly in the inventory',
    });
  };

  const s: SshConfigSettings = { identityFiles: [] };
  const hn = one('hostname');
  s.hostName = hn === undefined ? undefined : expandTokens(hn, { h: original, '%': '%' }, 'HostName', bad);
  s.user = one('user');
  const portText = one('port');
  if (portText !== undefined) s.port = parsePort(portText) ?? bad('Port', `"${portText}" is not a port number`);

  const remoteHost = s.hostName ?? original;
  const port = opts.port ?? s.port ?? 22;
  const ruser = opts.user ?? s.user ?? localUser;
  const alias = one('hostkeyalias');
  const tokens: Record<string, string> = {
    '%': '%',
    d: home,
    h: remoteHost,
    n: original,
    p: String(port),
    r: ruser,
    u: localUser,
    i: String(process.getuid?.() ?? ''),
    L: osHostname().split('.')[0] ?? '',
    l: osHostname(),
    k: alias ?? original,
  };
  tokens.C = createHash('sha1').update(`${tokens.l}${remoteHost}${port}${ruser}`).digest('hex');
  const path = (v: string, what: string) => expandEnv(expandTilde(expandTokens(v, tokens, what, bad), home), env, what, bad);

  s.identityFiles = (list('identityfile') ?? []).map((v) => path(v, 'IdentityFile'));
  const pj = one('proxyjump');
  if (pj !== undefined) s.proxyJump = pj.toLowerCase() === 'none' ? [] : parseProxyJumpOr(pj, bad);
  const pc = one('proxycommand');
  if (pc !== undefined && pc.toLowerCase() !== 'none') s.proxyCommand = pc;
  const ukh = list('userknownhostsfile');
  if (ukh) s.userKnownHostsFiles = ukh.length === 1 && ukh[0]!.toLowerCase() === 'none' ? [] : ukh.map((v) => path(v, 'UserKnownHostsFile'));
  const gkh = list('globalknownhostsfile');
  if (gkh) s.globalKnownHostsFiles = gkh.length === 1 && gkh[0]!.toLowerCase() === 'none' ? [] : gkh.map((v) => path(v, 'GlobalKnownHostsFile'));
  s.hostKeyAlias = alias;
  const ia = one('identityagent');
  if (ia === 'none' || ia === 'SSH_AUTH_SOCK') s.identityAgent = ia;
  else if (ia !== undefined && /^\$[A-Za-z_][A-Za-z0-9_]*$/.test(ia)) s.identityAgent = env[ia.slice(1)] ?? 'none'; // `$VAR`: socket path in VAR
  else if (ia !== undefined) s.identityAgent = path(ia, 'IdentityAgent');
  s.identitiesOnly = yesNo(one('identitiesonly'));
  s.hashKnownHosts = yesNo(one('hashknownhosts'));
  const ct = one('connecttimeout');
  if (ct !== undefined) s.connectTimeoutSeconds = nonNegInt(ct) ?? bad('ConnectTimeout', `"${ct}" is not a number of seconds`);
  const sai = one('serveraliveinterval');
  if (sai !== undefined) s.serverAliveIntervalSeconds = nonNegInt(sai) ?? bad('ServerAliveInterval', `"${sai}" is not a number of seconds`);
  const sac = one('serveralivecountmax');
  if (sac !== undefined) s.serverAliveCountMax = nonNegInt(sac) ?? bad('ServerAliveCountMax', `"${sac}" is not a number`);
  return s;
}

/**
 * Parse a ProxyJump value: comma-separated `[user@]host[:port]` (IPv6 as `[addr]:port`), or `ssh://[user@]host[:port]`.
 * Throws KryptonError E_INVENTORY when a hop is malformed.
 */
export function parseProxyJump(value: string): JumpSpec[] {
  return parseProxyJumpOr(value, (what, why) => {
    throw new KryptonError('E_INVENTORY', `${what} ${why}`, { hint: 'write ProxyJump as [user@]host[:port][,…]' });
  });
}

/** `~` or `~/x` -> under `home` (other `~user` forms are left alone). */
export function expandTilde(p: string, home: string = homedir()): string {
  if (p === '~') return home;
  if (p.startsWith('~/')) return join(home, p.slice(2));
  return p;
}

/** The local user name, as OpenSSH uses it for the default remote user. */
export function currentUser(): string {
  try {
    return userInfo().username;
  } catch {
    return process.env.USER ?? process.env.LOGNAME ?? 'root';
  }
}

function parseProxyJumpOr(value: string, bad: (what: string, why: string) => never): JumpSpec[] {
  const hops: JumpSpec[] = [];
  for (const partRaw of value.split(',')) {
    let part = partRaw.trim();
    if (part === '') bad('ProxyJump', `"${value}" has an empty hop`);
    if (part.startsWith('ssh://')) part = part.slice(6).replace(/\/$/, '');
    let user: string | undefined;
    const at = part.lastIndexOf('@');
    if (at >= 0) {
      user = part.slice(0, at);
      part = part.slice(at + 1);
      if (user === '') bad('ProxyJump', `"${value}" has an empty user`);
    }
    let host = part;
    let port: number | undefined;
    const v6 = /^\[([^\]]+)\](?::(\d+))?$/.exec(part);
    if (v6) {
      host = v6[1]!;
      if (v6[2] !== undefined) port = parsePort(v6[2]) ?? bad('ProxyJump', `"${value}" has a bad port`);
    } else {
      const c = part.lastIndexOf(':');
      if (c >= 0) {
        host = part.slice(0, c);
        port = parsePort(part.slice(c + 1)) ?? bad('ProxyJump', `"${value}" has a bad port`);
      }
    }
    if (host === '' || /[\s/]/.test(host)) bad('ProxyJump', `"${value}" has a bad host`);
    hops.push({ ...(user !== undefined ? { user } : {}), host, ...(port !== undefined ? { port } : {}) });
  }
  return hops;
}

function parsePort(t: string): number | undefined {
  if (!/^\d{1,5}$/.test(t)) return undefined;
  const n = Number(t);
  return n >= 1 && n <= 65535 ? n : undefined;
}

function nonNegInt(t: string): number | undefined {
  return /^\d+$/.test(t) ? Number(t) : undefined;
}

function yesNo(t: string | undefined): boolean | undefined {
  if (t === undefined) return undefined;
  const l = t.toLowerCase();
  return l === 'yes' || l === 'true' ? true : l === 'no' || l === 'false' ? false : undefined;
}

function expandTokens(v: string, tokens: Record<string, string>, what: string, bad: (what: string, why: string) => never): string {
  return v.replace(/%(.)?/g, (_m, k: string | undefined) => {
    if (k === undefined) return bad(what, `"${v}" ends with a lone %`);
    const t = tokens[k];
    return t ?? bad(what, `"${v}" uses %${k}, which is not supported here`);
  });
}

function expandEnv(v: string, env: NodeJS.ProcessEnv, what: string, bad: (what: string, why: string) => never): string {
  return v.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (_m, name: string) => env[name] ?? bad(what, `"${v}" uses \${${name}}, which is not set`));
}

async function readConfigFile(path: string, base: string, home: string, out: LoadedSshConfig, depth: number): Promise<Line[]> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return [];
    throw new KryptonError('E_INVENTORY', `cannot read ssh config ${path}: ${(err as Error).message}`, { cause: err });
  }
  out.files.push(path);
  const parsed = parseSshConfig(text, path);
  return expandIncludes([...parsed], base, home, out, depth, undefined);
}

async function expandIncludes(lines: Line[], base: string, home: string, out: LoadedSshConfig, depth: number, parent: Section | undefined): Promise<Line[]> {
  const result: Line[] = [];
  const hoisted: Line[] = [];
  for (const line of lines) {
    if (line.type !== LineType.DIRECTIVE) {
      result.push(line);
      continue;
    }
    if ('config' in line && line.config) {
      const sec = line as Section;
      const inner = await expandIncludes([...sec.config], base, home, out, depth, sec);
      sec.config.splice(0, sec.config.length, ...inner.filter((l) => !isSection(l)));
      result.push(sec, ...inner.filter(isSection));
      continue;
    }
    if (!/^include$/i.test(line.param)) {
      result.push(line);
      continue;
    }
    if (depth >= MAX_INCLUDE_DEPTH) {
      out.warnings.push(`Include nested deeper than ${MAX_INCLUDE_DEPTH} levels ignored`);
      continue;
    }
    const patterns = Array.isArray(line.value) ? line.value.map((v) => v.val) : line.value.split(/\s+/);
    for (const pat of patterns) {
      let p = expandTilde(pat, home);
      if (!isAbsolute(p)) p = join(base, p);
      for (const f of globPaths(p)) {
        const inc = await readConfigFile(f, base, home, out, depth + 1);
        for (const l of inc) {
          if (!isSection(l) || parent === undefined) result.push(l);
          else if (isCatchAll(parent)) hoisted.push(l);
          else out.warnings.push(`${f}: a ${(l as Section).param} block included inside "${parent.param} ${valueText(parent)}" is ignored`);
        }
      }
    }
  }
  return [...result, ...hoisted];
}

function isSection(l: Line): boolean {
  return l.type === LineType.DIRECTIVE && 'config' in l && !!(l as Section).config;
}

function isCatchAll(s: Section): boolean {
  const v = valueText(s).trim().toLowerCase();
  return (/^host$/i.test(s.param) && v === '*') || (/^match$/i.test(s.param) && v === 'all');
}

function valueText(d: { value: string | { val: string }[] }): string {
  return Array.isArray(d.value) ? d.value.map((v) => v.val).join(' ') : d.value;
}

/**
 * Drop CanonicalizeHostName (the library would spawn nslookup for it) and lowercase Host patterns (OpenSSH
 * matches host names case-insensitively; the library does not, so both sides are lowercased).
 */
function normalise(cfg: Line[]): void {
  for (let i = cfg.length - 1; i >= 0; i--) {
    const l = cfg[i]!;
    if (l.type !== LineType.DIRECTIVE) continue;
    if (/^CanonicalizeHostName$/i.test(l.param)) {
      cfg.splice(i, 1);
      continue;
    }
    if (/^host$/i.test(l.param)) {
      if (Array.isArray(l.value)) for (const v of l.value) v.val = v.val.toLowerCase();
      else l.value = l.value.toLowerCase();
    }
    if ('config' in l && l.config) normalise(l.config);
  }
}

/** Expand `*`/`?` in any path component (sorted, hidden entries only for patterns starting with `.`). */
function globPaths(pattern: string): string[] {
  if (!/[*?]/.test(pattern)) return existsSync(pattern) ? [pattern] : [];
  const parts = pattern.split('/');
  let acc = [parts[0] === '' ? '/' : parts[0]!];
  for (const part of parts.slice(1)) {
    if (part === '') continue;
    const next: string[] = [];
    for (const dir of acc) {
      if (!/[*?]/.test(part)) {
        next.push(join(dir, part));
        continue;
      }
      let names: string[];
      try {
        if (!statSync(dir).isDirectory()) continue;
        names = readdirSync(dir).sort();
      } catch {
        continue;
      }
      const re = new RegExp(`^${part.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')}$`);
      for (const n of names) if (re.test(n) && (!n.startsWith('.') || part.startsWith('.'))) next.push(join(dir, n));
    }
    acc = next;
  }
  return acc.filter((p) => existsSync(p) && !statSync(p).isDirectory());
}
