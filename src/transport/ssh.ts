/**
 * The SSH transport: one ssh2 connection per host implementing {@link Transport}.
 *
 * - Host key first: the server's raw key blob is checked in ssh2's `hostVerifier` during key exchange,
 *   before any authentication request or channel (so before any byte of a secret): against a pinned
 *   `SHA256:` fingerprint when the inventory gives one, else against known_hosts (see known-hosts.ts).
 * - Auth: an identity file (ed25519 / rsa / ecdsa, unencrypted) and/or ssh-agent (`SSH_AUTH_SOCK`).
 *   Passphrase-protected keys are never prompted for: load them into ssh-agent.
 * - ProxyJump: each hop is its own ssh2 client over the previous hop's `direct-tcpip` channel
 *   (`forwardOut`), each hop's host key verified the same way.
 * - At most 8 channels at once per connection (exec, the SFTP session, forwards share one limiter; the rest
 *   queue), since OpenSSH's MaxSessions defaults to 10. A channel open sshd refuses (a lower MaxSessions) is
 *   back-pressure: retried with a bounded backoff on a lowered limit, down to 1 (./channels.ts); an idle SFTP
 *   session gives its channel back when another caller waits. `hold` (the run lock) opens a connection of its own.
 * - Every ssh2/SFTP error becomes a KryptonError here (E_SSH_HOSTKEY, E_SSH_AUTH, E_SSH_CONNECT,
 *   E_SSH_EXEC, E_SFTP); messages name the host and never carry secret content.
 */
import { randomBytes } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import { access, readFile } from 'node:fs/promises';
import { homedir, constants as osConstants } from 'node:os';
import { join, posix } from 'node:path';
import type { Duplex } from 'node:stream';
import ssh2 from 'ssh2';
import type { AnyAuthMethod, Client as SshClient, ClientChannel, ConnectConfig, SFTPWrapper } from 'ssh2';
import { KryptonError, scrubText, type ErrorCode } from '../core/errors.ts';
import { isSecret, type Secret } from '../core/secret.ts';
import {
  appendKnownHost,
  blobKeyType,
  keyTypeLabel,
  knownHostsName,
  knownKeyTypes,
  normaliseFingerprint,
  readKnownHostsFiles,
  sha256Fingerprint,
  verifyHostKey,
  type KnownHostEntry,
} from './known-hosts.ts';
import { currentUser, expandTilde, loadSshConfig, lookupSshConfig, parseProxyJump, type JumpSpec, type LoadedSshConfig } from './ssh-config.ts';
import { commandLine, type ExecOptions, type ExecResult, type PutOptions, type Transport } from '../core/transport.ts';
import { CHANNEL_RETRY, ChannelLimiter, channelRetryDelayMs, isChannelBackPressure, loweredChannelLimit, type ChannelRetryPolicy } from './channels.ts';

export { ChannelLimiter } from './channels.ts';

const { Client, utils: sshUtils } = ssh2;

/** Channels open at once per connection (exec + SFTP + forwards). OpenSSH MaxSessions defaults to 10. */
export const MAX_CHANNELS_PER_CONNECTION = 8;
/** Default exec timeout in milliseconds. */
export const DEFAULT_EXEC_TIMEOUT_MS = 120_000;
/** The hint of an exec timeout when the caller names no setting. */
const DEFAULT_TIMEOUT_HINT = 'raise the bound with timeouts.exec_seconds in the inventory (defaults: or the host), exec_timeout_seconds on the playbook step, or --timeout <seconds>; or check why the command hangs';

/** 30000 -> "30 s"; 300 or 1500 -> "300 ms", "1500 ms". */
function fmtSeconds(ms: number): string {
  return ms >= 1000 && ms % 1000 === 0 ? `${ms / 1000} s` : `${ms} ms`;
}
/** Default for the whole connect (TCP + key exchange + auth), in milliseconds. */
export const DEFAULT_CONNECT_TIMEOUT_MS = 20_000;
/** SSH keepalive interval (ms) and how many unanswered keepalives drop the connection. */
export const DEFAULT_KEEPALIVE_INTERVAL_MS = 15_000;
export const DEFAULT_KEEPALIVE_COUNT_MAX = 3;

/** Everything needed to reach one host; {@link resolveTarget} builds it from inventory + ssh_config. */
export interface SshTarget {
  /** Inventory name (used in messages and as the pool key). */
  name: string;
  /** Address or DNS name to connect to. */
  address: string;
  /** TCP port. */
  port: number;
  /** Remote user. */
  user: string;
  /** Private key file (OpenSSH or PEM; ed25519, rsa, ecdsa). Must not be passphrase-protected (use ssh-agent). */
  identityFile?: string;
  /** More key files tried after {@link identityFile}, in order; missing ones are skipped. */
  moreIdentityFiles?: string[];
  /** Pinned host key fingerprint `SHA256:<base64>` (as `ssh-keygen -lf` prints). Replaces known_hosts. */
  hostKey?: string;
  /** known_hosts file checked and, with {@link acceptNew}, appended to. Default `~/.ssh/known_hosts`. */
  knownHostsFile?: string;
  /** Further known_hosts files, consulted read-only (ssh_config's other UserKnownHostsFile, GlobalKnownHostsFile). */
  extraKnownHostsFiles?: string[];
  /** Name to look the host key up under instead of {@link address} (ssh_config HostKeyAlias). */
  hostKeyAlias?: string;
  /** Write accepted keys with a hashed `|1|` host field (ssh_config HashKnownHosts). */
  hashKnownHosts?: boolean;
  /** Jump hosts, outermost first (ssh_config ProxyJump). Each hop is verified and authenticated itself. */
  proxyJump?: SshTarget[];
  /** Record the key of a host never seen before in {@link knownHostsFile} (never a changed or revoked one). */
  acceptNew?: boolean;
  /** Limit for TCP connect + key exchange + authentication, in ms (default 20 000). */
  connectTimeoutMs?: number;
  /** SSH keepalive interval in ms (default 15 000); the connection drops after {@link keepaliveCountMax} misses. */
  keepaliveIntervalMs?: number;
  /** Unanswered keepalives before the connection is dropped (default 3). */
  keepaliveCountMax?: number;
  /** Offer ssh-agent keys (default true when an agent socket is known). */
  useAgent?: boolean;
  /** Agent socket path; default `$SSH_AUTH_SOCK`. */
  agentSocket?: string;
}

/** Per-connection behaviour that is not about where the host is. */
export interface ConnectOptions {
  /** Channel limit per connection (default {@link MAX_CHANNELS_PER_CONNECTION}). */
  maxChannels?: number;
  /**
   * Called with every command line exactly as it is sent (never with stdin): for `--debug` output, and for
   * tests that prove no secret ever reaches a remote argv.
   */
  onCommand?: (host: string, commandLine: string) => void;
  /** Retries of a channel open sshd refused (default {@link CHANNEL_RETRY}). */
  channelRetry?: ChannelRetryPolicy;
  /** Called each time sshd refused a channel open and it will be tried again (for `--debug`). */
  onBackPressure?: (host: string, info: { limit: number; delayMs: number; failures: number }) => void;
  /** Called after `acceptNew` recorded a new host key. */
  onHostKeyAccepted?: (info: { host: string; file: string; fingerprint: string; keyType: string }) => void;
  /** Environment for `SSH_AUTH_SOCK` (default process.env). */
  env?: NodeJS.ProcessEnv;
  /** Home directory for the default known_hosts (default os.homedir()). */
  home?: string;
}

/**
 * An ssh2-backed {@link Transport}. Beyond the interface:
 * - `exec`: `timeoutMs` (default 120 000) counts from when the channel is granted, not while queued for one;
 *   on timeout the command gets SIGKILL (where sshd honours signal requests) and the channel is closed.
 *   A connection lost mid-command rejects with E_SSH_EXEC (running and queued commands alike).
 * - `put`: `path` must be absolute. Steps: open `<dir>/.<base>.krypton-<12 hex>.tmp` with flags `wx` and
 *   `mode`; `fchmod` to exactly `mode` (the SFTP server's umask may have narrowed it); `fchown` if asked;
 *   write; `fsync@openssh.com`; close; `posix-rename@openssh.com` over `path` (OpenSSH's PROTOCOL file,
 *   "sftp: Extension request" sections; a plain SFTP rename fails when the target exists). Any failure unlinks the temp file. `owner`/`group` may be names, resolved once
 *   per name per connection on the host with `id -u NAME` / `getent group NAME`, or numeric ids; only one
 *   of them given keeps the other as created. A Secret's revealed copy is zeroed after the write.
 * - `forward`: the returned stream holds one of the connection's channel slots until it closes.
 * `isOpen` turns false once the connection is closed or lost; `target` is what it was opened with.
 */
export interface SshTransport extends Transport {
  readonly isOpen: boolean;
  readonly target: SshTarget;
}

/**
 * Open an authenticated SSH connection to `target` (through its ProxyJump hops, if any).
 * Throws KryptonError:
 * - E_SSH_HOSTKEY: host key unknown (and not `acceptNew`), changed, revoked, or not the pinned fingerprint;
 * - E_SSH_AUTH: no usable key, an encrypted key without an agent, or the server refused every key (names user@host);
 * - E_SSH_CONNECT: refused, unreachable, DNS failure, timeout ({@link SshTarget.connectTimeoutMs}), handshake failure,
 *   or a jump host that would not forward.
 */
export async function connectSsh(target: SshTarget, opts: ConnectOptions = {}): Promise<SshTransport> {
  const chain = await openChain(target, opts, 0);
  return new Ssh2Transport(target, chain, opts);
}

// ---------------------------------------------------------------------------------------------------------
// Resolving a target from inventory + ssh_config

/** SSH settings as an inventory host gives them: everything but the name is optional. */
export interface SshTargetInput {
  name: string;
  /** What you would type after `ssh`: matched against ssh_config Host blocks (default: the name). */
  address?: string;
  port?: number;
  user?: string;
  identityFile?: string;
  /** Pinned `SHA256:…` host key fingerprint. */
  hostKey?: string;
  knownHostsFile?: string;
  /** `[user@]host[:port]` hops, comma-separated or as a list; `none` disables ssh_config's. */
  proxyJump?: string | string[];
  acceptNew?: boolean;
  connectTimeoutMs?: number;
  keepaliveIntervalMs?: number;
  useAgent?: boolean;
}

export interface ResolveOptions {
  /** A loaded ssh_config; default: {@link loadSshConfig} of `configFile` (or ~/.ssh/config + /etc/ssh/ssh_config). */
  sshConfig?: LoadedSshConfig;
  /** ssh_config file to read instead of the defaults (like `ssh -F`). */
  configFile?: string;
  home?: string;
  localUser?: string;
  env?: NodeJS.ProcessEnv;
}

const DEFAULT_IDENTITY_FILES = ['id_rsa', 'id_ecdsa', 'id_ed25519'];
const MAX_JUMP_DEPTH = 8;

/**
 * Merge an inventory host's SSH settings with ssh_config. Precedence: explicit inventory value, then
 * ssh_config, then defaults (port 22, user = the local user like OpenSSH, `~/.ssh/known_hosts`, identity
 * files `~/.ssh/id_{rsa,ecdsa,ed25519}` that exist, agent on when `SSH_AUTH_SOCK` is set).
 *
 * ssh_config is looked up with `address ?? name` (what you would type after `ssh`), and its HostName maps
 * that alias to the address connected to, exactly as `ssh <address>` would. An inventory `knownHostsFile`
 * replaces ssh_config's and the global known_hosts files; hops inherit it and `acceptNew`.
 * StrictHostKeyChecking is ignored (always verified). ProxyJump hops are resolved the same way (each with
 * its own ssh_config block); only the first hop may itself have a ProxyJump, as with `ssh -J a,b`.
 * Throws KryptonError E_INVENTORY for a malformed `hostKey`, a ProxyCommand without ProxyJump (we never
 * run commands), a ProxyJump loop (> 8 hops) or malformed ssh_config values.
 */
export async function resolveTarget(input: SshTargetInput, opts: ResolveOptions = {}): Promise<SshTarget> {
  const loaded = opts.sshConfig ?? (await loadSshConfig(opts.configFile, { home: opts.home, env: opts.env }));
  return resolveWith(input, loaded, opts, 0);
}

async function resolveWith(input: SshTargetInput, loaded: LoadedSshConfig, opts: ResolveOptions, depth: number): Promise<SshTarget> {
  const home = opts.home ?? homedir();
  const env = opts.env ?? process.env;
  const localUser = opts.localUser ?? currentUser();
  const query = input.address ?? input.name;
  const s = lookupSshConfig(loaded.config, query, { user: input.user, port: input.port, home, localUser, env });

  const t: SshTarget = {
    name: input.name,
    address: s.hostName ?? query,
    port: input.port ?? s.port ?? 22,
    user: input.user ?? s.user ?? localUser,
  };

  // Identity files: inventory's is required to exist (checked at connect); ssh_config's/defaults' are skipped when missing.
  const candidates = (s.identityFiles.length > 0 ? s.identityFiles : DEFAULT_IDENTITY_FILES.map((f) => join(home, '.ssh', f)));
  const existing: string[] = [];
  for (const f of candidates) if (await isReadableFile(f)) existing.push(f);
  if (input.identityFile !== undefined) {
    t.identityFile = expandTilde(input.identityFile, home);
    if (existing.length > 0) t.moreIdentityFiles = existing.filter((f) => f !== t.identityFile);
  } else if (existing.length > 0) {
    t.identityFile = existing[0];
    if (existing.length > 1) t.moreIdentityFiles = existing.slice(1);
  }

  if (input.hostKey !== undefined) {
    const fp = normaliseFingerprint(input.hostKey);
    if (!fp)
      throw new KryptonError('E_INVENTORY', `hostKey of ${input.name} is not a SHA256 fingerprint: "${input.hostKey}"`, {
        host: input.name,
        hint: 'write it as ssh-keygen -lf prints it, e.g. SHA256:nThbg6kXUpJWGl7E1IGOCspRomTxdCARLviKw6E5SY8',
      });
    t.hostKey = fp;
  }

  if (input.knownHostsFile !== undefined) {
    t.knownHostsFile = expandTilde(input.knownHostsFile, home);
  } else {
    const user = s.userKnownHostsFiles ?? [join(home, '.ssh', 'known_hosts'), join(home, '.ssh', 'known_hosts2')];
    const global = s.globalKnownHostsFiles ?? ['/etc/ssh/ssh_known_hosts', '/etc/ssh/ssh_known_hosts2'];
    t.knownHostsFile = user[0] ?? '/dev/null';
    const extra = [...user.slice(1), ...global];
    if (extra.length > 0) t.extraKnownHostsFiles = extra;
  }
  if (s.hostKeyAlias !== undefined) t.hostKeyAlias = s.hostKeyAlias;
  if (s.hashKnownHosts !== undefined) t.hashKnownHosts = s.hashKnownHosts;
  if (input.acceptNew !== undefined) t.acceptNew = input.acceptNew;

  const ct = input.connectTimeoutMs ?? (s.connectTimeoutSeconds ? s.connectTimeoutSeconds * 1000 : undefined);
  if (ct !== undefined) t.connectTimeoutMs = ct;
  const ka = input.keepaliveIntervalMs ?? (s.serverAliveIntervalSeconds ? s.serverAliveIntervalSeconds * 1000 : undefined);
  if (ka !== undefined) t.keepaliveIntervalMs = ka;
  if (s.serverAliveCountMax !== undefined && s.serverAliveCountMax > 0) t.keepaliveCountMax = s.serverAliveCountMax;

  if (s.identityAgent === 'none') t.useAgent = false;
  else if (s.identityAgent !== undefined && s.identityAgent !== 'SSH_AUTH_SOCK') t.agentSocket = s.identityAgent;
  if (input.useAgent !== undefined) t.useAgent = input.useAgent;

  let hops: JumpSpec[] | undefined;
  if (input.proxyJump !== undefined) {
    const v = Array.isArray(input.proxyJump) ? input.proxyJump.join(',') : input.proxyJump;
    hops = v.trim().toLowerCase() === 'none' || v.trim() === '' ? [] : parseProxyJump(v);
  } else {
    hops = s.proxyJump;
    if (hops === undefined && s.proxyCommand !== undefined)
      throw new KryptonError('E_INVENTORY', `ssh config sets ProxyCommand for ${input.name}; krypton-secrets does not run ProxyCommand`, {
        host: input.name,
        hint: 'use ProxyJump (ssh_config or the inventory\'s proxyJump) instead, or set proxyJump: none',
      });
  }
  if (hops && hops.length > 0) {
    if (depth >= MAX_JUMP_DEPTH)
      throw new KryptonError('E_INVENTORY', `ProxyJump for ${input.name} nests deeper than ${MAX_JUMP_DEPTH} hops (a loop?)`, { host: input.name });
    const resolved: SshTarget[] = [];
    for (const [i, hop] of hops.entries()) {
      const hopInput: SshTargetInput = {
        name: hop.port ? `${hop.host}:${hop.port}` : hop.host,
        address: hop.host,
        ...(hop.port !== undefined ? { port: hop.port } : {}),
        ...(hop.user !== undefined ? { user: hop.user } : {}),
        ...(input.knownHostsFile !== undefined ? { knownHostsFile: input.knownHostsFile } : {}),
        ...(input.acceptNew !== undefined ? { acceptNew: input.acceptNew } : {}),
        ...(input.useAgent !== undefined ? { useAgent: input.useAgent } : {}),
        // Like `ssh -J a,b`: only the first hop may itself be reached through its own ProxyJump.
        ...(i > 0 ? { proxyJump: 'none' } : {}),
      };
      resolved.push(await resolveWith(hopInput, loaded, opts, depth + 1));
    }
    t.proxyJump = resolved;
  }
  return t;
}

async function isReadableFile(f: string): Promise<boolean> {
  try {
    await access(f, fsConstants.R_OK);
    return true;
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------------------
// Connecting

function where(t: SshTarget): string {
  return `${t.name} (${t.address}:${t.port})`;
}

/** Opens `target` and its hops; returns the clients, outermost jump first, target last. */
async function openChain(target: SshTarget, opts: ConnectOptions, depth: number): Promise<SshClient[]> {
  const hops = target.proxyJump ?? [];
  if (hops.length === 0) return [await connectOne(target, opts, undefined)];
  if (depth >= MAX_JUMP_DEPTH)
    throw new KryptonError('E_SSH_CONNECT', `ProxyJump chain to ${target.name} is deeper than ${MAX_JUMP_DEPTH} hops`, { host: target.name });
  const chain: SshClient[] = [];
  try {
    chain.push(...(await openChain(hops[0]!, opts, depth + 1)));
    const rest = [...hops.slice(1), target];
    let prev = hops[0]!;
    for (const next of rest) {
      const sock = await forwardOutRaw(chain[chain.length - 1]!, next.address, next.port).catch((err: unknown) => {
        throw new KryptonError('E_SSH_CONNECT', `jump host ${prev.name} could not reach ${where(next)}: ${errText(err)}`, {
          host: target.name,
          hint: `check that ${prev.name} can connect to ${next.address}:${next.port} and allows TCP forwarding (AllowTcpForwarding)`,
          cause: err,
        });
      });
      chain.push(await connectOne(next, opts, sock));
      prev = next;
    }
    return chain;
  } catch (err) {
    for (const c of chain.reverse()) c.end();
    throw err;
  }
}

function forwardOutRaw(client: SshClient, host: string, port: number): Promise<ClientChannel> {
  return new Promise((resolve, reject) => {
    try {
      client.forwardOut('127.0.0.1', 0, host, port, (err, stream) => (err ? reject(err) : resolve(stream)));
    } catch (err) {
      reject(err);
    }
  });
}

const HOST_KEY_ALGOS: Record<string, string[]> = {
  'ssh-ed25519': ['ssh-ed25519'],
  'ecdsa-sha2-nistp256': ['ecdsa-sha2-nistp256'],
  'ecdsa-sha2-nistp384': ['ecdsa-sha2-nistp384'],
  'ecdsa-sha2-nistp521': ['ecdsa-sha2-nistp521'],
  'ssh-rsa': ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'],
};
const DEFAULT_HOST_KEY_ALGOS = Object.values(HOST_KEY_ALGOS).flat();

interface LoadedKey {
  file: string;
  key: Buffer;
}

/** Read identity files; encrypted ones are skipped when an agent may hold them, else refused with a clear error. */
async function loadIdentities(target: SshTarget, agent: string | undefined): Promise<{ keys: LoadedKey[]; skipped: string[] }> {
  const keys: LoadedKey[] = [];
  const skipped: string[] = [];
  const files = [
    ...(target.identityFile !== undefined ? [{ file: target.identityFile, required: true }] : []),
    ...(target.moreIdentityFiles ?? []).map((file) => ({ file, required: false })),
  ];
  const authErr = (msg: string, hint: string, cause?: unknown) =>
    new KryptonError('E_SSH_AUTH', msg, { host: target.name, hint, ...(cause !== undefined ? { cause } : {}) });
  for (const { file, required } of files) {
    let data: Buffer;
    try {
      data = await readFile(file);
    } catch (err) {
      if (!required) continue;
      throw authErr(`cannot read identity file ${file} for ${target.user}@${target.name}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`, 'check the identityFile path in the inventory or ~/.ssh/config', err);
    }
    const parsed = sshUtils.parseKey(data);
    if (parsed instanceof Error) {
      const encrypted = /encrypt|passphrase/i.test(parsed.message);
      if (encrypted && agent !== undefined) {
        skipped.push(file);
        continue;
      }
      if (encrypted)
        throw authErr(
          `identity file ${file} is passphrase-protected; krypton-secrets does not prompt for passphrases (${target.user}@${target.name})`,
          `load it into ssh-agent (eval "$(ssh-agent)"; ssh-add ${file}) and run again with SSH_AUTH_SOCK set`,
        );
      if (!required) continue;
      throw authErr(`cannot use identity file ${file} for ${target.user}@${target.name}: ${scrubText(parsed.message)}`, 'use an OpenSSH or PEM ed25519, ecdsa or rsa private key', parsed);
    }
    keys.push({ file, key: data });
  }
  return { keys, skipped };
}

async function connectOne(target: SshTarget, opts: ConnectOptions, sock: Duplex | undefined): Promise<SshClient> {
  const env = opts.env ?? process.env;
  const home = opts.home ?? homedir();
  const agentSock = target.useAgent === false ? undefined : (target.agentSocket ?? env.SSH_AUTH_SOCK) || undefined;
  const { keys, skipped } = await loadIdentities(target, agentSock);
  if (keys.length === 0 && agentSock === undefined)
    throw new KryptonError('E_SSH_AUTH', `no key to authenticate as ${target.user}@${target.name}: no identity file and no ssh-agent`, {
      host: target.name,
      hint: 'set identityFile in the inventory (or IdentityFile in ~/.ssh/config), or start ssh-agent and set SSH_AUTH_SOCK',
    });

  // Host key material, loaded before the TCP connection so that verification is synchronous.
  const khFile = target.knownHostsFile ?? join(home, '.ssh', 'known_hosts');
  const khFiles = [khFile, ...(target.extraKnownHostsFiles ?? [])];
  let entries: KnownHostEntry[] = [];
  const pinned = target.hostKey === undefined ? undefined : normaliseFingerprint(target.hostKey);
  if (target.hostKey !== undefined && pinned === undefined)
    throw new KryptonError('E_SSH_HOSTKEY', `pinned host_key of ${target.name} is not a SHA256 fingerprint`, { host: target.name, hint: 'write it as ssh-keygen -lf prints it: SHA256:…' });
  if (pinned === undefined) {
    try {
      entries = await readKnownHostsFiles(khFiles);
    } catch (err) {
      throw new KryptonError('E_SSH_HOSTKEY', `cannot read known_hosts for ${where(target)}: ${errText(err)}`, { host: target.name, cause: err });
    }
  }
  const lookupHost = target.hostKeyAlias ?? target.address;
  const knownTypes = pinned === undefined ? knownKeyTypes(entries, lookupHost, target.port) : [];
  const preferred = knownTypes.flatMap((t) => HOST_KEY_ALGOS[t] ?? []);
  const hostKeyAlgos = [...preferred, ...DEFAULT_HOST_KEY_ALGOS.filter((a) => !preferred.includes(a))];

  let refusal: KryptonError | undefined;
  let accepted: Buffer | undefined;
  const hostVerifier = (rawKey: Buffer, verify: (ok: boolean) => void): void => {
    const key = Buffer.from(rawKey);
    const type = blobKeyType(key) ?? 'unknown';
    const fp = sha256Fingerprint(key);
    const offered = `${keyTypeLabel(type)} ${fp}`;
    const hkErr = (message: string, hint: string) => new KryptonError('E_SSH_HOSTKEY', message, { host: target.name, hint });
    if (pinned !== undefined) {
      if (fp === pinned) return verify(true);
      refusal = hkErr(
        `host key of ${where(target)} has CHANGED: it offers ${offered}, but the inventory pins ${pinned}`,
        'someone may be intercepting the connection, or the host was re-keyed: verify the new key out of band before updating host_key in the inventory',
      );
      return verify(false);
    }
    const v = verifyHostKey(entries, lookupHost, target.port, key);
    const khName = knownHostsName(lookupHost, target.port);
    switch (v.status) {
      case 'match':
        return verify(true);
      case 'revoked':
        refusal = hkErr(
          `host key of ${where(target)} is REVOKED: ${offered} is marked @revoked in ${v.entry.file} line ${v.entry.line}`,
          'do not connect to this host until it has a new host key; then verify that key out of band',
        );
        return verify(false);
      case 'mismatch': {
        const old = v.known[0]!;
        refusal = hkErr(
          `host key of ${where(target)} has CHANGED: it offers ${offered}, but ${old.file} line ${old.line} holds ${keyTypeLabel(old.keyType)} ${sha256Fingerprint(old.keyBlob)} for ${khName}`,
          `someone may be intercepting the connection (man-in-the-middle), or the host was reinstalled. Verify the new key out of band; only then remove the old entry: ssh-keygen -R '${khName}' -f ${old.file}`,
        );
        return verify(false);
      }
      case 'unknown': {
        if (!target.acceptNew) {
          refusal = hkErr(
            `host key of ${where(target)} is unknown: ${offered} is not in ${khFiles.join(', ')}`,
            `verify the fingerprint out of band (on the host: ssh-keygen -lf /etc/ssh/ssh_host_${type === 'ssh-rsa' ? 'rsa' : type.startsWith('ecdsa') ? 'ecdsa' : 'ed25519'}_key.pub), then add it to ${khFile} (ssh-keyscan -p ${target.port} ${target.address}), pin it as host_key in the inventory, or run with --accept-new`,
          );
          return verify(false);
        }
        if (accepted?.equals(key)) return verify(true); // a re-key of this same connection
        recordOnce(khFile, knownHostsName(lookupHost, target.port), key, () =>
          appendKnownHost(khFile, lookupHost, target.port, type, key, { hash: target.hashKnownHosts === true }).then(() =>
            opts.onHostKeyAccepted?.({ host: target.name, file: khFile, fingerprint: fp, keyType: type }),
          ),
        ).then(
          () => {
            accepted = key;
            verify(true);
          },
          (err: unknown) => {
            refusal = hkErr(`cannot record the new host key of ${where(target)} in ${khFile}: ${errText(err)}`, `make ${khFile} writable, or add the key yourself`);
            verify(false);
          },
        );
        return;
      }
    }
  };

  const authHandler: AnyAuthMethod[] = [
    ...keys.map((k): AnyAuthMethod => ({ type: 'publickey', username: target.user, key: k.key })),
    ...(agentSock !== undefined ? [{ type: 'agent', username: target.user, agent: agentSock } as AnyAuthMethod] : []),
  ];

  const cfg: ConnectConfig = {
    host: target.address,
    port: target.port,
    username: target.user,
    readyTimeout: target.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
    keepaliveInterval: target.keepaliveIntervalMs ?? DEFAULT_KEEPALIVE_INTERVAL_MS,
    keepaliveCountMax: target.keepaliveCountMax ?? DEFAULT_KEEPALIVE_COUNT_MAX,
    hostVerifier: hostVerifier as ConnectConfig['hostVerifier'],
    authHandler,
    algorithms: { serverHostKey: hostKeyAlgos as NonNullable<NonNullable<ConnectConfig['algorithms']>['serverHostKey']> },
    ...(sock !== undefined ? { sock } : {}),
  };

  const client = new Client();
  return new Promise<SshClient>((resolve, reject) => {
    let phase: 'connect' | 'auth' | 'ready' = 'connect';
    let settled = false;
    const agentNotes: string[] = [];
    const fail = (err: KryptonError) => {
      if (settled) return;
      settled = true;
      client.removeAllListeners('ready');
      client.end();
      client.destroy();
      reject(err);
    };
    client.on('handshake', () => {
      phase = 'auth';
    });
    client.on('ready', () => {
      phase = 'ready';
      if (settled) return;
      settled = true;
      resolve(client);
    });
    client.on('error', (err: Error & { level?: string; code?: string }) => {
      if (phase === 'ready') return; // after ready, the transport's own listener handles errors
      if (refusal) return fail(refusal);
      const level = err.level ?? '';
      if (level === 'agent' || (level === 'client-authentication' && !/All configured authentication methods failed/.test(err.message))) {
        if (level === 'agent') agentNotes.push(err.message);
        return; // ssh2 goes on with the next method
      }
      if (level === 'client-authentication' || (phase === 'auth' && /authentication/i.test(err.message))) {
        const tried = [...keys.map((k) => k.file), ...(agentSock !== undefined ? ['ssh-agent'] : [])].join(', ');
        return fail(
          new KryptonError('E_SSH_AUTH', `authentication as ${target.user}@${target.name} (${target.address}:${target.port}) failed (tried ${tried || 'nothing'})`, {
            host: target.name,
            hint:
              (skipped.length > 0
                ? `the passphrase-protected key ${skipped.join(', ')} is not in ssh-agent: ssh-add it; or check ${target.user}'s authorized_keys on the host`
                : `check that one of these keys is in ~${target.user}/.ssh/authorized_keys on the host, and the user name`) +
              (agentNotes.length > 0 ? ` (ssh-agent: ${scrubText(agentNotes[0]!)})` : ''),
            cause: err,
          }),
        );
      }
      fail(connectError(target, err, phase));
    });
    client.on('close', () => {
      if (refusal) return fail(refusal);
      fail(new KryptonError('E_SSH_CONNECT', `connection to ${where(target)} closed during the SSH ${phase === 'connect' ? 'handshake' : 'authentication'}`, {
        host: target.name,
        hint: 'the server dropped the connection: check sshd logs (MaxStartups, AllowUsers, DenyUsers)',
      }));
    });
    try {
      client.connect(cfg);
    } catch (err) {
      fail(connectError(target, err, phase));
    }
  });
}

/** known_hosts appends in flight or done in this process, so concurrent first connects record a key once. */
const recorded = new Map<string, Promise<void>>();
function recordOnce(file: string, name: string, key: Buffer, append: () => Promise<void>): Promise<void> {
  const k = `${file}\0${name}\0${key.toString('base64')}`;
  let p = recorded.get(k);
  if (!p) {
    p = append();
    recorded.set(k, p);
    p.catch(() => recorded.delete(k));
  }
  return p;
}

function connectError(target: SshTarget, err: unknown, phase: string): KryptonError {
  const e = err as Error & { level?: string; code?: string };
  const code = typeof e?.code === 'string' ? e.code : undefined;
  let why: string;
  let hint = `check that ${target.address} is up, reachable and runs sshd on port ${target.port}`;
  if (e?.level === 'client-timeout') {
    why = /Keepalive/i.test(e.message) ? 'the server stopped answering keepalives' : `timed out after ${fmtSeconds(target.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS)}`;
    if (!/Keepalive/i.test(e.message)) hint += ' (a slow host: raise ssh.connect_timeout_seconds in the inventory, or ConnectTimeout in ssh_config)';
  } else if (code === 'ECONNREFUSED') {
    why = 'connection refused';
  } else if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') {
    why = `cannot resolve ${target.address}`;
    hint = 'check the address in the inventory or HostName in ~/.ssh/config';
  } else if (code === 'EHOSTUNREACH' || code === 'ENETUNREACH') {
    why = 'host unreachable';
  } else if (code === 'ETIMEDOUT') {
    why = 'TCP connect timed out';
  } else if (code === 'ECONNRESET') {
    why = 'connection reset';
  } else {
    why = `${phase === 'connect' ? 'SSH handshake failed' : 'connection failed'}: ${errText(err)}`;
  }
  return new KryptonError('E_SSH_CONNECT', `cannot connect to ${where(target)}: ${why}`, { host: target.name, hint, cause: err });
}

function errText(err: unknown): string {
  return scrubText(err instanceof Error ? err.message : String(err));
}

// ---------------------------------------------------------------------------------------------------------
// The transport

type SftpErr = Error & { code?: number | string };

const SFTP_STATUS: Record<number, string> = {
  1: 'end of file',
  2: 'no such file or directory',
  3: 'permission denied',
  4: 'failure',
  5: 'bad message',
  6: 'no connection',
  7: 'connection lost',
  8: 'operation unsupported',
};

function signalExitCode(signal: string | undefined): number {
  if (!signal) return 255;
  const name = (signal.startsWith('SIG') ? signal : `SIG${signal}`) as keyof typeof osConstants.signals;
  const n = osConstants.signals[name];
  return typeof n === 'number' ? 128 + n : 255;
}

const NAME_RE = /^[A-Za-z_][A-Za-z0-9_.-]*\$?$/;

class Ssh2Transport implements SshTransport {
  readonly name: string;
  readonly target: SshTarget;
  readonly #client: SshClient;
  readonly #jumps: SshClient[];
  readonly #limiter: ChannelLimiter;
  readonly #opts: ConnectOptions;
  #closed = false;
  #closing: Promise<void> | undefined;
  #sftp: Promise<{ sftp: SFTPWrapper; release: () => void }> | undefined;
  readonly #pending = new Set<(err: KryptonError) => void>();
  readonly #ids = new Map<string, Promise<number>>();
  readonly #retry: ChannelRetryPolicy;
  /** Connections opened for {@link hold}, closed with this one. */
  readonly #sides = new Set<Ssh2Transport>();
  /** SFTP requests in flight: the session is idle (and may be closed to free its channel) when 0. */
  #sftpBusy = 0;

  constructor(target: SshTarget, chain: SshClient[], opts: ConnectOptions) {
    this.name = target.name;
    this.target = target;
    this.#client = chain[chain.length - 1]!;
    this.#jumps = chain.slice(0, -1);
    this.#opts = opts;
    this.#limiter = new ChannelLimiter(opts.maxChannels ?? MAX_CHANNELS_PER_CONNECTION);
    this.#retry = opts.channelRetry ?? CHANNEL_RETRY;
    // A caller waits for a channel: an idle SFTP session gives its slot back (it reopens on the next put).
    this.#limiter.onWait = () => this.#closeIdleSftp();
    this.#client.on('error', () => {
      // Errors after ready (keepalive timeout, socket reset) end in 'close', handled below.
    });
    this.#client.on('close', () => this.#lost());
    for (const j of this.#jumps) {
      j.on('error', () => {});
      j.on('close', () => this.#client.end());
    }
  }

  get isOpen(): boolean {
    return !this.#closed;
  }

  #lost(): void {
    const wasClosing = this.#closing !== undefined;
    this.#closed = true;
    const err = new KryptonError('E_SSH_EXEC', `connection to ${this.name} ${wasClosing ? 'was closed' : 'was lost'}`, {
      host: this.name,
      hint: wasClosing ? undefined : `check that ${this.target.address}:${this.target.port} is still up; run again to reconnect`,
    });
    this.#limiter.fail(err);
    for (const p of [...this.#pending]) p(err);
    this.#pending.clear();
    this.#sftp = undefined;
    for (const j of this.#jumps) j.end();
  }

  #closedError(code: ErrorCode): KryptonError {
    return new KryptonError(code, `connection to ${this.name} is closed`, { host: this.name, hint: 'run again to reconnect' });
  }

  async #acquire(code: ErrorCode): Promise<() => void> {
    if (this.#closed) throw this.#closedError(code);
    try {
      return await this.#limiter.acquire();
    } catch (err) {
      const k = err as KryptonError;
      throw new KryptonError(code, k.message, { host: this.name, hint: k.hint });
    }
  }

  /**
   * Takes a channel slot and opens a channel with `open`. A refused open (sshd back-pressure: MaxSessions,
   * resource shortage — see ./channels.ts) is not an error yet: the slot goes back, this connection's limit drops
   * to the channels that were open when sshd refused, and after a backoff the open is tried again, up to
   * {@link CHANNEL_RETRY}'s attempts; then it throws KryptonError `code` naming MaxSessions. Any other open error
   * is returned as `{ err }` for the caller to word; a connection lost meanwhile throws `code`.
   */
  async #openChannel<T>(
    code: ErrorCode,
    what: string,
    kind: 'session' | 'forward',
    open: (cb: (err: Error | undefined, ch?: T) => void) => void,
    dispose: (ch: T) => void = (ch) => (ch as unknown as ClientChannel).close(),
  ): Promise<{ ch: T; release: () => void } | { err: Error }> {
    for (let failures = 0; ; ) {
      const release = await this.#acquire(code);
      const r = await new Promise<{ ch: T } | { err: Error } | { lost: KryptonError }>((resolve) => {
        let done = false;
        const onLost = (e: KryptonError) => {
          if (done) return;
          done = true;
          resolve({ lost: e });
        };
        this.#pending.add(onLost);
        const settle = (err: Error | undefined, ch?: T) => {
          this.#pending.delete(onLost);
          if (done) {
            if (ch !== undefined) dispose(ch);
            return;
          }
          done = true;
          resolve(err ? { err } : { ch: ch! });
        };
        try {
          open((err, ch) => settle(err ?? undefined, ch));
        } catch (err) {
          settle(err instanceof Error ? err : new Error(String(err)));
        }
      });
      if ('ch' in r) return { ch: r.ch, release };
      const others = this.#limiter.active - 1;
      release();
      if ('lost' in r) throw new KryptonError(code, `${what} on ${this.name} did not start: ${r.lost.message}`, { host: this.name, hint: r.lost.hint });
      if (!isChannelBackPressure(r.err, kind)) return { err: r.err };
      failures++;
      const limit = this.#limiter.lower(loweredChannelLimit(this.#limiter.max, others));
      const delay = channelRetryDelayMs(failures, this.#retry);
      if (delay === undefined) {
        throw new KryptonError(
          code,
          `${what} on ${this.name}: sshd refused to open a channel ${failures} times (${errText(r.err)}), even with no more than ${limit} channel${limit === 1 ? '' : 's'} of this connection open`,
          {
            host: this.name,
            hint: `sshd on ${this.target.address}:${this.target.port} allows fewer sessions per connection than that: check MaxSessions in its sshd_config (OpenSSH's default is 10; krypton-secrets needs at least 1, and uses up to ${MAX_CHANNELS_PER_CONNECTION}) and that the host is not out of resources`,
            cause: r.err,
          },
        );
      }
      this.#opts.onBackPressure?.(this.name, { limit, delayMs: delay, failures });
      await new Promise((res) => setTimeout(res, delay));
    }
  }

  async exec(argv: string[], opts: ExecOptions = {}): Promise<ExecResult> {
    if (!Array.isArray(argv) || argv.length === 0)
      throw new KryptonError('E_SSH_EXEC', `exec on ${this.name}: empty command`, { host: this.name });
    const line = commandLine(argv, opts.cwd);
    const prog = argv[0]!;
    const timeoutMs = opts.timeoutMs ?? DEFAULT_EXEC_TIMEOUT_MS;
    this.#opts.onCommand?.(this.name, line);
    const stdin = opts.stdin === undefined ? undefined : isSecret(opts.stdin) ? opts.stdin.reveal() : Buffer.from(opts.stdin as string | Buffer);
    const wipe = isSecret(opts.stdin);
    let opened: { ch: ClientChannel; release: () => void } | { err: Error };
    try {
      opened = await this.#openChannel<ClientChannel>('E_SSH_EXEC', prog, 'session', (cb) => this.#client.exec(line, cb));
    } catch (err) {
      if (wipe && stdin) stdin.fill(0);
      throw err;
    }
    if ('err' in opened) {
      if (wipe && stdin) stdin.fill(0);
      throw new KryptonError('E_SSH_EXEC', `${prog} on ${this.name}: cannot open a channel: ${errText(opened.err)}`, { host: this.name, cause: opened.err });
    }
    const { ch, release } = opened;

    return new Promise<ExecResult>((resolve, reject) => {
      let settled = false;
      const finish = (fn: () => void) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.#pending.delete(onLost);
        fn();
      };
      const cleanup = () => {
        release();
        if (wipe && stdin) stdin.fill(0);
      };
      const onLost = (err: KryptonError) =>
        finish(() => {
          cleanup();
          reject(new KryptonError('E_SSH_EXEC', `${prog} on ${this.name} did not finish: ${err.message}`, { host: this.name, hint: err.hint }));
        });
      this.#pending.add(onLost);
      const fail = (why: string, cause?: unknown, hint?: string) =>
        finish(() => {
          cleanup();
          reject(new KryptonError('E_SSH_EXEC', `${prog} on ${this.name}: ${why}`, { host: this.name, ...(hint ? { hint } : {}), ...(cause !== undefined ? { cause } : {}) }));
        });
      const out: Buffer[] = [];
      const errOut: Buffer[] = [];
      let exit: number | undefined;
      const timer = setTimeout(() => {
        try {
          ch.signal('KILL');
        } catch {
          /* not all servers take signals */
        }
        ch.close();
        fail(`timed out after ${fmtSeconds(timeoutMs)}`, undefined, opts.timeoutHint ?? DEFAULT_TIMEOUT_HINT);
      }, timeoutMs);
      ch.on('data', (c: Buffer) => out.push(c));
      ch.stderr.on('data', (c: Buffer) => errOut.push(c));
      ch.on('exit', (code: number | null, signal?: string) => {
        exit = typeof code === 'number' ? code : signalExitCode(signal);
      });
      ch.on('error', (e: Error) => fail(`channel error: ${errText(e)}`, e));
      ch.on('close', () => {
        if (settled) return;
        if (exit === undefined) return fail('the channel closed before the command reported an exit status (connection lost?)');
        const code = exit;
        finish(() => {
          cleanup();
          resolve({ code, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(errOut).toString('utf8') });
        });
      });
      if (this.#closed) return onLost(this.#closedError('E_SSH_EXEC'));
      if (stdin !== undefined) ch.end(stdin);
      else ch.end();
    });
  }

  /**
   * See {@link Transport.hold}. Runs on a connection of its own, opened for it (host key verified as for this
   * one) and closed at `release()`: a channel held for a whole run must not take one of the task connection's
   * channels, or an sshd with `MaxSessions 1` would refuse every exec while it is held. The lock still goes when
   * that connection drops (the host-side holder reads EOF).
   */
  async hold(argv: string[], readyLine: string, timeoutMs = 30_000): Promise<{ held: true; release: () => void } | { held: false; code: number; stderr: string }> {
    if (this.#closed) throw this.#closedError('E_SSH_EXEC');
    const chain = await openChain(this.target, { ...this.#opts, onHostKeyAccepted: undefined }, 0);
    const side = new Ssh2Transport(this.target, chain, { ...this.#opts, maxChannels: 1 });
    this.#sides.add(side);
    const drop = () => {
      this.#sides.delete(side);
      void side.close();
    };
    try {
      const r = await side.#holdHere(argv, readyLine, timeoutMs);
      if (!r.held) {
        drop();
        return r;
      }
      let released = false;
      return {
        held: true,
        release: () => {
          if (released) return;
          released = true;
          r.release();
          drop();
        },
      };
    } catch (err) {
      drop();
      throw err;
    }
  }

  /** The lock holder itself, on this connection (the side connection {@link hold} opened). */
  async #holdHere(argv: string[], readyLine: string, timeoutMs: number): Promise<{ held: true; release: () => void } | { held: false; code: number; stderr: string }> {
    const line = commandLine(argv);
    this.#opts.onCommand?.(this.name, line);
    const opened = await this.#openChannel<ClientChannel>('E_SSH_EXEC', argv[0]!, 'session', (cb) => this.#client.exec(line, cb));
    if ('err' in opened) throw new KryptonError('E_SSH_EXEC', `${argv[0]} on ${this.name}: cannot open a channel: ${errText(opened.err)}`, { host: this.name });
    const { ch, release } = opened;
    return new Promise((resolve, reject) => {
      let done = false;
      const timer = setTimeout(() => {
        if (done) return;
        done = true;
        ch.close();
        reject(new KryptonError('E_SSH_EXEC', `${argv[0]} on ${this.name}: no answer within ${fmtSeconds(timeoutMs)}`, { host: this.name, hint: DEFAULT_TIMEOUT_HINT }));
      }, timeoutMs);
      let out = '';
      let errOut = '';
      let exit = -1;
      ch.on('data', (c: Buffer) => {
        out += c.toString('utf8');
        if (!done && out.includes(readyLine)) {
          done = true;
          clearTimeout(timer);
          let released = false;
          resolve({
            held: true,
            release: () => {
              if (released) return;
              released = true;
              ch.end(); // EOF on stdin: the host-side holder exits and the lock goes
            },
          });
        }
      });
      ch.stderr.on('data', (c: Buffer) => (errOut += c.toString('utf8')));
      ch.on('exit', (code: number | null) => (exit = typeof code === 'number' ? code : -1));
      ch.on('error', () => {});
      ch.on('close', () => {
        release();
        if (done) return;
        done = true;
        clearTimeout(timer);
        resolve({ held: false, code: exit, stderr: errOut.trim().split('\n').slice(-2).join(' | ').slice(0, 300) });
      });
    });
  }

  /** One SFTP session per connection, opened on first use; holds one channel slot while open. */
  #sftpSession(): Promise<SFTPWrapper> {
    if (!this.#sftp) {
      const p = (async () => {
        const opened = await this.#openChannel<SFTPWrapper>('E_SFTP', 'SFTP', 'session', (cb) => this.#client.sftp((err, s) => cb(err ?? undefined, s)), (s) => s.end());
        if ('err' in opened) {
          throw new KryptonError('E_SFTP', `cannot start an SFTP session on ${this.name}: ${errText(opened.err)}`, {
            host: this.name,
            hint: 'the host\'s sshd needs an sftp Subsystem (e.g. "Subsystem sftp internal-sftp")',
            cause: opened.err,
          });
        }
        const { ch: sftp, release } = opened;
        sftp.on('error', () => {});
        sftp.on('close', () => {
          release();
          if (this.#sftp === p) this.#sftp = undefined;
        });
        return { sftp, release };
      })();
      this.#sftp = p;
      p.catch(() => {
        if (this.#sftp === p) this.#sftp = undefined;
      });
    }
    return this.#sftp.then((s) => s.sftp);
  }

  /**
   * Closes the SFTP session when no request uses it, giving its channel back: called when another caller has to
   * wait for a channel (with sshd's MaxSessions low, an idle SFTP session would otherwise starve every exec).
   */
  #closeIdleSftp(): void {
    const p = this.#sftp;
    if (!p || this.#sftpBusy > 0) return;
    p.then(
      ({ sftp }) => {
        if (this.#sftp !== p || this.#sftpBusy > 0) return;
        this.#sftp = undefined;
        sftp.end();
      },
      () => undefined,
    );
  }

  async put(path: string, content: Secret | string | Buffer, opts: PutOptions): Promise<void> {
    const sftpErr = (msg: string, cause?: unknown, hint?: string) =>
      new KryptonError('E_SFTP', msg, { host: this.name, ...(hint ? { hint } : {}), ...(cause !== undefined ? { cause } : {}) });
    if (typeof path !== 'string' || !path.startsWith('/') || path.endsWith('/') || path.includes('\0'))
      throw sftpErr(`put on ${this.name}: "${path}" is not an absolute file path`);
    const mode = opts.mode;
    if (!Number.isInteger(mode) || mode < 0 || mode > 0o7777)
      throw sftpErr(`put ${path} on ${this.name}: mode ${String(mode)} is not a file mode (use a number such as 0o600)`);
    const uid = opts.owner === undefined ? undefined : await this.#resolveId('user', opts.owner, path);
    const gid = opts.group === undefined ? undefined : await this.#resolveId('group', opts.group, path);

    const data = isSecret(content) ? content.reveal() : typeof content === 'string' ? Buffer.from(content, 'utf8') : content;
    const wipe = isSecret(content);
    const dir = posix.dirname(path);
    const tmp = posix.join(dir, `.${posix.basename(path)}.krypton-${randomBytes(6).toString('hex')}.tmp`);
    let sftp: SFTPWrapper;
    this.#sftpBusy++;
    const idle = () => {
      if (--this.#sftpBusy === 0 && this.#limiter.waiting > 0) this.#closeIdleSftp();
    };
    try {
      sftp = await this.#sftpSession();
    } catch (err) {
      idle();
      if (wipe) data.fill(0);
      throw err;
    }
    const call = <T>(what: string, fn: (cb: (err: Error | null | undefined, v?: T) => void) => void): Promise<T> =>
      new Promise<T>((resolve, reject) => {
        if (this.#closed) return reject(this.#closedError('E_SFTP'));
        const onLost = (e: KryptonError) => reject(e);
        this.#pending.add(onLost);
        try {
          fn((err, v) => {
            this.#pending.delete(onLost);
            if (err) reject(Object.assign(err, { step: what }));
            else resolve(v as T);
          });
        } catch (err) {
          this.#pending.delete(onLost);
          reject(Object.assign(err as Error, { step: what }));
        }
      });

    let handle: Buffer | undefined;
    let created = false;
    try {
      handle = await call<Buffer>('create', (cb) => sftp.open(tmp, 'wx', { mode }, cb));
      created = true;
      // The server's umask may have narrowed the mode given at open: set it exactly (0644 stays 0644).
      await call('chmod', (cb) => sftp.fchmod(handle!, mode, cb));
      if (uid !== undefined || gid !== undefined) {
        let u = uid;
        let g = gid;
        if (u === undefined || g === undefined) {
          const st = await call<{ uid: number; gid: number }>('stat', (cb) => sftp.fstat(handle!, cb));
          u ??= st.uid;
          g ??= st.gid;
        }
        await call('chown', (cb) => sftp.fchown(handle!, u!, g!, cb));
        if (mode & 0o6000) await call('chmod', (cb) => sftp.fchmod(handle!, mode, cb)); // chown clears setuid/setgid
      }
      await call('write', (cb) => sftp.write(handle!, data, 0, data.length, 0, cb));
      await call('fsync', (cb) => sftp.ext_openssh_fsync(handle!, cb));
      const h = handle;
      handle = undefined;
      await call('close', (cb) => sftp.close(h, cb));
      await call('rename', (cb) => sftp.ext_openssh_rename(tmp, path, cb));
      created = false;
    } catch (err) {
      if (handle) await call('close', (cb) => sftp.close(handle!, cb)).catch(() => {});
      if (created) await call('unlink', (cb) => sftp.unlink(tmp, cb)).catch(() => {});
      if (err instanceof KryptonError) throw sftpErr(`put ${path} on ${this.name} failed: ${err.message}`, err, err.hint);
      const e = err as SftpErr & { step?: string };
      const status = typeof e.code === 'number' ? SFTP_STATUS[e.code] : undefined;
      let why = status ?? errText(e).toLowerCase();
      const step = e.step ?? 'write';
      let hint: string | undefined;
      if (step === 'create' && e.code === 2) hint = `create the directory ${dir} first`;
      else if (step === 'create' && e.code === 3) hint = `${this.target.user} may not write in ${dir}`;
      else if (step === 'chown') hint = 'changing ownership needs root on the host';
      else if (/does not support/i.test(e.message)) hint = 'the host\'s SFTP server lacks the OpenSSH extensions posix-rename@openssh.com / fsync@openssh.com';
      else if (step === 'write' || step === 'fsync' || step === 'close') {
        // OpenSSH's sftp-server answers ENOSPC with a bare "failure": ask the filesystem (statvfs@openssh.com).
        const free = await new Promise<number | undefined>((res) => {
          try {
            sftp.ext_openssh_statvfs(dir, (e2, st: { f_bavail: number | bigint; f_frsize: number | bigint }) => {
              const n = e2 ? NaN : Number(st.f_bavail) * Number(st.f_frsize);
              res(Number.isFinite(n) ? n : undefined);
            });
          } catch {
            res(undefined);
          }
        });
        if (free !== undefined && free < data.length + 4096) {
          why = `no space left on the filesystem of ${dir} (${free} bytes free, ${data.length} to write)`;
          hint = `free space on ${this.name} (the secrets tmpfs is small by design: remove files there that are not the tool's, or raise mount.tmpfs size_bytes), then run again`;
        } else {
          hint = `the host's SFTP server refused the ${step}${free !== undefined ? ` (${free} bytes free on ${dir})` : ''}: check the filesystem of ${dir} and the host's logs, then run again`;
        }
      }
      throw sftpErr(`put ${path} on ${this.name} failed at ${step}: ${why}`, err, hint);
    } finally {
      idle();
      if (wipe) data.fill(0);
    }
  }

  /** Owner/group names -> numeric ids, once per name per connection (`id -u NAME`, `getent group NAME`). */
  #resolveId(kind: 'user' | 'group', nameOrId: string, path: string): Promise<number> {
    if (/^\d+$/.test(nameOrId)) return Promise.resolve(Number(nameOrId));
    const key = `${kind}:${nameOrId}`;
    let p = this.#ids.get(key);
    if (!p) {
      p = (async () => {
        const bad = (why: string) =>
          new KryptonError('E_SFTP', `put ${path} on ${this.name}: ${kind} "${nameOrId}" ${why}`, { host: this.name, hint: `create the ${kind} on the host, or give a numeric id` });
        if (!NAME_RE.test(nameOrId)) throw bad('is not a valid name');
        const r = await this.exec(kind === 'user' ? ['id', '-u', nameOrId] : ['getent', 'group', nameOrId]);
        const text = r.stdout.trim();
        const id = kind === 'user' ? text : text.split(':')[2];
        if (r.code !== 0 || id === undefined || !/^\d+$/.test(id)) throw bad('does not exist');
        return Number(id);
      })();
      this.#ids.set(key, p);
      p.catch(() => this.#ids.delete(key));
    }
    return p;
  }

  async forward(host: string, port: number): Promise<Duplex> {
    const opened = await this.#openChannel<ClientChannel>('E_SSH_EXEC', `forward to ${host}:${port}`, 'forward', (cb) =>
      this.#client.forwardOut('127.0.0.1', 0, host, port, (err, stream) => cb(err ?? undefined, stream)),
    );
    if ('err' in opened) {
      throw new KryptonError('E_SSH_EXEC', `${this.name} refused to forward to ${host}:${port}: ${errText(opened.err)}`, {
        host: this.name,
        hint: `check that something listens on ${host}:${port} on the host and that sshd allows TCP forwarding`,
        cause: opened.err,
      });
    }
    opened.ch.once('close', opened.release);
    return opened.ch;
  }

  close(): Promise<void> {
    if (this.#closing) return this.#closing;
    this.#closing = new Promise<void>((resolve) => {
      if (this.#closed) return resolve();
      const t = setTimeout(() => {
        this.#client.destroy();
        resolve();
      }, 5_000);
      this.#client.once('close', () => {
        clearTimeout(t);
        resolve();
      });
      this.#client.end();
    }).then(async () => {
      this.#closed = true;
      for (const j of this.#jumps) j.end();
      await Promise.allSettled([...this.#sides].map((t) => t.close()));
      this.#sides.clear();
    });
    return this.#closing;
  }
}

// ---------------------------------------------------------------------------------------------------------
// Pool

/**
 * One connection per host name, shared by every task on that host. Concurrent `get`s for the same name share
 * one in-flight connect; a failed connect is forgotten (the next `get` retries); a connection that was lost
 * is replaced on the next `get`.
 */
export class ConnectionPool {
  readonly #opts: ConnectOptions;
  readonly #connect: (t: SshTarget, o: ConnectOptions) => Promise<Transport>;
  readonly #entries = new Map<string, { promise: Promise<Transport>; transport?: Transport }>();

  /** @param connect injectable for tests (default {@link connectSsh}). */
  constructor(opts: ConnectOptions = {}, connect: (t: SshTarget, o: ConnectOptions) => Promise<Transport> = connectSsh) {
    this.#opts = opts;
    this.#connect = connect;
  }

  /** The connection for `target.name`, opening it if needed. Throws what {@link connectSsh} throws. */
  get(target: SshTarget): Promise<Transport> {
    const cur = this.#entries.get(target.name);
    if (cur && (cur.transport === undefined || (cur.transport as Partial<SshTransport>).isOpen !== false)) return cur.promise;
    const entry: { promise: Promise<Transport>; transport?: Transport } = { promise: undefined as unknown as Promise<Transport> };
    entry.promise = this.#connect(target, this.#opts).then(
      (t) => {
        entry.transport = t;
        return t;
      },
      (err: unknown) => {
        if (this.#entries.get(target.name) === entry) this.#entries.delete(target.name);
        throw err;
      },
    );
    this.#entries.set(target.name, entry);
    return entry.promise;
  }

  /** Names with a connection open or opening. */
  get size(): number {
    return this.#entries.size;
  }

  /** Close every connection (waits for in-flight connects and closes them too). Never throws. */
  async closeAll(): Promise<void> {
    const entries = [...this.#entries.values()];
    this.#entries.clear();
    await Promise.allSettled(entries.map((e) => e.promise.then((t) => t.close())));
  }
}
