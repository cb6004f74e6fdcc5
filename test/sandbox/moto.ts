/**
 * The sandbox's AWS: moto (`moto[server]` in the project venv) on the bridge address, so this machine and
 * every host reach it at http://198.18.0.1:5000, with IAM enforcement on (see moto-iam.py for what the
 * wrapper adds to moto's own enforcement: resource ARNs, encryption-context conditions, `?` wildcards).
 *
 * Bring-up, while moto still accepts unauthenticated calls (its default `INITIAL_NO_AUTH_ACTION_COUNT` is
 * infinite): one symmetric CMK with the alias `alias/krypton-engine-jwt`; IAM users — `krypton-sandbox-root`
 * (everything, for tests that rearrange IAM), `krypton-admin` (the operator: the admin policies
 * `krypton-secrets render` writes, for both backends and for testnet 473374 and mainnet 47337) and one
 * `krypton-node-<network>-<host>` per node carrying exactly the node policy render writes for the sandbox's
 * backend (kms: only kms:Decrypt under its context; secrets-manager: only GetSecretValue on its secret). Then
 * POST /moto-api/reset-auth with 0: from then on every request must be signed by one of those keys and
 * allowed by its policies.
 */
import { spawn } from 'node:child_process';
import { chmodSync, closeSync, mkdirSync, openSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseInventory } from '../../src/inventory/loader.ts';
import type { Inventory } from '../../src/model/inventory.ts';
import { renderAdminIamPolicy, renderCosignerIamPolicy, renderNodeIamPolicy, type IamRenderOptions } from '../../src/render/iam-policy.ts';
import { BRIDGE_ADDRESS, NETWORK_ID, SANDBOX_SRC } from './layout.ts';
import { SandboxError, logTail, waitFor } from './proc.ts';

export const MOTO_PORT = 5000;
export const MOTO_ADDRESS = `http://${BRIDGE_ADDRESS}:${MOTO_PORT}`;
export const AWS_REGION = 'eu-west-1';
/** moto's default account. */
export const AWS_ACCOUNT = '123456789012';
export const KMS_KEY_ALIAS = 'alias/krypton-engine-jwt';
/** argv substrings that identify our moto server (teardown finds it by them). */
export const MOTO_MATCH = ['moto-iam.py', BRIDGE_ADDRESS];
const MOTO_SCRIPT = join(SANDBOX_SRC, 'moto-iam.py');

export interface AwsKey {
  user: string;
  arn: string;
  accessKeyId: string;
  secretAccessKey: string;
}

/** The sandbox's AWS, as `up` made it (saved in state.json; the secret keys are sandbox-only). */
export interface SandboxAws {
  endpoint: string;
  region: string;
  accountId: string;
  keyAlias: string;
  keyArn: string;
  /** Full access (IAM included), for tests that rearrange identities. */
  root: AwsKey;
  /** The operator's identity (its keys are in <dir>/env). */
  admin: AwsKey;
  /** Each node's identity (its keys are in the host's /root/.aws/credentials). */
  hosts: Record<string, AwsKey>;
  pid: number;
}

/** Spawns the moto server (detached, log in <dir>/moto/server.log); returns its pid without waiting. */
export function spawnMoto(dir: string, venvBin: string): { pid: number; log: string; exited: () => string | undefined } {
  const home = join(dir, 'moto');
  mkdirSync(home, { recursive: true, mode: 0o700 });
  const log = join(home, 'server.log');
  const fd = openSync(log, 'a', 0o600);
  const child = spawn(join(venvBin, 'python'), [MOTO_SCRIPT, '-H', BRIDGE_ADDRESS, '-p', String(MOTO_PORT)], {
    cwd: home,
    detached: true,
    stdio: ['ignore', fd, fd],
    // A clean env: no AWS_* from the caller; moto's default INITIAL_NO_AUTH_ACTION_COUNT (infinite) until bring-up resets it.
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: home, PYTHONUNBUFFERED: '1' },
  });
  closeSync(fd);
  let exited: string | undefined;
  child.on('exit', (code, signal) => (exited = signal ?? `code ${code}`));
  child.on('error', (e) => (exited = e.message));
  child.unref();
  if (!child.pid) throw new SandboxError('cannot start the moto server');
  return { pid: child.pid, log, exited: () => exited };
}

/** A SigV4-looking Authorization header naming service and region: moto routes on it (no signature check before auth is on). */
function routeHeader(service: string, region: string): string {
  return `AWS4-HMAC-SHA256 Credential=AKIAKRYPTONSANDBOXXX/20250101/${region}/${service}/aws4_request, SignedHeaders=host, Signature=0`;
}

async function iam(params: Record<string, string>): Promise<string> {
  const res = await fetch(`${MOTO_ADDRESS}/`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: routeHeader('iam', 'us-east-1') },
    body: new URLSearchParams({ ...params, Version: '2010-05-08' }),
    signal: AbortSignal.timeout(10_000),
  });
  const text = await res.text();
  if (res.status !== 200) throw new SandboxError(`moto IAM ${params['Action']} failed: HTTP ${res.status} ${text.slice(0, 300)}`);
  return text;
}

async function kms(target: string, body: Record<string, unknown>): Promise<Record<string, unknown>> {
  const res = await fetch(`${MOTO_ADDRESS}/`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-amz-json-1.1', 'x-amz-target': `TrentService.${target}`, authorization: routeHeader('kms', AWS_REGION) },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(10_000),
  });
  const text = await res.text();
  if (res.status !== 200) throw new SandboxError(`moto KMS ${target} failed: HTTP ${res.status} ${text.slice(0, 300)}`);
  return text ? (JSON.parse(text) as Record<string, unknown>) : {};
}

const xml = (text: string, tag: string): string => {
  const v = new RegExp(`<${tag}>([^<]*)</${tag}>`).exec(text)?.[1];
  if (!v) throw new SandboxError(`moto IAM answer without <${tag}>: ${text.slice(0, 200)}`);
  return v;
};

async function user(name: string, policies: Record<string, unknown>): Promise<AwsKey> {
  const arn = xml(await iam({ Action: 'CreateUser', UserName: name }), 'Arn');
  const key = await iam({ Action: 'CreateAccessKey', UserName: name });
  for (const [policyName, doc] of Object.entries(policies)) {
    await iam({ Action: 'PutUserPolicy', UserName: name, PolicyName: policyName, PolicyDocument: JSON.stringify(doc) });
  }
  return { user: name, arn, accessKeyId: xml(key, 'AccessKeyId'), secretAccessKey: xml(key, 'SecretAccessKey') };
}

/** The sandbox inventory's shape for rendering policies (network, backend, kms block), without hosts' details. */
/** The inventory the identities' policies are rendered from: the sandbox's nodes (with env-secrets, as its inventory has) and cosigners. */
function policyInventory(network: string, backend: 'kms' | 'secrets-manager', nodes: string[] = ['val-1'], cosigners: string[] = []): Inventory {
  return parseInventory(
    '/sandbox/policy-inventory.yml',
    [
      `network: "${network}"`,
      `backend: ${backend}`,
      'kms:',
      `  key_id: ${KMS_KEY_ALIAS}`,
      `  region: ${AWS_REGION}`,
      'defaults:',
      '  env: { services: [el, cl] }',
      'nodes:',
      ...nodes.map((n) => `  ${n}: { role: validator, address: ${n}.sandbox }`),
      ...(cosigners.length
        ? ['cosigners:', ...cosigners.map((c, i) => `  ${c}: { shard_id: ${i + 1}, key_dir: /opt/horcrux/keys, address: ${c}.sandbox }`), 'horcrux:', `  threshold: ${Math.floor(cosigners.length / 2) + 1}`]
        : []),
      '',
    ].join('\n'),
  );
}

/** Waits for moto, creates the CMK and the identities, then turns IAM enforcement on. */
export async function bootstrapMoto(
  server: { log: string; exited: () => string | undefined; pid: number },
  nodes: string[],
  backend: 'kms' | 'secrets-manager',
  cosigners: string[] = [],
): Promise<SandboxAws> {
  await waitFor(
    `moto at ${MOTO_ADDRESS}`,
    async () => {
      const gone = server.exited();
      if (gone) throw new SandboxError(`moto server exited (${gone})${logTail(server.log)}`);
      try {
        const res = await fetch(`${MOTO_ADDRESS}/moto-api/data.json`, { signal: AbortSignal.timeout(500) });
        await res.arrayBuffer();
        return res.status === 200;
      } catch {
        return false;
      }
    },
    { timeoutMs: 30_000, intervalMs: 50 },
  );
  const created = await kms('CreateKey', { Description: 'krypton-secrets sandbox CMK (Engine-API JWT)', KeySpec: 'SYMMETRIC_DEFAULT', KeyUsage: 'ENCRYPT_DECRYPT' });
  const meta = created['KeyMetadata'] as { KeyId: string; Arn: string };
  await kms('CreateAlias', { AliasName: KMS_KEY_ALIAS, TargetKeyId: meta.KeyId });
  const o: IamRenderOptions = { keyArn: meta.Arn, accountId: AWS_ACCOUNT, region: AWS_REGION };

  const root = await user('krypton-sandbox-root', { everything: { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: '*', Resource: '*' }] } });
  const adminPolicies: Record<string, unknown> = {};
  for (const net of [NETWORK_ID, '47337']) {
    for (const b of ['kms', 'secrets-manager'] as const) adminPolicies[`krypton-admin-${b}-${net}`] = renderAdminIamPolicy(policyInventory(net, b), o);
  }
  const admin = await user('krypton-admin', adminPolicies);
  const inv = policyInventory(NETWORK_ID, backend, nodes.length ? nodes : ['val-1'], backend === 'kms' ? cosigners : []);
  const hosts: Record<string, AwsKey> = {};
  for (const n of nodes) hosts[n] = await user(`krypton-node-${NETWORK_ID}-${n}`, { [`krypton-node-${backend}`]: renderNodeIamPolicy(inv, n, o) });
  // Each cosigner may decrypt only its own Horcrux blobs (the policy `render` writes for it).
  for (const c of cosigners) hosts[c] = await user(`krypton-cosigner-${NETWORK_ID}-${c}`, { 'krypton-cosigner-kms': renderCosignerIamPolicy(policyInventory(NETWORK_ID, 'kms', nodes.length ? nodes : ['val-1'], cosigners), c, o) });

  const res = await fetch(`${MOTO_ADDRESS}/moto-api/reset-auth`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: '0', signal: AbortSignal.timeout(5000) });
  if (res.status !== 200) throw new SandboxError(`turning moto's IAM enforcement on failed: HTTP ${res.status} ${(await res.text()).slice(0, 200)}`);
  await res.arrayBuffer().catch(() => undefined);
  return { endpoint: MOTO_ADDRESS, region: AWS_REGION, accountId: AWS_ACCOUNT, keyAlias: KMS_KEY_ALIAS, keyArn: meta.Arn, root, admin, hosts, pid: server.pid };
}

/**
 * Writes a node's AWS identity where the aws CLI of root on that host finds it: <awsDir> is bind-mounted at
 * the host's /root/.aws (files 0600). The endpoint is recorded as a comment only: Debian's aws CLI 2.9 ignores
 * `endpoint_url` and AWS_ENDPOINT_URL, so krypton-secrets passes --endpoint-url from the inventory.
 */
export function writeHostAwsConfig(awsDir: string, key: AwsKey): void {
  mkdirSync(awsDir, { recursive: true, mode: 0o700 });
  chmodSync(awsDir, 0o700);
  writeFileSync(join(awsDir, 'credentials'), `# ${key.arn} (krypton-secrets sandbox)\n[default]\naws_access_key_id = ${key.accessKeyId}\naws_secret_access_key = ${key.secretAccessKey}\n`, { mode: 0o600 });
  writeFileSync(join(awsDir, 'config'), `[default]\nregion = ${AWS_REGION}\n# endpoint: ${MOTO_ADDRESS} (aws CLI 2.9 ignores endpoint_url; pass --endpoint-url)\n`, { mode: 0o600 });
}

/** The variables <dir>/env exports for the operator (the admin identity). */
export function awsEnv(aws: SandboxAws): Record<string, string> {
  return {
    AWS_ACCESS_KEY_ID: aws.admin.accessKeyId,
    AWS_SECRET_ACCESS_KEY: aws.admin.secretAccessKey,
    AWS_REGION: aws.region,
    AWS_DEFAULT_REGION: aws.region,
    AWS_ENDPOINT_URL: aws.endpoint,
  };
}
