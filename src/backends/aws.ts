/**
 * What the KMS and Secrets Manager backends share: where requests go (region and endpoint, found the way the
 * AWS CLI finds them), the SDK client options, and the translation of AWS errors — from the SDK on the laptop
 * and from the aws CLI's stderr on a host — into KryptonErrors in the operator's words.
 *
 * Credentials are never handled here: the SDK's default chain finds them as the AWS CLI does (environment,
 * `AWS_PROFILE` and the shared files, SSO, process, web identity, ECS/IMDS). Region: `kms.region` in the
 * inventory (the key's region is part of the fleet's description), else `AWS_REGION`, else
 * `AWS_DEFAULT_REGION` (the CLI reads it; the JS SDK does not), else the profile's `region`. Endpoint:
 * `kms.endpoint_url`, else the SDK's own `AWS_ENDPOINT_URL_<SERVICE>` / `AWS_ENDPOINT_URL`.
 */
import { KryptonError, scrubText, type ErrorCode } from '../core/errors.ts';
import type { KmsSettings } from '../model/inventory.ts';

/** Region and endpoint as resolved from the inventory and the environment (credentials stay with the SDK). */
export interface AwsSettings {
  /** Undefined: the SDK takes it from the shared config file (profile `region`). */
  region?: string;
  regionSource: string;
  endpoint?: string;
  endpointSource?: string;
  profile?: string;
}

export function resolveAwsSettings(kms: KmsSettings | undefined, env: NodeJS.ProcessEnv): AwsSettings {
  const profile = env['AWS_PROFILE']?.trim() || undefined;
  let region: string | undefined;
  let regionSource = `the shared config file (profile ${profile ?? 'default'})`;
  if (kms?.region) [region, regionSource] = [kms.region, 'inventory kms.region'];
  else if (env['AWS_REGION']?.trim()) [region, regionSource] = [env['AWS_REGION'].trim(), 'AWS_REGION'];
  else if (env['AWS_DEFAULT_REGION']?.trim()) [region, regionSource] = [env['AWS_DEFAULT_REGION'].trim(), 'AWS_DEFAULT_REGION'];
  return {
    region,
    regionSource,
    ...(kms?.endpointUrl ? { endpoint: kms.endpointUrl, endpointSource: 'inventory kms.endpoint_url' } : {}),
    ...(profile ? { profile } : {}),
  };
}

/**
 * Options for an @aws-sdk v3 client: region/endpoint when resolved here, bounded timeouts, no logger.
 * The pinned SDK supports Node 20; its notice that later SDK versions will need Node 22 is not for operators.
 */
export function sdkClientOptions(s: AwsSettings): Record<string, unknown> {
  process.env['AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED'] ??= 'true';
  return {
    ...(s.region ? { region: s.region } : {}),
    ...(s.endpoint ? { endpoint: s.endpoint } : {}),
    ...(s.profile ? { profile: s.profile } : {}),
    maxAttempts: 3,
    requestHandler: { connectionTimeout: 5000, requestTimeout: 20_000 },
  };
}

/** What an AWS call was doing, for messages. */
export interface AwsCallContext {
  /** IAM action, e.g. `kms:Decrypt`. */
  action: string;
  /** What it was about, e.g. `the blob blobs/473374/engine-jwt/v2.enc` or `secret krypton/473374/engine-jwt`. */
  subject: string;
  /** The key as the inventory names it. */
  keyId?: string;
  /** Expected encryption context, e.g. `purpose=krypton-engine-jwt, network=473374`. */
  context?: string;
  region?: string;
  regionSource?: string;
  endpoint?: string;
  /** Whose identity: `the operator's AWS identity` / `val-2's AWS identity`. */
  identity: string;
  /** Where the admin/node IAM policy is described (hint). */
  policyHint?: string;
}

/** An AWS error reduced to what we need: its code, message and (for access denied) who and what. */
export interface AwsFault {
  code: string;
  message: string;
  httpStatus?: number;
  /** `arn:aws:iam::…:user/x` from "User: <arn> is not authorized to perform: <action>". */
  principal?: string;
  deniedAction?: string;
}

const DENIED = /User: (\S+) is not authorized to perform: ([A-Za-z0-9-]+:[A-Za-z0-9]+)/;

/** Extracts code/message/principal from an @aws-sdk v3 error (also from an XML body the SDK could not parse). */
export function faultFromSdk(err: unknown): AwsFault {
  const e = err as { name?: string; message?: string; Code?: string; code?: string; $metadata?: { httpStatusCode?: number }; $response?: { statusCode?: number; body?: unknown } };
  let code = typeof e?.name === 'string' ? e.name : 'Error';
  let message = typeof e?.message === 'string' ? e.message : String(err);
  const httpStatus = e?.$metadata?.httpStatusCode ?? e?.$response?.statusCode;
  const raw = typeof e?.$response?.body === 'string' ? e.$response.body : '';
  const xmlCode = /<Code>([^<]+)<\/Code>/.exec(raw || message)?.[1];
  if (xmlCode && (code === 'SyntaxError' || code === 'Error' || /^\d+$/.test(code))) {
    code = xmlCode;
    message = /<Message>([^<]*)<\/Message>/.exec(raw || message)?.[1] ?? message;
  } else if (code === 'SyntaxError' && httpStatus === 403) {
    code = 'AccessDenied';
  }
  if (typeof e?.code === 'string' && ['ECONNREFUSED', 'ENOTFOUND', 'ETIMEDOUT', 'ECONNRESET', 'EAI_AGAIN', 'EHOSTUNREACH'].includes(e.code)) code = e.code;
  const d = DENIED.exec(message);
  return { code, message: scrubText(message).slice(0, 500), httpStatus, principal: d?.[1], deniedAction: d?.[2] };
}

/**
 * Extracts the fault from the aws CLI's stderr: `An error occurred (<Code>) when calling the <Op> operation:
 * <message>` (a numeric code with an XML body from some endpoints), or one of the CLI's own messages
 * (no credentials, no region, endpoint unreachable).
 */
export function faultFromCliStderr(stderr: string): AwsFault | undefined {
  const text = stderr.trim();
  const m = /An error occurred \(([^)]+)\) when calling the (\w+) operation(?: \(reached max retries: \d+\))?: ?([\s\S]*)/.exec(text);
  if (m) {
    let code = m[1]!;
    let message = (m[3] ?? '').trim();
    const xmlCode = /<Code>([^<]+)<\/Code>/.exec(message)?.[1];
    if (xmlCode) {
      code = xmlCode;
      message = /<Message>([^<]*)<\/Message>/.exec(message)?.[1] ?? message;
    }
    const d = DENIED.exec(message);
    return { code, message: scrubText(message.split('\n')[0] ?? '').slice(0, 500), principal: d?.[1], deniedAction: d?.[2] };
  }
  if (/Unable to locate credentials/i.test(text)) return { code: 'NoCredentials', message: 'Unable to locate credentials' };
  if (/You must specify a region/i.test(text)) return { code: 'NoRegion', message: 'You must specify a region' };
  const ep = /Could not connect to the endpoint URL: "?([^"\s]+)"?/.exec(text);
  if (ep) return { code: 'EndpointUnreachable', message: `Could not connect to the endpoint URL ${ep[1]}` };
  if (/Unable to load paramfile|No such file or directory/i.test(text)) return { code: 'NoBlob', message: scrubText(text.split('\n').pop() ?? '').slice(0, 300) };
  return undefined;
}

function where(c: AwsCallContext): string {
  const r = c.region ? `region ${c.region}${c.regionSource ? ` (from ${c.regionSource})` : ''}` : 'no region';
  return c.endpoint ? `${r}, endpoint ${c.endpoint}` : r;
}

/** A KryptonError in the operator's words for an AWS fault during `c`. */
export function awsError(f: AwsFault, c: AwsCallContext): KryptonError {
  const mk = (code: ErrorCode, message: string, hint: string) => new KryptonError(code, message, { hint, cause: Object.assign(new Error(f.message), { name: f.code }) });
  switch (f.code) {
    case 'InvalidCiphertextException':
      return mk(
        'E_KMS_CONTEXT',
        `${c.subject}: the blob was encrypted with a different key or encryption context; expected ${c.context ?? 'the documented context'}${c.keyId ? ` under ${c.keyId}` : ''}`,
        'a blob is bound to its purpose, network (and node): it cannot be used for another one — re-create it for this inventory instead of copying it',
      );
    case 'AccessDeniedException':
    case 'AccessDenied':
    case 'AccessDeniedError': {
      const who = f.principal ? `${c.identity} (${f.principal})` : c.identity;
      const action = f.deniedAction ?? c.action;
      const inRegion = /does not exist in this region|not allowed to access/i.test(f.message) ? ` — the key may not exist in ${where(c)}` : '';
      return mk(
        'E_KMS_DENIED',
        `AWS refused ${action} for ${who} on ${c.subject}${c.context ? ` (context ${c.context})` : ''}${inRegion}`,
        c.policyHint ?? `allow ${action} for that identity (krypton-secrets render writes least-privilege IAM policies), and check the region`,
      );
    }
    case 'NotFoundException':
      return mk(
        'E_KMS_CONFIG',
        `KMS key ${c.keyId ?? '(unnamed)'} was not found in ${where(c)}: ${f.message}`,
        'check kms.key_id and the region: a key and its aliases exist in one region only (set kms.region in the inventory or AWS_REGION)',
      );
    case 'ResourceNotFoundException':
      return mk('E_KMS_CONFIG', `${c.subject} does not exist in ${where(c)}`, 'run the provision playbook (it creates it), or check the region');
    case 'DisabledException':
    case 'KMSInvalidStateException':
      return mk('E_KMS_CONFIG', `KMS key ${c.keyId ?? ''} cannot be used now (${f.code}): ${f.message}`, 'enable the key (or cancel its deletion) in KMS');
    case 'IncorrectKeyException':
      return mk('E_KMS_CONTEXT', `${c.subject}: the blob was encrypted under another KMS key than ${c.keyId ?? 'the one named'}`, 'use the key the blob was made with, or re-create the blob');
    case 'InvalidKeyUsageException':
      return mk('E_KMS_CONFIG', `KMS key ${c.keyId ?? ''} is not a symmetric ENCRYPT_DECRYPT key: ${f.message}`, 'krypton-secrets needs a symmetric encryption key (SYMMETRIC_DEFAULT)');
    case 'ResourceExistsException':
      return mk('E_PLAN_CONFLICT', `${c.subject}: that version was already written by someone else (${f.message})`, 'another operator changed it concurrently: run again to see the current state');
    case 'DecryptionFailure':
      return mk('E_KMS_DENIED', `Secrets Manager could not decrypt ${c.subject} with its KMS key for ${c.identity}: ${f.message}`, 'the identity needs kms:Decrypt on the secret\'s key via Secrets Manager');
    case 'InvalidRequestException':
      return mk('E_KMS', `${c.subject}: ${f.message}`, /deletion/i.test(f.message) ? 'restore the secret (aws secretsmanager restore-secret) or choose another name' : 'check the request named above');
    case 'CredentialsProviderError':
    case 'NoCredentials':
      return mk(
        'E_KMS_CONFIG',
        `${c.identity} has no AWS credentials (${c.action} on ${c.subject})`,
        c.identity.startsWith('the operator')
          ? 'set AWS_PROFILE (or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, SSO login) the way the aws CLI finds them'
          : 'give the host an AWS identity (instance profile or ~/.aws/credentials of the user krypton-secrets logs in as), or set kms.decrypt: operator',
      );
    case 'NoRegion':
      return mk('E_KMS_CONFIG', `no AWS region for ${c.action} (${c.identity})`, 'set kms.region in the inventory (or AWS_REGION)');
    case 'EndpointUnreachable':
    case 'ECONNREFUSED':
    case 'ENOTFOUND':
    case 'ETIMEDOUT':
    case 'ECONNRESET':
    case 'EAI_AGAIN':
    case 'EHOSTUNREACH':
    case 'TimeoutError':
      return mk('E_KMS', `cannot reach ${c.action.split(':')[0] === 'secretsmanager' ? 'Secrets Manager' : 'KMS'} for ${c.identity} in ${where(c)}: ${f.message}`, 'check kms.endpoint_url / the network path to AWS from there');
    case 'UnrecognizedClientException':
    case 'InvalidClientTokenId':
    case 'InvalidSignatureException':
    case 'SignatureDoesNotMatch':
    case 'ExpiredTokenException':
      return mk('E_KMS_DENIED', `AWS did not accept the credentials of ${c.identity} (${f.code}) for ${c.action}`, 'refresh the credentials (aws sso login, new access key) and check the clock');
    case 'ThrottlingException':
    case 'Throttling':
    case 'TooManyRequestsException':
    case 'RequestLimitExceeded':
      // The SDK (and the hosts' aws CLI) already retried with backoff: the quota stayed exceeded for that long.
      return mk(
        'E_KMS',
        `AWS throttled ${c.action} on ${c.subject} for ${c.identity} (${f.code}: ${f.message}), and its retries with backoff did not get through`,
        'run again in a minute (nothing was written); lower --concurrency, or raise the account\'s KMS request quota for this region',
      );
    case 'NoBlob':
      return mk('E_KMS_CONFIG', `${c.subject} is missing on the host: ${f.message}`, 'run kms.put-blob first (apply playbooks/provision.yml)');
    default:
      if (f.message === 'Region is missing') return awsError({ ...f, code: 'NoRegion' }, c);
      return mk('E_KMS', `${c.action} on ${c.subject} failed for ${c.identity}: ${f.code}: ${f.message}`, 'see the AWS error above; run with --debug for details');
  }
}

/** Translates anything an @aws-sdk call threw (KryptonErrors pass through). */
export function translateSdkError(err: unknown, c: AwsCallContext): KryptonError {
  if (err instanceof KryptonError) return err;
  return awsError(faultFromSdk(err), c);
}
