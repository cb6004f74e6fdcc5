import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';

/** One playbook shipped in the package's `playbooks/` dir. */
export interface ShippedPlaybook {
  /** The name it is found by: the file name without `.yml` (e.g. `provision`). */
  name: string;
  /** Absolute path of the file. */
  file: string;
  /** The first line of the file's leading comment (what it does), or ''. */
  summary: string;
}

/**
 * The playbook file a command-line argument names. A path that exists (relative to the current directory, or
 * absolute) is taken as it is. Otherwise, so that the shipped playbooks work after a global install: a bare name
 * (`provision`, `rotate-jwt.yml`) or a path under `playbooks/` is looked up in `<packageRoot>/playbooks/`. When
 * nothing matches, the argument is returned unchanged (the loader then reports the missing file by that name).
 */
export function resolvePlaybookPath(arg: string, packageRoot: string, exists: (p: string) => boolean = existsSync): string {
  if (exists(arg) || isAbsolute(arg)) return arg;
  const rel = arg.startsWith('playbooks/') ? arg.slice('playbooks/'.length) : arg.includes('/') ? undefined : arg;
  if (rel === undefined) return arg;
  for (const f of rel.endsWith('.yml') || rel.endsWith('.yaml') ? [rel] : [`${rel}.yml`, `${rel}.yaml`]) {
    const p = join(packageRoot, 'playbooks', f);
    if (exists(p)) return p;
  }
  return arg;
}

/** The playbooks in `<packageRoot>/playbooks/`, by name. */
export function shippedPlaybooks(packageRoot: string): ShippedPlaybook[] {
  const dir = join(packageRoot, 'playbooks');
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => f.endsWith('.yml'))
    .sort()
    .map((f) => {
      const file = join(dir, f);
      const first = readFileSync(file, 'utf8').split('\n').find((l) => l.startsWith('#'));
      return { name: f.slice(0, -'.yml'.length), file, summary: first ? first.replace(/^#\s*/, '').trim() : '' };
    });
}
