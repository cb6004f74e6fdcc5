import type { SerialStep } from '../playbook/loader.ts';

/**
 * Splits `hosts` into waves by `serial` (Ansible semantics): each entry is a host count or a percentage of
 * all the play's hosts (rounded up, at least 1); the last entry repeats until every host has had a wave.
 * An empty `serial` is one wave with every host.
 */
export function computeWaves<T>(hosts: readonly T[], serial: readonly SerialStep[]): T[][] {
  if (serial.length === 0 || hosts.length === 0) return hosts.length ? [[...hosts]] : [];
  const sizes = serial.map((s) => (typeof s === 'number' ? s : Math.max(1, Math.ceil((Number(s.slice(0, -1)) * hosts.length) / 100))));
  const waves: T[][] = [];
  let i = 0;
  let k = 0;
  while (i < hosts.length) {
    const size = sizes[Math.min(k, sizes.length - 1)]!;
    waves.push(hosts.slice(i, i + size));
    i += size;
    k++;
  }
  return waves;
}
