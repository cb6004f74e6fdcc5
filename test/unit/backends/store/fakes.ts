/**
 * Stand-ins for the low-level clients the stores build on — our own interfaces, faked as the real services
 * behave where the stores depend on it:
 * - Vault: the REAL createVaultBackend (node-vault's request/response handling, our error translation) over
 *   an in-memory KV v2 HTTP API (`fakeHttp`): versions, check-and-set (`options.cas`, Vault's 400 text),
 *   delete/destroy, metadata, `sys/capabilities-self`.
 * - KMS: AES-256-GCM with the encryption context as associated data (KMS binds it the same way: another
 *   context does not decrypt, InvalidCiphertextException), aliases resolving to one key ARN.
 * - Secrets Manager: secrets with VersionIds and staging labels; a VersionId reused with another value is
 *   ResourceExistsException; AWSCURRENT moves on each write.
 * The real services are used in test/integration/store.int.test.ts.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { awsError } from '../../../../src/backends/aws.ts';
import type { VaultBackend } from '../../../../src/backends/backend.ts';
import type { KmsBackend } from '../../../../src/backends/kms.ts';
import type { SecretDescription, SecretsManagerBackend } from '../../../../src/backends/secrets-manager.ts';
import { createVaultBackend, type VaultRawRequest, type VaultRawResponse } from '../../../../src/backends/vault.ts';
import { KryptonError } from '../../../../src/core/errors.ts';
import { Secret } from '../../../../src/core/secret.ts';

// ------------------------------------------------------------------------------------------------------------
// Vault KV v2 over fake HTTP
// ------------------------------------------------------------------------------------------------------------

interface KvVersion {
  data: Record<string, string>;
  created: string;
  deleted: boolean;
  destroyed: boolean;
}

export interface FakeVault {
  backend: VaultBackend;
  /** path below the mount -> versions (index 0 = version 1). */
  kv: Map<string, KvVersion[]>;
  /** Capabilities `sys/capabilities-self` answers per API path (default ["root"]). */
  caps: Record<string, string[]>;
  requests: VaultRawRequest[];
}

export function fakeVault(mount = 'secret'): FakeVault {
  const kv = new Map<string, KvVersion[]>();
  const caps: Record<string, string[]> = {};
  const requests: VaultRawRequest[] = [];
  const ok = (body: unknown): VaultRawResponse => ({ statusCode: 200, body });
  const absent: VaultRawResponse = { statusCode: 404, body: { errors: [] } };
  const handler = (req: VaultRawRequest): VaultRawResponse => {
    const url = new URL(req.uri);
    const p = decodeURIComponent(url.pathname.replace(/^\/v1\//, ''));
    const body = (req.json ?? {}) as Record<string, unknown>;
    if (p === 'sys/capabilities-self') {
      const paths = body['paths'] as string[];
      const data = Object.fromEntries(paths.map((x) => [x, caps[x] ?? ['root']]));
      return ok({ ...data, data });
    }
    const m = new RegExp(`^${mount}/(data|metadata|destroy|delete)/(.+)$`).exec(p);
    if (!m) return { statusCode: 404, body: { errors: ['1 error occurred:\n\t* unsupported path\n\n'] } };
    const [, op, path] = m as unknown as [string, string, string];
    const versions = kv.get(path);
    if (op === 'data' && req.method === 'GET') {
      if (!versions) return absent;
      const n = url.searchParams.get('version') ? Number(url.searchParams.get('version')) : versions.length;
      const v = versions[n - 1];
      if (!v || v.deleted || v.destroyed) return absent;
      return ok({ data: { data: v.data, metadata: { version: n, created_time: v.created, deletion_time: '', destroyed: false } } });
    }
    if (op === 'data') {
      const cas = (body['options'] as { cas?: number } | undefined)?.cas;
      const current = versions?.length ?? 0;
      if (cas !== undefined && cas !== current) return { statusCode: 400, body: { errors: ['check-and-set parameter did not match the current version'] } };
      const list = versions ?? [];
      list.push({ data: body['data'] as Record<string, string>, created: new Date().toISOString(), deleted: false, destroyed: false });
      kv.set(path, list);
      return ok({ data: { version: list.length, created_time: '', deletion_time: '', destroyed: false } });
    }
    if (op === 'metadata') {
      if (!versions) return absent;
      const vs = Object.fromEntries(
        versions.map((v, i) => [String(i + 1), { created_time: v.created, deletion_time: v.deleted ? '2000-01-01T00:00:00Z' : '', destroyed: v.destroyed }]),
      );
      return ok({ data: { current_version: versions.length, versions: vs } });
    }
    // destroy / delete: PUT/POST {versions}
    for (const n of (body['versions'] as number[]) ?? []) {
      const v = versions?.[n - 1];
      if (!v) continue;
      if (op === 'destroy') {
        v.destroyed = true;
        v.data = {};
      } else v.deleted = true;
    }
    return { statusCode: 204, body: '' };
  };
  const backend = createVaultBackend(
    { address: 'http://vault.test:8200', token: new Secret('fake-root-token-0123456789'), sources: { address: 'VAULT_ADDR', token: 'VAULT_TOKEN' } },
    {
      fakeHttp: async (req) => {
        requests.push(req);
        return handler(req);
      },
    },
  );
  return { backend, kv, caps, requests };
}

// ------------------------------------------------------------------------------------------------------------
// KMS
// ------------------------------------------------------------------------------------------------------------

export const KEY_ARN = 'arn:aws:kms:eu-west-1:123456789012:key/00000000-0000-4000-8000-000000000000';
export const OTHER_KEY_ARN = 'arn:aws:kms:eu-west-1:123456789012:key/11111111-1111-4111-8111-111111111111';
const aad = (ctx: Record<string, string>) => Buffer.from(JSON.stringify(Object.entries(ctx).sort(([a], [b]) => (a < b ? -1 : 1))));

export interface LocalKms extends KmsBackend {
  calls: string[];
  /** Contexts (JSON) Encrypt is denied for, as an IAM policy without that purpose would. */
  denied: Set<string>;
  enabled: boolean;
}

export function localKms(keys: Record<string, string> = { 'alias/krypton-engine-jwt': KEY_ARN, [KEY_ARN]: KEY_ARN, 'alias/other': OTHER_KEY_ARN, [OTHER_KEY_ARN]: OTHER_KEY_ARN }): LocalKms {
  const KEY = randomBytes(32);
  const calls: string[] = [];
  const denied = new Set<string>();
  const kms: LocalKms = {
    calls,
    denied,
    enabled: true,
    region: async () => ({ region: 'eu-west-1', source: 'test' }),
    async encrypt(keyId, plaintext, context, subject) {
      calls.push(`encrypt ${JSON.stringify(context)}`);
      if (plaintext.length > 4096) throw new KryptonError('E_INPUT', `${subject}: ${plaintext.length} bytes is over KMS Encrypt's limit of 4096 bytes`, { hint: 'h' });
      if (denied.has(JSON.stringify(context))) {
        throw awsError({ code: 'AccessDeniedException', message: 'User: arn:aws:iam::123456789012:user/krypton-admin is not authorized to perform: kms:Encrypt' }, { action: 'kms:Encrypt', subject, identity: "the operator's AWS identity" });
      }
      const iv = randomBytes(12);
      const c = createCipheriv('aes-256-gcm', KEY, iv).setAAD(aad(context));
      const ct = Buffer.concat([c.update(plaintext.reveal()), c.final()]);
      return { blob: Buffer.concat([iv, c.getAuthTag(), ct]), keyArn: keys[keyId] ?? KEY_ARN };
    },
    async decrypt(blob, context, subject) {
      calls.push(`decrypt ${JSON.stringify(context)}`);
      const b = Buffer.from(blob);
      try {
        const d = createDecipheriv('aes-256-gcm', KEY, b.subarray(0, 12)).setAAD(aad(context));
        d.setAuthTag(b.subarray(12, 28));
        return { plaintext: new Secret(Buffer.concat([d.update(b.subarray(28)), d.final()])), keyArn: KEY_ARN };
      } catch {
        throw awsError(
          { code: 'InvalidCiphertextException', message: '' },
          { action: 'kms:Decrypt', subject, context: Object.entries(context).map(([k, v]) => `${k}=${v}`).join(', '), identity: 'the operator' },
        );
      }
    },
    async describeKey(keyId) {
      calls.push(`describe ${keyId}`);
      const arn = keys[keyId];
      if (!arn) throw awsError({ code: 'NotFoundException', message: `Key '${keyId}' does not exist` }, { action: 'kms:DescribeKey', subject: `key ${keyId}`, keyId, identity: 'the operator' });
      return { arn, enabled: kms.enabled };
    },
  };
  return kms;
}

// ------------------------------------------------------------------------------------------------------------
// Secrets Manager
// ------------------------------------------------------------------------------------------------------------

interface SmVersion {
  id: string;
  value: string;
  stages: string[];
}
interface SmSecret {
  arn: string;
  kmsKeyId?: string;
  deletedDate?: string;
  tags: Record<string, string>;
  description: string;
  versions: SmVersion[];
}

export interface FakeSm extends SecretsManagerBackend {
  secrets: Map<string, SmSecret>;
  /** Stores a value with a VersionId of our choosing (e.g. a foreign UUID, or a bad value), as AWSCURRENT. */
  plant(name: string, value: string, versionId: string, kmsKeyId?: string): void;
}

export function fakeSm(): FakeSm {
  const secrets = new Map<string, SmSecret>();
  const conflict = (name: string, msg: string) =>
    awsError({ code: 'ResourceExistsException', message: msg }, { action: 'secretsmanager:PutSecretValue', subject: `secret ${name}`, identity: "the operator's AWS identity" });
  const addVersion = (name: string, s: SmSecret, value: string, id: string): void => {
    const existing = s.versions.find((v) => v.id === id);
    if (existing) {
      if (existing.value !== value) throw conflict(name, `A resource with the ID you requested already exists.`);
      return;
    }
    for (const v of s.versions) {
      v.stages = v.stages.filter((x) => x !== 'AWSPREVIOUS');
      if (v.stages.includes('AWSCURRENT')) v.stages = v.stages.filter((x) => x !== 'AWSCURRENT').concat('AWSPREVIOUS');
    }
    s.versions.push({ id, value, stages: ['AWSCURRENT'] });
  };
  const sm: FakeSm = {
    secrets,
    region: async () => ({ region: 'eu-west-1', source: 'test' }),
    async describe(name) {
      const s = secrets.get(name);
      if (!s) return undefined;
      const d: SecretDescription = {
        arn: s.arn,
        name,
        ...(s.kmsKeyId ? { kmsKeyId: s.kmsKeyId } : {}),
        ...(s.deletedDate ? { deletedDate: s.deletedDate } : {}),
        versions: Object.fromEntries(s.versions.filter((v) => v.stages.length).map((v) => [v.id, [...v.stages]])),
      };
      return d;
    },
    async get(name, versionId) {
      const s = secrets.get(name);
      const v = s?.versions.find((x) => (versionId ? x.id === versionId : x.stages.includes('AWSCURRENT')));
      return s && v ? { value: new Secret(v.value), versionId: v.id, arn: s.arn } : undefined;
    },
    async create(name, value, o) {
      if (secrets.has(name)) throw conflict(name, `The operation failed because the secret ${name} already exists.`);
      const s: SmSecret = { arn: `arn:aws:secretsmanager:eu-west-1:123456789012:secret:${name}-AbCdEf`, kmsKeyId: o.kmsKeyId, tags: o.tags, description: o.description, versions: [] };
      secrets.set(name, s);
      addVersion(name, s, value.revealText(), o.versionId);
      return { arn: s.arn, versionId: o.versionId };
    },
    async put(name, value, versionId) {
      const s = secrets.get(name);
      if (!s) throw awsError({ code: 'ResourceNotFoundException', message: 'not found' }, { action: 'secretsmanager:PutSecretValue', subject: `secret ${name}`, identity: 'op' });
      addVersion(name, s, value.revealText(), versionId);
      return { versionId };
    },
    async update(name, value, o) {
      const s = secrets.get(name);
      if (!s) throw awsError({ code: 'ResourceNotFoundException', message: 'not found' }, { action: 'secretsmanager:UpdateSecret', subject: `secret ${name}`, identity: 'op' });
      addVersion(name, s, value.revealText(), o.versionId);
      s.kmsKeyId = o.kmsKeyId;
      return { versionId: o.versionId };
    },
    async listVersions(name) {
      return (secrets.get(name)?.versions ?? []).map((v) => ({ versionId: v.id, stages: [...v.stages] }));
    },
    plant(name, value, versionId, kmsKeyId) {
      let s = secrets.get(name);
      if (!s) {
        s = { arn: `arn:aws:secretsmanager:eu-west-1:123456789012:secret:${name}-XyZxYz`, ...(kmsKeyId ? { kmsKeyId } : {}), tags: {}, description: '', versions: [] };
        secrets.set(name, s);
      }
      addVersion(name, s, value, versionId);
    },
  };
  return sm;
}
