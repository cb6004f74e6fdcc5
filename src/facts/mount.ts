import { shellQuote } from '../core/transport.ts';
import type { RemoteFact } from '../model/task.ts';

/** The live mount at a path (the topmost one when several are stacked). */
export interface MountFact {
  fsType: string;
  /** Mount options as findmnt prints them, e.g. `rw,nosuid,nodev,relatime,size=1024k,mode=700`. */
  options: string[];
  /** `size=` in bytes, when present. */
  sizeBytes?: number;
  /** Mode of the mount's root dir as an octal string, e.g. "0700". */
  mode?: string;
}

/**
 * `findmnt -n -r -o FSTYPE,OPTIONS --mountpoint <path>` (util-linux) plus `stat -c %a` of the mount root.
 * Undefined when nothing is mounted exactly at `path`.
 */
export function mountAt(path: string): RemoteFact<MountFact | undefined> {
  const p = shellQuote(path);
  return {
    kind: 'remote',
    script: `findmnt -n -r -o FSTYPE,OPTIONS --mountpoint ${p} | tail -n 1; printf '@mode %s\\n' "$(stat -c %a -- ${p} 2>/dev/null)"`,
    parse: parseMount,
  };
}

export function parseMount(stdout: string): MountFact | undefined {
  const lines = stdout.split('\n').filter((l) => l.trim() !== '');
  const modeLine = lines.find((l) => l.startsWith('@mode'));
  const mountLine = lines.find((l) => !l.startsWith('@mode'));
  if (!mountLine) return undefined;
  const [fsType = '', opts = ''] = mountLine.trim().split(/\s+/);
  const options = opts.split(',').filter(Boolean);
  const size = options.find((o) => o.startsWith('size='));
  const modeRaw = modeLine?.slice('@mode'.length).trim();
  return {
    fsType,
    options,
    sizeBytes: size ? parseSize(size.slice(5)) : undefined,
    mode: modeRaw ? modeRaw.padStart(4, '0') : undefined,
  };
}

/** `1024k` -> 1048576; `1m` -> 1048576; plain number = bytes. */
export function parseSize(s: string): number | undefined {
  const m = /^(\d+)([kmgKMG]?)$/.exec(s);
  if (!m) return undefined;
  const mult = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[(m[2] ?? '').toLowerCase()] ?? 1;
  return Number(m[1]) * mult;
}

/** Kernel release and whether any swap device is active (`uname -r`, `/proc/swaps`). */
export interface KernelFact {
  release: string;
  /** True on Linux 6.4+, where tmpfs takes `noswap`. */
  supportsNoswap: boolean;
  swapActive: boolean;
}

export function kernel(): RemoteFact<KernelFact> {
  return {
    kind: 'remote',
    script: `uname -r; printf '@swaps %s\\n' "$(tail -n +2 /proc/swaps 2>/dev/null | wc -l)"`,
    parse: parseKernel,
  };
}

export function parseKernel(stdout: string): KernelFact {
  const lines = stdout.split('\n');
  const release = (lines[0] ?? '').trim();
  const swaps = Number(lines.find((l) => l.startsWith('@swaps'))?.slice(6).trim() ?? '0');
  const m = /^(\d+)\.(\d+)/.exec(release);
  const [maj, min] = m ? [Number(m[1]), Number(m[2])] : [0, 0];
  return { release, supportsNoswap: maj > 6 || (maj === 6 && min >= 4), swapActive: swaps > 0 };
}
