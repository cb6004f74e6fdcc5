import { shellQuote } from '../core/transport.ts';
import type { RemoteFact } from '../model/task.ts';

/** A 64-hex token found on the host: where, and its SHA-256 (the token itself never leaves the host). */
export interface HexCopy {
  /** File path, or `git:<repo>:<path>` for a value found in a git history. */
  where: string;
  /** Full SHA-256 of the token as 64 lowercase hex characters without `0x`. */
  fingerprint: string;
}

/**
 * Scans `paths` (files or directories, recursively) for 64-hex tokens (optionally `0x`-prefixed, any case),
 * and the git history of `historyOf` (if in a work tree), hashing each token ON THE HOST; prints
 * `<sha256> <where>` per distinct token and place. Used by verify to find stray copies of the JWT.
 */
export function hexCopies(paths: string[], historyOf?: string): RemoteFact<HexCopy[]> {
  const token = `'(^|[^0-9a-fA-Fx])(0x)?[0-9a-fA-F]{64}([^0-9a-fA-F]|$)'`;
  const hashes = `grep -oE '[0-9a-fA-F]{64}' | tr 'A-F' 'a-f' | sort -u | while IFS= read -r t; do printf '%s %s\\n' "$(printf %s "$t" | sha256sum | cut -c1-64)" "$w"; done`;
  const lines = [
    `for p in ${paths.map(shellQuote).join(' ')}; do [ -e "$p" ] && grep -rlIE '[0-9a-fA-F]{64}' -- "$p" 2>/dev/null; done | sort -u | while IFS= read -r f; do w="$f"; grep -ohE ${token} -- "$f" </dev/null | ${hashes}; done`,
  ];
  if (historyOf) {
    const p = shellQuote(historyOf);
    lines.push(
      `d=$(dirname -- ${p}); if command -v git >/dev/null 2>&1 && [ -d "$d" ] && top=$(git -c safe.directory='*' -C "$d" rev-parse --show-toplevel 2>/dev/null); then w="git:$top:"${p}; git -c safe.directory='*' -C "$top" log --all -p --format= -- ${p} 2>/dev/null </dev/null | grep -ohE ${token} | ${hashes}; fi`,
    );
  }
  return { kind: 'remote', script: lines.join('\n'), parse: parseHexCopies };
}

export function parseHexCopies(stdout: string): HexCopy[] {
  return stdout
    .split('\n')
    .map((l) => /^([0-9a-f]{64}) (.+)$/.exec(l))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => ({ fingerprint: m[1]!, where: m[2]! }));
}

/**
 * Files under `dir` (depth ≤ 2, each < 64 KiB, on the same filesystem) hashed ON THE HOST: per file
 * `<sha256 of the file> <path>`, and per `NAME=value` line `<sha256 of the value> <path>` (surrounding single or
 * double quotes removed) — so verify can tell a copy of the env-secrets file, or of one of its values, from its
 * SHA-256 alone. Nothing but digests and paths leaves the host.
 */
export function envValueCopies(dir: string): RemoteFact<HexCopy[]> {
  const d = shellQuote(dir);
  const script = [
    `[ -d ${d} ] || exit 0`,
    `find ${d} -xdev -maxdepth 2 -type f -size -64k 2>/dev/null | while IFS= read -r f; do`,
    `  printf '%s %s\\n' "$(sha256sum -- "$f" | cut -c1-64)" "$f"`,
    `  grep -E '^[[:space:]]*(export[[:space:]]+)?[A-Za-z_][A-Za-z0-9_]*=' -- "$f" 2>/dev/null </dev/null | while IFS= read -r l; do`,
    '    v=${l#*=}',
    // A single-quoted value as renderEnvFile writes it has each quote escaped as \' (compose's rule): undo that too,
    // so a copied line of the env file hashes to the stored value.
    `    case $v in \\'*\\') v=\${v#\\'}; v=\${v%\\'}; v=$(printf '%s' "$v" | sed "s/\\\\\\\\'/'/g") ;; \\"*\\") v=\${v#\\"}; v=\${v%\\"} ;; esac`,
    `    printf '%s %s\\n' "$(printf %s "$v" | sha256sum | cut -c1-64)" "$f"`,
    '  done',
    'done',
  ].join('\n');
  return { kind: 'remote', script, parse: parseHexCopies };
}
