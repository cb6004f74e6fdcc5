import { shellQuote } from '../core/transport.ts';
import type { RemoteFact } from '../model/task.ts';

/** Whether a path lies in a git work tree, is tracked there (`git ls-files`), and how many commits touched it (`git log --all`). */
export interface GitFact {
  repo?: string;
  tracked: boolean;
  historyCommits: number;
}

export function gitStatusOf(path: string): RemoteFact<GitFact> {
  const p = shellQuote(path);
  return {
    kind: 'remote',
    script: [
      `d=$(dirname -- ${p})`,
      `if command -v git >/dev/null 2>&1 && [ -d "$d" ] && top=$(git -c safe.directory='*' -C "$d" rev-parse --show-toplevel 2>/dev/null); then`,
      `  echo "@repo $top"`,
      `  if git -c safe.directory='*' -C "$top" ls-files --error-unmatch -- ${p} >/dev/null 2>&1; then echo "@tracked yes"; else echo "@tracked no"; fi`,
      `  echo "@history $(git -c safe.directory='*' -C "$top" log --all --format=%H -- ${p} 2>/dev/null | wc -l)"`,
      `else echo "@repo none"; fi`,
    ].join('\n'),
    parse: parseGitFact,
  };
}

export function parseGitFact(stdout: string): GitFact {
  const get = (tag: string) => stdout.split('\n').find((l) => l.startsWith(`@${tag} `))?.slice(tag.length + 2).trim();
  const repo = get('repo');
  if (!repo || repo === 'none') return { tracked: false, historyCommits: 0 };
  return { repo, tracked: get('tracked') === 'yes', historyCommits: Number(get('history') ?? '0') || 0 };
}

/** One sentence for reports; empty when git knows nothing of the file. */
export function describeGit(path: string, g: GitFact): string {
  if (!g.repo) return '';
  const parts: string[] = [];
  if (g.tracked) parts.push(`tracked by the git work tree ${g.repo} (git rm --cached it and treat every pushed copy as leaked)`);
  if (g.historyCommits > 0) parts.push(`present in ${g.historyCommits} commit(s) of ${g.repo}'s history (reported only; history is not rewritten)`);
  return parts.length ? `${path} is ${parts.join(' and ')}` : '';
}
