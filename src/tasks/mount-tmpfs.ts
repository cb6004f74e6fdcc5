import { z } from 'zod';
import { act, type Action } from '../model/action.ts';
import { defineTask, change, noChange, refuse } from '../model/task.ts';
import { kernel, type KernelFact } from '../facts/mount.ts';
import { dirState } from '../facts/dir.ts';
import { factList } from '../facts/list.ts';
import { absolutePath, secretDirMode } from '../inventory/schema.ts';
import type { Host, Inventory } from '../model/inventory.ts';

/** Mount points a tmpfs of ours must never cover: remounting one (1 MiB, noexec, 0700) would break the host. */
const SYSTEM_DIRS = new Set(['/', '/run', '/run/lock', '/run/user', '/run/systemd', '/var/run', '/var/lock', '/dev', '/dev/shm', '/tmp', '/var', '/var/tmp', '/etc', '/home', '/root', '/opt', '/usr', '/boot', '/proc', '/sys', '/srv', '/mnt', '/media']);
import { cosignerSettings, tmpfsDirs } from '../model/layout.ts';

export const mountTmpfsParams = z
  .strictObject({
    /** One dir to mount; default: every tmpfs dir the host's secrets need (`/run/krypton-secrets`, a cosigner's key dir). */
    /** A dir of its own for secrets: never a system mount point or a parent of one (/run, /dev/shm, /tmp, …). */
    path: absolutePath
      .refine((v) => !SYSTEM_DIRS.has(v.replace(/\/+$/, '') || '/'), {
        message: 'expected a dir of its own for secrets (e.g. /run/krypton-secrets), not a system dir such as /run, /run/lock, /dev/shm, /tmp, /var or /',
      })
      .optional(),
    /** Size of each tmpfs in bytes (default 1 MiB; whole 4096-byte pages). */
    size_bytes: z.number().int().min(4096).max(1 << 30).multipleOf(4096, 'expected whole 4096-byte pages (the kernel rounds a tmpfs size up to pages)').default(1 << 20),
    /** Mode of each mount root, octal string: "0700" (default), "0750" or "0710" (no group write, nothing for other users). */
    mode: secretDirMode.default('0700'),
  })
  .prefault({});

type Params = z.infer<typeof mountTmpfsParams>;

/** The `-o` options for a new tmpfs: `size=<bytes>,mode=<octal>,nosuid,nodev,noexec` plus `noswap` on 6.4+. */
export function tmpfsOptions(sizeBytes: number, mode: string, k: KernelFact): string {
  return [`size=${sizeBytes}`, `mode=${mode.replace(/^0(?=\d{3}$)/, '')}`, 'nosuid', 'nodev', 'noexec', ...(k.supportsNoswap ? ['noswap'] : [])].join(',');
}

const FLAGS = ['nosuid', 'nodev', 'noexec'];

/** The dirs to mount and who owns each (a cosigner's key dir belongs to `horcrux.owner` when set). */
function targets(p: Params, host: Host, inv: Inventory): { path: string; owner?: string }[] {
  const paths = p.path ? [p.path] : tmpfsDirs(inv, host);
  const s = host.kind === 'cosigner' ? cosignerSettings(inv, host) : undefined;
  return paths.map((path) => ({ path, ...(s?.owner && path === s.keyDir ? { owner: `${s.owner}${s.group ? `:${s.group}` : ''}` } : {}) }));
}

/**
 * mount.tmpfs — ensure a tmpfs is mounted at each dir the host's secrets live in (`/run/krypton-secrets`, plus a
 * cosigner's `key_dir`; or the one `path` given) with `size_bytes`, `mode`, `nosuid,nodev,noexec`, and `noswap`
 * where the kernel has it (6.4+); a cosigner's key dir is chowned to `horcrux.owner` when set. Plans nothing
 * when the live mounts match; remounts only to fix size/flags, chmods only to fix the mode. Refuses
 * (E_PLAN_CONFLICT), before anything is written, when another filesystem is mounted there, or when an unmounted
 * dir already holds files on persistent disk (a tmpfs would hide them, not remove them: they may be plaintext
 * keys). Does not touch /etc/fstab: the mounts are meant to vanish at reboot (ARCHITECTURE.md "tmpfs").
 */
export const mountTmpfs = defineTask({
  id: 'mount.tmpfs',
  summary: 'mount the secrets tmpfs (and a cosigner\'s key dir)',
  appliesTo: 'any',
  params: mountTmpfsParams,
  facts: (p, host, inv) => ({
    dirs: factList(targets(p, host, inv).map((t) => dirState(t.path)), 'dir'),
    kernel: kernel(),
  }),
  plan(p, { dirs, kernel: k }, { host, inventory }) {
    const options = tmpfsOptions(p.size_bytes, p.mode, k);
    const wantMode = p.mode.padStart(4, '0');
    const actions: Action[] = [];
    const ok: string[] = [];
    for (const [i, t] of targets(p, host, inventory).entries()) {
      const d = dirs[i]!;
      if (d.mount && d.mount.fsType !== 'tmpfs') {
        return refuse('E_PLAN_CONFLICT', `${t.path} is a ${d.mount.fsType} mount, not tmpfs`, 'unmount it or choose another path; secrets never go on persistent disk');
      }
      const chown = t.owner ? [act.exec(['chown', t.owner, '--', t.path], `give ${t.path} to ${t.owner}`)] : [];
      if (!d.mount) {
        if (d.entries.length) {
          const names = d.entries.slice(0, 5).map((e) => e.name).join(', ');
          return refuse(
            'E_PLAN_CONFLICT',
            `${t.path} holds ${d.entries.length} entr${d.entries.length === 1 ? 'y' : 'ies'} on persistent disk (${names}${d.entries.length > 5 ? ', …' : ''}): a tmpfs would hide them, not remove them`,
            'these may be plaintext secrets: import them (import-horcrux / import-env), then shred them, and apply again',
          );
        }
        actions.push(
          act.exec(['mkdir', '-p', '-m', '0700', '--', t.path], `create ${t.path}`),
          act.exec(['mount', '-t', 'tmpfs', '-o', options, 'krypton-secrets', t.path], `mount tmpfs at ${t.path} (${options})`),
          ...chown,
        );
        continue;
      }
      const before = actions.length;
      if (d.mount.sizeBytes !== p.size_bytes || !FLAGS.every((f) => d.mount!.options.includes(f))) {
        // tmpfs ignores mode= and refuses noswap on remount: size and flags only.
        actions.push(act.exec(['mount', '-o', `remount,size=${p.size_bytes},nosuid,nodev,noexec`, t.path], `remount ${t.path} with size ${p.size_bytes} bytes, nosuid,nodev,noexec`));
      }
      if (d.mode !== wantMode) actions.push(act.exec(['chmod', wantMode, '--', t.path], `chmod ${t.path} from ${d.mode} to ${wantMode}`));
      if (t.owner && `${d.owner}${t.owner.includes(':') ? `:${d.group}` : ''}` !== t.owner) actions.push(...chown);
      if (actions.length === before) {
        const swapNote = k.supportsNoswap && !d.mount.options.includes('noswap') ? ' (mounted without noswap; a remount cannot add it: unmount it and re-run to get it)' : '';
        ok.push(`${t.path} already ${p.size_bytes} bytes, mode ${wantMode}${d.mount.options.includes('noswap') ? ', noswap' : ''}${swapNote}`);
      }
    }
    return actions.length ? change(...actions) : noChange(`tmpfs at ${ok.join('; ')}`);
  },
  settle: { intervalMs: 200, timeoutMs: 5000 },
});
