/**
 * `backend: kms` and `backend: secrets-manager` on the sandbox: real sshd hosts, real moto with IAM enforced
 * (each node's identity carries exactly the node policy `krypton-secrets render` writes; the operator's the
 * admin policy), Debian's /usr/bin/aws on the hosts, and the real CLI. Nothing is mocked.
 */
import { spawn } from 'node:child_process';
import { copyFile, mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DecryptCommand, KMSClient } from '@aws-sdk/client-kms';
import { CreateSecretCommand, DescribeSecretCommand, GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { ERROR_CODES } from '../../src/core/errors.ts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseInventory } from '../../src/inventory/loader.ts';
import { policyJson, renderNodeIamPolicy } from '../../src/render/iam-policy.ts';
import { hostExec, sandboxDown, sandboxUp, simulateReboot, type AwsKey, type SandboxInfo } from '../sandbox/index.ts';
import { cli, engineStatusOnHost, persistentText, sha256, type CliResult } from './helpers.ts';

const PROVISION = 'playbooks/provision.yml';
const nodes = ['val-1', 'val-2', 'val-3'];
const CTX = { purpose: 'krypton-engine-jwt', network: '473374' };

process.env['AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED'] ??= 'true';

function awsOf(info: SandboxInfo) {
  if (!info.aws) throw new Error('the sandbox has no AWS (backend vault?)');
  return info.aws;
}

function creds(k: AwsKey) {
  return { accessKeyId: k.accessKeyId, secretAccessKey: k.secretAccessKey };
}

/** The operator's KMS client (the admin identity), for checks done in memory by the test. */
function adminKms(info: SandboxInfo): KMSClient {
  const aws = awsOf(info);
  return new KMSClient({ region: aws.region, endpoint: aws.endpoint, credentials: creds(aws.admin), maxAttempts: 1 });
}

/** /usr/bin/aws on this machine as `who` (the sandbox's root identity by default), e.g. to rearrange IAM. */
function awsCli(info: SandboxInfo, args: string[], who: AwsKey = awsOf(info).root): Promise<{ code: number; stdout: string; stderr: string }> {
  const aws = awsOf(info);
  return new Promise((resolve, reject) => {
    const child = spawn('/usr/bin/aws', ['--endpoint-url', aws.endpoint, '--region', aws.region, ...args], {
      env: { PATH: '/usr/bin:/bin', HOME: info.dir, AWS_ACCESS_KEY_ID: who.accessKeyId, AWS_SECRET_ACCESS_KEY: who.secretAccessKey, AWS_EC2_METADATA_DISABLED: 'true' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

async function hostSh(host: string, script: string, input?: string) {
  return hostExec(host, ['sh', '-c', script], input === undefined ? {} : { input });
}

async function jwtSha(host: string): Promise<string | undefined> {
  const r = await hostSh(host, 'cat /run/krypton-secrets/jwt.hex');
  return r.code === 0 ? sha256(r.stdout) : undefined;
}


/** A copy of the sandbox inventory with `edit` applied, in the sandbox dir (so blobs/ is the same store). */
async function inventoryVariant(info: SandboxInfo, name: string, edit: (text: string) => string): Promise<string> {
  const file = join(info.dir, name);
  await writeFile(file, edit(await readFile(info.files.inventory, 'utf8')));
  return file;
}

/**
 * playbooks/rotate-jwt.yml with the AWS host steps after agent.start (they are skipped with backend vault),
 * unless it has them already; serial 1 for a deterministic order.
 */
async function rotatePlaybook(info: SandboxInfo): Promise<string> {
  let text = await readFile('playbooks/rotate-jwt.yml', 'utf8');
  if (!text.includes('secret.fetch-on-host')) text = text.replace('    - agent.start\n', '    - agent.start\n    - secret.put-host-copy\n    - secret.fetch-on-host\n');
  const file = join(info.dir, 'rotate-aws.yml');
  await writeFile(file, text.replace(/serial: .*/, 'serial: 1'));
  return file;
}

function expectOk(r: CliResult): void {
  expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
  expect(r.summary?.ok).toBe(true);
}

function failedWith(r: CliResult, host: string): { code: string; message: string } | undefined {
  return r.summary?.hosts[host]?.error;
}

/** The run's own error (`{"type":"error"}`): a bad stored value stops the whole run before any host is touched. */
function runError(r: CliResult): { code: string; message: string; hint?: string } | undefined {
  return r.events.find((e) => e['type'] === 'error')?.['error'] as { code: string; message: string; hint?: string } | undefined;
}

describe('backend kms: KMS blobs decrypted on the host into tmpfs (moto with IAM, /usr/bin/aws, real sshd)', () => {
  let info: SandboxInfo;
  let jwtHex: string;

  beforeAll(async () => {
    info = await sandboxUp({ hosts: 3, backend: 'kms', env: false }); // JWT only: env-secrets on KMS are env.int.test.ts's
  }, 120_000);

  afterAll(async () => {
    await sandboxDown();
  }, 60_000);

  it('plan on the fresh fleet says what it would do, writes no blob and touches no host', async () => {
    const r = await cli(info, ['plan', PROVISION, '-i', info.files.inventory, '--json']);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const seed = r.events.find((e) => e['type'] === 'step' && e['task'] === 'secret.seed');
    expect(JSON.stringify(seed)).toMatch(/write a fresh Engine-API JWT \(32 random bytes, hex\) as the Engine-API JWT of network 473374/);
    expect(await readdir(join(info.dir, 'blobs')).catch(() => [])).toEqual([]);
    for (const n of nodes) expect((await hostSh(n, 'ls -A /opt/krypton; findmnt -n /run/krypton-secrets')).stdout.trim(), n).toBe('.env');
  });

  it('apply leaves every node with jwt.hex (600, tmpfs) = the KMS decryption of its blob under the documented context, and an EL that accepts it', async () => {
    const r = await cli(info, ['apply', PROVISION, '-i', info.files.inventory, '--json']);
    expect(r.stderr).toBe('');
    expectOk(r);
    expect(r.summary?.changed).toBe(3);
    const skipped = new Set(r.events.filter((e) => e['type'] === 'step').map((e) => String(e['task'])));
    for (const t of ['vault.policy', 'vault.approle', 'agent.render-config', 'agent.start', 'vault.deliver-secret-id']) expect(skipped.has(t), t).toBe(false);

    // The laptop's blob store next to the inventory: v1 + a non-secret sidecar.
    const blob = await readFile(join(info.dir, 'blobs/473374/engine-jwt/v1.enc'));
    const meta = JSON.parse(await readFile(join(info.dir, 'blobs/473374/engine-jwt/v1.json'), 'utf8')) as { key_arn: string; encryption_context: unknown };
    expect(meta).toMatchObject({ key_arn: awsOf(info).keyArn, encryption_context: CTX });
    const dec = await adminKms(info).send(new DecryptCommand({ CiphertextBlob: blob, EncryptionContext: CTX }));
    jwtHex = Buffer.from(dec.Plaintext!).toString('utf8');
    expect(jwtHex).toMatch(/^[0-9a-f]{64}$/);
    expect(r.stdout).not.toContain(jwtHex);

    for (const n of nodes) {
      expect((await hostSh(n, 'findmnt -n -o FSTYPE --mountpoint /run/krypton-secrets')).stdout.trim(), n).toBe('tmpfs');
      expect((await hostSh(n, 'stat -c "%a %s" /run/krypton-secrets/jwt.hex')).stdout.trim(), n).toBe('600 64');
      expect(await jwtSha(n), n).toBe(sha256(jwtHex));
      // The host's copy of the blob is the laptop's, and the host's own identity decrypts it under the documented context.
      expect((await hostSh(n, 'sha256sum /opt/krypton/secrets/jwt.hex.enc | cut -d" " -f1')).stdout.trim(), n).toBe(sha256(blob));
      const own = await hostSh(
        n,
        `/usr/bin/aws kms decrypt --ciphertext-blob fileb:///opt/krypton/secrets/jwt.hex.enc --encryption-context '${JSON.stringify(CTX)}' --endpoint-url ${awsOf(info).endpoint} --query Plaintext --output text | base64 -d | sha256sum | cut -d" " -f1`,
      );
      expect(own.stdout.trim(), `${n}: ${own.stderr}`).toBe(sha256(jwtHex));
      expect(await engineStatusOnHost(n, jwtHex), n).toBe(200);
      expect(await engineStatusOnHost(n, 'ab'.repeat(32)), n).toBe(401);
      expect((await hostSh(n, 'grep "^JWT_PATH=" /opt/krypton/.env')).stdout.trim()).toBe('JWT_PATH=/run/krypton-secrets/jwt.hex');
      expect(await persistentText(info, n), `${n}: the JWT on persistent disk`).not.toContain(jwtHex);
    }
  });

  it('a second apply changes nothing and says why for every step; verify passes', async () => {
    const r = await cli(info, ['apply', PROVISION, '-i', info.files.inventory, '--json']);
    expectOk(r);
    expect(r.summary?.changed).toBe(0);
    expect(r.summary?.unchanged).toBe(3);
    for (const s of r.events.filter((e) => e['type'] === 'step')) {
      expect(s['status'], String(s['task'])).toBe('ok');
      expect(String(s['reason'] ?? '')).not.toBe('');
    }
    const v = await cli(info, ['verify', '-i', info.files.inventory, '--json']);
    expect(v.code, v.stdout).toBe(0);
    expect(v.stdout).not.toContain(jwtHex);
    const checks = v.events.filter((e) => e['type'] === 'check').map((e) => `${e['host']} ${e['check']}`);
    for (const n of ['val-1', 'val-2', 'val-3']) expect(checks).toEqual(expect.arrayContaining([`${n} kms.blob`, `${n} kms.boot-step`]));
  });

  it('verify names a host whose blob copy is gone, and apply puts it back', async () => {
    await hostExec('val-2', ['rm', '-f', '/opt/krypton/secrets/jwt.hex.enc']);
    const v = await cli(info, ['verify', '-i', info.files.inventory, '--json']);
    expect(v.code).toBe(1);
    expect(v.events.filter((e) => e['type'] === 'check' && e['ok'] === false).map((e) => `${e['host']} ${e['check']}`)).toEqual(['val-2 kms.blob']);
    expectOk(await cli(info, ['apply', PROVISION, '-i', info.files.inventory, '--json']));
    expect((await cli(info, ['verify', '-i', info.files.inventory])).code).toBe(0);
  });

  it('a host identity cannot Encrypt, nor decrypt under another context', async () => {
    const aws = awsOf(info);
    const enc = await hostSh('val-1', `/usr/bin/aws kms encrypt --key-id alias/krypton-engine-jwt --plaintext fileb:///etc/hostname --encryption-context '${JSON.stringify(CTX)}' --endpoint-url ${aws.endpoint}`);
    expect(enc.code).not.toBe(0);
    expect(enc.stderr).toMatch(/AccessDeniedException.*krypton-node-473374-val-1 is not authorized to perform: kms:Encrypt/);
    const other = await hostSh(
      'val-1',
      `/usr/bin/aws kms decrypt --ciphertext-blob fileb:///opt/krypton/secrets/jwt.hex.enc --encryption-context '{"purpose":"krypton-engine-jwt","network":"47337"}' --endpoint-url ${aws.endpoint} --query Plaintext --output text`,
    );
    expect(other.code).not.toBe(0);
    expect(other.stderr).toMatch(/AccessDeniedException.*kms:Decrypt/);
    expect(other.stdout).toBe('');
  });

  it('simulated reboot: the boot step mounts the tmpfs and re-creates jwt.hex before el starts; apply then has nothing to do', async () => {
    const unit = await hostSh('val-2', 'cat /etc/systemd/system/krypton-secrets-boot.service; readlink /etc/systemd/system/docker.service.requires/krypton-secrets-boot.service /etc/systemd/system/multi-user.target.wants/krypton-secrets-boot.service');
    for (const line of ['Type=oneshot', 'After=network-online.target', 'Before=docker.service', 'RequiredBy=docker.service', 'ExecStart=/usr/local/sbin/krypton-secrets-boot']) {
      expect(unit.stdout.split('\n'), line).toContain(line);
    }
    expect(unit.stdout.split('\n').filter((l) => l === '/etc/systemd/system/krypton-secrets-boot.service')).toHaveLength(2);

    await simulateReboot('val-2');
    expect((await hostSh('val-2', 'test -e /run/krypton-secrets/jwt.hex')).code).not.toBe(0);
    expect((await hostSh('val-2', 'nodectl status el')).code).not.toBe(0);

    // What systemd would do at boot: the unit's ExecStart, then (docker.service requires it) el and cl.
    const boot = await hostSh('val-2', 'krypton-secrets-boot');
    expect(boot.code, boot.stderr).toBe(0);
    expect(boot.stdout + boot.stderr).not.toContain(jwtHex);
    const fileTime = Number((await hostSh('val-2', 'stat -c %.3Y /run/krypton-secrets/jwt.hex')).stdout.trim());
    expect((await hostSh('val-2', 'findmnt -n -o FSTYPE,OPTIONS --mountpoint /run/krypton-secrets')).stdout).toMatch(/^tmpfs .*mode=700/);
    expect((await hostSh('val-2', 'stat -c "%a %s" /run/krypton-secrets/jwt.hex')).stdout.trim()).toBe('600 64');
    expect(await jwtSha('val-2')).toBe(sha256(jwtHex));
    expect((await hostSh('val-2', 'nodectl start el cl')).code).toBe(0);
    const starts = (await hostSh('val-2', 'grep " start " /var/log/krypton/nodectl.log | tail -n 1')).stdout.trim();
    expect(Number(starts.split(' ')[0])).toBeGreaterThanOrEqual(fileTime);
    expect(await engineStatusOnHost('val-2', jwtHex)).toBe(200);

    const r = await cli(info, ['apply', PROVISION, '-i', info.files.inventory, '--json']);
    expectOk(r);
    expect(r.summary?.hosts['val-2']?.status).toBe('unchanged');
  });

  it('a blob for network 473374 does not decrypt as 47337: the run stops with E_KMS_CONTEXT naming the context and the hosts, nothing is written', async () => {
    const inv = await inventoryVariant(info, 'inventory.47337.yml', (t) => t.replace('network: "473374"', 'network: "47337"'));
    await mkdir(join(info.dir, 'blobs/47337/engine-jwt'), { recursive: true });
    await copyFile(join(info.dir, 'blobs/473374/engine-jwt/v1.enc'), join(info.dir, 'blobs/47337/engine-jwt/v1.enc'));
    const before = await Promise.all(nodes.map((n) => hostSh(n, 'stat -c "%Y %s" /run/krypton-secrets/jwt.hex /opt/krypton/secrets/jwt.hex.enc; cat /opt/krypton/.env')));

    // Read before any host is touched: the whole run stops with the backend's code, naming the blob, the context and the hosts.
    const r = await cli(info, ['apply', PROVISION, '-i', inv, '--json']);
    expect(r.code).toBe(ERROR_CODES.E_KMS_CONTEXT);
    expect(r.summary).toBeUndefined();
    expect(runError(r)?.code).toBe('E_KMS_CONTEXT');
    expect(runError(r)?.message).toMatch(/blobs\/47337\/engine-jwt\/v1\.enc: the blob was encrypted with a different key or encryption context; expected purpose=krypton-engine-jwt, network=47337/);
    expect(runError(r)?.message).toMatch(/needed by val-1, val-2, val-3\); nothing was changed on any host/);
    const after = await Promise.all(nodes.map((n) => hostSh(n, 'stat -c "%Y %s" /run/krypton-secrets/jwt.hex /opt/krypton/secrets/jwt.hex.enc; cat /opt/krypton/.env')));
    expect(after.map((a) => a.stdout)).toEqual(before.map((b) => b.stdout));
    await rm(join(info.dir, 'blobs/47337'), { recursive: true, force: true });
  });

  it('a region mismatch is said as such: the blob\'s key is in eu-west-1, the inventory says us-east-1; nothing is written', async () => {
    const inv = await inventoryVariant(info, 'inventory.us-east-1.yml', (t) => t.replace('  region: eu-west-1', '  region: us-east-1'));
    const r = await cli(info, ['apply', PROVISION, '-i', inv, '--json']);
    expect(r.code).toBe(ERROR_CODES.E_KMS_CONFIG);
    expect(runError(r)?.message).toMatch(/region mismatch: the blob blobs\/473374\/engine-jwt\/v1\.enc uses KMS key arn:aws:kms:eu-west-1:\S+ in eu-west-1, but requests go to us-east-1 \(from inventory kms\.region\)/);
    for (const n of nodes) expect(await jwtSha(n), n).toBe(sha256(jwtHex));
    // With no blob yet the key itself is looked up in the wrong region: KMS says the alias is not there.
    const fresh = await inventoryVariant(info, 'inventory.us-east-1-fresh.yml', (t) => t.replace('  region: eu-west-1', '  region: us-east-1').replace('network: "473374"', 'network: "47337"'));
    const f = await cli(info, ['apply', PROVISION, '-i', fresh, '--limit', 'val-1', '--json']);
    expect(f.code).toBe(1);
    expect(failedWith(f, 'val-1')).toMatchObject({ code: 'E_KMS_CONFIG', message: expect.stringMatching(/KMS key alias\/krypton-engine-jwt was not found in region us-east-1 \(from inventory kms\.region\)/) });
    expect(await readdir(join(info.dir, 'blobs/47337')).catch(() => [])).toEqual([]);
  });

  it('per node: each node gets its own JWT; a blob for node=val-1 does not decrypt on val-2 (host side; laptop side stops the run), and nothing is written', async () => {
    const inv = await inventoryVariant(info, 'inventory.per-node.yml', (t) => t.replace('  endpoint_url:', '  per_node: true\n  endpoint_url:'));
    const r = await cli(info, ['apply', PROVISION, '-i', inv, '--json']);
    expectOk(r);
    const shas = await Promise.all(nodes.map(jwtSha));
    expect(new Set(shas).size).toBe(3);
    expect(shas).not.toContain(sha256(jwtHex));
    const val1Blob = await readFile(join(info.dir, 'blobs/473374/nodes/val-1/engine-jwt/v1.enc'));

    // Host side: val-1's blob on val-2's disk; val-2's boot step decrypts it under node=val-2 and must refuse.
    await hostExec('val-2', ['sh', '-c', 'cat > /opt/krypton/secrets/jwt.hex.enc'], { input: val1Blob });
    const boot = await hostSh('val-2', 'krypton-secrets-boot');
    expect(boot.code).toBe(2);
    expect(boot.stderr).toMatch(/InvalidCiphertextException/);
    expect(await jwtSha('val-2')).toBe(shas[1]);
    expect((await hostSh('val-2', 'ls -A /run/krypton-secrets | grep -vx loaded')).stdout.trim()).toBe('jwt.hex');

    // Laptop side: val-1's blob offered as val-2's next version: refused before any host is touched, the context and
    // the host named; nothing changes anywhere.
    await copyFile(join(info.dir, 'blobs/473374/nodes/val-1/engine-jwt/v1.enc'), join(info.dir, 'blobs/473374/nodes/val-2/engine-jwt/v2.enc'));
    const bad = await cli(info, ['apply', PROVISION, '-i', inv, '--json']);
    expect(bad.code).toBe(ERROR_CODES.E_KMS_CONTEXT);
    expect(runError(bad)?.message).toMatch(/expected purpose=krypton-engine-jwt, network=473374, node=val-2.*\(needed by val-2\)/s);
    for (const n of ['val-1', 'val-3']) expect(await jwtSha(n), n).toBe(shas[nodes.indexOf(n)]);
    expect(await jwtSha('val-2')).toBe(shas[1]);
    expect((await hostSh('val-2', 'sha256sum < /opt/krypton/secrets/jwt.hex.enc | cut -d" " -f1')).stdout.trim()).toBe(sha256(val1Blob));

    // Repair: drop the bogus version; apply puts val-2's own blob back and nothing else changes.
    await rm(join(info.dir, 'blobs/473374/nodes/val-2/engine-jwt/v2.enc'));
    const fix = await cli(info, ['apply', PROVISION, '-i', inv, '--json']);
    expectOk(fix);
    expect(fix.summary?.hosts['val-2']?.status).toBe('changed');
    expect(await jwtSha('val-2')).toBe(shas[1]);

    // Back to the network's JWT for the tests below.
    expectOk(await cli(info, ['apply', PROVISION, '-i', info.files.inventory, '--json']));
    for (const n of nodes) expect(await jwtSha(n), n).toBe(sha256(jwtHex));
  });

  it('a host whose identity may not decrypt fails alone with E_KMS_DENIED naming the action and the identity; jwt.hex is not written', async () => {
    const del = await awsCli(info, ['iam', 'delete-user-policy', '--user-name', 'krypton-node-473374-val-3', '--policy-name', 'krypton-node-kms']);
    expect(del.code, del.stderr).toBe(0);
    try {
      await hostSh('val-3', 'rm -f /run/krypton-secrets/jwt.hex');
      const r = await cli(info, ['apply', PROVISION, '-i', info.files.inventory, '--json']);
      expect(r.code).toBe(1);
      const e = failedWith(r, 'val-3');
      expect(e?.code).toBe('E_KMS_DENIED');
      expect(e?.message).toMatch(/AWS refused kms:Decrypt for val-3's AWS identity \(arn:aws:iam::123456789012:user\/krypton-node-473374-val-3\)/);
      expect(r.summary?.hosts['val-1']?.status).toBe('unchanged');
      expect((await hostSh('val-3', 'ls -A /run/krypton-secrets | grep -vx loaded')).stdout.trim()).toBe('');
    } finally {
      const aws = awsOf(info);
      const policy = renderNodeIamPolicy(parseInventory(info.files.inventory, await readFile(info.files.inventory, 'utf8')), 'val-3', { keyArn: aws.keyArn, accountId: aws.accountId, region: aws.region });
      const put = await awsCli(info, ['iam', 'put-user-policy', '--user-name', 'krypton-node-473374-val-3', '--policy-name', 'krypton-node-kms', '--policy-document', policyJson(policy)]);
      expect(put.code, put.stderr).toBe(0);
    }
    expectOk(await cli(info, ['apply', PROVISION, '-i', info.files.inventory, '--json']));
    expect(await jwtSha('val-3')).toBe(sha256(jwtHex));
  });

  it('decrypt: operator works for a host with no AWS identity (after a reboot), writing jwt.hex over SFTP', async () => {
    const creds = join(info.hosts['val-3']!.binds['/root/.aws']!, 'credentials');
    const saved = await readFile(creds);
    await rm(creds);
    try {
      const noId = await hostSh('val-3', `/usr/bin/aws kms decrypt --ciphertext-blob fileb:///opt/krypton/secrets/jwt.hex.enc --encryption-context '${JSON.stringify(CTX)}' --endpoint-url ${awsOf(info).endpoint}`);
      expect(noId.stderr).toMatch(/Unable to locate credentials/);
      await simulateReboot('val-3');
      const inv = await inventoryVariant(info, 'inventory.operator.yml', (t) => t.replace('  endpoint_url:', '  decrypt: operator\n  endpoint_url:'));
      const r = await cli(info, ['apply', PROVISION, '-i', inv, '--limit', 'val-3', '--json']);
      expectOk(r);
      expect(r.summary?.hosts['val-3']?.status).toBe('changed');
      const put = r.events.find((e) => e['type'] === 'step' && e['task'] === 'secret.fetch-on-host');
      expect(JSON.stringify(put)).toMatch(/on the operator's machine, over SFTP/);
      expect(r.stdout).not.toContain(jwtHex);
      expect((await hostSh('val-3', 'stat -c "%a %s" /run/krypton-secrets/jwt.hex')).stdout.trim()).toBe('600 64');
      expect(await jwtSha('val-3')).toBe(sha256(jwtHex));
      expect(await engineStatusOnHost('val-3', jwtHex)).toBe(200);
      expect(await persistentText(info, 'val-3')).not.toContain(jwtHex);
    } finally {
      await writeFile(creds, saved, { mode: 0o600 });
    }
  });

  it('jwt.rotate writes blob v2 (exclusive create) and every node moves to it; rollback-jwt goes back as v3', async () => {
    const r = await cli(info, ['apply', await rotatePlaybook(info), '-i', info.files.inventory, '--json']);
    expectOk(r);
    const v2 = await readFile(join(info.dir, 'blobs/473374/engine-jwt/v2.enc'));
    const hex2 = Buffer.from((await adminKms(info).send(new DecryptCommand({ CiphertextBlob: v2, EncryptionContext: CTX }))).Plaintext!).toString('utf8');
    expect(hex2).not.toBe(jwtHex);
    expect(r.stdout).not.toContain(hex2);
    for (const n of nodes) {
      expect(await jwtSha(n), n).toBe(sha256(hex2));
      expect((await hostSh(n, 'sha256sum < /opt/krypton/secrets/jwt.hex.enc | cut -d" " -f1')).stdout.trim(), n).toBe(sha256(v2));
      expect(await engineStatusOnHost(n, hex2), n).toBe(200);
    }
    const back = await cli(info, ['rollback-jwt', '-i', info.files.inventory, '-p', await rotatePlaybook(info), '--json']);
    expectOk(back);
    for (const n of nodes) expect(await jwtSha(n), n).toBe(sha256(jwtHex));
    expect((await readdir(join(info.dir, 'blobs/473374/engine-jwt'))).filter((f) => f.endsWith('.enc')).sort()).toEqual(['v1.enc', 'v2.enc', 'v3.enc']);
  });
});

describe('backend secrets-manager: the secret under the CMK, fetched by each host into tmpfs', () => {
  let info: SandboxInfo;
  let jwtHex: string;
  const sm = () => {
    const aws = awsOf(info);
    return new SecretsManagerClient({ region: aws.region, endpoint: aws.endpoint, credentials: creds(aws.admin), maxAttempts: 1 });
  };

  beforeAll(async () => {
    info = await sandboxUp({ hosts: 3, backend: 'secrets-manager', env: false });
  }, 120_000);

  afterAll(async () => {
    await sandboxDown();
  }, 60_000);

  it('apply creates krypton/473374/engine-jwt under the CMK; every node has it in jwt.hex (600, tmpfs) and an EL that accepts it; a second apply changes nothing', async () => {
    const r = await cli(info, ['apply', PROVISION, '-i', info.files.inventory, '--json']);
    expect(r.stderr).toBe('');
    expectOk(r);
    const d = await sm().send(new DescribeSecretCommand({ SecretId: 'krypton/473374/engine-jwt' }));
    expect(d.KmsKeyId).toBe('alias/krypton-engine-jwt');
    const v = await sm().send(new GetSecretValueCommand({ SecretId: 'krypton/473374/engine-jwt' }));
    jwtHex = v.SecretString!;
    expect(jwtHex).toMatch(/^[0-9a-f]{64}$/);
    expect(v.VersionId).toBe('krypton-engine-jwt-v0000000000001');
    expect(r.stdout).not.toContain(jwtHex);
    for (const n of nodes) {
      expect((await hostSh(n, 'findmnt -n -o FSTYPE --mountpoint /run/krypton-secrets')).stdout.trim(), n).toBe('tmpfs');
      expect((await hostSh(n, 'stat -c "%a %s" /run/krypton-secrets/jwt.hex')).stdout.trim(), n).toBe('600 64');
      expect(await jwtSha(n), n).toBe(sha256(jwtHex));
      expect(await engineStatusOnHost(n, jwtHex), n).toBe(200);
      expect(await persistentText(info, n), n).not.toContain(jwtHex);
    }
    const again = await cli(info, ['apply', PROVISION, '-i', info.files.inventory, '--json']);
    expectOk(again);
    expect(again.summary?.changed).toBe(0);
  });

  it("a host identity reads only its own secret: no other secret, no write, no Encrypt", async () => {
    const aws = awsOf(info);
    await sm().send(new CreateSecretCommand({ Name: 'krypton/473374/nodes/val-2/engine-jwt', SecretString: 'cd'.repeat(32), KmsKeyId: aws.keyAlias }));
    const own = await hostSh('val-1', `/usr/bin/aws secretsmanager get-secret-value --secret-id krypton/473374/engine-jwt --endpoint-url ${aws.endpoint} --query SecretString --output text | sha256sum | cut -d" " -f1`);
    expect(own.stdout.trim()).toBe(sha256(`${jwtHex}\n`));
    const other = await hostSh('val-1', `/usr/bin/aws secretsmanager get-secret-value --secret-id krypton/473374/nodes/val-2/engine-jwt --endpoint-url ${aws.endpoint} --query SecretString --output text`);
    expect(other.code).not.toBe(0);
    expect(other.stderr).toMatch(/AccessDeniedException.*secretsmanager:GetSecretValue/);
    const write = await hostSh('val-1', `/usr/bin/aws secretsmanager put-secret-value --secret-id krypton/473374/engine-jwt --secret-string x --endpoint-url ${aws.endpoint}`);
    expect(write.stderr).toMatch(/AccessDeniedException.*secretsmanager:PutSecretValue/);
    const enc = await hostSh('val-1', `/usr/bin/aws kms encrypt --key-id alias/krypton-engine-jwt --plaintext fileb:///etc/hostname --endpoint-url ${aws.endpoint}`);
    expect(enc.stderr).toMatch(/AccessDeniedException.*kms:Encrypt/);
  });

  it('simulated reboot: the boot step fetches the secret into a fresh tmpfs before el starts', async () => {
    await simulateReboot('val-1');
    expect((await hostSh('val-1', 'test -e /run/krypton-secrets/jwt.hex')).code).not.toBe(0);
    const boot = await hostSh('val-1', 'krypton-secrets-boot');
    expect(boot.code, boot.stderr).toBe(0);
    expect((await hostSh('val-1', 'stat -c "%a %s" /run/krypton-secrets/jwt.hex')).stdout.trim()).toBe('600 64');
    expect(await jwtSha('val-1')).toBe(sha256(jwtHex));
    expect((await hostSh('val-1', 'nodectl start el cl')).code).toBe(0);
    expect(await engineStatusOnHost('val-1', jwtHex)).toBe(200);
    const r = await cli(info, ['apply', PROVISION, '-i', info.files.inventory, '--json']);
    expectOk(r);
    expect(r.summary?.changed).toBe(0);
  });

  it('jwt.rotate writes version 2 of the secret and every node moves to it', async () => {
    const r = await cli(info, ['apply', await rotatePlaybook(info), '-i', info.files.inventory, '--json']);
    expectOk(r);
    const v = await sm().send(new GetSecretValueCommand({ SecretId: 'krypton/473374/engine-jwt' }));
    expect(v.VersionId).toBe('krypton-engine-jwt-v0000000000002');
    expect(v.SecretString).not.toBe(jwtHex);
    for (const n of nodes) {
      expect(await jwtSha(n), n).toBe(sha256(v.SecretString!));
      expect(await engineStatusOnHost(n, v.SecretString!), n).toBe(200);
    }
  });
});
