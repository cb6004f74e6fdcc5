/**
 * The boot-time half of the stores whose hosts fetch values themselves (KMS, Secrets Manager): after a reboot the
 * tmpfs is empty by design, so the host must put its secrets back before the services that read them start (geth
 * would otherwise make a new JWT of its own). A script mounts the tmpfs dirs and runs the store's fixed fetch for
 * each host secret (the same argv as apply, without a fingerprint pin), retrying while AWS is unreachable; a
 * systemd unit runs it once per boot before the units that start el/cl. Pure text; nothing here is secret.
 */
import { shellQuote } from '../core/transport.ts';
import type { Host, Inventory } from '../model/inventory.ts';
import { FETCH_EXIT } from '../model/host-fetch.ts';

/** Where the boot-time step lives on a host. */
export const BOOT_FILES = {
  script: '/usr/local/sbin/krypton-secrets-boot',
  unitName: 'krypton-secrets-boot.service',
  unitDir: '/etc/systemd/system',
} as const;

/** Options of the boot-time step (task params). */
export interface BootOptions {
  /** Bytes of each tmpfs the script mounts when nothing is mounted yet (as mount.tmpfs does). */
  tmpfsSizeBytes: number;
  /** Attempts when the aws CLI fails (KMS may be unreachable for a moment after boot), 2 s apart. */
  attempts: number;
  /** Units that start el and cl: ordered after this one, and not started when it fails. */
  before: string[];
}

/** One host secret's fetch at boot: where it goes and the store's argv (`sh -c <fetch script> sh <args…>`). */
export interface BootFetch {
  path: string;
  argv: string[];
}

/**
 * `/usr/local/sbin/krypton-secrets-boot`: mounts each of `dirs` as a tmpfs when nothing is mounted there (size,
 * mode 0700, nosuid,nodev,noexec, noswap where the kernel has it) and runs each fetch, retrying a failed aws CLI.
 * Exits non-zero when a secret could not be put in place, so the unit fails and el/cl do not start on a missing
 * file. Exit status: 0 done; else the failed fetch's (2 the aws CLI failed, 3 not a tmpfs, …).
 */
export function renderBootScript(inv: Inventory, host: Host, dirs: readonly string[], fetches: readonly BootFetch[], o: BootOptions): string {
  const opts = `size=${o.tmpfsSizeBytes},mode=700,nosuid,nodev,noexec`;
  return [
    '#!/bin/sh',
    `# krypton-secrets boot step for ${host.name} (network ${inv.network}), rendered by krypton-secrets. No secret in here.`,
    `# Before el and cl start: mount ${dirs.join(', ')} (tmpfs) and put ${fetches.map((f) => f.path).join(', ')} back with this host's own AWS identity.`,
    'set -u',
    `for d in ${dirs.map(shellQuote).join(' ')}; do`,
    '  if ! mountpoint -q "$d"; then',
    '    mkdir -p -m 0700 "$d" || exit 3',
    `    mount -t tmpfs -o ${opts},noswap krypton-secrets "$d" 2>/dev/null || mount -t tmpfs -o ${opts} krypton-secrets "$d" || exit 3`,
    '  fi',
    'done',
    'fetch() {',
    '  n=0',
    '  while :; do',
    '    "$@"; rc=$?',
    `    n=$((n + 1)); if [ "$rc" -ne ${FETCH_EXIT.aws} ] || [ "$n" -ge ${o.attempts} ]; then return "$rc"; fi`,
    '    sleep 2',
    '  done',
    '}',
    ...fetches.flatMap((f) => [`fetch ${f.argv.map(shellQuote).join(' ')} || exit $?`, `echo ${shellQuote(`krypton-secrets: ${f.path} is in place`)} >&2`]),
    'exit 0',
    '',
  ].join('\n');
}

/**
 * The systemd unit that runs the boot script once per boot after the network is up and before the units that
 * start el and cl (`before`, default docker.service), which also require it: when a secret cannot be put in
 * place they do not start. Enabled by links in `multi-user.target.wants/` and `<unit>.requires/`.
 */
export function renderBootUnit(inv: Inventory, host: Host, o: BootOptions): string {
  return [
    `# krypton-secrets boot step for ${host.name} (network ${inv.network}), rendered by krypton-secrets. No secret in here.`,
    '[Unit]',
    'Description=krypton-secrets: secrets into their tmpfs before the services that read them start',
    'Wants=network-online.target',
    'After=network-online.target',
    ...(o.before.length ? [`Before=${o.before.join(' ')}`] : []),
    '',
    '[Service]',
    'Type=oneshot',
    'RemainAfterExit=yes',
    `ExecStart=${BOOT_FILES.script}`,
    '',
    '[Install]',
    'WantedBy=multi-user.target',
    ...(o.before.length ? [`RequiredBy=${o.before.join(' ')}`] : []),
    '',
  ].join('\n');
}

/** The enablement links `systemctl enable` would make for the unit: `<dir>/<target>.{wants,requires}/<unit>`. */
export function bootUnitLinks(o: Pick<BootOptions, 'before'>, unitDir: string = BOOT_FILES.unitDir): string[] {
  return [`${unitDir}/multi-user.target.wants/${BOOT_FILES.unitName}`, ...o.before.map((u) => `${unitDir}/${u}.requires/${BOOT_FILES.unitName}`)];
}
