/**
 * Fault matrix, backend half (issue 10): faults of the secret store and of a host's secret delivery, injected into
 * real runs of the real CLI against the sandbox (real sshd, OpenBao + bao agent, moto with IAM enforcement,
 * /usr/bin/aws). The injectors are a small HTTP proxy in front of the real OpenBao / moto (test/faults/backend-proxy.ts),
 * `sys/seal`, IAM deny policies, a filled tmpfs and a killed agent — never a fake server.
 *
 * Each case asserts (test/faults/backend-checks.ts): a clear per-host error (or a run-level one before any host work)
 * with the documented code; el and cl never on different values (witness logs, and el accepting jwt.hex); and that
 * after the fault is removed the command the tool names (or the same apply) exits 0 and a next apply changes
 * nothing. Each records `{suite: 'faults', id, survived}`.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BRIDGE_ADDRESS, MOTO_ADDRESS, VAULT_ADDRESS, hostExec, sandboxDown, sandboxUp, type SandboxInfo, type SandboxUpOptions } from '../sandbox/index.ts';
import { cli, vaultJwt } from '../integration/helpers.ts';
import { startFaultProxy, type FaultProxy, type ProxiedRequest } from './backend-proxy.ts';
import { completionOf, expectConverges, expectHostError, expectPairsAgree, expectRunLevelError, faultCase } from './backend-checks.ts';

const NODES = ['val-1', 'val-2'];
const ROTATE = 'playbooks/rotate-jwt.yml';
const PROVISION = 'playbooks/provision.yml';
const nowS = () => Date.now() / 1000;

/** The sandbox inventory with `edit` applied, next to it (KMS blobs live next to the inventory: the same store). */
async function inventoryVariant(info: SandboxInfo, name: string, edit: (text: string) => string): Promise<string> {
  const file = join(info.dir, name);
  await writeFile(file, edit(await readFile(info.files.inventory, 'utf8')));
  return file;
}

/**
 * One sandbox for a backend's faults: `up` brought up, the fault proxy started in front of `upstream`, an inventory
 * variant (`file`, edited by `point` to send laptop and hosts through the proxy) and the env the CLI needs for it
 * (`envOf`); the fleet provisioned through the proxy (exit 0) before the first case.
 */
async function faultSandbox(
  up: SandboxUpOptions,
  upstream: string,
  file: string,
  point: (text: string, proxyUrl: string) => string,
  envOf: (proxyUrl: string) => Record<string, string>,
): Promise<{ info: SandboxInfo; proxy: FaultProxy; inv: string; env: Record<string, string> }> {
  const info = await sandboxUp(up);
  const proxy = await startFaultProxy(upstream, BRIDGE_ADDRESS);
  const inv = await inventoryVariant(info, file, (t) => point(t, proxy.url));
  const env = envOf(proxy.url);
  const r = await cli(info, ['apply', PROVISION, '-i', inv, '--json'], env);
  expect(r.code, r.stdout + r.stderr).toBe(0);
  return { info, proxy, inv, env };
}

function deferred<T>(): { promise: Promise<T>; resolve: (v: T) => void } {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

describe('fault matrix: Vault (the real OpenBao behind a fault proxy, bao agents, 2 nodes)', () => {
  let info: SandboxInfo;
  let proxy: FaultProxy;
  let inv: string;
  let env: Record<string, string>;
  const JWT_PATH = /^\/v1\/secret\/data\/krypton\/\d+\/engine-jwt(\?|$)/;
  const isJwtWrite = (r: ProxiedRequest) => (r.method === 'POST' || r.method === 'PUT') && JWT_PATH.test(r.path);
  const fromLaptop = (r: ProxiedRequest) => r.headers['x-vault-token'] === info.vault.token;

  async function bao(path: string, body: unknown): Promise<number> {
    const res = await fetch(`${VAULT_ADDRESS}/v1/${path}`, { method: 'POST', headers: { 'X-Vault-Token': info.vault.token, 'content-type': 'application/json' }, body: JSON.stringify(body), signal: AbortSignal.timeout(10_000) });
    await res.arrayBuffer();
    return res.status;
  }
  /** The dev server prints its one unseal key in its log. */
  async function unseal(): Promise<void> {
    const key = /Unseal Key: (\S+)/.exec(await readFile(join(info.dir, 'bao', 'server.log'), 'utf8'))?.[1];
    expect(key, 'the dev server logs its unseal key').toBeDefined();
    expect(await bao('sys/unseal', { key })).toBe(200);
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline) {
      const h = await fetch(`${VAULT_ADDRESS}/v1/sys/health`).then((r) => r.status).catch(() => 0);
      if (h === 200) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error('OpenBao not active within 30 s of unseal');
  }

  beforeAll(async () => {
    // The laptop and the hosts' agents both reach Vault through the proxy.
    ({ info, proxy, inv, env } = await faultSandbox({ hosts: NODES.length }, VAULT_ADDRESS, 'faults-vault.yml', (t, url) => t.replace(`  address: ${VAULT_ADDRESS}`, `  address: ${url}\n  agent_address: ${url}`), (url) => ({ BAO_ADDR: url, VAULT_ADDR: url })));
  }, 300_000);

  afterAll(async () => {
    await proxy?.close();
    await sandboxDown();
  }, 120_000);

  it('Vault sealed right after the rotation wrote its version: the canary fails with E_VAULT, no node split, --resume completes', async () => {
    await faultCase('vault-sealed-mid-rotation', async () => {
      const since = nowS();
      let sealed = false;
      proxy.rule = (r) => (isJwtWrite(r) && !sealed ? { kind: 'forward', after: async () => void (sealed = (await bao('sys/seal', {})) === 204) } : undefined);
      let r;
      try {
        r = await cli(info, ['apply', ROTATE, '-i', inv, '--json'], env);
      } finally {
        proxy.rule = undefined;
        if (sealed) await unseal();
      }
      expect(sealed, 'Vault was sealed during the run').toBe(true);
      const e = expectHostError(r, 'val-1', ['E_VAULT']);
      expect(`${e.message} ${e.hint}`).toMatch(/503|sealed/);
      expect(r.summary?.hosts['val-2']?.status).toBe('skipped');
      await expectPairsAgree(NODES, since);
      await expectConverges(info, completionOf(r, NODES), env, NODES, since, inv);
    });
  });

  it('Vault sealed before the run: it stops before any host work with E_VAULT (exit 22); unsealed, the same apply converges', async () => {
    await faultCase('vault-sealed-before-run', async () => {
      const since = nowS();
      expect(await bao('sys/seal', {})).toBe(204);
      let r;
      try {
        r = await cli(info, ['apply', PROVISION, '-i', inv, '--json'], env);
      } finally {
        await unseal();
      }
      const e = expectRunLevelError(r, { E_VAULT: 22 });
      expect(`${e.message} ${e.hint}`).toMatch(/sealed|503/);
      await expectPairsAgree(NODES, since);
      await expectConverges(info, ['apply', PROVISION, '-i', inv], env, NODES, since, inv);
    });
  });

  it('a rollback halted by a timeout (the agent cannot render in time): E_TIMEOUT naming --timeout, the report names every node\'s version and the command that completes it', async () => {
    await faultCase('rollback-halted-by-timeout', async () => {
      // A rollback needs an older version (the earlier cases rotated; alone, rotate once first).
      if ((await vaultJwt(info)).version < 2) expect((await cli(info, ['apply', ROTATE, '-i', inv, '--json'], env)).code).toBe(0);
      const since = nowS();
      const before = await vaultJwt(info);
      const release = deferred<void>();
      let held = 0;
      // Every agent read of the JWT hangs: the canary's agent.start cannot see the restored value rendered.
      proxy.rule = (r) => (r.method === 'GET' && JWT_PATH.test(r.path) && !fromLaptop(r) ? (held++, { kind: 'hold', until: release.promise }) : undefined);
      let r;
      try {
        r = await cli(info, ['rollback-jwt', '-i', inv, '--json', '--timeout', '8'], env);
        expect(held).toBeGreaterThanOrEqual(1);
        const e = expectHostError(r, 'val-1', ['E_TIMEOUT']);
        expect(e.message).toMatch(/^agent\.start did not converge within 8 s \(--timeout 8\)/);
        const restored = await vaultJwt(info);
        expect(restored.version).toBe(before.version + 1);
        const notes = (r.summary as unknown as { notes: { jwt_versions: Record<string, { version: number | null; current: { version: number } | null }> } }).notes.jwt_versions;
        for (const n of NODES) expect(notes[n]?.current?.version, n).toBe(restored.version);
        expect(notes['val-2']?.version).toBe(before.version);
        // The agents are still held: el, cl and jwt.hex on every node are on the value before the rollback.
        await expectPairsAgree(NODES, since);
      } finally {
        proxy.rule = undefined;
        release.resolve();
      }
      await expectConverges(info, completionOf(r, NODES), env, NODES, since, inv);
      expect((await vaultJwt(info)).version, 'completing the rollback wrote no other version').toBe(before.version + 1);
    });
  });

  it('Vault answering 503 for a while mid-rotation: a per-host E_VAULT naming the 503, no node split, --resume completes', async () => {
    await faultCase('vault-503', async () => {
      const since = nowS();
      let from = 0;
      let answered = 0;
      proxy.rule = (r) => {
        if (!from && isJwtWrite(r)) return { kind: 'forward', after: async () => void (from = Date.now()) };
        // After the write: 503 to every request for 3 s, and to at least 3 of the laptop's.
        if (from && (Date.now() - from < 3000 || answered < 3)) {
          if (fromLaptop(r)) answered++;
          return { kind: 'respond', status: 503, body: JSON.stringify({ errors: ['service unavailable'] }) };
        }
        return undefined;
      };
      let r;
      try {
        r = await cli(info, ['apply', ROTATE, '-i', inv, '--json'], env);
      } finally {
        proxy.rule = undefined;
      }
      expect(answered).toBeGreaterThanOrEqual(1);
      const failed = Object.entries(r.summary?.hosts ?? {}).find(([, h]) => h.status === 'failed')?.[0];
      expect(failed, r.stdout).toBeDefined();
      const e = expectHostError(r, failed!, ['E_VAULT']);
      expect(`${e.message} ${e.hint}`).toMatch(/503/);
      await expectPairsAgree(NODES, since);
      await expectConverges(info, completionOf(r, NODES), env, NODES, since, inv);
    });
  });

  it('tmpfs full on val-2 before a rotation: val-2 fails with a clear error, keeps its pair on the old value; --resume completes', async () => {
    await faultCase('tmpfs-full', async () => {
      const since = nowS();
      await hostExec('val-2', ['sh', '-c', 'dd if=/dev/zero of=/run/krypton-secrets/filler bs=4096 2>/dev/null; sync; df -k /run/krypton-secrets | tail -1']);
      let r;
      try {
        r = await cli(info, ['apply', ROTATE, '-i', inv, '--json'], env);
      } finally {
        await hostExec('val-2', ['rm', '-f', '/run/krypton-secrets/filler']);
      }
      const e = expectHostError(r, 'val-2', ['E_SFTP', 'E_SSH_EXEC', 'E_TIMEOUT']);
      expect(e.message, JSON.stringify(e)).toMatch(/space|ENOSPC|full/i);
      expect(r.summary?.hosts['val-1']?.status).toBe('changed');
      await expectPairsAgree(NODES, since);
      await expectConverges(info, completionOf(r, NODES), env, NODES, since, inv);
    });
  });

  it('the agent killed while the rotation waits for its re-render: E_TIMEOUT naming the setting, no node split; --resume completes', async () => {
    await faultCase('agent-killed-mid-render', async () => {
      const since = nowS();
      const caught = deferred<string>();
      const release = deferred<void>();
      let holding = false;
      const byAddress = new Map(Object.values(info.hosts).map((h) => [h.address, h.name]));
      // Hold the first read of the JWT by an agent (not the laptop's token): the agent is rendering now.
      proxy.rule = (r) => {
        if (!holding && r.method === 'GET' && JWT_PATH.test(r.path) && !fromLaptop(r) && byAddress.has(r.from)) {
          holding = true;
          caught.resolve(byAddress.get(r.from)!);
          return { kind: 'hold', until: release.promise };
        }
        return undefined;
      };
      const run = cli(info, ['apply', ROTATE, '-i', inv, '--json', '--timeout', '15'], env);
      let r;
      try {
        const host = await Promise.race([caught.promise, run.then(() => undefined)]);
        expect(host, 'an agent read the JWT during the rotation').toBeDefined();
        const pid = (await hostExec(host!, ['cat', '/run/krypton-secrets/agent.pid'])).stdout.trim();
        expect(pid).toMatch(/^\d+$/);
        await hostExec(host!, ['kill', '-9', pid]);
        release.resolve();
        proxy.rule = undefined;
        r = await run;
        const e = expectHostError(r, host!, ['E_TIMEOUT']);
        expect(e.message).toMatch(/^agent\.start did not converge within 15 s \(--timeout 15\)/);
        expect(e.hint).toMatch(/--timeout/);
      } finally {
        release.resolve();
        proxy.rule = undefined;
        await run;
      }
      await expectPairsAgree(NODES, since);
      await expectConverges(info, completionOf(r, NODES), env, NODES, since, inv);
    });
  });
});

describe('fault matrix: KMS (real moto with IAM enforcement behind a fault proxy, host-side decrypt, 2 nodes)', () => {
  let info: SandboxInfo;
  let proxy: FaultProxy;
  let inv: string;
  let env: Record<string, string>;
  const DENY = JSON.stringify({ Version: '2012-10-17', Statement: [{ Effect: 'Deny', Action: 'kms:Decrypt', Resource: '*' }] });
  const isKms = (r: ProxiedRequest) => String(r.headers['x-amz-target'] ?? '').startsWith('TrentService.');
  const throttled = { status: 400, headers: { 'content-type': 'application/x-amz-json-1.1' }, body: JSON.stringify({ __type: 'ThrottlingException', message: 'Rate exceeded' }) };

  /** /usr/bin/aws on this machine as the sandbox's root identity (to rearrange IAM). */
  function awsRoot(args: string[]): Promise<number> {
    const aws = info.aws!;
    return new Promise((resolve, reject) => {
      const child = spawn('/usr/bin/aws', ['--endpoint-url', aws.endpoint, '--region', aws.region, ...args], {
        env: { PATH: '/usr/bin:/bin', HOME: info.dir, AWS_ACCESS_KEY_ID: aws.root.accessKeyId, AWS_SECRET_ACCESS_KEY: aws.root.secretAccessKey, AWS_EC2_METADATA_DISABLED: 'true' },
        stdio: 'ignore',
      });
      child.on('error', reject);
      child.on('close', (code) => resolve(code ?? -1));
    });
  }
  const deny = (user: string) => awsRoot(['iam', 'put-user-policy', '--user-name', user, '--policy-name', 'fault-deny-decrypt', '--policy-document', DENY]);
  const undeny = (user: string) => awsRoot(['iam', 'delete-user-policy', '--user-name', user, '--policy-name', 'fault-deny-decrypt']);

  beforeAll(async () => {
    // The laptop's SDK and the hosts' aws CLI both reach KMS through the proxy (kms.endpoint_url).
    ({ info, proxy, inv, env } = await faultSandbox({ hosts: NODES.length, backend: 'kms', env: false }, MOTO_ADDRESS, 'faults-kms.yml', (t, url) => t.replace(`  endpoint_url: ${MOTO_ADDRESS}`, `  endpoint_url: ${url}`), (url) => ({ AWS_ENDPOINT_URL: url })));
  }, 300_000);

  afterAll(async () => {
    await proxy?.close();
    await sandboxDown();
  }, 120_000);

  it("KMS denies val-2's identity kms:Decrypt: val-2 fails with E_KMS_DENIED naming it, val-1 rotates, no node split; --resume completes", async () => {
    await faultCase('kms-denied-host', async () => {
      const since = nowS();
      const user = info.aws!.hosts['val-2']!.user;
      expect(await deny(user)).toBe(0);
      let r;
      try {
        r = await cli(info, ['apply', ROTATE, '-i', inv, '--json'], env);
      } finally {
        expect(await undeny(user)).toBe(0);
      }
      const e = expectHostError(r, 'val-2', ['E_KMS_DENIED']);
      expect(e.message).toContain('val-2');
      expect(r.summary?.hosts['val-1']?.status).toBe('changed');
      await expectPairsAgree(NODES, since);
      await expectConverges(info, completionOf(r, NODES), env, NODES, since, inv);
    });
  });

  it("KMS denies the operator's identity kms:Decrypt: the run stops before any host with E_KMS_DENIED (exit 32); then it converges", async () => {
    await faultCase('kms-denied-operator', async () => {
      const since = nowS();
      const user = info.aws!.admin.user;
      expect(await deny(user)).toBe(0);
      let r;
      try {
        r = await cli(info, ['apply', ROTATE, '-i', inv, '--json'], env);
      } finally {
        expect(await undeny(user)).toBe(0);
      }
      const e = expectRunLevelError(r, { E_KMS_DENIED: 32 });
      expect(e.message).toMatch(/nothing was changed on any host/);
      await expectPairsAgree(NODES, since);
      await expectConverges(info, ['apply', PROVISION, '-i', inv], env, NODES, since, inv);
    });
  });

  it('KMS throttling two requests: the retries ride it out, the rotation completes', async () => {
    await faultCase('kms-throttled-briefly', async () => {
      const since = nowS();
      let left = 2;
      proxy.rule = (r) => (isKms(r) && left > 0 ? (left--, { kind: 'respond', ...throttled }) : undefined);
      let r;
      try {
        r = await cli(info, ['apply', ROTATE, '-i', inv, '--json'], env);
      } finally {
        proxy.rule = undefined;
      }
      expect(left, 'both throttles were served').toBe(0);
      expect(r.code, r.stdout + r.stderr).toBe(0);
      await expectPairsAgree(NODES, since);
      await expectConverges(info, ['apply', ROTATE, '-i', inv, '--resume'], env, NODES, since, inv);
    });
  });

  it('KMS throttling every request: the run stops before any host with E_KMS saying it was throttled; then it converges', async () => {
    await faultCase('kms-throttled-persistently', async () => {
      const since = nowS();
      proxy.rule = (r) => (isKms(r) ? { kind: 'respond', ...throttled } : undefined);
      let r;
      try {
        r = await cli(info, ['apply', ROTATE, '-i', inv, '--json'], env);
      } finally {
        proxy.rule = undefined;
      }
      const e = expectRunLevelError(r, { E_KMS: 33 });
      expect(e.message).toMatch(/throttled .*ThrottlingException/);
      await expectPairsAgree(NODES, since);
      await expectConverges(info, ['apply', PROVISION, '-i', inv], env, NODES, since, inv);
    });
  });
});
