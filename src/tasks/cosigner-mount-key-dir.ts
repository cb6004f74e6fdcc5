import { z } from 'zod';
import { act } from '../core/action.ts';
import { defineTask, change, noChange, refuse } from '../core/task.ts';
import { kernel } from '../facts/mount.ts';
import { cosignerSettings, layoutProblems } from '../horcrux/config.ts';
import { homeState, keyDirState } from '../horcrux/facts.ts';
import { octalMode } from '../inventory/schema.ts';
import { asCosigner } from './cosigner-common.ts';
import { tmpfsOptions } from './mount-tmpfs.ts';

const RAM_FS = new Set(['tmpfs', 'ramfs']);

/**
 * cosigner.mount-key-dir — mount a tmpfs at the cosigner's `key_dir` (from the inventory) with `size_bytes` and
 * mode 0700, `nosuid,nodev,noexec` and `noswap` where the kernel has it; chown it to `horcrux.owner` when set.
 * Plans nothing when the live mount matches. Refuses (E_PLAN_CONFLICT), before anything is written, when the
 * layout would put `state/` on the tmpfs (key_dir is or contains the home or state/, or state/ already sits on
 * a tmpfs), when another filesystem is mounted at key_dir, or when key_dir already holds files on persistent
 * disk (a tmpfs would hide them, not remove them: they may be plaintext keys). Does not touch /etc/fstab.
 */
export const cosignerMountKeyDir = defineTask({
  id: 'cosigner.mount-key-dir',
  summary: "mount the cosigner's key dir as tmpfs",
  appliesTo: 'cosigner',
  params: z
    .strictObject({
      /** Size of the key dir tmpfs in bytes (default 1 MiB; the two key files are a few KiB). */
      size_bytes: z.number().int().min(4096).max(1 << 30).default(1 << 20),
      mode: octalMode.default('0700'),
    })
    .prefault({}),
  facts: (_p, host, inv) => {
    const s = cosignerSettings(inv, asCosigner(host));
    return { keyDir: keyDirState(s.keyDir), home: homeState(s), kernel: kernel() };
  },
  plan(p, { keyDir, home, kernel: k }, { inventory, host }) {
    const s = cosignerSettings(inventory, asCosigner(host));
    const layout = layoutProblems(s);
    if (layout.length) return refuse('E_PLAN_CONFLICT', layout.join('; '), 'change key_dir or home in the inventory so that state/ stays on persistent disk');
    if (RAM_FS.has(home.stateFsType)) {
      return refuse('E_PLAN_CONFLICT', `${s.stateDir} is on a ${home.stateFsType}: Horcrux's double-sign high-water marks would be lost at reboot`, 'put the Horcrux home on persistent disk (only key_dir belongs on tmpfs)');
    }
    const mode = p.mode.padStart(4, '0');
    const options = tmpfsOptions(p.size_bytes, p.mode, k);
    const chown = s.owner ? [act.exec(['chown', `${s.owner}${s.group ? `:${s.group}` : ''}`, '--', s.keyDir], `give ${s.keyDir} to ${s.owner}${s.group ? `:${s.group}` : ''}`)] : [];
    if (keyDir.mount && keyDir.mount.fsType !== 'tmpfs') {
      return refuse('E_PLAN_CONFLICT', `${s.keyDir} is a ${keyDir.mount.fsType} mount, not tmpfs`, 'unmount it or choose another key_dir; key files never go on persistent disk');
    }
    if (!keyDir.mount) {
      if (keyDir.entries.length) {
        const names = keyDir.entries.slice(0, 5).map((e) => e.name).join(', ');
        return refuse(
          'E_PLAN_CONFLICT',
          `${s.keyDir} holds ${keyDir.entries.length} entr${keyDir.entries.length === 1 ? 'y' : 'ies'} on persistent disk (${names}${keyDir.entries.length > 5 ? ', …' : ''}): a tmpfs would hide them, not remove them`,
          'these may be plaintext keys: import them (krypton-secrets import-horcrux), then shred them, and apply again',
        );
      }
      return change(
        act.exec(['mkdir', '-p', '-m', '0700', '--', s.keyDir], `create ${s.keyDir}`),
        act.exec(['mount', '-t', 'tmpfs', '-o', options, 'krypton-horcrux-keys', s.keyDir], `mount tmpfs at ${s.keyDir} (${options})`),
        ...chown,
      );
    }
    const sizeOk = keyDir.mount.sizeBytes === p.size_bytes;
    const modeOk = keyDir.mode === mode;
    const noswapOk = !k.supportsNoswap || keyDir.mount.options.includes('noswap');
    const ownerOk = !s.owner || (keyDir.owner === s.owner && (!s.group || keyDir.group === s.group));
    if (sizeOk && modeOk && noswapOk && ownerOk) {
      return noChange(`tmpfs at ${s.keyDir} already ${p.size_bytes} bytes, mode ${mode}${k.supportsNoswap ? ', noswap' : ''}${s.owner ? `, owned by ${s.owner}` : ''}`);
    }
    return change(
      ...(sizeOk && modeOk && noswapOk ? [] : [act.exec(['mount', '-o', `remount,${options}`, s.keyDir], `remount ${s.keyDir} with ${options}`)]),
      ...(ownerOk ? [] : chown),
    );
  },
  settle: { intervalMs: 200, timeoutMs: 5000 },
});
