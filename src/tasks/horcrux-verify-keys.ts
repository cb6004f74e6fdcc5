import { defineTask, noChange, refuse } from '../core/task.ts';
import { shortFingerprint } from '../core/secret.ts';
import { cosignerSettings } from '../horcrux/config.ts';
import { horcruxProcess, keyDirState } from '../horcrux/facts.ts';
import { storedHorcruxKeys } from '../horcrux/store.ts';
import { noParams } from './common.ts';
import { asCosigner, describeStored, keyFileStatus, missingKeysHint } from './cosigner-common.ts';

/**
 * horcrux.verify-keys — prove the cosigner's key dir is what it must be: a tmpfs, mode 0700, holding exactly
 * its own `ecies_keys.json` and `<chain-id>_shard.json` (nothing else: no other cosigner's files, no agent
 * files), each a regular file with mode 0600 (and `horcrux.owner` when set) whose SHA-256 equals the backend's
 * value; and Horcrux running. A check: it never changes anything; any difference fails the host with E_VERIFY.
 */
export const horcruxVerifyKeys = defineTask({
  id: 'horcrux.verify-keys',
  summary: "verify the cosigner's key dir against the backend",
  appliesTo: 'cosigner',
  params: noParams,
  facts: (_p, host, inv) => {
    const s = cosignerSettings(inv, asCosigner(host));
    return { keyDir: keyDirState(s.keyDir), stored: storedHorcruxKeys(host.name), proc: horcruxProcess(s.status) };
  },
  plan(_p, { keyDir, stored, proc }, { inventory, host }) {
    const s = cosignerSettings(inventory, asCosigner(host));
    if (!stored.ecies || !stored.shard) return refuse('E_INPUT', `the backend holds no Horcrux key files for ${host.name}`, missingKeysHint());
    const hint = 'run apply playbooks/cosigner-bringup.yml again; if it persists, look at the host (something else writes there)';
    if (keyDir.mount?.fsType !== 'tmpfs') return refuse('E_VERIFY', `${s.keyDir} is ${keyDir.mount ? `a ${keyDir.mount.fsType}` : 'not a mount'}, not a tmpfs`, hint);
    if (keyDir.mode !== '0700') return refuse('E_VERIFY', `${s.keyDir} has mode ${keyDir.mode}, expected 0700`, hint);
    const st = keyFileStatus(keyDir, stored, s);
    const expected = new Set(st.map((f) => f.name));
    const extra = keyDir.entries.filter((e) => !expected.has(e.name) || e.type !== 'file');
    if (extra.length) {
      return refuse('E_VERIFY', `${s.keyDir} holds more than ${host.name}'s two key files: ${extra.map((e) => `${e.name} (${e.type})`).join(', ')}`, 'remove what does not belong there (it may be another cosigner\'s key material), then apply again');
    }
    const bad = st.filter((f) => !f.present || !f.matches || f.mode !== '0600' || (s.owner && f.owner !== s.owner));
    if (bad.length) {
      const live = (name: string) => keyDir.entries.find((e) => e.name === name)?.sha256;
      return refuse(
        'E_VERIFY',
        bad
          .map((f) => (f.present ? `${f.name}: mode ${f.mode}, ${live(f.name) ? shortFingerprint(live(f.name)!) : 'no digest'}` : `${f.name}: missing`))
          .join('; ') + `; expected mode 0600 and ${describeStored(stored, s)}`,
        hint,
      );
    }
    if (!proc.running) return refuse('E_VERIFY', `Horcrux is not running (${s.status.join(' ')} exited ${proc.statusExit})`, 'run horcrux.start, or look at its logs on the host');
    return noChange(`${s.keyDir} (tmpfs, 0700) holds only ${describeStored(stored, s)}, mode 0600; Horcrux is running`);
  },
});
