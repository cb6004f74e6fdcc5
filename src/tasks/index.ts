import type { AnyTask } from '../model/task.ts';
import { agentRenderConfig } from './agent-render-config.ts';
import { agentStart } from './agent-start.ts';
import { engineVerifyAuth } from './engine-verify-auth.ts';
import { horcruxRenderConfig } from './horcrux-render-config.ts';
import { horcruxStart } from './horcrux-start.ts';
import { horcruxVerifyKeys } from './horcrux-verify-keys.ts';
import { jwtRotate } from './jwt-rotate.ts';
import { kmsInstallBootStep } from './kms-install-boot-step.ts';
import { mountTmpfs } from './mount-tmpfs.ts';
import { nodeRemovePlaintextJwt } from './node-remove-plaintext-jwt.ts';
import { nodeRestartLockstep } from './node-restart-lockstep.ts';
import { nodeSetJwtPath } from './node-set-jwt-path.ts';
import { secretFetchOnHost } from './secret-fetch-on-host.ts';
import { secretPutHostCopy } from './secret-put-host-copy.ts';
import { secretSeed } from './secret-seed.ts';
import { vaultApprole } from './vault-approle.ts';
import { vaultDeliverSecretId } from './vault-deliver-secret-id.ts';
import { vaultPolicy } from './vault-policy.ts';

/**
 * Every task a playbook may name, by id. One task per concern, for nodes and cosigners alike: each reads the
 * host's secrets from the layout (src/model/layout.ts `hostSecrets`), and tasks that belong to one kind of
 * delivery (`agent`, `host-fetch`, `operator`) are skipped for the others, so one playbook serves every store.
 */
export const TASKS: ReadonlyMap<string, AnyTask> = new Map(
  [
    secretSeed,
    vaultPolicy,
    vaultApprole,
    mountTmpfs,
    agentRenderConfig,
    vaultDeliverSecretId,
    agentStart,
    secretPutHostCopy,
    secretFetchOnHost,
    kmsInstallBootStep,
    nodeSetJwtPath,
    nodeRestartLockstep,
    engineVerifyAuth,
    jwtRotate,
    nodeRemovePlaintextJwt,
    horcruxRenderConfig,
    horcruxStart,
    horcruxVerifyKeys,
  ].map((t) => [t.id, t as AnyTask]),
);

/** Task ids of earlier releases and the one that replaces each (a playbook naming an old id is refused with it). */
export const RENAMED_TASKS: ReadonlyMap<string, string> = new Map([
  ['vault.seed-engine-jwt', 'secret.seed'],
  ['kms.seed-engine-jwt', 'secret.seed'],
  ['sm.seed-engine-jwt', 'secret.seed'],
  ['vault.node-policy', 'vault.policy'],
  ['cosigner.vault-policy', 'vault.policy'],
  ['vault.node-approle', 'vault.approle'],
  ['cosigner.vault-approle', 'vault.approle'],
  ['cosigner.mount-key-dir', 'mount.tmpfs'],
  ['cosigner.agent-config', 'agent.render-config'],
  ['cosigner.deliver-secret-id', 'vault.deliver-secret-id'],
  ['cosigner.agent-start', 'agent.start'],
  ['kms.put-blob', 'secret.put-host-copy'],
  ['cosigner.put-blobs', 'secret.put-host-copy'],
  ['kms.decrypt-on-host', 'secret.fetch-on-host'],
  ['sm.fetch-on-host', 'secret.fetch-on-host'],
  ['cosigner.kms-decrypt', 'secret.fetch-on-host'],
]);
