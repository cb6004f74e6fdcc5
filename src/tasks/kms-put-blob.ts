import { act } from '../core/action.ts';
import { defineTask, change, noChange, refuse } from '../core/task.ts';
import { fileAt } from '../facts/file.ts';
import { blobStore } from '../facts/kms.ts';
import { hostBlobPath, kmsPerNode } from '../render/kms-host.ts';
import { noParams } from './common.ts';

/**
 * kms.put-blob — copy the node's current KMS blob from the blob store to the host at
 * `<kms.blob_dir>/jwt.hex.enc` (default /opt/krypton/secrets; 0600, atomic SFTP write). The blob is not
 * secret: persistent disk is fine, and the boot-time step decrypts it from there. Compares SHA-256 and writes
 * only when it differs. With `kms.decrypt: operator` the host gets no blob (it has no AWS identity to use
 * it). Refuses when the store holds no blob yet.
 */
export const kmsPutBlob = defineTask({
  id: 'kms.put-blob',
  summary: 'copy the KMS blob to the host',
  appliesTo: 'node',
  backends: ['kms'],
  params: noParams,
  facts: (_p, _host, inv) => ({ store: blobStore(), onHost: fileAt(hostBlobPath(inv), { digest: true }) }),
  plan(_p, { store, onHost }, { inventory, host }) {
    const path = hostBlobPath(inventory);
    if (inventory.kms?.decrypt === 'operator') return noChange('kms.decrypt is operator: the host gets no blob (the operator decrypts and delivers jwt.hex)');
    const cur = store.current;
    if (!cur) return refuse('E_INPUT', `the blob store ${store.where} holds no blob`, 'run kms.seed-engine-jwt first (playbooks/provision.yml does)');
    if (onHost.exists && onHost.sha256 === cur.sha256 && onHost.mode === '0600') return noChange(`${path} is ${cur.display} (sha256:${cur.sha256.slice(0, 12)})`);
    const dir = inventory.kms?.blobDir ?? path.slice(0, path.lastIndexOf('/'));
    return change(
      act.exec(['mkdir', '-p', '-m', '0755', '--', dir], `create ${dir}`),
      {
        kind: 'kms.put-blob',
        ...(kmsPerNode(inventory) ? { node: host.name } : {}),
        version: cur.version,
        sha256: cur.sha256,
        path,
        mode: '0600',
        description: `${onHost.exists ? 'replace' : 'write'} ${path} with ${cur.display} (v${cur.version}, not secret)`,
      },
    );
  },
  settle: { intervalMs: 200, timeoutMs: 5000 },
});
