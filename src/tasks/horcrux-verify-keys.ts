import { defineTask, noChange, refuse } from '../model/task.ts';
import { shortFingerprint } from '../core/secret.ts';
import { cosignerSettings, hostSecrets } from '../model/layout.ts';
import { dirState, horcruxProcess } from '../facts/dir.ts';
import { storedFingerprints } from '../facts/secrets.ts';
import { asCosigner, describeStored, fileName, noParams, refuseMissing } from './common.ts';

/**
 * horcrux.verify-keys — prove the cosigner's key dir is what it must be: a tmpfs, mode 0700, holding exactly its
 * own `ecies_keys.json` and `<chain-id>_shard.json` (nothing else: no other cosigner's files, no agent files),
 * each a regular file with mode 0600 (and `horcrux.owner` when set) whose SHA-256 equals the store's value; and
 * Horcrux running. A check: it never changes anything; any difference fails the host with E_VERIFY.
 */
export const horcruxVerifyKeys = defineTask({
  id: 'horcrux.verify-keys',
  summary: "verify the cosigner's key dir against the store",
  appliesTo: 'cosigner',
  params: noParams,
  facts: (_p, host, inv) => {
    const s = cosignerSettings(inv, asCosigner(host));
    return { keyDir: dirState(s.keyDir), stored: storedFingerprints(hostSecrets(inv, host)), proc: horcruxProcess(s.status) };
  },
  plan(_p, { keyDir, stored, proc }, { inventory, host }) {
    const s = cosignerSettings(inventory, asCosigner(host));
    const ss = hostSecrets(inventory, host);
    const missing = refuseMissing(host, ss, stored);
    if (missing) return missing;
    const hint = 'run apply playbooks/cosigner-bringup.yml again; if it persists, look at the host (something else writes there)';
    if (keyDir.mount?.fsType !== 'tmpfs') return refuse('E_VERIFY', `${s.keyDir} is ${keyDir.mount ? `a ${keyDir.mount.fsType}` : 'not a mount'}, not a tmpfs`, hint);
    if (keyDir.mode !== '0700') return refuse('E_VERIFY', `${s.keyDir} has mode ${keyDir.mode}, expected 0700`, hint);
    const names = new Set(ss.map((k) => fileName(k)));
    const extra = keyDir.entries.filter((e) => !names.has(e.name) || e.type !== 'file');
    if (extra.length) {
      return refuse('E_VERIFY', `${s.keyDir} holds more than ${host.name}'s two key files: ${extra.map((e) => `${e.name} (${e.type})`).join(', ')}`, "remove what does not belong there (it may be another cosigner's key material), then apply again");
    }
    const bad = ss.flatMap((k) => {
      const e = keyDir.entries.find((x) => x.name === fileName(k));
      if (!e) return [`${fileName(k)}: missing`];
      const ok = e.sha256 === stored[k.name]!.fingerprint && e.mode === '0600' && (!s.owner || e.owner === s.owner);
      return ok ? [] : [`${fileName(k)}: mode ${e.mode}, ${e.sha256 ? shortFingerprint(e.sha256) : 'no digest'}`];
    });
    if (bad.length) return refuse('E_VERIFY', `${bad.join('; ')}; expected mode 0600 and ${describeStored(ss, stored)}`, hint);
    if (!proc.running) return refuse('E_VERIFY', `Horcrux is not running (${s.status.join(' ')} exited ${proc.statusExit})`, 'run horcrux.start, or look at its logs on the host');
    return noChange(`${s.keyDir} (tmpfs, 0700) holds only ${describeStored(ss, stored)}, mode 0600; Horcrux is running`);
  },
});
