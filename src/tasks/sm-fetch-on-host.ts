import { defineTask, change } from '../core/task.ts';
import { awsTarget, jwtFile } from '../facts/kms.ts';
import { expectedEngineJwt } from '../facts/inputs.ts';
import { mountAt } from '../facts/mount.ts';
import { SECRETS_DIR } from '../inventory/model.ts';
import { JWT_FILE, fetchArgv, smGetArgs, smSecretName, smVersionId } from '../render/kms-host.ts';
import { asNode, noParams } from './common.ts';
import { beforeHostFetch } from './kms-common.ts';

/**
 * sm.fetch-on-host — put the node's Engine-API JWT from Secrets Manager into `/run/krypton-secrets/jwt.hex`
 * (tmpfs, the node's JWT mode). Default (`kms.decrypt: host`): the host's own AWS identity reads the version
 * the operator sees as current with `/usr/bin/aws secretsmanager get-secret-value --query SecretString`,
 * through the same fixed `sh -c` fetch script as kms.decrypt-on-host (value from stdout into a tmpfs temp
 * file under umask 077, 64-hex and SHA-256 checked, renamed into place; nothing on a command line or on
 * persistent disk). `kms.decrypt: operator`: the laptop's in-memory value over SFTP. Does nothing when the
 * file's SHA-256 (computed on the host) equals the fingerprint of the current version.
 */
export const smFetchOnHost = defineTask({
  id: 'sm.fetch-on-host',
  summary: 'fetch the Secrets Manager secret into jwt.hex on the tmpfs',
  appliesTo: 'node',
  backends: ['secrets-manager'],
  params: noParams,
  facts: () => ({ mount: mountAt(SECRETS_DIR), jwt: jwtFile(JWT_FILE), expected: expectedEngineJwt(), target: awsTarget('secrets-manager') }),
  plan(_p, { mount, jwt, expected, target }, { inventory, host }) {
    const node = asNode(host);
    const pre = beforeHostFetch(node, inventory, mount, jwt, expected, 'sm.seed-engine-jwt');
    if ('plan' in pre) return pre.plan;
    const { why, expected: value } = pre;
    const name = smSecretName(inventory, host.name);
    return change({
      kind: 'kms.fetch-on-host',
      backend: 'secrets-manager',
      argv: fetchArgv({
        backend: 'secrets-manager',
        out: JWT_FILE,
        mode: node.jwt.mode,
        owner: node.jwt.owner,
        group: node.jwt.group,
        sha256: value.secret.fingerprint(),
        awsArgs: smGetArgs(name, target, value.version > 0 ? smVersionId(value.version) : undefined),
      }),
      subject: `secret ${name} (v${value.version})`,
      keyId: inventory.kms?.keyId,
      region: target.region,
      ...(target.endpointUrl ? { endpointUrl: target.endpointUrl } : {}),
      description: `read secret ${name} (v${value.version}, ${value.secret.shortFingerprint()}) with the host's AWS identity into jwt.hex: ${why}`,
    });
  },
  // No triggersRestart: a new value shows as an Engine API that rejects it, which restarts el and cl (as with
  // the Vault agent); a mode-only repair then restarts nothing.
  settle: { intervalMs: 250, timeoutMs: 15_000 },
});
