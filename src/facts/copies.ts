import { shellQuote } from '../transport/transport.ts';
import type { RemoteFact } from '../core/task.ts';

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
