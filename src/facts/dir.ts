/**
 * Facts about directories (a tmpfs dir and what it holds) and a Horcrux cosigner's home and process, each a
 * read-only POSIX sh snippet (coreutils + util-linux) and a pure parser. File contents never leave the host:
 * only `stat` fields and SHA-256 digests do.
 */
import type { RemoteFact } from '../model/task.ts';
import { shellQuote } from '../core/transport.ts';
import type { CosignerSettings } from '../model/layout.ts';

const tag = (stdout: string, t: string): string[] =>
  stdout
    .split('\n')
    .filter((l) => l.startsWith(`@${t} `) || l === `@${t}`)
    .map((l) => l.slice(t.length + 1).trim());

const mode = (m: string | undefined): string | undefined => (m && /^[0-7]{3,4}$/.test(m) ? m.padStart(4, '0') : undefined);

/** One entry of a directory. */
export interface DirEntry {
  name: string;
  type: 'file' | 'dir' | 'link' | 'other';
  mode?: string;
  owner?: string;
  group?: string;
  sizeBytes?: number;
  /** Regular files only. */
  sha256?: string;
}

/** A directory: what is mounted there, the dir itself, and every entry in it. */
export interface DirFact {
  mount?: { fsType: string; options: string[]; sizeBytes?: number };
  exists: boolean;
  mode?: string;
  owner?: string;
  group?: string;
  entries: DirEntry[];
}

export function dirState(dir: string): RemoteFact<DirFact> {
  const d = shellQuote(dir);
  const script = [
    `m=$(findmnt -n -r -o FSTYPE,OPTIONS --mountpoint ${d} | tail -n 1); [ -n "$m" ] && echo "@mount $m"`,
    `if [ -d ${d} ]; then echo "@dir $(stat -c '%a %U %G' -- ${d})"; else echo "@dir absent"; exit 0; fi`,
    `for f in ${d}/* ${d}/.[!.]* ${d}/..?*; do`,
    '  [ -e "$f" ] || [ -L "$f" ] || continue',
    '  if [ -L "$f" ]; then t=link; elif [ -f "$f" ]; then t=file; elif [ -d "$f" ]; then t=dir; else t=other; fi',
    `  h=-; [ "$t" = file ] && h=$(sha256sum -- "$f" | cut -d' ' -f1)`,
    `  printf '@entry %s %s %s %s\\n' "$t" "$(stat -c '%a %U %G %s' -- "$f")" "$h" "\${f##*/}"`,
    'done',
  ].join('\n');
  return { kind: 'remote', script, parse: parseDirState };
}

export function parseDirState(stdout: string): DirFact {
  const out: DirFact = { exists: false, entries: [] };
  const m = tag(stdout, 'mount')[0];
  if (m) {
    const [fsType = '', opts = ''] = m.split(/\s+/);
    const options = opts.split(',').filter(Boolean);
    const size = options.find((o) => o.startsWith('size='))?.slice(5);
    const sm = size ? /^(\d+)([kmg]?)$/i.exec(size) : null;
    const mult = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[(sm?.[2] ?? '').toLowerCase()] ?? 1;
    out.mount = { fsType, options, ...(sm ? { sizeBytes: Number(sm[1]) * mult } : {}) };
  }
  const dir = tag(stdout, 'dir')[0] ?? 'absent';
  if (dir !== 'absent') {
    const [mo, owner, group] = dir.split(/\s+/);
    out.exists = true;
    out.mode = mode(mo);
    out.owner = owner;
    out.group = group;
  }
  for (const e of tag(stdout, 'entry')) {
    const parts = e.split(' ');
    const [type, mo, owner, group, size, sha] = parts;
    const name = parts.slice(6).join(' ');
    if (!name) continue;
    out.entries.push({
      name,
      type: type === 'file' || type === 'dir' || type === 'link' ? type : 'other',
      mode: mode(mo),
      owner,
      group,
      sizeBytes: Number(size),
      ...(sha && /^[0-9a-f]{64}$/.test(sha) ? { sha256: sha } : {}),
    });
  }
  return out;
}

/** The Horcrux home: state/ (and the filesystem it is, or would be, on) and config.yaml. */
export interface HomeFact {
  state: 'dir' | 'absent' | 'other';
  stateMode?: string;
  stateOwner?: string;
  /** Filesystem type of state/, or of its nearest existing parent when it does not exist yet. */
  stateFsType: string;
  config: { exists: boolean; mode?: string; owner?: string; group?: string; sha256?: string };
}

export function homeState(s: Pick<CosignerSettings, 'stateDir' | 'configFile'>): RemoteFact<HomeFact> {
  const st = shellQuote(s.stateDir);
  const c = shellQuote(s.configFile);
  const script = [
    `p=${st}; while [ ! -e "$p" ]; do p=$(dirname -- "$p"); done`,
    `if [ -d ${st} ]; then echo "@state dir $(stat -c '%a %U' -- ${st})"; elif [ -e ${st} ]; then echo "@state other"; else echo "@state absent"; fi`,
    `echo "@fs $(findmnt -n -o FSTYPE -T "$p" | tail -n 1)"`,
    `if [ -f ${c} ]; then echo "@config $(stat -c '%a %U %G' -- ${c}) $(sha256sum -- ${c} | cut -d' ' -f1)"; else echo "@config absent"; fi`,
  ].join('\n');
  return { kind: 'remote', script, parse: parseHomeState };
}

export function parseHomeState(stdout: string): HomeFact {
  const [kind = 'absent', sm, so] = (tag(stdout, 'state')[0] ?? 'absent').split(/\s+/);
  const cfg = (tag(stdout, 'config')[0] ?? 'absent').split(/\s+/);
  return {
    state: kind === 'dir' || kind === 'other' ? kind : 'absent',
    ...(kind === 'dir' ? { stateMode: mode(sm), stateOwner: so } : {}),
    stateFsType: tag(stdout, 'fs')[0] ?? '',
    config:
      cfg[0] === 'absent' || !cfg[0]
        ? { exists: false }
        : { exists: true, mode: mode(cfg[0]), owner: cfg[1], group: cfg[2], ...(cfg[3] && /^[0-9a-f]{64}$/.test(cfg[3]) ? { sha256: cfg[3] } : {}) },
  };
}

/** Whether Horcrux runs: the exit status of the cosigner's status command (0 = running). */
export interface HorcruxProcessFact {
  running: boolean;
  statusExit: number;
}

export function horcruxProcess(statusArgv: readonly string[]): RemoteFact<HorcruxProcessFact> {
  return {
    kind: 'remote',
    script: `${statusArgv.map(shellQuote).join(' ')} >/dev/null 2>&1 </dev/null; echo "@exit $?"`,
    parse: parseHorcruxProcess,
  };
}

export function parseHorcruxProcess(stdout: string): HorcruxProcessFact {
  const code = Number(tag(stdout, 'exit')[0] ?? '255');
  return { running: code === 0, statusExit: Number.isFinite(code) ? code : 255 };
}
