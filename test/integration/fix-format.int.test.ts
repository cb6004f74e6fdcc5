/**
 * `apply --fix-format` (issue 10 item 1) on the real stores: OpenBao KV v2 and KMS blobs (moto with IAM enforced),
 * real sshd hosts, the real CLI. A stored Engine-API JWT written as `0xA1B2…` (mixed case) or with a trailing
 * CR LF: without the flag the run exits 3 naming the path, version and problem, with nothing changed on any host
 * or in the store (before/after snapshots of both); with the flag a new version holds the canonical form (checked
 * by fingerprint), the hosts are provisioned from it, and the output has fingerprints, never the value.
 *
 * One sandbox (backend kms, so moto runs; OpenBao runs in every sandbox): val-1 is provisioned from Vault (the
 * same inventory with `backend: vault`), val-2 from KMS.
 */
import { randomBytes } from 'node:crypto';
import { readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DecryptCommand, EncryptCommand, KMSClient } from '@aws-sdk/client-kms';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hostExec, sandboxDown, sandboxUp, type SandboxInfo } from '../sandbox/index.ts';
import { cli, sha256, type CliResult } from './helpers.ts';

const PROVISION = 'playbooks/provision.yml';
const CTX = { purpose: 'krypton-engine-jwt', network: '473374' };
const KV = 'secret/krypton/473374/engine-jwt';

process.env['AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED'] ??= 'true';

/** A fresh 64-hex value and its two bad forms: `0x` + the first 10 characters upper case, and a trailing CR LF. */
function values() {
  const hex = randomBytes(32).toString('hex').replace(/^[0-9]/, 'a'); // starts with a letter: its case shows
  return { hex, mixed: `0x${hex.slice(0, 10).toUpperCase()}${hex.slice(10)}`, crlf: `${hex}\r\n` };
}

/** Every form of a value a leak would take: as is, canonical, upper case, without 0x, JSON-quoted. */
function forms(v: string): string[] {
  const hex = v.trim().replace(/^0x/i, '').toLowerCase();
  return [v, hex, hex.toUpperCase(), JSON.stringify(v).slice(1, -1), Buffer.from(hex, 'hex').toString('base64')];
}

describe('apply --fix-format on OpenBao KV v2 and on KMS blobs', () => {
  let info: SandboxInfo;
  let vaultInv: string;
  let kms: KMSClient;
  const blobDir = () => join(info.dir, 'blobs', '473374', 'engine-jwt');

  beforeAll(async () => {
    info = await sandboxUp({ hosts: 2, backend: 'kms', env: false });
    vaultInv = join(info.dir, 'inventory.vault.yml');
    await writeFile(vaultInv, (await readFile(info.files.inventory, 'utf8')).replace(/^backend: kms$/m, 'backend: vault'));
    const aws = info.aws!;
    kms = new KMSClient({ region: aws.region, endpoint: aws.endpoint, credentials: { accessKeyId: aws.admin.accessKeyId, secretAccessKey: aws.admin.secretAccessKey }, maxAttempts: 1 });
  }, 300_000);

  afterAll(async () => {
    kms?.destroy();
    await sandboxDown();
  }, 60_000);

  // ------------------------------------------------------------------ the stores, as an operator's tools see them

  async function vaultPut(value: string): Promise<void> {
    const res = await fetch(`${info.vault.address}/v1/secret/data/krypton/473374/engine-jwt`, {
      method: 'POST',
      headers: { 'X-Vault-Token': info.vault.token, 'content-type': 'application/json' },
      body: JSON.stringify({ data: { hex: value } }),
    });
    expect(res.status).toBe(200);
  }
  async function vaultState(): Promise<{ version: number; sha: string; versions: string[] }> {
    const h = { headers: { 'X-Vault-Token': info.vault.token } };
    const meta = (await (await fetch(`${info.vault.address}/v1/secret/metadata/krypton/473374/engine-jwt`, h)).json()) as { data: { current_version: number; versions: Record<string, unknown> } };
    const data = (await (await fetch(`${info.vault.address}/v1/secret/data/krypton/473374/engine-jwt`, h)).json()) as { data: { data: { hex: string } } };
    return { version: meta.data.current_version, sha: sha256(data.data.data.hex), versions: Object.keys(meta.data.versions).sort() };
  }
  async function blobVersions(): Promise<number[]> {
    const names = await readdir(blobDir()).catch(() => [] as string[]);
    return names.map((n) => /^v(\d+)\.enc$/.exec(n)?.[1]).filter((x): x is string => !!x).map(Number).sort((a, b) => a - b);
  }
  /** Writes `value` as the next blob version, as someone with the CMK would (no check of the value's form). */
  async function kmsPut(value: string): Promise<number> {
    const next = ((await blobVersions()).at(-1) ?? 0) + 1;
    const out = await kms.send(new EncryptCommand({ KeyId: info.aws!.keyAlias, Plaintext: Buffer.from(value), EncryptionContext: CTX }));
    const { mkdir } = await import('node:fs/promises');
    await mkdir(blobDir(), { recursive: true });
    await writeFile(join(blobDir(), `v${next}.enc`), Buffer.from(out.CiphertextBlob!));
    return next;
  }
  async function kmsState(): Promise<{ version: number; sha: string; versions: number[] }> {
    const versions = await blobVersions();
    const v = versions.at(-1)!;
    const out = await kms.send(new DecryptCommand({ CiphertextBlob: await readFile(join(blobDir(), `v${v}.enc`)), EncryptionContext: CTX }));
    return { version: v, sha: sha256(Buffer.from(out.Plaintext!)), versions };
  }

  /** What a host holds that a run could change: the tmpfs and its files (mode, size, mtime, SHA-256), JWT_PATH, restarts. */
  async function hostSnapshot(host: string): Promise<string> {
    const r = await hostExec(host, [
      'sh',
      '-c',
      'findmnt -n -o FSTYPE,OPTIONS /run/krypton-secrets; ls -la --time-style=full-iso /run/krypton-secrets 2>&1; sha256sum /run/krypton-secrets/* 2>&1; grep -c . /var/log/krypton/nodectl.log 2>&1; cat /opt/krypton/.env 2>&1; ls /opt/krypton/secrets 2>&1',
    ]);
    return r.stdout;
  }
  const snapshot = async () => ({ 'val-1': await hostSnapshot('val-1'), 'val-2': await hostSnapshot('val-2') });

  function expectNoValue(r: CliResult, value: string): void {
    for (const f of forms(value)) {
      expect(r.stdout, 'stdout').not.toContain(f);
      expect(r.stderr, 'stderr').not.toContain(f);
    }
  }
  async function jwtSha(host: string): Promise<string> {
    return sha256((await hostExec(host, ['cat', '/run/krypton-secrets/jwt.hex'])).stdout);
  }

  // ------------------------------------------------------------------------------------------------- the runs

  const cases: { backend: 'vault' | 'kms'; host: string; inv: () => string; put: (v: string) => Promise<unknown>; state: () => Promise<{ version: number; sha: string }>; where: () => string }[] = [
    { backend: 'vault', host: 'val-1', inv: () => vaultInv, put: vaultPut, state: vaultState, where: () => KV },
    { backend: 'kms', host: 'val-2', inv: () => info.files.inventory, put: kmsPut, state: kmsState, where: () => 'blobs/473374/engine-jwt' },
  ];

  for (const c of cases) {
    it(`${c.backend}: 0x + mixed case, then CR LF — refused without the flag (exit 3, nothing changed), fixed with it`, async () => {
      for (const [form, pick] of [
        ['mixed', (v: ReturnType<typeof values>) => v.mixed],
        ['crlf', (v: ReturnType<typeof values>) => v.crlf],
      ] as const) {
        const v = values();
        const bad = pick(v);
        await c.put(bad);
        const storeBefore = await c.state();
        expect(storeBefore.sha).toBe(sha256(bad));
        const hostsBefore = await snapshot();

        const refused = await cli(info, ['apply', PROVISION, '-i', c.inv(), '-l', c.host]);
        expect(refused.code, `${form}: ${refused.stdout}${refused.stderr}`).toBe(3);
        expect(refused.stderr).toContain(c.where());
        expect(refused.stderr).toContain(`version ${storeBefore.version}`);
        expect(refused.stderr).toContain(form === 'mixed' ? 'byte 0: `0x` prefix; uppercase hex at byte 2' : 'trailing CR LF');
        expect(refused.stderr).toMatch(/nothing was changed on any host/);
        expect(refused.stderr).toMatch(/hint: .*--fix-format/);
        expect(refused.stderr).not.toMatch(/rotate-jwt/);
        expectNoValue(refused, bad);
        expect(await c.state(), `${form}: the store is unchanged`).toEqual(storeBefore);
        expect(await snapshot(), `${form}: no host changed`).toEqual(hostsBefore);

        const fixed = await cli(info, ['apply', PROVISION, '-i', c.inv(), '-l', c.host, '--fix-format', ...(form === 'mixed' ? ['--json'] : [])]);
        expect(fixed.code, `${form}: ${fixed.stdout}${fixed.stderr}`).toBe(0);
        const after = await c.state();
        expect(after.version, 'a new version').toBe(storeBefore.version + 1);
        expect(after.sha, 'the new version holds the canonical form').toBe(sha256(v.hex));
        expect(await jwtSha(c.host), 'the host holds the canonical form').toBe(sha256(v.hex));
        if (form === 'mixed') {
          const ev = fixed.events.find((e) => e['type'] === 'store-fixed');
          expect(ev).toMatchObject({ source: c.where(), fromVersion: storeBefore.version, toVersion: after.version, fromSha256: sha256(bad), toSha256: sha256(v.hex), hosts: [c.host] });
          expect(fixed.events.indexOf(ev!)).toBeLessThan(fixed.events.findIndex((e) => e['type'] === 'run-start'));
        } else {
          expect(fixed.stdout).toContain(`fixed  ${c.where()}: v${storeBefore.version} (sha256:${sha256(bad).slice(0, 12)}) -> v${after.version} (sha256:${sha256(v.hex).slice(0, 12)}), 64 lowercase hex (was: trailing CR LF; needed by ${c.host})`);
        }
        expectNoValue(fixed, bad);
      }
    });
  }

  it('a wrong length (62 hex) is no form problem: --fix-format still refuses with exit 3, nothing written', async () => {
    // On KMS: no agent there that could render the new version meanwhile (a host fetches only when told to).
    const short = randomBytes(31).toString('hex');
    const v = await kmsPut(short);
    const before = await kmsState();
    const hostsBefore = await snapshot();
    const r = await cli(info, ['apply', PROVISION, '-i', info.files.inventory, '-l', 'val-2', '--fix-format']);
    expect(r.code).toBe(3);
    expect(r.stderr).toContain(`the blob blobs/473374/engine-jwt/v${v}.enc (version ${v}) decrypts to a value that is not valid: 31 bytes, expected 32 (64 hex)`);
    expect(r.stderr).toMatch(/--fix-format cannot fix it/);
    expectNoValue(r, short);
    expect(await kmsState()).toEqual(before);
    expect(await snapshot()).toEqual(hostsBefore);
  });

  it('--fix-format belongs to playbooks that seed or rotate the JWT: a check-only playbook is E_USAGE', async () => {
    const check = join(info.dir, 'check-only.yml');
    await writeFile(check, '- name: check the Engine API\n  hosts: nodes\n  tasks:\n    - engine.verify-auth\n');
    const r = await cli(info, ['apply', check, '-i', vaultInv, '--fix-format']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--fix-format applies to playbooks that seed or rotate the Engine-API JWT/);
  });
});
