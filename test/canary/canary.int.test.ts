/**
 * The canary leak matrix (issue 10): known canary values — a JWT the test chose, env-secret values, Horcrux ECIES
 * keys and shards, and what the runs made (rotated JWTs, response-wrapping tokens, AppRole role_ids and
 * secret_ids, agent and verify tokens, captured from OpenBao's audit device and the store) — go through every
 * command (plan, apply provision / rotate-jwt / migrate-plaintext / cosigner-bringup, rollback-jwt, verify,
 * import-env, import-horcrux, render) on every backend (Vault, KMS, Secrets Manager), with --json, --debug and
 * failure paths (a stopped agent, a wrong token or AWS key, a refused host, a malformed value in the store).
 * After each run every place (./places.ts) is searched for every form of every canary (./canaries.ts); a hit
 * fails the run naming place, kind and form (never the value). Prints `canary: N places × M runs, 0 found`.
 *
 * First, the searcher is shown to fail: a canary planted in each place, in a different form each, is found there.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Secret } from '../../src/core/secret.ts';
import { hostExec, startHostSshd, stopHostSshd } from '../sandbox/index.ts';
import { CanarySet, fingerprint, type Canary, type CanaryKind } from './canaries.ts';
import { BRINGUP, MIGRATE, PROVISION, ROTATE, canaryRun, envCanaries, openMatrix, withStore, writeEnvFixture, type Matrix } from './matrix.ts';
import { REPO } from './places.ts';

const hex32 = () => randomBytes(32).toString('hex');

describe('canary leak matrix: Vault / OpenBao (2 nodes, 1 cosigner, plaintext JWTs to migrate)', () => {
  let m: Matrix;

  beforeAll(async () => {
    m = await openMatrix({ hosts: 2, cosigners: 1, plaintextJwt: true, jwt: hex32() });
  }, 300_000);

  afterAll(async () => {
    await m?.close();
  }, 120_000);

  it('the searcher finds a canary planted in each place, each in another form (hex, base64, base64url, JSON-escaped, raw bytes, a /proc cmdline)', async () => {
    const plants = new CanarySet();
    const plant = (kind: CanaryKind, text: string, encoding?: Canary['encoding']): Canary => {
      const c: Canary = { kind, text, ...(encoding ? { encoding } : {}) };
      plants.add(c);
      return c;
    };
    const b64At = (s: string | Buffer, pad: number) => Buffer.concat([Buffer.alloc(pad, 0x41), Buffer.from(s)]).toString('base64');
    const since = Date.now();
    const inStdout = plant('jwt', hex32(), 'hex');
    const inStderr = plant('wrapping-token', `s.${randomBytes(18).toString('base64url')}`);
    const inJson = plant('secret_id', randomBytes(16).toString('hex'));
    const inCheckout = plant('vault-token', `hvs.${randomBytes(24).toString('base64url')}`);
    // Bytes whose base64 differs from their base64url at every alignment, so the form found can only be base64url.
    let tempBytes = randomBytes(32);
    while ([0, 1, 2].some((k) => !/[+/]/.test(tempBytes.subarray(k, k + 30).toString('base64')))) tempBytes = randomBytes(32);
    const inTemp = plant('horcrux-shard', tempBytes.toString('base64'), 'base64');
    const inNpm = plant('jwt', hex32(), 'hex');
    const inShared = plant('role_id', randomBytes(16).toString('hex'));
    const inLaptopCmd = plant('vault-token', `hvs.${randomBytes(20).toString('base64url')}`);
    const hosts = m.search.hostNames;
    const inHostDir = Object.fromEntries(hosts.map((h) => [h, plant('env-value', `cnry"plant%${randomBytes(10).toString('hex')}`)]));
    const inAgentLog = Object.fromEntries(hosts.map((h) => [h, plant('secret_id', randomBytes(16).toString('hex'))]));
    const inHostCmd = Object.fromEntries(hosts.map((h) => [h, plant('horcrux-ecies-key', randomBytes(32).toString('base64'), 'base64')]));

    // Files: the checkout (upper-case hex of the bytes), a temp dir (base64url of the bytes at offset 2), the
    // npm logs (the raw 32 bytes), the shared root fs (base64 of the text at offset 1).
    const checkoutFile = join(REPO, `.canary-plant-${process.pid}`);
    const tempDir = mkdtempSync(join(tmpdir(), 'krypton-canary-plant-'));
    const npmFile = join('/root/.npm/_logs', `krypton-canary-plant-${process.pid}.log`);
    const sharedFile = join('/root', `.krypton-canary-plant-${process.pid}`);
    let laptopChild: ReturnType<typeof spawn> | undefined;
    try {
      writeFileSync(checkoutFile, `x ${Buffer.from(inCheckout.text).toString('hex').toUpperCase()} y`);
      writeFileSync(join(tempDir, 'plant.txt'), b64At(Buffer.from(inTemp.text, 'base64'), 2).replace(/\+/g, '-').replace(/\//g, '_'));
      mkdirSync('/root/.npm/_logs', { recursive: true });
      writeFileSync(npmFile, Buffer.concat([Buffer.from('bin:'), Buffer.from(inNpm.text, 'hex')]));
      writeFileSync(sharedFile, b64At(inShared.text, 1));
      for (const h of hosts) {
        // A host's persistent dir: the value JSON-escaped (it has a quote); its agent log: the text, appended.
        const dir = m.info.hosts[h]!.kind === 'node' ? '/opt/krypton' : '/opt/horcrux';
        expect((await hostExec(h, ['sh', '-c', `cat > ${dir}/.canary-plant`], { input: JSON.stringify({ v: inHostDir[h]!.text }) })).code).toBe(0);
        expect((await hostExec(h, ['sh', '-c', 'cat >> /var/log/krypton/agent.log'], { input: `plant ${inAgentLog[h]!.text}\n` })).code).toBe(0);
      }
      // Command lines: the base64 of a key's bytes at offset 1 on a host; a token on the laptop.
      laptopChild = spawn('sh', ['-c', 'sleep 30', inLaptopCmd.text], { stdio: 'ignore' });
      await Promise.all(hosts.map((h) => hostExec(h, ['sh', '-c', 'sleep 1', b64At(Buffer.from(inHostCmd[h]!.text, 'base64'), 1)])));
      const cmdlines = await m.sampler.drain();
      const stdout = `plan ok ${inStdout.text.toUpperCase()}\n{"type":"event","detail":"${[...inJson.text].map((c) => `\\u00${c.charCodeAt(0).toString(16).padStart(2, '0')}`).join('')}"}\n`;
      const stderr = `error: ${b64At(inStderr.text, 0)}\n`;
      const res = await m.search.search({ stdout, stderr, since, cmdlines }, plants);
      const found = (c: Canary) => new Set(res.hits.filter((x) => x.fingerprint === fingerprint(c)).map((x) => x.place));
      const expectAt = (c: Canary, place: string) => expect([...found(c)], place).toContain(place);
      expectAt(inStdout, 'stdout');
      expectAt(inStderr, 'stderr');
      expectAt(inJson, 'JSON events');
      expect([...found(inJson)], 'only decoded JSON shows the \\u-escaped plant').toEqual(['JSON events']);
      expectAt(inCheckout, 'laptop checkout');
      expectAt(inTemp, 'laptop temp dirs');
      expectAt(inNpm, 'laptop ~/.npm/_logs');
      expectAt(inShared, 'shared root fs (/etc /root /var/log /opt)');
      expectAt(inLaptopCmd, 'laptop /proc/*/cmdline');
      for (const h of hosts) {
        expectAt(inHostDir[h]!, `${h} persistent dirs`);
        expectAt(inAgentLog[h]!, `${h} agent log`);
        expectAt(inHostCmd[h]!, `${h} /proc/*/cmdline`);
      }
      // Every place searched was shown to fail once.
      expect(new Set(res.hits.map((x) => x.place))).toEqual(new Set(m.search.placeNames()));
      // And the forms that found them are the planted ones.
      const formOf = (c: Canary, place: string) => res.hits.find((x) => x.place === place && x.fingerprint === fingerprint(c))?.form;
      expect(formOf(inCheckout, 'laptop checkout')).toBe('text as HEX');
      expect(formOf(inNpm, 'laptop ~/.npm/_logs')).toBe('decoded raw');
      expect(formOf(inTemp, 'laptop temp dirs')).toMatch(/^decoded base64url@/);
      expect(formOf(inStderr, 'stderr')).toMatch(/^text as base64@/);
      expect(formOf(inStdout, 'stdout')).toBe('text upper-case');
      expect(formOf(inHostDir[hosts[0]!]!, `${hosts[0]} persistent dirs`)).toBe('JSON-escaped');
      // The matrix's own canaries are nowhere yet.
      const clean = await m.search.search({ stdout, stderr, since, cmdlines }, m.canaries);
      expect(clean.hits).toEqual([]);
    } finally {
      laptopChild?.kill();
      rmSync(checkoutFile, { force: true });
      rmSync(tempDir, { recursive: true, force: true });
      rmSync(npmFile, { force: true });
      rmSync(sharedFile, { force: true });
      for (const h of hosts) await hostExec(h, ['sh', '-c', 'rm -f /opt/krypton/.canary-plant /opt/horcrux/.canary-plant']);
    }
  });

  it('import-env, import-horcrux, plan and apply migrate-plaintext leak nothing', async () => {
    const inv = m.info.files.inventory;
    const env = writeEnvFixture(m, envCanaries());
    await canaryRun(m, 'import-env --json', ['import-env', env, '-i', inv, '--replace', '--json']);
    await canaryRun(m, 'import-horcrux --debug', ['import-horcrux', m.info.files.horcruxKeys!, '-i', inv, '--debug']);
    // --shred-source on copies in the OS temp dir (searched): a copy the shred missed would be found there.
    const copies = mkdtempSync(join(tmpdir(), 'krypton-canary-shred-'));
    try {
      const envCopy = join(copies, 'node-secrets.env');
      cpSync(env, envCopy);
      await canaryRun(m, 'import-env --shred-source', ['import-env', envCopy, '-i', inv, '--replace', '--shred-source']);
      // (Copied only now: a copy the next run is to shred is still a plaintext key file in the temp dir.)
      cpSync(m.info.files.horcruxKeys!, join(copies, 'keys'), { recursive: true });
      await canaryRun(m, 'import-horcrux --shred-source --json', ['import-horcrux', join(copies, 'keys'), '-i', inv, '--shred-source', '--json']);
      expect(readdirSync(copies, { recursive: true }).filter((f) => String(f).endsWith('.json') || String(f).endsWith('.env'))).toEqual([]);
    } finally {
      rmSync(copies, { recursive: true, force: true });
    }
    // The old plaintext file's value (bootstrap.sh's) must not be copied anywhere by the migration either.
    const legacy = await hostExec('val-1', ['cat', '/opt/krypton/jwt.hex']);
    expect(legacy.code).toBe(0);
    m.canaries.add({ kind: 'jwt', text: legacy.stdout.trim(), encoding: 'hex' });
    // Exit 1: plan probes the Engine API, which still runs on the plaintext value (E_ENGINE_AUTH per node).
    await canaryRun(m, 'plan migrate-plaintext --json', ['plan', MIGRATE, '-i', inv, '--json'], { codes: [0, 1] });
    await canaryRun(m, 'apply migrate-plaintext --json', ['apply', MIGRATE, '-i', inv, '--json']);
  });

  it('apply provision, cosigner-bringup, verify, rotate-jwt, rollback-jwt and render leak nothing', async () => {
    const inv = m.info.files.inventory;
    await canaryRun(m, 'apply provision --debug', ['apply', PROVISION, '-i', inv, '--debug']);
    await canaryRun(m, 'apply cosigner-bringup --json --debug', ['apply', BRINGUP, '-i', inv, '--json', '--debug']);
    await canaryRun(m, 'verify --json', ['verify', '-i', inv, '--json']);
    await canaryRun(m, 'apply rotate-jwt --json', ['apply', ROTATE, '-i', inv, '--json']);
    await canaryRun(m, 'rollback-jwt --debug', ['rollback-jwt', '-i', inv, '--debug']);
    const out = mkdtempSync(join(tmpdir(), 'krypton-canary-render-'));
    try {
      await canaryRun(m, 'render', ['render', '-i', inv, '-o', join(out, 'r')]);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
    // Capture worked: the run's Vault secrets are among the canaries searched.
    const kinds = m.canaries.kinds();
    for (const k of ['jwt', 'env-value', 'horcrux-ecies-key', 'horcrux-shard', 'wrapping-token', 'secret_id', 'role_id', 'vault-token'] as const) {
      expect(kinds[k] ?? 0, `canaries of kind ${k}`).toBeGreaterThan(0);
    }
    expect(kinds['jwt']).toBeGreaterThanOrEqual(3); // chosen, legacy plaintext, rotated
    expect(kinds['role_id']).toBeGreaterThanOrEqual(3); // val-1, val-2, cosigner-1
  });

  it('failure paths leak nothing: a stopped agent, a refused host, a wrong token, a malformed value in the store', async () => {
    const inv = m.info.files.inventory;
    // val-1's agent stopped and val-2 refusing SSH: verify fails both; apply recovers val-1 and fails val-2.
    expect((await hostExec('val-1', ['agentctl', 'stop'])).code).toBe(0);
    await stopHostSshd('val-2', m.info.dir);
    try {
      await canaryRun(m, 'verify --json --debug (val-1 agent stopped, val-2 refuses)', ['verify', '-i', inv, '--json', '--debug'], { codes: [1, 12] });
      await canaryRun(m, 'apply provision --json --debug (val-1 agent stopped, val-2 refuses)', ['apply', PROVISION, '-i', inv, '--json', '--debug'], { codes: [1, 12] });
    } finally {
      await startHostSshd('val-2', m.info.dir);
    }

    const wrong = `hvs.${randomBytes(18).toString('base64url')}`;
    const wrongEnv = { VAULT_TOKEN: wrong, BAO_TOKEN: wrong };
    const also = [{ kind: 'vault-token' as const, text: wrong }];
    await canaryRun(m, 'apply provision --debug (wrong token)', ['apply', PROVISION, '-i', inv, '--debug'], { env: wrongEnv, also, codes: [1, 21, 22] });

    // A value that is not 64 lowercase hex in the store (written past the tool, as a careless `bao kv put` would).
    const good = await withStore(m.info, async (store, ref) => (await store.current(ref('engine-jwt')))!);
    const bad = `0x${good.secret.revealText().toUpperCase()}\r\n`;
    const put = await fetch(`${m.info.vault.address}/v1/secret/data/krypton/${m.info.network}/engine-jwt`, {
      method: 'POST',
      headers: { 'X-Vault-Token': m.info.vault.token, 'content-type': 'application/json' },
      body: JSON.stringify({ data: { hex: bad } }),
    });
    expect(put.status).toBe(200);
    try {
      await canaryRun(m, 'plan provision --json --debug (malformed JWT in the store)', ['plan', PROVISION, '-i', inv, '--json', '--debug'], { codes: [1, 3] });
      await canaryRun(m, 'verify --debug (malformed JWT in the store)', ['verify', '-i', inv, '--debug'], { codes: [1, 3] });
    } finally {
      await withStore(m.info, async (store, ref) => {
        const head = await store.head(ref('engine-jwt'));
        await store.write(ref('engine-jwt'), new Secret(good.secret.revealText()), head);
      });
    }
    await canaryRun(m, 'verify --json (recovered)', ['verify', '-i', inv, '--json']);
  });
});

/** The same commands on an AWS backend: JWT and env-secrets as KMS blobs or Secrets Manager secrets, decrypted on the hosts. */
for (const backend of ['kms', 'secrets-manager'] as const) {
  // Cosigners with their own AWS identity exist for KMS only (test/sandbox/README.md); 2 hosts either way.
  const cosigners = backend === 'kms' ? 1 : 0;
  const nodes = 2 - cosigners;
  describe(`canary leak matrix: ${backend} (${nodes} node${nodes > 1 ? 's' : ''}${cosigners ? ', 1 cosigner' : ''})`, () => {
    let m: Matrix;

    beforeAll(async () => {
      m = await openMatrix({ hosts: nodes, cosigners, backend, jwt: hex32() });
    }, 300_000);

    afterAll(async () => {
      await m?.close();
    }, 120_000);

    it('import, plan, apply provision, verify, rotate-jwt, rollback-jwt and render leak nothing', async () => {
      const inv = m.info.files.inventory;
      await canaryRun(m, 'import-env --debug', ['import-env', writeEnvFixture(m, envCanaries()), '-i', inv, '--replace', '--debug']);
      if (cosigners) await canaryRun(m, 'import-horcrux --json', ['import-horcrux', m.info.files.horcruxKeys!, '-i', inv, '--json']);
      // plan: KMS only (its plan path is the same as Secrets Manager's); exit 1 as the Engine API is not up yet.
      if (backend === 'kms') await canaryRun(m, 'plan provision --json --debug', ['plan', PROVISION, '-i', inv, '--json', '--debug'], { codes: [0, 1] });
      await canaryRun(m, 'apply provision --json', ['apply', PROVISION, '-i', inv, '--json']);
      if (cosigners) await canaryRun(m, 'apply cosigner-bringup --debug', ['apply', BRINGUP, '-i', inv, '--debug']);
      // Exit 1 with KMS: verify expects a kms.boot-step on the cosigner, which cosigner-bringup does not install.
      await canaryRun(m, 'verify --json', ['verify', '-i', inv, '--json'], { codes: backend === 'kms' ? [0, 1] : [0] });
      // The rotation with `decrypt: operator` (the laptop decrypts and writes over SFTP); the rollback with host-side decrypt.
      const operator = join(m.info.dir, 'inventory-operator.yml'); // beside the inventory: the same blobs/ store
      writeFileSync(operator, readFileSync(inv, 'utf8').replace(/^kms:\n/m, 'kms:\n  decrypt: operator\n'));
      await canaryRun(m, 'apply rotate-jwt --debug (decrypt: operator)', ['apply', ROTATE, '-i', operator, '--debug']);
      await canaryRun(m, 'rollback-jwt --json', ['rollback-jwt', '-i', inv, '--json']);
      const out = mkdtempSync(join(tmpdir(), 'krypton-canary-render-'));
      try {
        await canaryRun(m, 'render', ['render', '-i', inv, '-o', join(out, 'r')]);
      } finally {
        rmSync(out, { recursive: true, force: true });
      }
      expect(m.canaries.kinds()['jwt']).toBeGreaterThanOrEqual(2); // chosen, rotated
    });

    it('failure paths leak nothing: a wrong AWS secret key, a refused host', async () => {
      const inv = m.info.files.inventory;
      const wrong = randomBytes(30).toString('base64');
      await canaryRun(m, 'apply provision --json --debug (wrong AWS secret key)', ['apply', PROVISION, '-i', inv, '--json', '--debug'], {
        env: { AWS_SECRET_ACCESS_KEY: wrong },
        also: [{ kind: 'aws-secret-key', text: wrong }],
        codes: [1, 30, 32, 33],
      });
      const refused = m.search.hostNames[m.search.hostNames.length - 1]!;
      await stopHostSshd(refused, m.info.dir);
      try {
        await canaryRun(m, `verify --json --debug (${refused} refuses)`, ['verify', '-i', inv, '--json', '--debug'], { codes: [1, 12] });
      } finally {
        await startHostSshd(refused, m.info.dir);
      }
    });
  });
}
