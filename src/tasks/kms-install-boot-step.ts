import { z } from 'zod';
import { act, type Action } from '../model/action.ts';
import { defineTask, change, noChange } from '../model/task.ts';
import { sha256Hex } from '../core/secret.ts';
import { bootStep } from '../facts/boot.ts';
import { absolutePath } from '../inventory/schema.ts';
import { hostSecrets, tmpfsDirs } from '../model/layout.ts';
import { laptopFact } from '../model/task.ts';
import { BOOT_FILES, bootUnitLinks, renderBootScript, renderBootUnit } from '../render/boot.ts';

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
 * kms.install-boot-step — the boot-time half of the stores whose hosts fetch values themselves (KMS, Secrets
 * Manager): after a reboot the tmpfs is empty by design, so the host must put its secrets back before el/cl (or
 * Horcrux) start — geth would otherwise make a new JWT. Installs `/usr/local/sbin/krypton-secrets-boot` (0755;
 * mounts the tmpfs dirs, runs the store's fetch for each host secret with the host's own AWS identity, retries
 * while AWS is unreachable) and the systemd unit `krypton-secrets-boot.service` (oneshot, after network-online,
 * `Before=` and `RequiredBy=` the units that start the services — default docker.service), enabled by its links
 * (what `systemctl enable` makes), then `systemctl daemon-reload` where systemd runs. Writes only what differs.
 * With `kms.decrypt: operator` it is skipped: such a host has no AWS identity; after a reboot, apply delivers
 * the secrets again.
 */
export const kmsInstallBootStep = defineTask({
  id: 'kms.install-boot-step',
  summary: 'install the boot-time fetch step (script + systemd unit)',
  appliesTo: 'any',
  delivery: ['host-fetch'],
  params: installBootStepParams,
  facts: (p, host, inv) => ({
    boot: bootStep(BOOT_FILES.script, `${p.unit_dir}/${BOOT_FILES.unitName}`, bootUnitLinks(p, p.unit_dir)),
    fetches: laptopFact(async (env) => {
      const hf = env.store.hostFetch!;
      const target = await hf.target();
      return { region: target.region, list: hostSecrets(inv, host).map((s) => ({ path: s.path, argv: hf.fetchArgv(inv, host, s, target, '') })) };
    }),
  }),
  plan(p, { boot, fetches }, { inventory, host }) {
    const o = { tmpfsSizeBytes: p.tmpfs_size_bytes, attempts: p.attempts, before: p.before };
    const unitPath = `${p.unit_dir}/${BOOT_FILES.unitName}`;
    const script = renderBootScript(inventory, host, tmpfsDirs(inventory, host), fetches.list, o);
    const unit = renderBootUnit(inventory, host, o);
    const actions: Action[] = [];
    if (boot.script.sha256 !== sha256Hex(script) || boot.script.mode !== '0755') {
      actions.push(act.put(BOOT_FILES.script, script, '0755', `${boot.script.exists ? 'update' : 'install'} ${BOOT_FILES.script} (region ${fetches.region})`));
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
