import { act, type Action } from '../model/action.ts';
import { defineTask, change, noChange, refuse } from '../model/task.ts';
import { hostCopies, secretFiles, storedFingerprints } from '../facts/secrets.ts';
import { mountAt } from '../facts/mount.ts';
import { factList } from '../facts/list.ts';
import { hostBlobPath, hostSecrets, tmpfsDirs } from '../model/layout.ts';
import { contentProblem, describeStored, metaProblem, noParams, ownerSpec, refuseMissing, refuseNotTmpfs } from './common.ts';

/**
 * secret.fetch-on-host — put each of the host's secrets into its tmpfs path with its mode/owner/group, where the
 * store has no agent on the host. `kms.decrypt: host` (default): the host's own AWS identity fetches it — KMS
 * decrypts the host's blob under the value's encryption context, or Secrets Manager returns the secret — through
 * the store's fixed sh script: the plaintext goes from the aws CLI's stdout to a 0600 temp file on the tmpfs, is
 * checked against the SHA-256 the laptop expects, and renamed into place; never on a command line, never on
 * persistent disk, never on the laptop's disk. `kms.decrypt: operator`: the laptop reads the value and writes it
 * over SFTP (for hosts with no AWS identity). Judged by each file's SHA-256 (computed on the host) against the
 * store's fingerprint; does nothing when all match; puts a chmod-ed file's mode back. Refuses when a dir is not a
 * tmpfs, when the store holds nothing, or when the host's blob is not the current one (run secret.put-host-copy).
 * A failure names the AWS error (E_KMS_CONTEXT, E_KMS_DENIED, …) and leaves the file as it was.
 */
export const secretFetchOnHost = defineTask({
  id: 'secret.fetch-on-host',
  summary: 'fetch the host\'s secrets into its tmpfs (KMS / Secrets Manager)',
  appliesTo: 'any',
  delivery: ['host-fetch', 'operator'],
  params: noParams,
  facts: (_p, host, inv) => {
    const ss = hostSecrets(inv, host);
    return {
      mounts: factList(tmpfsDirs(inv, host).map((d) => mountAt(d)), 'mount'),
      files: secretFiles(ss),
      stored: storedFingerprints(ss),
      copies: hostCopies(ss),
      onHost: secretFiles(ss.map((s) => ({ name: s.name, path: hostBlobPath(inv, host, s), format: 'json' as const }))),
    };
  },
  plan(_p, { mounts, files, stored, copies, onHost }, { inventory, host, store }) {
    const ss = hostSecrets(inventory, host);
    const dirs = tmpfsDirs(inventory, host);
    for (const [i, d] of dirs.entries()) {
      const bad = refuseNotTmpfs(d, mounts[i]);
      if (bad) return bad;
    }
    const missing = refuseMissing(host, ss, stored);
    if (missing) return missing;
    const actions: Action[] = [];
    for (const s of ss) {
      const want = stored[s.name]!;
      const live = files[s.name]!;
      const why = contentProblem(s, live, want);
      if (!why) {
        const meta = metaProblem(s, live);
        if (meta) {
          const own = ownerSpec(s);
          actions.push(
            ...(live.mode !== s.mode ? [act.exec(['chmod', s.mode, '--', s.path], `restore mode ${s.mode} on ${s.path} (was ${live.mode})`)] : []),
            ...(own && live.mode === s.mode ? [act.exec(['chown', own, '--', s.path], `give ${s.path} back to ${own}: ${meta}`)] : []),
          );
        }
        continue;
      }
      if (store.delivery === 'operator') {
        actions.push({
          kind: 'deliver',
          ref: s.ref,
          what: 'value',
          version: want.version,
          sha256: want.fingerprint,
          path: s.path,
          mode: s.mode,
          ...(s.owner ? { owner: s.owner } : {}),
          ...(s.group ? { group: s.group } : {}),
          description: `write ${s.path} (${want.source} v${want.version}) read on the operator's machine, over SFTP: ${why}`,
        });
        continue;
      }
      if (store.hostCopies) {
        const c = copies[s.name];
        const blob = onHost[s.name]!;
        const path = hostBlobPath(inventory, host, s);
        if (!c || !blob.exists || blob.sha256 !== c.sha256) {
          return refuse('E_PLAN_CONFLICT', `${path} on ${host.name} is not the current blob${c ? ` ${c.display}` : ''}`, 'run secret.put-host-copy first (the playbooks do)');
        }
      }
      actions.push({
        kind: 'fetch-on-host',
        ref: s.ref,
        name: s.name,
        version: want.version,
        sha256: want.fingerprint,
        description: `fetch ${want.source} v${want.version} with ${host.name}'s AWS identity into ${s.path}: ${why}`,
      });
    }
    return actions.length ? change(...actions) : noChange(`${describeStored(ss, stored)}, on tmpfs`);
  },
  settle: { intervalMs: 250, timeoutMs: 15_000 },
  jwtUnit: 'opens',
});
