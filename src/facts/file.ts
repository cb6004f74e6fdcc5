import { shellQuote } from '../core/transport.ts';
import type { RemoteFact } from '../model/task.ts';

/** A file's metadata as `stat` reports it, and optionally its SHA-256 (computed on the host). */
export interface FileFact {
  exists: boolean;
  /** Octal mode string, e.g. "0600". */
  mode?: string;
  owner?: string;
  group?: string;
  sizeBytes?: number;
  /** Modification time, seconds since the epoch with nanoseconds (GNU stat `%.9Y`). */
  mtime?: number;
  /** Full lowercase-hex SHA-256 of the content (when asked for and readable). */
  sha256?: string;
}

/**
 * `stat -c '%a %U %G %s %.9Y'` (GNU coreutils) and, with `digest`, `sha256sum`. The content never leaves the
 * host: only its digest does.
 */
export function fileAt(path: string, opts: { digest?: boolean } = {}): RemoteFact<FileFact> {
  const p = shellQuote(path);
  const digest = opts.digest ? `; sha256sum -- ${p} | cut -d' ' -f1` : '';
  return {
    kind: 'remote',
    script: `if [ -f ${p} ]; then stat -c '%a %U %G %s %.9Y' -- ${p}${digest}; else echo absent; fi`,
    parse: parseFileFact,
  };
}

export function parseFileFact(stdout: string): FileFact {
  const lines = stdout.split('\n').map((l) => l.trim()).filter(Boolean);
  if (lines[0] === 'absent' || lines.length === 0) return { exists: false };
  const [mode = '', owner, group, size, mtime] = (lines[0] ?? '').split(/\s+/);
  const sha = lines[1] && /^[0-9a-f]{64}$/.test(lines[1]) ? lines[1] : undefined;
  return {
    exists: true,
    mode: mode.padStart(4, '0'),
    owner,
    group,
    sizeBytes: Number(size),
    mtime: Number(mtime),
    sha256: sha,
  };
}

/** Lines of a KEY=VALUE env file whose key is `key` (values are returned: use only for non-secret keys). */
export function envKey(file: string, key: string): RemoteFact<{ fileExists: boolean; values: string[] }> {
  const p = shellQuote(file);
  return {
    kind: 'remote',
    script: `if [ -f ${p} ]; then echo present; grep -E ${shellQuote(`^[[:space:]]*(export[[:space:]]+)?${key}=`)} -- ${p} || true; else echo absent; fi`,
    parse(stdout) {
      const lines = stdout.split('\n').filter((l) => l !== '');
      if (lines[0] !== 'present') return { fileExists: false, values: [] };
      return {
        fileExists: true,
        values: lines.slice(1).map((l) => unquoteEnv(l.replace(/^\s*(export\s+)?[A-Za-z_][A-Za-z0-9_]*=/, ''))),
      };
    },
  };
}

function unquoteEnv(v: string): string {
  const t = v.trim();
  if ((t.startsWith('"') && t.endsWith('"')) || (t.startsWith("'") && t.endsWith("'"))) return t.slice(1, -1);
  return t;
}

/** Whether a user and a group exist on the host (`getent passwd` / `getent group`); undefined when not asked. */
export function accounts(user?: string, group?: string): RemoteFact<{ user?: boolean; group?: boolean }> {
  const lines = [
    user ? `getent passwd ${shellQuote(user)} >/dev/null 2>&1 && echo "@user yes" || echo "@user no"` : '',
    group ? `getent group ${shellQuote(group)} >/dev/null 2>&1 && echo "@group yes" || echo "@group no"` : '',
  ].filter(Boolean);
  return {
    kind: 'remote',
    script: lines.length ? lines.join('\n') : 'true',
    parse(stdout) {
      return {
        ...(user ? { user: stdout.includes('@user yes') } : {}),
        ...(group ? { group: stdout.includes('@group yes') } : {}),
      };
    },
  };
}

/** True when `path` is a small file holding one 64-hex value (optional `0x`, optional trailing newline/CR). */
export function looksLikeJwtFile(path: string): RemoteFact<boolean> {
  const p = shellQuote(path);
  return {
    kind: 'remote',
    script: `[ -f ${p} ] && [ "$(wc -c < ${p})" -le 70 ] && grep -qxiE '(0x)?[0-9a-f]{64}\r?' ${p} && [ "$(wc -l < ${p})" -le 1 ] && echo yes || echo no`,
    parse: (stdout) => stdout.trim() === 'yes',
  };
}
