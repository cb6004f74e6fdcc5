/**
 * Facts about the secrets a host holds (see `hostSecrets` in src/model/layout.ts), for nodes and cosigners
 * alike. Remote facts are read-only POSIX sh snippets (coreutils + util-linux) whose output carries `stat` fields
 * and SHA-256 digests computed on the host — contents never leave it. Laptop facts read fingerprints and versions
 * from the store (never values), memoised per run and reference, re-read after a store write.
 */
import { shellQuote } from '../core/transport.ts';
import type { LaptopFact, RemoteFact } from '../model/task.ts';
import { AGENT_FILES, refKey, templatePath, type HostSecret } from '../model/layout.ts';
import { SECRETS_DIR } from '../model/inventory.ts';
import { parseFileFact, type FileFact } from './file.ts';

const tagged = (stdout: string, t: string): string[] =>
  stdout
    .split('\n')
    .filter((l) => l.startsWith(`@${t} `) || l === `@${t}`)
    .map((l) => l.slice(t.length + 1).trim());

/** A host secret's file: stat, SHA-256, and for `hex64` whether it is exactly 64 lowercase hex characters. */
export type SecretFileFact = FileFact & { isHex64?: boolean };

/**
 * Every listed host secret's file, keyed by its name (`engine-jwt`, `node-env`, `ecies`, `shard`), in ONE snippet.
 * `stat -c '%a %U %G %s %.9Y'`, `sha256sum`, and a 64-hex check for `hex64` files.
 */
export function secretFiles(secrets: readonly Pick<HostSecret, 'name' | 'path' | 'format'>[]): RemoteFact<Record<string, SecretFileFact>> {
  const script = secrets
    .map((s, i) => {
      const p = shellQuote(s.path);
      const hex = s.format === 'hex64' ? ` $(if [ "$(wc -c < ${p})" -eq 64 ] && grep -qxE '[0-9a-f]{64}' ${p}; then echo hex64; else echo nothex; fi)` : '';
      return `if [ -f ${p} ]; then echo "@f${i} $(stat -c '%a %U %G %s %.9Y' -- ${p}) $(sha256sum -- ${p} | cut -d' ' -f1)${hex}"; else echo "@f${i} absent"; fi`;
    })
    .join('\n');
  return {
    kind: 'remote',
    script: script || 'true',
    parse: (stdout) => parseSecretFiles(stdout, secrets),
  };
}

export function parseSecretFiles(stdout: string, secrets: readonly Pick<HostSecret, 'name' | 'format'>[]): Record<string, SecretFileFact> {
  const out: Record<string, SecretFileFact> = {};
  secrets.forEach((s, i) => {
    const v = tagged(stdout, `f${i}`)[0] ?? 'absent';
    if (v === 'absent' || !v) {
      out[s.name] = { exists: false };
      return;
    }
    const parts = v.split(/\s+/);
    const base = parseFileFact(`${parts.slice(0, 5).join(' ')}\n${parts[5] ?? ''}`);
    out[s.name] = s.format === 'hex64' ? { ...base, isHex64: parts[6] === 'hex64' } : base;
  });
  return out;
}

/**
 * The host's Vault Agent, judged by its own state (ARCHITECTURE.md: a missing secret_id file after a successful
 * auth is normal): is the process in `agent.pid` alive, since when (pid file mtime, seconds), is there a token in
 * the sink, is a secret_id file lying around, how many temp files an interrupted upload left, and the latest
 * mtime of its config and templates (seconds).
 */
export interface AgentFact {
  running: boolean;
  pid?: number;
  startedAt?: number;
  tokenSink: boolean;
  secretIdFile: boolean;
  /** Temp files of an interrupted SFTP upload (`.<name>.krypton-<hex>.tmp`) left in the tmpfs. */
  leftoverTempFiles: number;
  configMtime?: number;
}

export function agentState(secrets: readonly Pick<HostSecret, 'name'>[]): RemoteFact<AgentFact> {
  const pid = shellQuote(AGENT_FILES.pid);
  const cfgs = [AGENT_FILES.config, ...secrets.map((s) => templatePath(s))].map(shellQuote).join(' ');
  const script = [
    `if [ -f ${pid} ] && p=$(cat ${pid} 2>/dev/null) && [ -n "$p" ] && kill -0 "$p" 2>/dev/null; then echo "@agent running $p $(stat -c %.9Y -- ${pid})"; else echo "@agent stopped"; fi`,
    `[ -s ${shellQuote(AGENT_FILES.tokenSink)} ] && echo "@sink yes" || echo "@sink no"`,
    `[ -e ${shellQuote(AGENT_FILES.secretId)} ] && echo "@secret_id yes" || echo "@secret_id no"`,
    `echo "@leftovers $(find ${shellQuote(SECRETS_DIR)} -maxdepth 1 -name '.*.krypton-*.tmp' 2>/dev/null | wc -l)"`,
    `for f in ${cfgs}; do [ -f "$f" ] && echo "@mtime $(stat -c %.9Y -- "$f")"; done; true`,
  ].join('\n');
  return { kind: 'remote', script, parse: parseAgentState };
}

export function parseAgentState(stdout: string): AgentFact {
  const agent = (tagged(stdout, 'agent')[0] ?? 'stopped').split(/\s+/);
  const running = agent[0] === 'running';
  const mtimes = tagged(stdout, 'mtime').map(Number).filter((n) => Number.isFinite(n));
  return {
    running,
    ...(running ? { pid: Number(agent[1]), startedAt: Number(agent[2]) } : {}),
    tokenSink: tagged(stdout, 'sink')[0] === 'yes',
    secretIdFile: tagged(stdout, 'secret_id')[0] === 'yes',
    leftoverTempFiles: Number(tagged(stdout, 'leftovers')[0] || '0') || 0,
    ...(mtimes.length ? { configMtime: Math.max(...mtimes) } : {}),
  };
}

/** Where krypton-secrets records which value each service loaded at its last restart (fingerprints only). */
export const LOADED_FILE = `${SECRETS_DIR}/loaded`;

/** Per service, per host secret name: the SHA-256 of the file when the tool last (re)started that service. */
export type LoadedFact = Record<string, Record<string, string>>;

/** `loaded`: lines `<service> <secret name> <sha256>` (not secret: fingerprints), absent after a reboot. */
export function loadedState(): RemoteFact<LoadedFact> {
  const p = shellQuote(LOADED_FILE);
  return { kind: 'remote', script: `[ -f ${p} ] && cat -- ${p}; true`, parse: parseLoaded };
}

export function parseLoaded(stdout: string): LoadedFact {
  const out: LoadedFact = {};
  for (const line of stdout.split('\n')) {
    const m = /^([A-Za-z0-9_.-]+) ([A-Za-z0-9_.-]+) ([0-9a-f]{64})$/.exec(line.trim());
    if (m) (out[m[1]!] ??= {})[m[2]!] = m[3]!;
  }
  return out;
}

/**
 * The POSIX sh that records, after `services` restarted, the SHA-256 of each secret file they read (`secrets`:
 * name and path), replacing their earlier lines in {@link LOADED_FILE}. Appended to a restart command.
 */
export function recordLoadedScript(services: readonly string[], secrets: readonly Pick<HostSecret, 'name' | 'path' | 'readers'>[]): string {
  const f = shellQuote(LOADED_FILE);
  const lines = services.flatMap((svc) =>
    secrets
      .filter((s) => s.readers.includes(svc))
      .map((s) => `[ -f ${shellQuote(s.path)} ] && printf '%s %s %s\\n' ${shellQuote(svc)} ${shellQuote(s.name)} "$(sha256sum -- ${shellQuote(s.path)} | cut -d' ' -f1)"`),
  );
  const drop = services.map((s) => `-e ${shellQuote(`^${s.replace(/[.]/g, '\\.')} `)}`).join(' ');
  return [`{ [ -f ${f} ] && grep -v ${drop} -- ${f}; ${lines.join('; ') || 'true'}; } > ${f}.new; mv -f -- ${f}.new ${f}`].join('\n');
}

/** A stored value as plans see it: version and full SHA-256 fingerprint (never the value), and where it lives. */
export interface StoredFingerprint {
  version: number;
  fingerprint: string;
  source: string;
}

/** The store's current fingerprint of each listed host secret (undefined: never written), keyed by name. */
export function storedFingerprints(secrets: readonly Pick<HostSecret, 'name' | 'ref'>[]): LaptopFact<Record<string, StoredFingerprint | undefined>> {
  return {
    kind: 'laptop',
    async gather(env) {
      const out: Record<string, StoredFingerprint | undefined> = {};
      await Promise.all(
        secrets.map(async (s) => {
          const v = await env.memo(`stored:${refKey(s.ref)}`, () => env.store.current(s.ref));
          out[s.name] = v ? { version: v.version, fingerprint: v.secret.fingerprint(), source: v.source } : undefined;
        }),
      );
      return out;
    },
  };
}

/** The store's current head version of each listed ref (the version a check-and-set write names; 0: none). */
export function storeHeads(secrets: readonly Pick<HostSecret, 'name' | 'ref'>[]): LaptopFact<Record<string, number>> {
  return {
    kind: 'laptop',
    async gather(env) {
      const out: Record<string, number> = {};
      await Promise.all(secrets.map(async (s) => (out[s.name] = await env.memo(`head:${refKey(s.ref)}`, () => env.store.head(s.ref)))));
      return out;
    },
  };
}

/** The host copy (KMS blob) of each listed host secret, undefined when the store keeps none or has none yet. */
export interface HostCopyFact {
  version: number;
  sha256: string;
  display: string;
}

export function hostCopies(secrets: readonly Pick<HostSecret, 'name' | 'ref'>[]): LaptopFact<Record<string, HostCopyFact | undefined>> {
  return {
    kind: 'laptop',
    async gather(env) {
      const out: Record<string, HostCopyFact | undefined> = {};
      const hf = env.store.hostFetch;
      await Promise.all(
        secrets.map(async (s) => {
          const c = hf?.keepsCopy ? await env.memo(`copy:${refKey(s.ref)}`, () => hf.copy(s.ref)) : undefined;
          out[s.name] = c ? { version: c.version, sha256: c.sha256, display: c.display } : undefined;
        }),
      );
      return out;
    },
  };
}

/** Why the store re-writes a value under the inventory's key (Secrets Manager), per host secret. */
export function keyDrifts(secrets: readonly Pick<HostSecret, 'name' | 'ref'>[]): LaptopFact<Record<string, string | undefined>> {
  return {
    kind: 'laptop',
    async gather(env) {
      const out: Record<string, string | undefined> = {};
      await Promise.all(secrets.map(async (s) => (out[s.name] = await env.memo(`drift:${refKey(s.ref)}`, () => env.store.keyDrift(s.ref)))));
      return out;
    },
  };
}
