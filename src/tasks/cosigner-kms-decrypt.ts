import type { HorcruxKind } from '../backends/vault-paths.ts';
import { act, type Action } from '../core/action.ts';
import { defineTask, change, noChange, refuse, type LaptopFact } from '../core/task.ts';
import type { Secret } from '../core/secret.ts';
import { fileAt } from '../facts/file.ts';
import { awsTarget } from '../facts/kms.ts';
import { cosignerSettings } from '../horcrux/config.ts';
import { keyDirState } from '../horcrux/facts.ts';
import { horcruxContext, horcruxFetchArgv, hostHorcruxBlobs } from '../horcrux/kms.ts';
import { readStoredHorcruxKey, storedHorcruxKeys } from '../horcrux/store.ts';
import { describeContext } from '../render/kms-host.ts';
import { noParams } from './common.ts';
import { asCosigner, describeStored, keyFileStatus, missingKeysHint } from './cosigner-common.ts';
import { currentHorcruxBlobs } from './cosigner-put-blobs.ts';

/** `kms.decrypt: operator` only: the decrypted key files, in memory (undefined in host mode). */
function operatorValues(cosigner: string): LaptopFact<Partial<Record<HorcruxKind, Secret>> | undefined> {
  return {
    kind: 'laptop',
    async gather(env) {
      if (env.inventory.kms?.decrypt !== 'operator') return undefined;
      const out: Partial<Record<HorcruxKind, Secret>> = {};
      for (const k of ['ecies', 'shard'] as const) {
        const v = await readStoredHorcruxKey(env.backends, env.inventory, cosigner, k);
        if (v) out[k] = v.secret;
      }
      return out;
    },
  };
}

/**
 * cosigner.kms-decrypt — put the cosigner's `ecies_keys.json` and `<chain-id>_shard.json` into its tmpfs key dir
 * (0600). `kms.decrypt: host` (default): the cosigner's own AWS identity decrypts `<home>/blobs/*.enc` with
 * `/usr/bin/aws kms decrypt` under its own context `{purpose, network, cosigner}`, through a fixed sh script
 * (plaintext only in a shell variable and a 0600 temp file on the tmpfs, SHA-256 checked against the one the
 * laptop computed in memory, then renamed into place). `kms.decrypt: operator`: the laptop's in-memory plaintext
 * goes over SFTP. Judged by each file's SHA-256 (computed on the host) against the blob store; does nothing when
 * both match; puts a chmod-ed file's mode back. Refuses when the key dir is not a tmpfs, nothing was imported,
 * or the host's blob is not the current one. A change here makes `horcrux.start` restart Horcrux.
 */
export const cosignerKmsDecrypt = defineTask({
  id: 'cosigner.kms-decrypt',
  summary: "decrypt the cosigner's KMS blobs into its key dir",
  appliesTo: 'cosigner',
  backends: ['kms'],
  params: noParams,
  facts: (_p, host, inv) => {
    const s = cosignerSettings(inv, asCosigner(host));
    const paths = hostHorcruxBlobs(s);
    return {
      keyDir: keyDirState(s.keyDir),
      stored: storedHorcruxKeys(host.name),
      blobs: currentHorcruxBlobs(host.name),
      eciesBlob: fileAt(paths.ecies, { digest: true }),
      shardBlob: fileAt(paths.shard, { digest: true }),
      target: awsTarget('kms'),
      values: operatorValues(host.name),
    };
  },
  plan(_p, { keyDir, stored, blobs, eciesBlob, shardBlob, target, values }, { inventory, host }) {
    const s = cosignerSettings(inventory, asCosigner(host));
    if (keyDir.mount?.fsType !== 'tmpfs') return refuse('E_PLAN_CONFLICT', `${s.keyDir} is not a tmpfs mount`, 'run cosigner.mount-key-dir first; key files never go on persistent disk');
    if (!stored.ecies || !stored.shard || !blobs.ecies || !blobs.shard) return refuse('E_INPUT', `the blob store holds no Horcrux key files for ${host.name}`, missingKeysHint());
    const status = keyFileStatus(keyDir, stored, s);
    const todo = status.filter((f) => !f.matches);
    const chmods = status.filter((f) => f.matches && f.mode !== '0600').map((f) => act.exec(['chmod', '0600', '--', s.keyFiles[f.kind]], `restore mode 0600 on ${s.keyFiles[f.kind]} (was ${f.mode})`));
    if (!todo.length && !chmods.length) return noChange(`key files in ${s.keyDir} match the blob store (${describeStored(stored, s)}), mode 0600`);
    const paths = hostHorcruxBlobs(s);
    const onHost = { ecies: eciesBlob, shard: shardBlob };
    const actions: Action[] = [...chmods];
    for (const f of todo) {
      const want = stored[f.kind]!;
      const why = f.present ? `${f.name} differs from the blob store` : `${f.name} is not in the key dir`;
      if (inventory.kms?.decrypt === 'operator') {
        const v = values?.[f.kind];
        if (!v) return refuse('E_INPUT', `the blob store holds no ${f.kind} key file for ${host.name}`, missingKeysHint());
        actions.push(act.put(s.keyFiles[f.kind], v, '0600', `write ${s.keyFiles[f.kind]} (${want.source} v${want.version}, ${v.shortFingerprint()}) decrypted on the operator's machine, over SFTP: ${why}`, { ...(s.owner ? { owner: s.owner } : {}), ...(s.group ? { group: s.group } : {}) }));
        continue;
      }
      if (!onHost[f.kind].exists || onHost[f.kind].sha256 !== blobs[f.kind]!.sha256) {
        return refuse('E_PLAN_CONFLICT', `${paths[f.kind]} on the host is not the current blob ${blobs[f.kind]!.display}`, 'run cosigner.put-blobs first (playbooks/cosigner-bringup.yml does)');
      }
      const ctx = horcruxContext(inventory, host.name, f.kind);
      actions.push({
        kind: 'kms.fetch-on-host',
        backend: 'kms',
        argv: horcruxFetchArgv({ out: s.keyFiles[f.kind], sha256: want.fingerprint, ...(s.owner ? { owner: s.owner } : {}), ...(s.group ? { group: s.group } : {}), blobPath: paths[f.kind], context: ctx, target }),
        subject: `the blob ${paths[f.kind]} (v${want.version})`,
        ...(inventory.kms?.keyId ? { keyId: inventory.kms.keyId } : {}),
        context: describeContext(ctx),
        region: target.region,
        ...(target.endpointUrl ? { endpointUrl: target.endpointUrl } : {}),
        description: `decrypt ${paths[f.kind]} (v${want.version}) with ${host.name}'s AWS identity into ${s.keyFiles[f.kind]}: ${why}`,
      });
    }
    return change(...actions);
  },
  settle: { intervalMs: 250, timeoutMs: 15_000 },
  triggersRestart: true,
});
