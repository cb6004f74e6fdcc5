import { defineTask, change, refuse } from '../core/task.ts';
import { fileAt } from '../facts/file.ts';
import { awsTarget, blobStore, jwtFile } from '../facts/kms.ts';
import { expectedEngineJwt } from '../facts/inputs.ts';
import { mountAt } from '../facts/mount.ts';
import { SECRETS_DIR } from '../inventory/model.ts';
import { JWT_FILE, describeContext, engineJwtContext, fetchArgv, hostBlobPath, kmsDecryptArgs } from '../render/kms-host.ts';
import { asNode, noParams } from './common.ts';
import { beforeHostFetch } from './kms-common.ts';

/**
 * kms.decrypt-on-host — put the node's Engine-API JWT into `/run/krypton-secrets/jwt.hex` (tmpfs, the node's
 * JWT mode, default 0600). Default (`kms.decrypt: host`): the host's own AWS identity decrypts the blob
 * `<blob_dir>/jwt.hex.enc` with `/usr/bin/aws kms decrypt` under the node's encryption context, through a
 * fixed `sh -c` script whose every value is a positional argument: the plaintext goes from the CLI's stdout to
 * a temp file in the tmpfs (umask 077), is checked to be 64 lowercase hex with the SHA-256 the operator
 * expects, and renamed into place — never on a command line, never on persistent disk, never on the laptop's
 * disk. `kms.decrypt: operator`: the laptop's in-memory value is written over SFTP (for hosts with no AWS
 * identity). Judged by the file's SHA-256 (computed on the host) against the fingerprint of the blob the
 * laptop decrypted in memory; does nothing when they match. Refuses when the secrets dir is not a tmpfs,
 * when there is no blob yet, or when the host's blob is not the current one. A host-side failure names the
 * AWS error (E_KMS_CONTEXT, E_KMS_DENIED, …) and leaves jwt.hex as it was.
 */
export const kmsDecryptOnHost = defineTask({
  id: 'kms.decrypt-on-host',
  summary: 'decrypt the KMS blob into jwt.hex on the tmpfs',
  appliesTo: 'node',
  backends: ['kms'],
  params: noParams,
  facts: (_p, _host, inv) => ({
    mount: mountAt(SECRETS_DIR),
    jwt: jwtFile(JWT_FILE),
    expected: expectedEngineJwt(),
    store: blobStore(),
    onHost: fileAt(hostBlobPath(inv), { digest: true }),
    target: awsTarget('kms'),
  }),
  plan(_p, { mount, jwt, expected, store, onHost, target }, { inventory, host }) {
    const node = asNode(host);
    const pre = beforeHostFetch(node, inventory, mount, jwt, expected, 'kms.seed-engine-jwt');
    if ('plan' in pre) return pre.plan;
    const { why, expected: value } = pre;

    const blob = hostBlobPath(inventory);
    if (!store.current || !onHost.exists || onHost.sha256 !== store.current.sha256) {
      return refuse('E_PLAN_CONFLICT', `${blob} on the host is not the current blob ${store.current?.display ?? ''}`.trim(), 'run kms.put-blob first (playbooks/provision.yml does)');
    }
    const ctx = engineJwtContext(inventory, host.name);
    return change({
      kind: 'kms.fetch-on-host',
      backend: 'kms',
      argv: fetchArgv({
        backend: 'kms',
        out: JWT_FILE,
        mode: node.jwt.mode,
        owner: node.jwt.owner,
        group: node.jwt.group,
        sha256: value.secret.fingerprint(),
        awsArgs: kmsDecryptArgs(blob, ctx, target),
      }),
      subject: `the blob ${blob} (v${value.version})`,
      keyId: inventory.kms?.keyId,
      context: describeContext(ctx),
      region: target.region,
      ...(target.endpointUrl ? { endpointUrl: target.endpointUrl } : {}),
      description: `decrypt ${blob} (v${value.version}, ${value.secret.shortFingerprint()}) with the host's AWS identity into jwt.hex: ${why}`,
    });
  },
  // No triggersRestart: a new value shows as an Engine API that rejects it, which restarts el and cl (as with
  // the Vault agent); a mode-only repair then restarts nothing.
  settle: { intervalMs: 250, timeoutMs: 15_000 },
});
