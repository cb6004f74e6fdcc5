import type { HorcruxKind } from '../backends/vault-paths.ts';
import { act } from '../core/action.ts';
import { defineTask, change, noChange, refuse, type LaptopFact } from '../core/task.ts';
import { fileAt } from '../facts/file.ts';
import { cosignerSettings } from '../horcrux/config.ts';
import { blobContent, hostHorcruxBlobs, kmsHorcruxStore, type HorcruxBlob } from '../horcrux/kms.ts';
import { kmsOf } from '../horcrux/store.ts';
import { posix } from 'node:path';
import { noParams } from './common.ts';
import { asCosigner, missingKeysHint } from './cosigner-common.ts';

/** The cosigner's current blobs in the blob store (bytes, version, SHA-256; read once per run per cosigner). */
export function currentHorcruxBlobs(cosigner: string): LaptopFact<Partial<Record<HorcruxKind, HorcruxBlob>>> {
  return {
    kind: 'laptop',
    gather: (env) =>
      env.memo(`horcrux-blobs:${cosigner}`, async () => {
        const store = kmsHorcruxStore(env.inventory, kmsOf(env.backends));
        const out: Partial<Record<HorcruxKind, HorcruxBlob>> = {};
        for (const k of ['ecies', 'shard'] as const) {
          const b = await store.currentBlob(cosigner, k);
          if (b) out[k] = b;
        }
        return out;
      }),
  };
}

/**
 * cosigner.put-blobs — copy the cosigner's two current KMS blobs (its ECIES keys and its shard, each bound to
 * `{purpose, network, cosigner}`) from the blob store next to the inventory to `<home>/blobs/` on the cosigner
 * (0600 in a 0700 dir, atomic SFTP writes). Blobs are not secret: persistent disk is fine; only the cosigner's
 * own AWS identity, under its own context, can decrypt them. Writes only what differs. With
 * `kms.decrypt: operator` the host gets no blobs. Refuses when nothing was imported for the cosigner.
 */
export const cosignerPutBlobs = defineTask({
  id: 'cosigner.put-blobs',
  summary: "copy the cosigner's KMS blobs to the host",
  appliesTo: 'cosigner',
  backends: ['kms'],
  params: noParams,
  facts: (_p, host, inv) => {
    const paths = hostHorcruxBlobs(cosignerSettings(inv, asCosigner(host)));
    return { blobs: currentHorcruxBlobs(host.name), eciesBlob: fileAt(paths.ecies, { digest: true }), shardBlob: fileAt(paths.shard, { digest: true }) };
  },
  plan(_p, { blobs, eciesBlob, shardBlob }, { inventory, host }) {
    if (inventory.kms?.decrypt === 'operator') return noChange('kms.decrypt is operator: the cosigner gets no blobs (the operator decrypts and delivers the key files)');
    if (!blobs.ecies || !blobs.shard) return refuse('E_INPUT', `the blob store holds no Horcrux key files for ${host.name}`, missingKeysHint());
    const paths = hostHorcruxBlobs(cosignerSettings(inventory, asCosigner(host)));
    const live = { ecies: eciesBlob, shard: shardBlob };
    const stale = (['ecies', 'shard'] as const).filter((k) => !(live[k].exists && live[k].sha256 === blobs[k]!.sha256 && live[k].mode === '0600'));
    if (!stale.length) return noChange(`${posix.dirname(paths.ecies)} holds the current blobs (${blobs.ecies.display}, ${blobs.shard.display})`);
    return change(
      act.exec(['mkdir', '-p', '-m', '0700', '--', posix.dirname(paths.ecies)], `create ${posix.dirname(paths.ecies)}`),
      ...stale.map((k) => act.put(paths[k], blobContent(blobs[k]!), '0600', `${live[k].exists ? 'replace' : 'write'} ${paths[k]} with ${blobs[k]!.display} (v${blobs[k]!.version}, not secret)`)),
    );
  },
});
