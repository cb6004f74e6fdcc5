import { z } from 'zod';
import { act } from '../core/action.ts';
import { defineTask, change, noChange, refuse } from '../core/task.ts';
import { kernel, mountAt, type KernelFact, type MountFact } from '../facts/mount.ts';
import { absolutePath, secretMode } from '../inventory/schema.ts';
import { SECRETS_DIR } from '../inventory/model.ts';

export const mountTmpfsParams = z
  .strictObject({
    path: absolutePath.default(SECRETS_DIR),
    /** Size of the tmpfs in bytes (default 1 MiB). */
    size_bytes: z.number().int().min(4096).max(1 << 30).multipleOf(4096, 'expected whole 4096-byte pages (the kernel rounds a tmpfs size up to pages)').default(1 << 20),
    /** Mode of the mount root, octal string. */
    mode: secretMode.default('0700'),
  })
  .prefault({});

/** The `-o` options for a new tmpfs: `size=<bytes>,mode=<octal>,nosuid,nodev,noexec` plus `noswap` on 6.4+. */
export function tmpfsOptions(sizeBytes: number, mode: string, k: KernelFact): string {
  return [`size=${sizeBytes}`, `mode=${mode.replace(/^0(?=\d{3}$)/, '')}`, 'nosuid', 'nodev', 'noexec', ...(k.supportsNoswap ? ['noswap'] : [])].join(',');
}

/** Options a remount can change: size and the mount flags (tmpfs ignores `mode=` and refuses `noswap` on remount). */
function remountOptions(sizeBytes: number): string {
  return `remount,size=${sizeBytes},nosuid,nodev,noexec`;
}

const FLAGS = ['nosuid', 'nodev', 'noexec'];

/**
 * mount.tmpfs — ensure a tmpfs is mounted at `path` (default /run/krypton-secrets) with `size_bytes` and
 * `mode`, `nosuid,nodev,noexec`, and `noswap` where the kernel has it (6.4+). Plans nothing when the live
 * mount matches; remounts only to fix size/mode/noswap. Refuses (E_PLAN_CONFLICT) when another filesystem
 * type is mounted there, before anything is written. Does not touch /etc/fstab: the mount is meant to
 * vanish at reboot (ARCHITECTURE.md "tmpfs").
 */
export const mountTmpfs = defineTask({
  id: 'mount.tmpfs',
  summary: 'mount the secrets tmpfs',
  appliesTo: 'any',
  params: mountTmpfsParams,
  facts: (p) => ({ mount: mountAt(p.path), kernel: kernel() }),
  plan(p, { mount, kernel: k }) {
    if (mount && mount.fsType !== 'tmpfs') {
      return refuse('E_PLAN_CONFLICT', `${p.path} is a ${mount.fsType} mount, not tmpfs`, 'unmount it or choose another path; secrets never go on persistent disk');
    }
    const options = tmpfsOptions(p.size_bytes, p.mode, k);
    if (!mount) {
      return change(
        act.exec(['mkdir', '-p', '-m', '0700', '--', p.path], `create ${p.path}`),
        act.exec(['mount', '-t', 'tmpfs', '-o', options, 'krypton-secrets', p.path], `mount tmpfs at ${p.path} (${options})`),
      );
    }
    const wantMode = p.mode.padStart(4, '0');
    const actions = [];
    if (mount.sizeBytes !== p.size_bytes || !FLAGS.every((f) => mount.options.includes(f))) {
      actions.push(act.exec(['mount', '-o', remountOptions(p.size_bytes), p.path], `remount ${p.path} with size ${p.size_bytes} bytes, nosuid,nodev,noexec`));
    }
    if (mount.mode !== wantMode) actions.push(act.exec(['chmod', wantMode, '--', p.path], `chmod ${p.path} from ${mount.mode} to ${wantMode}`));
    if (actions.length) return change(...actions);
    const swapNote = k.supportsNoswap && !mount.options.includes('noswap') ? ' (mounted without noswap; a remount cannot add it: unmount it and re-run to get it)' : '';
    return noChange(`tmpfs at ${p.path} already ${p.size_bytes} bytes, mode ${wantMode}${mount.options.includes('noswap') ? ', noswap' : ''}${swapNote}`);
  },
  settle: { intervalMs: 200, timeoutMs: 5000 },
});
