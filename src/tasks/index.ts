import type { AnyTask } from '../core/task.ts';
import { agentRenderConfig } from './agent-render-config.ts';
import { agentStart } from './agent-start.ts';
import { engineVerifyAuth } from './engine-verify-auth.ts';
import { mountTmpfs } from './mount-tmpfs.ts';
import { nodeRestartLockstep } from './node-restart-lockstep.ts';
import { nodeSetJwtPath } from './node-set-jwt-path.ts';
import { vaultDeliverSecretId } from './vault-deliver-secret-id.ts';
import { vaultNodeApprole } from './vault-node-approle.ts';
import { vaultNodePolicy } from './vault-node-policy.ts';
import { vaultSeedEngineJwt } from './vault-seed-engine-jwt.ts';
import { jwtRotate } from './jwt-rotate.ts';
import { nodeRemovePlaintextJwt } from './node-remove-plaintext-jwt.ts';
import { cosignerVaultPolicy } from './cosigner-vault-policy.ts';
import { cosignerVaultApprole } from './cosigner-vault-approle.ts';
import { cosignerMountKeyDir } from './cosigner-mount-key-dir.ts';
import { cosignerAgentConfig } from './cosigner-agent-config.ts';
import { cosignerDeliverSecretId } from './cosigner-deliver-secret-id.ts';
import { cosignerAgentStart } from './cosigner-agent-start.ts';
import { horcruxRenderConfig } from './horcrux-render-config.ts';
import { horcruxStart } from './horcrux-start.ts';
import { horcruxVerifyKeys } from './horcrux-verify-keys.ts';
import { cosignerPutBlobs } from './cosigner-put-blobs.ts';
import { cosignerKmsDecrypt } from './cosigner-kms-decrypt.ts';
import { kmsSeedEngineJwt } from './kms-seed-engine-jwt.ts';
import { kmsPutBlob } from './kms-put-blob.ts';
import { kmsDecryptOnHost } from './kms-decrypt-on-host.ts';
import { kmsInstallBootStep } from './kms-install-boot-step.ts';
import { smSeedEngineJwt } from './sm-seed-engine-jwt.ts';
import { smFetchOnHost } from './sm-fetch-on-host.ts';

/** Every task a playbook may name, by id. */
export const TASKS: ReadonlyMap<string, AnyTask> = new Map(
  [
    vaultSeedEngineJwt,
    vaultNodePolicy,
    vaultNodeApprole,
    mountTmpfs,
    agentRenderConfig,
    vaultDeliverSecretId,
    agentStart,
    nodeSetJwtPath,
    nodeRestartLockstep,
    engineVerifyAuth,
    jwtRotate,
    nodeRemovePlaintextJwt,
    cosignerVaultPolicy,
    cosignerVaultApprole,
    cosignerMountKeyDir,
    cosignerAgentConfig,
    cosignerDeliverSecretId,
    cosignerAgentStart,
    horcruxRenderConfig,
    horcruxStart,
    horcruxVerifyKeys,
    cosignerPutBlobs,
    cosignerKmsDecrypt,
    kmsSeedEngineJwt,
    kmsPutBlob,
    kmsDecryptOnHost,
    kmsInstallBootStep,
    smSeedEngineJwt,
    smFetchOnHost,
  ].map((t) => [t.id, t as AnyTask]),
);
