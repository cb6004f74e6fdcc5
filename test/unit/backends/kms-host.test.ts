/**
 * The host-side pieces of the KMS / Secrets Manager backends (src/render/kms-host.ts): encryption context,
 * names, version ids, the aws CLI argv, and the fixed fetch script — run here for real with `sh` on this
 * machine's tmpfs (/dev/shm), with `printf` standing in for the aws CLI's stdout (the script takes the CLI's
 * argv as "$@"; the real /usr/bin/aws runs in test/integration/kms.int.test.ts).
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseInventory } from '../../../src/inventory/loader.ts';
import type { NodeHost } from '../../../src/inventory/model.ts';
import {
  FETCH_EXIT,
  FETCH_SCRIPT,
  bootFetchSpec,
  bootUnitLinks,
  describeContext,
  engineJwtContext,
  fetchArgv,
  fetchScriptArgs,
  hostBlobPath,
  kmsDecryptArgs,
  parseSmVersionId,
  renderBootScript,
  renderBootUnit,
  smGetArgs,
  smSecretName,
  smVersionId,
} from '../../../src/render/kms-host.ts';

const inv = (extra = '', backend = 'kms') =>
  parseInventory('/fixtures/inv.yml', `network: "473374"\nbackend: ${backend}\nkms:\n  key_id: alias/krypton-engine-jwt\n  region: eu-west-1\n${extra}nodes:\n  val-1: { role: validator }\n  val-2: { role: validator, jwt: { owner: krypton, mode: "0640" } }\n`);

describe('encryption context and names', () => {
  it('binds the blob to purpose and network, and to the node with per_node', () => {
    expect(engineJwtContext(inv(), 'val-1')).toEqual({ purpose: 'krypton-engine-jwt', network: '473374' });
    expect(engineJwtContext(inv('  per_node: true\n'), 'val-1')).toEqual({ purpose: 'krypton-engine-jwt', network: '473374', node: 'val-1' });
    expect(() => engineJwtContext(inv('  per_node: true\n'))).toThrow(/needs a node/);
    expect(describeContext({ purpose: 'p', network: '1', node: 'val-1' })).toBe('purpose=p, network=1, node=val-1');
  });

  it('names the secret per network, or per node', () => {
    expect(smSecretName(inv())).toBe('krypton/473374/engine-jwt');
    expect(smSecretName(inv('  per_node: true\n'), 'val-2')).toBe('krypton/473374/nodes/val-2/engine-jwt');
    expect(hostBlobPath(inv())).toBe('/opt/krypton/secrets/jwt.hex.enc');
    expect(hostBlobPath(inv('  blob_dir: /var/lib/k\n'))).toBe('/var/lib/k/jwt.hex.enc');
  });

  it('numbers Secrets Manager versions with a 32+ character ClientRequestToken, and reads only its own', () => {
    expect(smVersionId(1)).toBe('krypton-engine-jwt-v0000000000001');
    expect(smVersionId(1).length).toBeGreaterThanOrEqual(32);
    expect(parseSmVersionId(smVersionId(42))).toBe(42);
    expect(parseSmVersionId('2f6f3e1c-8c5a-4c1e-9d3b-6a0f1e2d3c4b')).toBeUndefined();
    expect(parseSmVersionId(undefined)).toBeUndefined();
  });
});

describe('aws CLI argv', () => {
  it('kms decrypt: blob as fileb://, context as JSON, explicit region and endpoint, plaintext as text (base64)', () => {
    expect(kmsDecryptArgs('/opt/b.enc', { purpose: 'p', network: '1' }, { region: 'eu-west-1', endpointUrl: 'http://198.18.0.1:5000' })).toEqual([
      'kms', 'decrypt', '--ciphertext-blob', 'fileb:///opt/b.enc', '--encryption-context', '{"purpose":"p","network":"1"}',
      '--region', 'eu-west-1', '--endpoint-url', 'http://198.18.0.1:5000', '--query', 'Plaintext', '--output', 'text',
    ]);
    expect(kmsDecryptArgs('/opt/b.enc', { purpose: 'p' }, { region: 'us-east-2' })).not.toContain('--endpoint-url');
  });

  it('secretsmanager get-secret-value: pinned version when given', () => {
    expect(smGetArgs('krypton/1/engine-jwt', { region: 'eu-west-1' }, smVersionId(3))).toEqual([
      'secretsmanager', 'get-secret-value', '--secret-id', 'krypton/1/engine-jwt', '--version-id', 'krypton-engine-jwt-v0000000000003',
      '--region', 'eu-west-1', '--query', 'SecretString', '--output', 'text',
    ]);
  });

  it('the fetch is a fixed script with positional arguments and the absolute /usr/bin/aws', () => {
    const argv = fetchArgv({ backend: 'kms', out: '/run/krypton-secrets/jwt.hex', mode: '0600', sha256: 'ab'.repeat(32), awsArgs: ['kms', 'decrypt'] });
    expect(argv.slice(0, 4)).toEqual(['sh', '-c', FETCH_SCRIPT, 'sh']);
    expect(argv.slice(4)).toEqual(['/run/krypton-secrets/jwt.hex', '0600', '', '', 'ab'.repeat(32), 'base64', '/usr/bin/aws', 'kms', 'decrypt']);
  });
});

describe('the fetch script on a real tmpfs', () => {
  const shm = mkdtempSync('/dev/shm/krypton-fetch-test-');
  const disk = mkdtempSync(join(process.cwd(), '.krypton-fetch-test-'));
  afterAll(() => {
    rmSync(shm, { recursive: true, force: true });
    rmSync(disk, { recursive: true, force: true });
  });
  const hex = createHash('sha256').update('krypton').digest('hex');
  const sha = (s: string) => createHash('sha256').update(s).digest('hex');
  const run = (dir: string, cli: string[], o: { decode?: 'base64' | 'text'; want?: string; mode?: string } = {}) =>
    spawnSync('sh', ['-c', FETCH_SCRIPT, 'sh', join(dir, 'jwt.hex'), o.mode ?? '0600', '', '', o.want ?? '', o.decode ?? 'text', ...cli], { encoding: 'utf8' });

  it('decodes the base64 plaintext into jwt.hex with the mode asked, exactly 64 bytes, and leaves no temp file', () => {
    const r = run(shm, ['printf', '%s\n', Buffer.from(hex).toString('base64')], { decode: 'base64', want: sha(hex), mode: '0640' });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(readFileSync(join(shm, 'jwt.hex'), 'utf8')).toBe(hex);
    expect((statSync(join(shm, 'jwt.hex')).mode & 0o777).toString(8)).toBe('640');
    expect(spawnSync('ls', ['-A', shm], { encoding: 'utf8' }).stdout.trim()).toBe('jwt.hex');
  });

  it('text output (Secrets Manager) loses the trailing newline the CLI prints', () => {
    const r = run(shm, ['printf', '%s\n', hex]);
    expect(r.status).toBe(0);
    expect(readFileSync(join(shm, 'jwt.hex'), 'utf8')).toBe(hex);
  });

  it('refuses a directory that is not a tmpfs, before running the CLI', () => {
    const r = run(disk, ['sh', '-c', 'touch "$0/ran"', disk]);
    expect(r.status).toBe(FETCH_EXIT.notTmpfs);
    expect(r.stderr).toMatch(/is not a tmpfs/);
    expect(existsSync(join(disk, 'ran'))).toBe(false);
    expect(existsSync(join(disk, 'jwt.hex'))).toBe(false);
  });

  it('a CLI failure (exit 254, error on stderr) exits 2 and leaves the old jwt.hex as it was', () => {
    writeFileSync(join(shm, 'jwt.hex'), hex, { mode: 0o600 });
    const r = run(shm, ['sh', '-c', 'echo "An error occurred (InvalidCiphertextException) when calling the Decrypt operation: " >&2; exit 254']);
    expect(r.status).toBe(FETCH_EXIT.aws);
    expect(r.stderr).toMatch(/InvalidCiphertextException/);
    expect(readFileSync(join(shm, 'jwt.hex'), 'utf8')).toBe(hex);
  });

  it('refuses a value that is not 64 lowercase hex (0x prefix, upper case, short) and writes nothing', () => {
    rmSync(join(shm, 'jwt.hex'), { force: true });
    for (const bad of [`0x${hex.slice(2)}`, hex.toUpperCase(), hex.slice(1), `${hex}\n${hex}`]) {
      const r = run(shm, ['printf', '%s', bad]);
      expect(r.status, bad).toBe(FETCH_EXIT.notHex);
      expect(existsSync(join(shm, 'jwt.hex'))).toBe(false);
    }
    expect(spawnSync('ls', ['-A', shm], { encoding: 'utf8' }).stdout.trim()).toBe('');
  });

  it('refuses a value whose SHA-256 is not the one the operator expects', () => {
    const r = run(shm, ['printf', '%s', hex], { want: sha('something else') });
    expect(r.status).toBe(FETCH_EXIT.fingerprint);
    expect(r.stderr).not.toContain(hex);
    expect(existsSync(join(shm, 'jwt.hex'))).toBe(false);
  });
});

describe('boot-time step', () => {
  const node = (i: ReturnType<typeof inv>, name: string) => i.nodes.find((n) => n.name === name) as NodeHost;
  const o = { tmpfsSizeBytes: 1 << 20, attempts: 5, before: ['docker.service'] };

  it('the script mounts the tmpfs and runs the fetch with this node\'s blob, context, mode and owner', () => {
    const i = inv('  endpoint_url: http://198.18.0.1:5000\n');
    const text = renderBootScript(i, node(i, 'val-2'), { region: 'eu-west-1', endpointUrl: 'http://198.18.0.1:5000' }, o);
    expect(text.startsWith('#!/bin/sh\n')).toBe(true);
    expect(text).toContain('mount -t tmpfs -o size=1048576,mode=700,nosuid,nodev,noexec,noswap krypton-secrets');
    expect(text).toContain(`set -- /run/krypton-secrets/jwt.hex 0640 krypton '' '' base64 /usr/bin/aws kms decrypt --ciphertext-blob fileb:///opt/krypton/secrets/jwt.hex.enc --encryption-context '{"purpose":"krypton-engine-jwt","network":"473374"}' --region eu-west-1 --endpoint-url http://198.18.0.1:5000 --query Plaintext --output text`);
    expect(spawnSync('sh', ['-n', '-c', text]).status).toBe(0);
    expect(fetchScriptArgs(bootFetchSpec(i, node(i, 'val-2'), { region: 'eu-west-1' }))[4]).toBe(''); // no fingerprint pin at boot
  });

  it('with Secrets Manager the script reads AWSCURRENT of the node\'s secret', () => {
    const i = inv('', 'secrets-manager');
    const text = renderBootScript(i, node(i, 'val-1'), { region: 'eu-west-1' }, o);
    expect(text).toContain("set -- /run/krypton-secrets/jwt.hex 0600 '' '' '' text /usr/bin/aws secretsmanager get-secret-value --secret-id krypton/473374/engine-jwt --region eu-west-1 --query SecretString --output text");
  });

  it('the unit runs once after the network, before and required by the units that start el/cl', () => {
    const i = inv();
    const unit = renderBootUnit(i, node(i, 'val-1'), { ...o, before: ['docker.service', 'krypton-node.service'] });
    for (const line of ['Type=oneshot', 'RemainAfterExit=yes', 'After=network-online.target', 'Wants=network-online.target', 'Before=docker.service krypton-node.service', 'ExecStart=/usr/local/sbin/krypton-secrets-boot', 'WantedBy=multi-user.target', 'RequiredBy=docker.service krypton-node.service']) {
      expect(unit.split('\n')).toContain(line);
    }
    expect(bootUnitLinks({ before: ['docker.service'] })).toEqual([
      '/etc/systemd/system/multi-user.target.wants/krypton-secrets-boot.service',
      '/etc/systemd/system/docker.service.requires/krypton-secrets-boot.service',
    ]);
  });
});
