/**
 * Horcrux cosigner bring-up on the sandbox (real sshd, OpenBao, bao agent, the Horcrux stand-in):
 * import-horcrux refuses bad key sets and stores nothing, stores a good one once; cosigner-bringup puts each
 * cosigner's own two files — and nothing else — into its tmpfs key dir; a cosigner's Vault token cannot read
 * another's paths; a second run changes nothing; `--limit cosigner-2` touches cosigner-2 only.
 */
import { spawnSync } from 'node:child_process';
import { cp, mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateHorcruxKeys } from '../sandbox/horcrux-keys.ts';
import { NETNS_PREFIX } from '../sandbox/layout.ts';
import { hostExec, sandboxDown, sandboxUp, simulateReboot, type SandboxInfo } from '../sandbox/index.ts';
import { cli, persistentText, sha256 } from './helpers.ts';

const BRINGUP = 'playbooks/cosigner-bringup.yml';
const COSIGNERS = ['cosigner-1', 'cosigner-2', 'cosigner-3'];
const CHAIN = '473374';
const KEY_DIR = '/opt/horcrux/keys';
const KINDS = ['ecies', 'shard'] as const;
const fileOf = { ecies: 'ecies_keys.json', shard: `${CHAIN}_shard.json` } as const;

/** Waits until no other sandbox (netns ks-*, this slot's prefix) is up on this machine: integration tests share one. */
async function kvStatus(info: SandboxInfo, path: string, token = info.vault.token): Promise<{ status: number; json?: string }> {
  const res = await fetch(`${info.vault.address}/v1/${path}`, { headers: { 'X-Vault-Token': token } });
  const body = (await res.json().catch(() => undefined)) as { data?: { data?: { json?: string } } } | undefined;
  return { status: res.status, json: body?.data?.data?.json };
}

/** Every horcrux KV path's metadata status (404 = never written). */
async function storedCount(info: SandboxInfo): Promise<number> {
  let n = 0;
  for (const c of COSIGNERS) for (const k of KINDS) if ((await kvStatus(info, `secret/metadata/krypton/${CHAIN}/horcrux/${c}/${k}`)).status === 200) n++;
  return n;
}


/** The private values (base64) in a key set dir, for "never printed / never on disk" checks. */
async function privateValues(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const n of [1, 2, 3]) {
    const e = JSON.parse(await readFile(join(dir, `cosigner_${n}`, 'ecies_keys.json'), 'utf8')) as { eciesKey: string };
    const s = JSON.parse(await readFile(join(dir, `cosigner_${n}`, `${CHAIN}_shard.json`), 'utf8')) as { privateShard: string };
    out.push(e.eciesKey, s.privateShard);
  }
  return out;
}

/** `Accepted publickey` lines in a host's sshd log: how many SSH sessions it served. */
async function sshLogins(info: SandboxInfo, host: string): Promise<number> {
  const log = await readFile(join(info.hosts[host]!.hostDir, 'sshd.log'), 'utf8').catch(() => '');
  return log.split('\n').filter((l) => l.includes('Accepted publickey')).length;
}

describe('Horcrux cosigner bring-up through Vault (real sshd, OpenBao, bao agent, Horcrux stand-in)', () => {
  let info: SandboxInfo;
  let keys: string;
  /** SHA-256 of each cosigner's two generated files. */
  const want: Record<string, Record<'ecies' | 'shard', string>> = {};

  beforeAll(async () => {
    info = await sandboxUp({ hosts: 1, cosigners: 3 });
    keys = info.files.horcruxKeys!;
    for (const [i, c] of COSIGNERS.entries()) {
      want[c] = {
        ecies: sha256(await readFile(join(keys, `cosigner_${i + 1}`, 'ecies_keys.json'))),
        shard: sha256(await readFile(join(keys, `cosigner_${i + 1}`, `${CHAIN}_shard.json`))),
      };
    }
  }, 25 * 60_000);

  afterAll(async () => {
    if (info) await sandboxDown();
  }, 60_000);

  it('the sandbox lists each cosigner with shard_id and key_dir and writes the key generation output', async () => {
    const hosts = JSON.parse(await readFile(info.files.hostsJson, 'utf8')) as Record<string, { kind: string; shard_id?: number; key_dir?: string }>;
    for (const [i, c] of COSIGNERS.entries()) expect(hosts[c]).toMatchObject({ kind: 'cosigner', shard_id: i + 1, key_dir: KEY_DIR });
    for (const n of [1, 2, 3]) {
      expect((await readdir(join(keys, `cosigner_${n}`))).sort()).toEqual([`${CHAIN}_shard.json`, 'ecies_keys.json']);
    }
  });

  it('import refuses malformed or inconsistent key sets, says where, and stores nothing', async () => {
    const secrets = await privateValues(keys);
    const variants: [string, (dir: string, inv: string) => Promise<string | void>, RegExp][] = [
      ['truncated JSON', async (d) => writeFile(join(d, 'cosigner_2', 'ecies_keys.json'), (await readFile(join(d, 'cosigner_2', 'ecies_keys.json'), 'utf8')).slice(0, 40)), /cosigner_2\/ecies_keys\.json: not valid JSON/],
      ['ECIES keys of another create-ecies-shards run', async (d) => writeFile(join(d, 'cosigner_3', 'ecies_keys.json'), generateHorcruxKeys({ shards: 3, threshold: 2, chainId: CHAIN }).cosigners[2]!.ecies), /cosigner_3\/ecies_keys\.json: "eciesPubs" differs/],
      ['shards swapped between cosigners', async (d) => {
        const a = join(d, 'cosigner_1', `${CHAIN}_shard.json`);
        const b = join(d, 'cosigner_2', `${CHAIN}_shard.json`);
        const [ta, tb] = [await readFile(a), await readFile(b)];
        await writeFile(a, tb);
        await writeFile(b, ta);
      }, /cosigner_1\/473374_shard\.json: "id" is 2, but the file is in cosigner_1\//],
      ['a missing cosigner', async (d) => rm(join(d, 'cosigner_3'), { recursive: true }), /cosigner_3\/: missing \(cosigner-3 has shard_id 3\)/],
      ['a threshold the shards were not dealt with', async (_d, inv) => {
        const out = `${inv}.t3.yml`;
        await writeFile(out, (await readFile(inv, 'utf8')).replace('threshold: 2', 'threshold: 3'));
        return out;
      }, /dealt with threshold 2, the inventory says horcrux\.threshold 3/],
    ];
    for (const [i, [name, mutate, expected]] of variants.entries()) {
      const dir = join(info.dir, `bad-keys-${i}`);
      await cp(keys, dir, { recursive: true });
      const inv = (await mutate(dir, info.files.inventory)) ?? info.files.inventory;
      const r = await cli(info, ['import-horcrux', dir, '-i', inv]);
      expect(r.code, name).toBe(3);
      expect(r.stderr, name).toMatch(/E_INPUT/);
      expect(r.stderr, name).toMatch(/nothing was stored/);
      expect(r.stderr, name).toMatch(expected);
      for (const s of secrets) {
        expect(r.stderr.includes(s) || r.stdout.includes(s), `${name}: key material in the output`).toBe(false);
      }
      expect(await storedCount(info), name).toBe(0);
    }
  });

  it('import stores each file at horcrux/<cosigner>/{ecies,shard} (exact bytes), then changes nothing', async () => {
    const r = await cli(info, ['import-horcrux', keys, '-i', info.files.inventory]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/6 written, 0 unchanged/);
    expect(r.stdout).toMatch(/--shred-source/);
    for (const s of await privateValues(keys)) expect(r.stdout).not.toContain(s);
    for (const c of COSIGNERS) {
      for (const k of KINDS) {
        const kv = await kvStatus(info, `secret/data/krypton/${CHAIN}/horcrux/${c}/${k}`);
        expect(kv.status).toBe(200);
        expect(sha256(kv.json!), `${c}/${k}`).toBe(want[c]![k]);
      }
    }
    const again = await cli(info, ['import-horcrux', keys, '-i', info.files.inventory, '--json']);
    expect(again.code).toBe(0);
    const res = JSON.parse(again.stdout.trim()) as { written: number; unchanged: number };
    expect(res).toMatchObject({ written: 0, unchanged: 6 });
    expect(existsSync(join(keys, 'cosigner_1', 'ecies_keys.json'))).toBe(true);
  });

  it('bring-up puts each cosigner\'s own two files, 0600, in its tmpfs key dir (0700) and nowhere else; Horcrux runs', async () => {
    const r = await cli(info, ['apply', BRINGUP, '-i', info.files.inventory, '--json']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.summary).toMatchObject({ ok: true, changed: 3, failed: 0 });
    const secrets = await privateValues(keys);
    for (const s of secrets) expect(r.stdout).not.toContain(s);
    for (const c of COSIGNERS) {
      const fs = await hostExec(c, ['findmnt', '-n', '-o', 'FSTYPE', '--mountpoint', KEY_DIR]);
      expect(fs.stdout.trim(), c).toBe('tmpfs');
      expect((await hostExec(c, ['stat', '-c', '%a', KEY_DIR])).stdout.trim(), c).toBe('700');
      const ls = await hostExec(c, ['ls', '-A', KEY_DIR]);
      expect(ls.stdout.trim().split('\n').sort(), c).toEqual([fileOf.shard, fileOf.ecies].sort());
      for (const k of KINDS) {
        const path = `${KEY_DIR}/${fileOf[k]}`;
        expect((await hostExec(c, ['stat', '-c', '%a %F', path])).stdout.trim(), `${c} ${path}`).toBe('600 regular file');
        expect((await hostExec(c, ['sha256sum', path])).stdout.split(' ')[0], `${c} ${path}`).toBe(want[c]![k]);
      }
      expect((await hostExec(c, ['horcruxctl', 'status'])).code, `${c}: stand-in running`).toBe(0);
      const log = (await hostExec(c, ['cat', '/var/log/krypton/horcrux.log'])).stdout;
      expect(log).toMatch(new RegExp(`started id=${c.slice(-1)} threshold=2/3 chain=${CHAIN}`));
      // config.yaml (non-secret) in the home on persistent disk; state/ on persistent disk too.
      const cfg = (await hostExec(c, ['cat', '/opt/horcrux/config.yaml'])).stdout;
      expect(cfg).toContain(`keyDir: "${KEY_DIR}"`);
      expect(cfg).toContain('  threshold: 2');
      for (const o of COSIGNERS) expect(cfg).toContain(`p2pAddr: "tcp://${info.hosts[o]!.address}:2222"`);
      expect(cfg).toContain(`privValAddr: "tcp://${info.hosts['val-1']!.address}:1234"`);
      expect((await hostExec(c, ['findmnt', '-n', '-o', 'FSTYPE', '-T', '/opt/horcrux/state'])).stdout.trim()).not.toBe('tmpfs');
      // No key material on any persistent disk of the fleet.
      const disk = await persistentText(info, c);
      for (const s of secrets) expect(disk.includes(s), `${c}: key material on persistent disk`).toBe(false);
    }
    const nodeDisk = await persistentText(info, 'val-1');
    for (const s of secrets) expect(nodeDisk.includes(s)).toBe(false);
    expect((await hostExec('val-1', ['findmnt', '-n', '/run/krypton-secrets'])).stdout.trim(), 'val-1 untouched').toBe('');
  });

  it('cosigner-1\'s Vault token reads its own files and gets 403 on cosigner-2\'s (and on metadata)', async () => {
    const token = (await hostExec('cosigner-1', ['cat', '/run/krypton-secrets/agent-token'])).stdout.trim();
    expect(token).not.toBe('');
    for (const k of KINDS) {
      expect((await kvStatus(info, `secret/data/krypton/${CHAIN}/horcrux/cosigner-1/${k}`, token)).status).toBe(200);
      expect((await kvStatus(info, `secret/data/krypton/${CHAIN}/horcrux/cosigner-2/${k}`, token)).status).toBe(403);
      expect((await kvStatus(info, `secret/data/krypton/${CHAIN}/horcrux/cosigner-3/${k}`, token)).status).toBe(403);
    }
    expect((await kvStatus(info, `secret/metadata/krypton/${CHAIN}/horcrux/cosigner-1/ecies`, token)).status).toBe(403);
    expect((await kvStatus(info, `secret/data/krypton/${CHAIN}/engine-jwt`, token)).status).toBe(403);
  });

  it('a second bring-up changes nothing and says why for every step', async () => {
    const r = await cli(info, ['apply', BRINGUP, '-i', info.files.inventory, '--json']);
    expect(r.code).toBe(0);
    expect(r.summary).toMatchObject({ ok: true, changed: 0, unchanged: 3 });
    const steps = r.events.filter((e) => e['type'] === 'step');
    expect(steps).toHaveLength(30);
    for (const s of steps) {
      expect(s['status']).toBe('ok');
      expect(String(s['reason'] ?? '')).not.toBe('');
    }
  });

  it('--limit cosigner-2 brings up cosigner-2 after a reboot and touches no other host', async () => {
    await simulateReboot('cosigner-2');
    expect((await hostExec('cosigner-2', ['findmnt', '-n', KEY_DIR])).stdout.trim()).toBe('');
    const before = Object.fromEntries(await Promise.all(['val-1', 'cosigner-1', 'cosigner-3'].map(async (h) => [h, await sshLogins(info, h)] as const)));
    const pids = Object.fromEntries(await Promise.all(['cosigner-1', 'cosigner-3'].map(async (h) => [h, (await hostExec(h, ['cat', '/run/horcrux/horcrux.pid'])).stdout.trim()] as const)));

    const r = await cli(info, ['apply', BRINGUP, '-i', info.files.inventory, '--limit', 'cosigner-2', '--json']);
    expect(r.code).toBe(0);
    expect(Object.keys(r.summary!.hosts)).toEqual(['cosigner-2']);
    expect(r.summary).toMatchObject({ changed: 1 });
    for (const e of r.events) if ('host' in e) expect(e['host']).toBe('cosigner-2');
    for (const k of KINDS) expect((await hostExec('cosigner-2', ['sha256sum', `${KEY_DIR}/${fileOf[k]}`])).stdout.split(' ')[0]).toBe(want['cosigner-2']![k]);
    expect((await hostExec('cosigner-2', ['horcruxctl', 'status'])).code).toBe(0);

    for (const [h, n] of Object.entries(before)) expect(await sshLogins(info, h), `${h} got an SSH session`).toBe(n);
    for (const [h, pid] of Object.entries(pids)) expect((await hostExec(h, ['cat', '/run/horcrux/horcrux.pid'])).stdout.trim(), `${h} restarted`).toBe(pid);
  });

  it('a chmod-ed key file is put back to 0600 (the stand-in would refuse it at its next start)', async () => {
    await hostExec('cosigner-3', ['chmod', '0644', `${KEY_DIR}/${fileOf.shard}`]);
    const verify = join(info.dir, 'verify-keys.yml');
    await writeFile(verify, '- name: verify\n  hosts: cosigners\n  tasks:\n    - horcrux.verify-keys\n');
    const bad = await cli(info, ['apply', verify, '-i', info.files.inventory, '--json']);
    expect(bad.code).toBe(1);
    expect(bad.summary?.hosts['cosigner-3']?.error?.code).toBe('E_VERIFY');
    expect(bad.summary?.hosts['cosigner-1']?.status).toBe('unchanged');
    const fix = await cli(info, ['apply', BRINGUP, '-i', info.files.inventory, '--json']);
    expect(fix.code).toBe(0);
    expect(fix.summary?.hosts['cosigner-3']?.status).toBe('changed');
    expect((await hostExec('cosigner-3', ['stat', '-c', '%a', `${KEY_DIR}/${fileOf.shard}`])).stdout.trim()).toBe('600');
  });

  it('verify audits each cosigner: key dir on tmpfs with only its own files, state/ on persistent disk', async () => {
    const limit = ['--limit', COSIGNERS.join(',')];
    const ok = await cli(info, ['verify', '-i', info.files.inventory, ...limit, '--json']);
    expect(ok.code, ok.stdout).toBe(0);
    const rows = ok.events.filter((e) => e['type'] === 'check');
    // A cosigner is audited like a node (its tmpfs dirs, its agent, its policy and its clock) plus its key dir and state/.
    expect(rows.map((e) => `${e['host']} ${e['check']}`).sort()).toEqual(
      COSIGNERS.flatMap((c) => ['agent', 'clock', 'cosigner.keys', 'cosigner.state', 'secret_id', 'tmpfs', 'tmpfs.key_dir', 'vault.policy'].map((k) => `${c} ${k}`)).sort(),
    );
    await hostExec('cosigner-1', ['sh', '-c', `echo '{}' > ${KEY_DIR}/stray.json`]);
    try {
      const bad = await cli(info, ['verify', '-i', info.files.inventory, ...limit, '--json']);
      expect(bad.code).toBe(1);
      const failed = bad.events.filter((e) => e['type'] === 'check' && e['ok'] === false);
      expect(failed.map((e) => `${e['host']} ${e['check']}`)).toEqual(['cosigner-1 cosigner.keys']);
      expect(String(failed[0]?.['detail'])).toContain('stray.json');
    } finally {
      await hostExec('cosigner-1', ['rm', '-f', `${KEY_DIR}/stray.json`]);
    }
  });

  it('--shred-source shreds the local files only after the stored fingerprints are verified', async () => {
    const copy = join(info.dir, 'keys-to-shred');
    await mkdir(copy);
    await cp(keys, copy, { recursive: true });
    const r = await cli(info, ['import-horcrux', copy, '-i', info.files.inventory, '--shred-source']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/0 written, 6 unchanged, 6 local files shredded/);
    expect(r.stdout.split('\n').filter((l) => l.startsWith('shredded '))).toHaveLength(6);
    expect(await readdir(copy)).toEqual([]);
    // The stored values are untouched.
    expect(sha256((await kvStatus(info, `secret/data/krypton/${CHAIN}/horcrux/cosigner-2/shard`)).json!)).toBe(want['cosigner-2']!.shard);
  });

  it('a bad inventory (0.0.0.0 peer) is refused before anything happens, at file:line:col', async () => {
    const inv = join(info.dir, 'inventory.zero.yml');
    await writeFile(inv, (await readFile(info.files.inventory, 'utf8')).replace(`address: ${info.hosts['cosigner-3']!.address}`, `address: ${info.hosts['cosigner-3']!.address}\n    p2p_address: 0.0.0.0`));
    const r = await cli(info, ['apply', BRINGUP, '-i', inv]);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/inventory\.zero\.yml:\d+:\d+: cosigner-3: tcp:\/\/0\.0\.0\.0:2222 is the unspecified address/);
  });
});

/**
 * backend: kms. The sandbox's moto gives identities to nodes only, and its operator policy covers the Engine-API
 * JWT context only (src/render/iam-policy.ts),
 * so this run uses moto's root identity as the operator and `kms.decrypt: operator` (the laptop decrypts in memory
 * and delivers over SFTP). The cosigners' own host-side decrypt is covered by unit tests until the sandbox gives
 * cosigners an AWS identity.
 */
describe('Horcrux cosigner bring-up with KMS blobs (moto with IAM, each cosigner decrypts with its own identity)', () => {
  let info: SandboxInfo;
  let inv: string;
  let rootEnv: Record<string, string>;
  const want: Record<string, Record<'ecies' | 'shard', string>> = {};

  beforeAll(async () => {
    info = await sandboxUp({ hosts: 1, cosigners: 3, backend: 'kms' });
    const aws = info.aws!;
    rootEnv = { AWS_ACCESS_KEY_ID: aws.root.accessKeyId, AWS_SECRET_ACCESS_KEY: aws.root.secretAccessKey };
    inv = join(info.dir, 'inventory.operator.yml');
    const text = await readFile(info.files.inventory, 'utf8');
    expect(text).toMatch(/^kms:\n/m);
    await writeFile(inv, text.replace(/^kms:\n/m, 'kms:\n  decrypt: operator\n'));
    for (const [i, c] of COSIGNERS.entries()) {
      want[c] = {
        ecies: sha256(await readFile(join(info.files.horcruxKeys!, `cosigner_${i + 1}`, 'ecies_keys.json'))),
        shard: sha256(await readFile(join(info.files.horcruxKeys!, `cosigner_${i + 1}`, `${CHAIN}_shard.json`))),
      };
    }
  }, 25 * 60_000);

  afterAll(async () => {
    if (info) await sandboxDown();
  }, 60_000);

  it('import writes one context-bound blob per file next to the inventory, no plaintext in it', async () => {
    // The sandbox operator (krypton-admin) carries exactly the admin policy `render` writes.
    const r = await cli(info, ['import-horcrux', info.files.horcruxKeys!, '-i', info.files.inventory]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/6 written, 0 unchanged/);
    for (const c of COSIGNERS) {
      for (const k of KINDS) {
        const dir = join(info.dir, 'blobs', CHAIN, 'horcrux', c, k);
        expect((await readdir(dir)).sort()).toEqual(['v1.enc', 'v1.json']);
        const meta = JSON.parse(await readFile(join(dir, 'v1.json'), 'utf8')) as { encryption_context: Record<string, string> };
        expect(meta.encryption_context).toEqual({ purpose: `krypton-horcrux-${k}`, network: CHAIN, cosigner: c });
      }
    }
    const again = await cli(info, ['import-horcrux', info.files.horcruxKeys!, '-i', info.files.inventory]);
    expect(again.stdout).toMatch(/0 written, 6 unchanged/);
  });

  it("cosigner-2's blob does not decrypt under cosigner-1's context (nor an ECIES blob as a shard); under its own it does", async () => {
    const aws = info.aws!;
    const decrypt = (blob: string, ctx: Record<string, string>) =>
      spawnSync('/usr/bin/aws', ['kms', 'decrypt', '--ciphertext-blob', `fileb://${blob}`, '--encryption-context', JSON.stringify(ctx), '--region', aws.region, '--endpoint-url', aws.endpoint, '--query', 'Plaintext', '--output', 'text'], {
        encoding: 'utf8',
        env: { PATH: '/usr/bin:/bin', HOME: info.dir, ...rootEnv },
      });
    const blob2 = join(info.dir, 'blobs', CHAIN, 'horcrux', 'cosigner-2', 'shard', 'v1.enc');
    const wrong = decrypt(blob2, { purpose: 'krypton-horcrux-shard', network: CHAIN, cosigner: 'cosigner-1' });
    expect(wrong.status).not.toBe(0);
    expect(wrong.stderr).toMatch(/InvalidCiphertextException/);
    const asShard = decrypt(join(info.dir, 'blobs', CHAIN, 'horcrux', 'cosigner-2', 'ecies', 'v1.enc'), { purpose: 'krypton-horcrux-shard', network: CHAIN, cosigner: 'cosigner-2' });
    expect(asShard.stderr).toMatch(/InvalidCiphertextException/);
    const right = decrypt(blob2, { purpose: 'krypton-horcrux-shard', network: CHAIN, cosigner: 'cosigner-2' });
    expect(right.status).toBe(0);
    expect(sha256(Buffer.from(right.stdout.trim(), 'base64'))).toBe(want['cosigner-2']!.shard);
  });

  it('bring-up puts each cosigner\'s own files in its tmpfs key dir; a second run changes nothing', async () => {
    const r = await cli(info, ['apply', BRINGUP, '-i', info.files.inventory, '--json']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.summary).toMatchObject({ ok: true, changed: 3 });
    for (const c of COSIGNERS) {
      expect((await hostExec(c, ['findmnt', '-n', '-o', 'FSTYPE', '--mountpoint', KEY_DIR])).stdout.trim()).toBe('tmpfs');
      expect((await hostExec(c, ['ls', '-A', KEY_DIR])).stdout.trim().split('\n').sort()).toEqual([fileOf.shard, fileOf.ecies].sort());
      for (const k of KINDS) {
        const path = `${KEY_DIR}/${fileOf[k]}`;
        expect((await hostExec(c, ['stat', '-c', '%a', path])).stdout.trim()).toBe('600');
        expect((await hostExec(c, ['sha256sum', path])).stdout.split(' ')[0], `${c} ${k}`).toBe(want[c]![k]);
      }
      expect((await hostExec(c, ['horcruxctl', 'status'])).code).toBe(0);
    }
    const again = await cli(info, ['apply', BRINGUP, '-i', info.files.inventory, '--json']);
    expect(again.code).toBe(0);
    expect(again.summary, JSON.stringify(again.events.filter((e) => e['type'] === 'step' && e['status'] === 'changed'))).toMatchObject({ changed: 0, unchanged: 3 });
  });

  it("cosigner-1's own AWS identity cannot decrypt cosigner-2's blob, even under cosigner-2's context", async () => {
    const aws = info.aws!;
    const blob = `/opt/horcrux/blobs/${fileOf.shard}.enc`;
    await hostExec('cosigner-1', ['sh', '-c', `cat > /tmp/other.enc`], { input: await readFile(join(info.dir, 'blobs', CHAIN, 'horcrux', 'cosigner-2', 'shard', 'v1.enc')) });
    const tryDecrypt = (host: string, file: string, cosigner: string) =>
      hostExec(host, ['/usr/bin/aws', 'kms', 'decrypt', '--ciphertext-blob', `fileb://${file}`, '--encryption-context', JSON.stringify({ purpose: 'krypton-horcrux-shard', network: CHAIN, cosigner }), '--region', aws.region, '--endpoint-url', aws.endpoint, '--query', 'KeyId', '--output', 'text']);
    const foreign = await tryDecrypt('cosigner-1', '/tmp/other.enc', 'cosigner-2');
    expect(foreign.code).not.toBe(0);
    expect(foreign.stderr).toMatch(/AccessDenied/);
    expect((await tryDecrypt('cosigner-1', blob, 'cosigner-1')).code).toBe(0);
    await hostExec('cosigner-1', ['rm', '-f', '/tmp/other.enc']);
  });

  it('decrypt: operator (the laptop decrypts, SFTP into the key dir) brings a cosigner back after a reboot', async () => {
    await simulateReboot('cosigner-3');
    const r = await cli(info, ['apply', BRINGUP, '-i', inv, '--limit', 'cosigner-3', '--json']);
    expect(r.code, r.stdout).toBe(0);
    for (const k of KINDS) expect((await hostExec('cosigner-3', ['sha256sum', `${KEY_DIR}/${fileOf[k]}`])).stdout.split(' ')[0]).toBe(want['cosigner-3']![k]);
    expect((await hostExec('cosigner-3', ['horcruxctl', 'status'])).code).toBe(0);
  });
});
