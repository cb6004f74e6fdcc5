import { z } from 'zod';
import { act, type Action } from '../core/action.ts';
import { defineTask, change, noChange } from '../core/task.ts';
import { sha256Hex } from '../core/secret.ts';
import { awsTarget, bootStep } from '../facts/kms.ts';
import { absolutePath } from '../inventory/schema.ts';
import { BOOT_FILES, bootUnitLinks, renderBootScript, renderBootUnit } from '../render/kms-host.ts';
import { asNode } from './common.ts';

const unitName = z.string().regex(/^[A-Za-z0-9:_.@-]+\.(service|target)$/, 'expected a systemd unit name such as docker.service');

export const installBootStepParams = z
  .strictObject({
    /** Units that start el and cl: ordered after the boot step and not started when it fails. */
    before: z.array(unitName).default(['docker.service']),
    /** Size of the tmpfs the boot script mounts, bytes (as mount.tmpfs). */
    tmpfs_size_bytes: z.number().int().min(4096).max(1 << 30).default(1 << 20),
    /** Tries when the aws CLI fails at boot (2 s apart). */
    attempts: z.number().int().min(1).max(60).default(5),
    /** Where the unit goes. */
    unit_dir: absolutePath.default(BOOT_FILES.unitDir),
  })
  .prefault({});

/**
 * kms.install-boot-step — the boot-time half of the KMS / Secrets Manager backends: after a reboot the tmpfs
 * is empty by design, so the node must put jwt.hex back before el and cl start (geth would otherwise make a
 * new secret). Installs `/usr/local/sbin/krypton-secrets-boot` (0755; mounts the tmpfs, runs the same fetch
 * as apply with the host's AWS identity, retries while AWS is unreachable) and the systemd unit
 * `krypton-secrets-boot.service` (oneshot, after network-online, `Before=` and `RequiredBy=` the units that
 * start el/cl — default docker.service), enabled by its links (what `systemctl enable` makes), then
 * `systemctl daemon-reload` where systemd runs. Writes only what differs. With `kms.decrypt: operator` it
 * installs nothing: such a host has no AWS identity; after a reboot, apply delivers jwt.hex again.
 */
export const kmsInstallBootStep = defineTask({
  id: 'kms.install-boot-step',
  summary: 'install the boot-time JWT step (script + systemd unit)',
  appliesTo: 'node',
  backends: ['kms', 'secrets-manager'],
  params: installBootStepParams,
  facts: (p, _host, inv) => ({
    boot: bootStep(BOOT_FILES.script, `${p.unit_dir}/${BOOT_FILES.unitName}`, bootUnitLinks(p, p.unit_dir)),
    target: awsTarget(inv.backend === 'secrets-manager' ? 'secrets-manager' : 'kms'),
  }),
  plan(p, { boot, target }, { inventory, host }) {
    const node = asNode(host);
    if (inventory.kms?.decrypt === 'operator') {
      return noChange('kms.decrypt is operator: the host has no AWS identity to fetch the JWT at boot; after a reboot, apply delivers jwt.hex again');
    }
    const o = { tmpfsSizeBytes: p.tmpfs_size_bytes, attempts: p.attempts, before: p.before };
    const unitPath = `${p.unit_dir}/${BOOT_FILES.unitName}`;
    const script = renderBootScript(inventory, node, target, o);
    const unit = renderBootUnit(inventory, node, o);
    const actions: Action[] = [];
    if (boot.script.sha256 !== sha256Hex(script) || boot.script.mode !== '0755') {
      actions.push(act.put(BOOT_FILES.script, script, '0755', `${boot.script.exists ? 'update' : 'install'} ${BOOT_FILES.script} (region ${target.region})`));
    }
    let unitChanged = false;
    if (boot.unit.sha256 !== sha256Hex(unit) || boot.unit.mode !== '0644') {
      unitChanged = true;
      actions.push(
        act.exec(['mkdir', '-p', '--', p.unit_dir], `create ${p.unit_dir}`),
        act.put(unitPath, unit, '0644', `${boot.unit.exists ? 'update' : 'install'} ${unitPath} (before ${p.before.join(', ') || 'nothing'})`),
      );
    }
    for (const link of bootUnitLinks(p, p.unit_dir)) {
      if (boot.links[link] === unitPath) continue;
      unitChanged = true;
      actions.push(act.exec(['sh', '-c', 'mkdir -p -- "${1%/*}" && ln -sfn -- "$2" "$1"', 'sh', link, unitPath], `enable ${BOOT_FILES.unitName}: link ${link}`));
    }
    if (unitChanged && boot.systemd) actions.push(act.exec(['systemctl', 'daemon-reload'], 'reload systemd units'));
    if (!actions.length) return noChange(`${BOOT_FILES.script} and ${BOOT_FILES.unitName} are current and enabled (before ${p.before.join(', ') || 'nothing'})`);
    return change(...actions);
  },
  settle: { intervalMs: 200, timeoutMs: 5000 },
});
