import { posix } from 'node:path';
import { act, type Action } from '../model/action.ts';
import { defineTask, change, noChange, refuse } from '../model/task.ts';
import { hostCopies, secretFiles } from '../facts/secrets.ts';
import { KIND_SPECS, describeRef, hostBlobPath, hostSecrets } from '../model/layout.ts';
import { noParams } from './common.ts';

/**
 * secret.put-host-copy — copy the store's current host copy of each of the host's secrets (a KMS blob, bound by
 * its encryption context to its purpose, network and host) to the host: `<kms.blob_dir>/<file>.enc` on a node,
 * `<home>/blobs/<file>.enc` on a cosigner (0600, atomic SFTP writes, the dir created 0700). Blobs are not secret:
 * persistent disk is fine, and only the host's own AWS identity under that context turns them back into the
 * value (at apply, and at boot). Writes only what differs (SHA-256). Does nothing where hosts keep no copy
 * (Secrets Manager) or fetch nothing themselves (`kms.decrypt: operator`). Refuses when the store holds none.
 */
export const secretPutHostCopy = defineTask({
  id: 'secret.put-host-copy',
  summary: 'copy the KMS blobs to the host',
  appliesTo: 'any',
  delivery: ['host-fetch'],
  params: noParams,
  facts: (_p, host, inv) => {
    const ss = hostSecrets(inv, host);
    return { copies: hostCopies(ss), onHost: secretFiles(ss.map((s) => ({ name: s.name, path: hostBlobPath(inv, host, s), format: 'json' as const }))) };
  },
  plan(_p, { copies, onHost }, { inventory, host, store }) {
    if (!store.hostCopies) return noChange('the store keeps no host copies: the host fetches each value directly');
    const actions: Action[] = [];
    const dirs = new Set<string>();
    const current: string[] = [];
    for (const s of hostSecrets(inventory, host)) {
      const c = copies[s.name];
      if (!c) return refuse('E_INPUT', `the store holds no ${describeRef(s.ref).replace(/^the /, '')} (needed on ${host.name})`, KIND_SPECS[s.ref.kind].missingHint);
      const path = hostBlobPath(inventory, host, s);
      const live = onHost[s.name]!;
      if (live.exists && live.sha256 === c.sha256 && live.mode === '0600') {
        current.push(`${path} is ${c.display}`);
        continue;
      }
      const dir = posix.dirname(path);
      if (!dirs.has(dir)) {
        dirs.add(dir);
        actions.push(act.exec(['mkdir', '-p', '-m', '0700', '--', dir], `create ${dir}`));
      }
      actions.push({
        kind: 'deliver',
        ref: s.ref,
        what: 'host-copy',
        version: c.version,
        sha256: c.sha256,
        path,
        mode: '0600',
        description: `${live.exists ? 'replace' : 'write'} ${path} with ${c.display} (v${c.version}, not secret)`,
      });
    }
    return actions.length ? change(...actions) : noChange(current.join('; '));
  },
  settle: { intervalMs: 200, timeoutMs: 5000 },
});
