/**
 * The boot-time step of the stores whose hosts fetch their secrets themselves (src/render/boot.ts, with the
 * store's own fetch argv from src/model/host-fetch.ts): what it mounts, which fetches it runs and in what order,
 * and the systemd unit — for a node with env-secrets, a KMS cosigner and Secrets Manager. The rendered script is
 * also run for real in a private mount namespace (unshare -m), with a stub standing in for /usr/bin/aws. The
 * names (contexts, blob paths, secret names) are in test/unit/model/layout.test.ts; the fetch script itself in
 * test/unit/model/host-fetch.test.ts.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { parseInventory } from '../../../src/inventory/loader.ts';
import type { Host, Inventory } from '../../../src/model/inventory.ts';
import { hostFetchArgv } from '../../../src/model/host-fetch.ts';
import { hostSecrets, tmpfsDirs } from '../../../src/model/layout.ts';
import { BOOT_FILES, bootUnitLinks, renderBootScript, renderBootUnit } from '../../../src/render/boot.ts';

const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures');
const load = (name: string): Inventory => parseInventory(join(FIXTURES, name), readFileSync(join(FIXTURES, name), 'utf8'));
const host = (inv: Inventory, name: string): Host => [...inv.nodes, ...inv.cosigners].find((h) => h.name === name)!;
const o = { tmpfsSizeBytes: 1 << 20, attempts: 5, before: ['docker.service'] };
const target = { region: 'eu-west-1', endpointUrl: 'http://198.18.0.1:5000' };
/** The boot script exactly as kms.install-boot-step renders it for `h` (its fetches with no fingerprint pin). */
const script = (inv: Inventory, h: Host, opts = o) =>
  renderBootScript(inv, h, tmpfsDirs(inv, h), hostSecrets(inv, h).map((s) => ({ path: s.path, argv: hostFetchArgv(inv, h, s, target, '') })), opts);
/** The `fetch …` lines, with the fixed fetch script itself elided. */
const fetchLines = (text: string) => [...text.matchAll(/^fetch sh -c '(?:[^']|'\\'')*' sh ([^\n]*)$/gm)].map((m) => `fetch … ${m[1]}`);

describe('boot-time step: the script', () => {
  it('a node with env-secrets: mounts the secrets tmpfs, then fetches jwt.hex and its env file, each with its own blob, context, mode and owner, unpinned', () => {
    const inv = load('env-kms.yml');
    const text = script(inv, host(inv, 'val-2'));
    expect(text.startsWith('#!/bin/sh\n')).toBe(true);
    expect(text).toContain('for d in /run/krypton-secrets; do');
    expect(text).toContain('mount -t tmpfs -o size=1048576,mode=700,nosuid,nodev,noexec,noswap krypton-secrets "$d" 2>/dev/null || mount -t tmpfs -o size=1048576,mode=700,nosuid,nodev,noexec krypton-secrets "$d" || exit 3');
    expect(fetchLines(text)).toEqual([
      `fetch … /run/krypton-secrets/jwt.hex 0600 '' '' '' base64 hex64 /usr/bin/aws kms decrypt --ciphertext-blob fileb:///opt/krypton/secrets/jwt.hex.enc --encryption-context '{"purpose":"krypton-engine-jwt","network":"473374"}' --region eu-west-1 --endpoint-url http://198.18.0.1:5000 --query Plaintext --output text || exit $?`,
      `fetch … /run/krypton-secrets/el.env 0640 krypton krypton '' base64 env /usr/bin/aws kms decrypt --ciphertext-blob fileb:///opt/krypton/secrets/el.env.enc --encryption-context '{"purpose":"krypton-node-env","network":"473374","node":"val-2"}' --region eu-west-1 --endpoint-url http://198.18.0.1:5000 --query Plaintext --output text || exit $?`,
    ]);
    expect(spawnSync('sh', ['-n', '-c', text]).status).toBe(0);
    expect(spawnSync('dash', ['-n', '-c', text]).status).toBe(0);
  });

  it('a KMS cosigner: mounts both tmpfs dirs and fetches its own two key files into its key dir', () => {
    const inv = load('horcrux-kms.yml');
    const text = script(inv, host(inv, 'cosigner-3'), { ...o, before: ['horcrux.service'] });
    expect(text).toContain('for d in /run/krypton-secrets /run/horcrux-keys; do');
    expect(fetchLines(text).map((l) => l.split(' ').slice(2, 3).concat(l.match(/--encryption-context '([^']+)'/)![1]!))).toEqual([
      ['/run/horcrux-keys/ecies_keys.json', '{"purpose":"krypton-horcrux-ecies","network":"473374","cosigner":"cosigner-3"}'],
      ['/run/horcrux-keys/473374_shard.json', '{"purpose":"krypton-horcrux-shard","network":"473374","cosigner":"cosigner-3"}'],
    ]);
    expect(text).toContain('fileb:///var/lib/horcrux/blobs/473374_shard.json.enc');
    expect(text).not.toMatch(/cosigner-1|cosigner-2/);
  });

  it("Secrets Manager: reads AWSCURRENT of the node's secrets, the env-secrets as JSON (env-json)", () => {
    const inv = load('env-sm.yml');
    expect(fetchLines(script(inv, host(inv, 'val-1')))).toEqual([
      `fetch … /run/krypton-secrets/jwt.hex 0600 '' '' '' text hex64 /usr/bin/aws secretsmanager get-secret-value --secret-id krypton/473374/engine-jwt --region eu-west-1 --endpoint-url http://198.18.0.1:5000 --query SecretString --output text || exit $?`,
      `fetch … /run/krypton-secrets/node.env 0600 '' '' '' env-json env /usr/bin/aws secretsmanager get-secret-value --secret-id krypton/473374/env --region eu-west-1 --endpoint-url http://198.18.0.1:5000 --query SecretString --output text || exit $?`,
    ]);
  });
});

describe('boot-time step: the unit and its links', () => {
  it('runs once after the network, before and required by the units that start the services', () => {
    const inv = load('kms.yml');
    const unit = renderBootUnit(inv, host(inv, 'val-1'), { ...o, before: ['docker.service', 'krypton-node.service'] });
    for (const line of ['Type=oneshot', 'RemainAfterExit=yes', 'After=network-online.target', 'Wants=network-online.target', 'Before=docker.service krypton-node.service', 'ExecStart=/usr/local/sbin/krypton-secrets-boot', 'WantedBy=multi-user.target', 'RequiredBy=docker.service krypton-node.service']) {
      expect(unit.split('\n')).toContain(line);
    }
    expect(BOOT_FILES).toEqual({ script: '/usr/local/sbin/krypton-secrets-boot', unitName: 'krypton-secrets-boot.service', unitDir: '/etc/systemd/system' });
    expect(bootUnitLinks({ before: ['docker.service'] })).toEqual([
      '/etc/systemd/system/multi-user.target.wants/krypton-secrets-boot.service',
      '/etc/systemd/system/docker.service.requires/krypton-secrets-boot.service',
    ]);
    expect(bootUnitLinks({ before: [] }, '/lib/systemd/system')).toEqual(['/lib/systemd/system/multi-user.target.wants/krypton-secrets-boot.service']);
    expect(renderBootUnit(inv, host(inv, 'val-1'), { ...o, before: [] })).not.toMatch(/Before=|RequiredBy=/);
  });
});

const canUnshare = spawnSync('unshare', ['-m', 'true']).status === 0;

describe.skipIf(!canUnshare)('boot-time step: the script, run', () => {
  const work = mkdtempSync(join(tmpdir(), 'ks-boot-'));
  afterAll(() => rmSync(work, { recursive: true, force: true }));
  const JWT = '0031fa90a884717ceee535c1cbae9f0bc4542a8cb58eb21d8abcc06978f0ff2e';

  /**
   * Runs the node's rendered boot script in a private mount namespace, /run/krypton-secrets moved into `work`, the
   * aws CLI replaced by a stub that fails `failures` times (as while the network is not up yet) and then prints
   * the base64 plaintext, and `sleep` by a no-op. Returns the exit status, the file it left, and the stub's calls.
   */
  function boot(failures: number, attempts: number) {
    const inv = load('kms.yml');
    const dir = mkdtempSync(join(work, 'run-'));
    const secrets = join(dir, 'krypton-secrets');
    const bin = join(dir, 'bin');
    spawnSync('mkdir', ['-p', bin]);
    writeFileSync(join(bin, 'aws'), `#!/bin/sh\nn=$(cat "${dir}/calls" 2>/dev/null || echo 0); n=$((n + 1)); echo $n > "${dir}/calls"\nif [ $n -le ${failures} ]; then echo "Could not connect to the endpoint URL" >&2; exit 255; fi\nprintf '%s\\n' '${Buffer.from(JWT).toString('base64')}'\n`);
    writeFileSync(join(bin, 'sleep'), '#!/bin/sh\nexit 0\n');
    chmodSync(join(bin, 'aws'), 0o755);
    chmodSync(join(bin, 'sleep'), 0o755);
    const text = script(inv, host(inv, 'val-1'), { ...o, attempts }).replaceAll('/run/krypton-secrets', secrets).replaceAll('/usr/bin/aws', join(bin, 'aws'));
    const r = spawnSync('unshare', ['-m', 'sh', '-c', `(\n${text}\n)\nrc=$?; [ -f "${secrets}/jwt.hex" ] && cat "${secrets}/jwt.hex" > "${dir}/seen"; findmnt -n -o FSTYPE --mountpoint "${secrets}" > "${dir}/fs"; exit $rc`], { encoding: 'utf8', env: { ...process.env, PATH: `${bin}:${process.env['PATH']}` } });
    const read = (f: string) => {
      try {
        return readFileSync(join(dir, f), 'utf8').trim();
      } catch {
        return undefined;
      }
    };
    return { status: r.status, stderr: r.stderr, jwt: read('seen'), fs: read('fs'), calls: Number(read('calls') ?? 0) };
  }

  it('mounts the tmpfs and puts jwt.hex in place, retrying while the aws CLI fails', () => {
    const r = boot(2, 5);
    expect(r.status, r.stderr).toBe(0);
    expect(r.fs).toBe('tmpfs');
    expect(r.jwt).toBe(JWT);
    expect(r.calls).toBe(3);
    expect(r.stderr).toContain('is in place');
    expect(r.stderr).not.toContain(JWT);
  });

  it('gives up after `attempts` with the fetch\'s exit status (2: the aws CLI failed), leaving no file', () => {
    const r = boot(9, 3);
    expect(r.status).toBe(2);
    expect(r.calls).toBe(3);
    expect(r.jwt).toBeUndefined();
  });
});
