import { z } from 'zod';
import { act } from '../core/action.ts';
import { defineTask, change, noChange, refuse } from '../core/task.ts';
import { kernel, mountAt, type KernelFact, type MountFact } from '../facts/mount.ts';
import { absolutePath, octalMode } from '../inventory/schema.ts';
import { SECRETS_DIR } from '../inventory/model.ts';

export const mountTmpfsParams = z
  .strictObject({
    path: absolutePath.default(SECRETS_DIR),
    /** Size of the tmpfs in bytes (default 1 MiB). */
    size_bytes: z.number().int().min(4096).max(1 << 30).default(1 << 20),
    /** Mode of the mount root, octal string. */
    mode: octalMode.default('0700'),
  })
  .prefault({});

/** The `-o` options for the tmpfs: `size=<bytes>,mode=<octal>,nosuid,nodev,noexec` plus `noswap` on 6.4+. */
export function tmpfsOptions(sizeBytes: number, mode: string, k: KernelFact): string {
  return [`size=${sizeBytes}`, `mode=${mode.replace(/^0(?=\d{3}$)/, '')}`, 'nosuid', 'nodev', 'noexec', ...(k.supportsNoswap ? ['noswap'] : [])].join(',');
}

function matches(m: MountFact, sizeBytes: number, mode: string, k: KernelFact): boolean {
  const wantMode = mode.padStart(4, '0');
  return m.sizeBytes === sizeBytes && m.mode === wantMode && (!k.supportsNoswap || m.options.includes('noswap'));
}

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
    if (matches(mount, p.size_bytes, p.mode, k)) {
      return noChange(`tmpfs at ${p.path} already ${p.size_bytes} bytes, mode ${p.mode}${k.supportsNoswap ? ', noswap' : ''}`);
    }
    return change(act.exec(['mount', '-o', `remount,${options}`, p.path], `remount ${p.path} with ${options}`));
  },
  settle: { intervalMs: 200, timeoutMs: 5000 },
});
