/**
 * The AWS KMS client krypton-secrets uses (@aws-sdk/client-kms v3): Encrypt / Decrypt / DescribeKey under an
 * encryption context, with errors translated at this boundary (see `aws.ts`). The blob store built on it is
 * `kms-store.ts`.
 */
import { DecryptCommand, DescribeKeyCommand, EncryptCommand, KMSClient } from '@aws-sdk/client-kms';
import { KryptonError } from '../core/errors.ts';
import { Secret } from '../core/secret.ts';
import type { Inventory } from '../model/inventory.ts';
import { describeContext } from '../model/layout.ts';
import { resolveAwsSettings, sdkClientOptions, translateSdkError, type AwsCallContext, type AwsSettings } from './aws.ts';

/** KMS Encrypt takes at most 4096 bytes of plaintext. */
export const KMS_MAX_PLAINTEXT_BYTES = 4096;

/** The KMS operations krypton-secrets uses. Every method throws KryptonError (E_KMS_*), never an SDK error. */
export interface KmsBackend {
  /** The region requests go to, and where that came from (resolved once). */
  region(): Promise<{ region: string; source: string }>;
  /** Endpoint override, if any (inventory or the SDK's AWS_ENDPOINT_URL*). */
  readonly endpoint?: string;
  /** KMS Encrypt of `plaintext` (≤ 4096 bytes) under `context`; returns the binary blob and the key ARN. */
  encrypt(keyId: string, plaintext: Secret, context: Record<string, string>, subject: string): Promise<{ blob: Buffer; keyArn: string }>;
  /** KMS Decrypt of `blob` under `context` (optionally pinned to `keyId`); the plaintext as a Secret. */
  decrypt(blob: Uint8Array, context: Record<string, string>, subject: string, keyId?: string): Promise<{ plaintext: Secret; keyArn: string }>;
  /** KMS DescribeKey: ARN, state and usage. */
  describeKey(keyId: string): Promise<{ arn: string; enabled: boolean; keyUsage?: string; keySpec?: string }>;
}

/** The region part of an ARN (`arn:aws:kms:<region>:…`), or undefined. */
export function arnRegion(arn: string | undefined): string | undefined {
  const parts = arn?.startsWith('arn:') ? arn.split(':') : [];
  return parts[3] || undefined;
}

export function createKmsBackend(settings: AwsSettings, client?: KMSClient): KmsBackend {
  const kms = client ?? new KMSClient(sdkClientOptions(settings));
  let resolved: Promise<{ region: string; source: string }> | undefined;
  const region = (): Promise<{ region: string; source: string }> => {
    resolved ??= (async () => {
      try {
        return { region: await kms.config.region(), source: settings.regionSource };
      } catch {
        throw new KryptonError('E_KMS_CONFIG', 'no AWS region: none in the inventory (kms.region), AWS_REGION, AWS_DEFAULT_REGION or the profile', {
          hint: 'set kms.region in the inventory (the region the CMK lives in)',
        });
      }
    })();
    return resolved;
  };
  const ctxOf = async (action: string, subject: string, keyId?: string, context?: Record<string, string>): Promise<AwsCallContext> => {
    const r = await region().catch(() => undefined);
    return {
      action,
      subject,
      keyId,
      context: context ? describeContext(context) : undefined,
      region: r?.region,
      regionSource: r?.source,
      endpoint: settings.endpoint,
      identity: "the operator's AWS identity",
      policyHint: `allow ${action} for the operator's identity (krypton-secrets render writes iam-admin-policy.json), and check the region`,
    };
  };
  const checkArnRegion = async (keyId: string | undefined, subject: string): Promise<void> => {
    const keyRegion = arnRegion(keyId);
    if (!keyRegion) return;
    const r = await region();
    if (keyRegion !== r.region) {
      throw new KryptonError('E_KMS_CONFIG', `region mismatch: ${subject} uses KMS key ${keyId} in ${keyRegion}, but requests go to ${r.region} (from ${r.source})`, {
        hint: `set kms.region: ${keyRegion} in the inventory (or AWS_REGION=${keyRegion})`,
      });
    }
  };
  return {
    region,
    endpoint: settings.endpoint,
    async encrypt(keyId, plaintext, context, subject) {
      if (plaintext.length > KMS_MAX_PLAINTEXT_BYTES) {
        throw new KryptonError('E_INPUT', `${subject}: ${plaintext.length} bytes is over KMS Encrypt's limit of ${KMS_MAX_PLAINTEXT_BYTES} bytes`, {
          hint: 'KMS encrypts at most 4 KiB directly; keep the payload smaller (the JWT is 64 bytes)',
        });
      }
      await checkArnRegion(keyId, subject);
      const bytes = plaintext.reveal();
      try {
        const out = await kms.send(new EncryptCommand({ KeyId: keyId, Plaintext: bytes, EncryptionContext: context }));
        if (!out.CiphertextBlob) throw new KryptonError('E_KMS', `${subject}: KMS Encrypt returned no ciphertext`, { hint: 'retry; report it if it persists' });
        return { blob: Buffer.from(out.CiphertextBlob), keyArn: out.KeyId ?? keyId };
      } catch (err) {
        throw translateSdkError(err, await ctxOf('kms:Encrypt', subject, keyId, context));
      } finally {
        bytes.fill(0);
      }
    },
    async decrypt(blob, context, subject, keyId) {
      await checkArnRegion(keyId, subject);
      try {
        const out = await kms.send(new DecryptCommand({ CiphertextBlob: blob, EncryptionContext: context, ...(keyId ? { KeyId: keyId } : {}) }));
        if (!out.Plaintext) throw new KryptonError('E_KMS', `${subject}: KMS Decrypt returned no plaintext`, { hint: 'retry; report it if it persists' });
        const plaintext = new Secret(out.Plaintext);
        out.Plaintext.fill(0);
        return { plaintext, keyArn: out.KeyId ?? keyId ?? '' };
      } catch (err) {
        throw translateSdkError(err, await ctxOf('kms:Decrypt', subject, keyId, context));
      }
    },
    async describeKey(keyId) {
      await checkArnRegion(keyId, `key ${keyId}`);
      try {
        const out = await kms.send(new DescribeKeyCommand({ KeyId: keyId }));
        const m = out.KeyMetadata;
        return { arn: m?.Arn ?? keyId, enabled: m?.Enabled ?? false, keyUsage: m?.KeyUsage, keySpec: m?.KeySpec };
      } catch (err) {
        throw translateSdkError(err, await ctxOf('kms:DescribeKey', `key ${keyId}`, keyId));
      }
    },
  };
}

/** `createKmsBackend` from the inventory and the environment. */
export function kmsBackendFor(inv: Inventory, env: NodeJS.ProcessEnv): KmsBackend {
  return createKmsBackend(resolveAwsSettings(inv.kms, env));
}

/** `v<N>.json` next to each blob (not secret). */
export interface BlobMeta {
  version: number;
  key_arn: string;
  encryption_context: Record<string, string>;
  blob_sha256: string;
  created: string;
}
