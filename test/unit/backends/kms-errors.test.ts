/**
 * AWS errors in the operator's words (src/backends/aws.ts; the host-side fetch's failures through
 * src/backends/kms-store.ts `awsFetchFailure`, which the KMS and Secrets Manager stores share): from the aws CLI's stderr on a host
 * (samples captured from Debian's /usr/bin/aws 2.9 against the sandbox's moto) and from @aws-sdk v3 errors on
 * the laptop. Each names what failed, the context or the identity, and never a secret.
 */
import { describe, expect, it } from 'vitest';
import { awsError, faultFromCliStderr, faultFromSdk, resolveAwsSettings, translateSdkError, type AwsCallContext } from '../../../src/backends/aws.ts';
import { awsFetchFailure } from '../../../src/backends/kms-store.ts';
import { arnRegion } from '../../../src/backends/kms.ts';
import { KryptonError } from '../../../src/core/errors.ts';
import { FETCH_EXIT } from '../../../src/model/host-fetch.ts';

const CLI = {
  context: '\nAn error occurred (InvalidCiphertextException) when calling the Decrypt operation: \n',
  deniedJson:
    '\nAn error occurred (AccessDeniedException) when calling the Decrypt operation: User: arn:aws:iam::123456789012:user/krypton-node-473374-val-3 is not authorized to perform: kms:Decrypt on resource: arn:aws:kms:eu-west-1:123456789012:key/191ce326-4d98-4af0-9cf8-2d8e4b5be7b3 because no identity-based policy allows the kms:Decrypt action\n',
  deniedXml:
    '\nAn error occurred (403) when calling the Encrypt operation: <?xml version="1.0" encoding="utf-8"?>\n<ErrorResponse><Errors><Error><Code>AccessDenied</Code><Message>User: arn:aws:iam::123456789012:user/node1 is not authorized to perform: kms:Encrypt</Message><Type>Sender</Type></Error></Errors></ErrorResponse>\n',
  regionGone: '\nAn error occurred (AccessDeniedException) when calling the Decrypt operation: The ciphertext refers to a customer master key that does not exist, does not exist in this region, or you are not allowed to access.\n',
  noCreds: '\nUnable to locate credentials. You can configure credentials by running "aws configure".\n',
  noRegion: '\nYou must specify a region. You can also configure your region by running "aws configure".\n',
  noEndpoint: '\nCould not connect to the endpoint URL: "http://127.0.0.1:15999/"\n',
  noBlob: '\nError parsing parameter \'--ciphertext-blob\': Unable to load paramfile fileb:///opt/krypton/secrets/jwt.hex.enc: [Errno 2] No such file or directory: \'/opt/krypton/secrets/jwt.hex.enc\'\n',
  smMissing: '\nAn error occurred (ResourceNotFoundException) when calling the GetSecretValue operation: Secrets Manager can\'t find the specified secret.\n',
};

const hostCtx = {
  backend: 'kms' as 'kms' | 'secrets-manager',
  subject: 'the blob /opt/krypton/secrets/jwt.hex.enc (v1)',
  keyId: 'alias/krypton-engine-jwt' as string | undefined,
  context: { purpose: 'krypton-engine-jwt', network: '47337' } as Record<string, string> | undefined,
  region: 'eu-west-1',
  endpointUrl: 'http://198.18.0.1:5000' as string | undefined,
};
/** A failed host-side fetch on `host` (exit `code`, the host's stderr), as the stores report it. */
const fetchFailure = (c: typeof hostCtx, code: number, stderr: string, host: string) =>
  awsFetchFailure(
    { backend: c.backend, host, subject: c.subject, ...(c.keyId ? { keyId: c.keyId } : {}), ...(c.context ? { context: c.context } : {}), target: { region: c.region, ...(c.endpointUrl ? { endpointUrl: c.endpointUrl } : {}) } },
    code,
    stderr,
  );

describe('aws CLI stderr on a host', () => {
  it('InvalidCiphertextException -> E_KMS_CONTEXT naming the context expected', () => {
    const e = fetchFailure(hostCtx, FETCH_EXIT.aws, CLI.context, 'val-2');
    expect(e.code).toBe('E_KMS_CONTEXT');
    expect(e.message).toBe(
      'val-2: the blob /opt/krypton/secrets/jwt.hex.enc (v1): the blob was encrypted with a different key or encryption context; expected purpose=krypton-engine-jwt, network=47337 under alias/krypton-engine-jwt',
    );
    expect(e.hint).toMatch(/bound to its purpose, network/);
  });

  it('AccessDenied (JSON or XML body) -> E_KMS_DENIED naming the action and the identity', () => {
    const e = fetchFailure(hostCtx, FETCH_EXIT.aws, CLI.deniedJson, 'val-3');
    expect(e.code).toBe('E_KMS_DENIED');
    expect(e.message).toContain("AWS refused kms:Decrypt for val-3's AWS identity (arn:aws:iam::123456789012:user/krypton-node-473374-val-3)");
    expect(e.hint).toContain('val-3/iam-policy.json');
    const x = faultFromCliStderr(CLI.deniedXml)!;
    expect(x).toMatchObject({ code: 'AccessDenied', principal: 'arn:aws:iam::123456789012:user/node1', deniedAction: 'kms:Encrypt' });
  });

  it('a key that does not exist in the region says so', () => {
    const e = fetchFailure({ ...hostCtx, region: 'us-east-1' }, FETCH_EXIT.aws, CLI.regionGone, 'val-1');
    expect(e.code).toBe('E_KMS_DENIED');
    expect(e.message).toMatch(/the key may not exist in region us-east-1/);
  });

  it("the CLI's own failures: no credentials, no region, endpoint unreachable, blob missing", () => {
    expect(fetchFailure(hostCtx, FETCH_EXIT.aws, CLI.noCreds, 'val-1')).toMatchObject({ code: 'E_KMS_CONFIG', message: expect.stringMatching(/val-1's AWS identity has no AWS credentials/) });
    expect(fetchFailure(hostCtx, FETCH_EXIT.aws, CLI.noCreds, 'val-1').hint).toMatch(/kms.decrypt: operator/);
    expect(fetchFailure(hostCtx, FETCH_EXIT.aws, CLI.noRegion, 'val-1').code).toBe('E_KMS_CONFIG');
    expect(fetchFailure(hostCtx, FETCH_EXIT.aws, CLI.noEndpoint, 'val-1')).toMatchObject({ code: 'E_KMS', message: expect.stringMatching(/cannot reach KMS .* endpoint http:\/\/198.18.0.1:5000/) });
    expect(fetchFailure(hostCtx, FETCH_EXIT.aws, CLI.noBlob, 'val-1')).toMatchObject({ code: 'E_KMS_CONFIG', message: expect.stringMatching(/missing on the host/) });
    expect(fetchFailure({ ...hostCtx, backend: 'secrets-manager', subject: 'secret krypton/473374/engine-jwt (v1)', context: undefined }, FETCH_EXIT.aws, CLI.smMissing, 'val-1').code).toBe('E_KMS_CONFIG');
  });

  it("the fetch script's own exit codes", () => {
    expect(fetchFailure(hostCtx, FETCH_EXIT.notTmpfs, 'krypton-secrets: /run/krypton-secrets is not a tmpfs (ext2/ext3); nothing written', 'val-1').code).toBe('E_PLAN_CONFLICT');
    expect(fetchFailure(hostCtx, FETCH_EXIT.badValue, 'krypton-secrets: the value is not exactly 64 lowercase hex characters; nothing written', 'val-1').code).toBe('E_INPUT');
    expect(fetchFailure(hostCtx, FETCH_EXIT.fingerprint, "krypton-secrets: the value's SHA-256 is not the expected …", 'val-1').code).toBe('E_PLAN_CONFLICT');
    expect(fetchFailure(hostCtx, FETCH_EXIT.noPython, 'krypton-secrets: python3 is missing on this host', 'val-1')).toMatchObject({ code: 'E_KMS_CONFIG', hint: expect.stringMatching(/install python3/) });
    expect(fetchFailure(hostCtx, FETCH_EXIT.target, 'krypton-secrets: /run/krypton-secrets/jwt.hex is a symlink or a directory; nothing written', 'val-1').code).toBe('E_PLAN_CONFLICT');
    expect(fetchFailure(hostCtx, 127, 'sh: 1: /usr/bin/aws: not found', 'val-1').code).toBe('E_SSH_EXEC');
    expect(fetchFailure(hostCtx, FETCH_EXIT.aws, 'something the CLI said', 'val-1')).toMatchObject({ code: 'E_KMS', message: 'val-1: the blob /opt/krypton/secrets/jwt.hex.enc (v1): the aws CLI failed: something the CLI said' });
  });

  it('never repeats a 32-byte hex value or an access key that reached stderr', () => {
    const hex = 'ab'.repeat(32);
    const e = fetchFailure(hostCtx, FETCH_EXIT.aws, `An error occurred (Weird) when calling the Decrypt operation: ${hex} AKIAABCDEFGHIJKLMNOP`, 'val-1');
    expect(JSON.stringify(e.toJSON())).not.toContain(hex);
    expect(e.message).not.toContain('AKIAABCDEFGHIJKLMNOP');
  });
});

describe('@aws-sdk errors on the laptop', () => {
  const ctx: AwsCallContext = { action: 'kms:Decrypt', subject: 'the blob blobs/47337/engine-jwt/v1.enc', keyId: 'alias/krypton-engine-jwt', context: 'purpose=krypton-engine-jwt, network=47337', region: 'eu-west-1', regionSource: 'inventory kms.region', identity: "the operator's AWS identity" };
  const sdkErr = (name: string, message: string, extra: Record<string, unknown> = {}) => Object.assign(new Error(message), { name, $metadata: { httpStatusCode: 400 }, ...extra });

  it('InvalidCiphertextException -> E_KMS_CONTEXT', () => {
    const e = translateSdkError(sdkErr('InvalidCiphertextException', 'UnknownError'), ctx);
    expect(e.code).toBe('E_KMS_CONTEXT');
    expect(e.message).toMatch(/^the blob blobs\/47337\/engine-jwt\/v1.enc: the blob was encrypted with a different key or encryption context; expected purpose=krypton-engine-jwt, network=47337/);
  });

  it('NotFoundException for an alias -> names the region and where it came from', () => {
    const e = translateSdkError(sdkErr('NotFoundException', 'Alias arn:aws:kms:us-east-1:123456789012:alias/krypton-engine-jwt is not found.'), { ...ctx, region: 'us-east-1', regionSource: 'AWS_REGION' });
    expect(e.code).toBe('E_KMS_CONFIG');
    expect(e.message).toMatch(/not found in region us-east-1 \(from AWS_REGION\)/);
  });

  it("moto's XML AccessDenied that the SDK cannot parse is still an access denial", () => {
    const f = faultFromSdk(Object.assign(new SyntaxError('Unexpected token'), { $metadata: { httpStatusCode: 403 }, $response: { statusCode: 403, body: '<ErrorResponse><Errors><Error><Code>AccessDenied</Code><Message>User: arn:aws:iam::1:user/x is not authorized to perform: kms:Decrypt</Message></Error></Errors></ErrorResponse>' } }));
    expect(f).toMatchObject({ code: 'AccessDenied', principal: 'arn:aws:iam::1:user/x', deniedAction: 'kms:Decrypt' });
    expect(awsError(f, ctx).code).toBe('E_KMS_DENIED');
  });

  it('no credentials / no region / connection refused', () => {
    expect(translateSdkError(Object.assign(new Error('Could not load credentials from any providers'), { name: 'CredentialsProviderError' }), ctx).code).toBe('E_KMS_CONFIG');
    expect(translateSdkError(new Error('Region is missing'), ctx).code).toBe('E_KMS_CONFIG');
    expect(translateSdkError(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:15999'), { code: 'ECONNREFUSED' }), ctx).code).toBe('E_KMS');
  });

  it('KryptonErrors pass through; causes are scrubbed plain errors', () => {
    const k = new KryptonError('E_INPUT', 'x', { hint: 'y' });
    expect(translateSdkError(k, ctx)).toBe(k);
    const e = translateSdkError(sdkErr('InvalidCiphertextException', 'UnknownError', { $response: { headers: { authorization: 'AWS4-HMAC-SHA256 Credential=AKIAABCDEFGHIJKLMNOP/...' } } }), ctx);
    expect(JSON.stringify(e.cause)).not.toContain('AKIA');
    expect(Object.keys(e.cause as object)).not.toContain('$response');
  });
});

describe('region and endpoint, as the aws CLI finds them', () => {
  it('inventory kms.region first, then AWS_REGION, then AWS_DEFAULT_REGION, else the profile', () => {
    const kms = { keyId: 'alias/k', decrypt: 'host' as const, perNode: false, blobDir: '/x' };
    expect(resolveAwsSettings({ ...kms, region: 'eu-west-1' }, { AWS_REGION: 'us-east-1' })).toMatchObject({ region: 'eu-west-1', regionSource: 'inventory kms.region' });
    expect(resolveAwsSettings(kms, { AWS_REGION: 'us-east-1', AWS_DEFAULT_REGION: 'us-west-2' })).toMatchObject({ region: 'us-east-1', regionSource: 'AWS_REGION' });
    expect(resolveAwsSettings(kms, { AWS_DEFAULT_REGION: 'us-west-2' })).toMatchObject({ region: 'us-west-2', regionSource: 'AWS_DEFAULT_REGION' });
    expect(resolveAwsSettings(kms, { AWS_PROFILE: 'ops' })).toMatchObject({ region: undefined, profile: 'ops', regionSource: 'the shared config file (profile ops)' });
    expect(resolveAwsSettings({ ...kms, endpointUrl: 'http://198.18.0.1:5000' }, {})).toMatchObject({ endpoint: 'http://198.18.0.1:5000', endpointSource: 'inventory kms.endpoint_url' });
  });

  it('reads the region of a key ARN', () => {
    expect(arnRegion('arn:aws:kms:us-east-2:111122223333:key/1234')).toBe('us-east-2');
    expect(arnRegion('alias/krypton-engine-jwt')).toBeUndefined();
  });
});
