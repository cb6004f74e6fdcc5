/**
 * The sandbox itself, end to end: real sshd with host keys pinned in known_hosts, per-host /run,
 * Engine-API JWT auth of the EL stand-in, the CL witness log, nodectl/agentctl, reboot and
 * sshd stop/start, and a teardown that leaves nothing behind. Needs root (CI runs as root).
 */
import { createHmac, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hostExec, readSandboxInfo, sandboxDown, sandboxUp, simulateReboot, startHostSshd, stopHostSshd, type SandboxInfo } from './index.ts';
import { run, sleep, waitFor } from './proc.ts';
import { tryReadState } from './state.ts';
import { BRIDGE, NETNS_PREFIX, VETH_PREFIX } from './layout.ts';

const A = 'val-1';
const B = 'val-2';

function hs256(keyHex: string, claims: Record<string, unknown>): string {
  const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
  const signingInput = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64(claims)}`;
  return `${signingInput}.${createHmac('sha256', Buffer.from(keyHex, 'hex')).update(signingInput).digest('base64url')}`;
}

/** POSTs a JSON-RPC call to the host's EL on 127.0.0.1:8551 from inside the host; returns status and body. */
async function engineCall(host: string, token: string, method = 'engine_exchangeCapabilities', params: unknown[] = [['engine_newPayloadV4']]) {
  const script = `fetch('http://127.0.0.1:8551', {method: 'POST', headers: {'content-type': 'application/json', authorization: 'Bearer ' + process.env.TOKEN},
    body: JSON.stringify({jsonrpc: '2.0', id: 7, method: process.env.METHOD, params: JSON.parse(process.env.PARAMS)})})
    .then(async (r) => console.log(JSON.stringify({status: r.status, body: await r.json()})), (e) => { console.error(e.cause?.code ?? e.message); process.exit(9); })`;
  const r = await hostExec(host, ['node', '-e', script], { env: { TOKEN: token, METHOD: method, PARAMS: JSON.stringify(params) } });
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as { status: number; body: { id: number; result?: unknown; error?: { message: string } } };
}

function sshArgs(info: SandboxInfo, knownHosts: string, address: string, command: string): string[] {
  return ['-i', info.ssh.identityFile, '-o', `UserKnownHostsFile=${knownHosts}`, '-o', 'GlobalKnownHostsFile=/dev/null', '-o', 'StrictHostKeyChecking=yes', '-o', 'BatchMode=yes', '-o', 'ConnectTimeout=5', `root@${address}`, command];
}

const setJwtPath = (host: string, path: string) =>
  hostExec(host, ['sh', '-c', `sed -i '/^JWT_PATH=/d' /opt/krypton/.env && echo "JWT_PATH=${path}" >> /opt/krypton/.env`]);

describe('sandbox fleet', () => {
  let info: SandboxInfo;
  const jwt = randomBytes(32).toString('hex');

  beforeAll(async () => {
    info = await sandboxUp({ hosts: 2 });
  }, 120_000);

  afterAll(async () => {
    await sandboxDown();
  }, 60_000);

  it('writes the inventory, hosts.json, known_hosts and env for the tool', () => {
    expect(readSandboxInfo().nodes).toEqual([A, B]);
    const inv = readFileSync(info.files.inventory, 'utf8');
    expect(inv).toContain(`identity_file: ${info.dir}/id_ed25519`);
    expect(inv).toContain(`nodes:\n  val-1:\n    role: validator\n    address: ${info.hosts['val-1']!.address}\n  val-2:`);
    expect(inv).not.toContain(info.vault.token);
    expect(JSON.parse(readFileSync(info.files.hostsJson, 'utf8'))[B]).toEqual({ host: info.hosts[B]!.address, port: 22, user: 'root', kind: 'node' });
    const [a1, a2] = [info.hosts['val-1']!.address, info.hosts['val-2']!.address].map((a) => a.replace(/\./g, '\\.'));
    expect(readFileSync(info.files.knownHosts, 'utf8')).toMatch(new RegExp(`^${a1} ssh-ed25519 AAAA\\S+\\n${a2} ssh-ed25519 AAAA\\S+\\n$`));
    expect(readFileSync(info.files.env, 'utf8')).toContain(`export BAO_TOKEN='${info.vault.token}'`);
  });

  it('serves OpenBao on the bridge with approle enabled', async () => {
    const res = await fetch(`${info.vault.address}/v1/sys/auth`, { headers: { 'X-Vault-Token': info.vault.token } });
    expect(Object.keys((await res.json()) as object)).toContain('approle/');
    const r = await run(info.baoBin, ['kv', 'put', 'secret/sandbox/probe', 'value=ok'], { env: { ...process.env, ...info.env } });
    expect(r.code, r.stderr).toBe(0);
  });

  it('accepts ssh with the operator key only when the host key matches known_hosts', async () => {
    const ok = await run('ssh', sshArgs(info, info.files.knownHosts, info.hosts[A]!.address, 'true'));
    expect(ok.code, ok.stderr).toBe(0);
    const empty = join(info.dir, 'known_hosts.empty');
    writeFileSync(empty, '');
    const refused = await run('ssh', sshArgs(info, empty, info.hosts[A]!.address, 'true'));
    expect(refused.code).toBe(255);
    expect(refused.stderr).toMatch(/Host key verification failed/);
  });

  it("gives each host its own /run (tmpfs) and deploy dir, separate from this machine's", async () => {
    const mounts = await hostExec(A, ['findmnt', '-n', '-o', 'FSTYPE', '/run']);
    expect(mounts.stdout.trim()).toBe('tmpfs');
    const marker = `ks-probe-${process.pid}`;
    expect((await hostExec(A, ['touch', `/run/${marker}`])).code).toBe(0);
    expect(existsSync(`/run/${marker}`)).toBe(false);
    expect((await hostExec(B, ['test', '-e', `/run/${marker}`])).code).toBe(1);
    writeFileSync(`/run/${marker}-root`, '');
    try {
      expect((await hostExec(A, ['test', '-e', `/run/${marker}-root`])).code).toBe(1);
    } finally {
      await run('rm', ['-f', `/run/${marker}-root`]);
    }
    expect((await hostExec(A, ['cat', '/opt/krypton/.env'])).stdout).toContain('NETWORK_ID=473374');
    expect((await hostExec(A, ['grep', '-c', 'JWT_PATH', '/opt/krypton/.env'])).stdout.trim()).toBe('0');
  });

  it('refuses to start el/cl without a JWT', async () => {
    const r = await hostExec(A, ['nodectl', 'start', 'el', 'cl']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/el: failed to start/);
    expect((await hostExec(A, ['nodectl', 'status'])).code).toBe(3);
    expect((await hostExec(A, ['cat', '/var/log/krypton/nodectl.log'])).stdout).toMatch(/^\d+\.\d{3} start el cl\n$/);
  });

  it('refuses a JWT file that is not exactly 64 lowercase hex (trailing newline)', async () => {
    expect((await hostExec(A, ['sh', '-c', `mkdir -p /run/ks-test && printf '%s\\n' ${jwt} > /run/ks-test/jwt.hex`])).code).toBe(0);
    await setJwtPath(A, '/run/ks-test/jwt.hex');
    const r = await hostExec(A, ['nodectl', 'start', 'el']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/exactly 64 lowercase hex/);
  });

  it('EL answers 200 to a correctly signed token and 401 otherwise; the CL witnesses 200s', async () => {
    expect((await hostExec(A, ['sh', '-c', `printf '%s' ${jwt} > /run/ks-test/jwt.hex`])).code).toBe(0);
    const start = await hostExec(A, ['nodectl', 'start', 'el', 'cl']);
    expect(start.code, start.stderr).toBe(0);
    const now = Math.floor(Date.now() / 1000);

    const good = await engineCall(A, hs256(jwt, { iat: now }));
    expect(good).toEqual({ status: 200, body: { jsonrpc: '2.0', id: 7, result: ['engine_newPayloadV4'] } });
    expect((await engineCall(A, hs256(jwt, { iat: now }), 'eth_chainId', [])).body.result).toBe('0x' + (473374).toString(16));
    expect((await engineCall(A, hs256(randomBytes(32).toString('hex'), { iat: now }))).status).toBe(401);
    const stale = await engineCall(A, hs256(jwt, { iat: now - 120 }));
    expect(stale.status).toBe(401);
    expect(stale.body.error?.message).toMatch(/iat/);
    expect((await engineCall(A, hs256(jwt, {}))).status).toBe(401);

    const witness = await waitFor('two CL witness lines', async () => {
      const lines = (await hostExec(A, ['cat', '/var/log/krypton/cl.log'])).stdout.trim().split('\n').filter(Boolean);
      return lines.length >= 2 ? lines : undefined;
    }, { timeoutMs: 10_000, intervalMs: 200 });
    for (const l of witness) expect(l).toMatch(/^\d{10}\.\d{3} 200$/);
    expect((await hostExec(B, ['test', '-e', '/var/log/krypton/cl.log'])).code).toBe(1);
    expect((await hostExec(A, ['nodectl', 'status'])).code).toBe(0);
  }, 30_000);

  it('restarts el and cl in lockstep with nodectl, logging the restart', async () => {
    const r = await hostExec(A, ['nodectl', 'restart', 'el', 'cl']);
    expect(r.code, r.stderr).toBe(0);
    expect((await hostExec(A, ['tail', '-n', '1', '/var/log/krypton/nodectl.log'])).stdout).toMatch(/^\d+\.\d{3} restart el cl\n$/);
    expect((await engineCall(A, hs256(jwt, { iat: Math.floor(Date.now() / 1000) }))).status).toBe(200);
  });

  it('runs the host Vault Agent with agentctl (real bao agent, AppRole, template into /run)', async () => {
    const bao = (method: string, path: string, body?: unknown) =>
      fetch(`${info.vault.address}/v1/${path}`, { method, headers: { 'X-Vault-Token': info.vault.token }, body: body ? JSON.stringify(body) : undefined }).then(async (r) => {
        const t = await r.text();
        expect(r.ok, `${method} ${path}: ${r.status} ${t}`).toBe(true);
        return t ? (JSON.parse(t) as { data: Record<string, string> }) : undefined;
      });
    await bao('POST', 'secret/data/sandbox/agent-probe', { data: { value: 'rendered-by-agent' } });
    await bao('PUT', 'sys/policies/acl/ks-sandbox-probe', { policy: 'path "secret/data/sandbox/agent-probe" { capabilities = ["read"] }' });
    await bao('POST', 'auth/approle/role/ks-sandbox-probe', { token_policies: ['ks-sandbox-probe'], token_period: '1h' });
    const roleId = (await bao('GET', 'auth/approle/role/ks-sandbox-probe/role-id'))!.data.role_id!;
    const secretId = (await bao('POST', 'auth/approle/role/ks-sandbox-probe/secret-id', {}))!.data.secret_id!;
    const hcl = `pid_file = "/run/krypton-secrets/agent.pid"
vault { address = "${info.vault.address}" }
auto_auth {
  method "approle" {
    config = {
      role_id_file_path = "/run/krypton-secrets/role_id"
      secret_id_file_path = "/run/krypton-secrets/secret_id"
    }
  }
}
template {
  contents = "{{ with secret \\"secret/data/sandbox/agent-probe\\" }}{{ .Data.data.value }}{{ end }}"
  destination = "/run/krypton-secrets/probe.txt"
  perms = "0600"
}
`;
    const setup = await hostExec(
      B,
      ['sh', '-c', 'mkdir -p -m 0700 /run/krypton-secrets && umask 077 && cat > /run/krypton-secrets/vault-agent.hcl && printf %s "$ROLE_ID" > /run/krypton-secrets/role_id && printf %s "$SECRET_ID" > /run/krypton-secrets/secret_id'],
      { input: hcl, env: { ROLE_ID: roleId, SECRET_ID: secretId } },
    );
    expect(setup.code, setup.stderr).toBe(0);
    const start = await hostExec(B, ['agentctl', 'start']);
    expect(start.code, start.stderr + start.stdout).toBe(0);
    await waitFor('the agent to render probe.txt', async () => (await hostExec(B, ['cat', '/run/krypton-secrets/probe.txt'])).stdout === 'rendered-by-agent', { timeoutMs: 15_000, intervalMs: 100 });
    expect((await hostExec(B, ['stat', '-c', '%a', '/run/krypton-secrets/probe.txt'])).stdout.trim()).toBe('600');
    expect((await hostExec(B, ['agentctl', 'status'])).code).toBe(0);
    expect((await hostExec(B, ['agentctl', 'stop'])).code).toBe(0);
    expect((await hostExec(B, ['agentctl', 'status'])).code).toBe(3);
  }, 30_000);

  it('simulateReboot empties /run and stops services but keeps sshd and the persistent dirs', async () => {
    expect((await hostExec(A, ['sh', '-c', 'mkdir -p /run/krypton-secrets && mount -t tmpfs -o size=1m,mode=0700 tmpfs /run/krypton-secrets && echo x > /run/krypton-secrets/s'])).code).toBe(0);
    await simulateReboot(A);
    expect((await hostExec(A, ['findmnt', '-n', '/run/krypton-secrets'])).code).toBe(1);
    expect((await hostExec(A, ['test', '-e', '/run/ks-test/jwt.hex'])).code).toBe(1);
    expect((await hostExec(A, ['test', '-d', '/run/sshd'])).code).toBe(0);
    expect((await hostExec(A, ['nodectl', 'status'])).stdout).toBe('el stopped\ncl stopped\n');
    // Processes of this host only (no PID namespace: a pgrep inside would also see other sandboxes' hosts).
    const left = await run('sh', ['-c', `ip netns pids ${info.hosts[A]!.netns} | xargs -r ps -o args= -p | grep -cE 'krypton-(el|cl)' || true`]);
    expect(left.stdout.trim()).toBe('0');
    // Persistent: the witness log of the four nodectl calls so far survives the reboot.
    expect((await hostExec(A, ['wc', '-l', '/var/log/krypton/nodectl.log'])).stdout).toMatch(/^4 /);
    const ssh = await run('ssh', sshArgs(info, info.files.knownHosts, info.hosts[A]!.address, 'findmnt -n -o FSTYPE /run'));
    expect(ssh.code, ssh.stderr).toBe(0);
    expect(ssh.stdout.trim()).toBe('tmpfs');
  }, 30_000);

  it('stopHostSshd makes a host unreachable until startHostSshd; its mounts survive', async () => {
    await hostExec(B, ['touch', '/run/ks-alive']);
    await stopHostSshd(B);
    const down = await run('ssh', sshArgs(info, info.files.knownHosts, info.hosts[B]!.address, 'true'));
    expect(down.code).toBe(255);
    expect(down.stderr).toMatch(/Connection refused/);
    await startHostSshd(B);
    const up = await run('ssh', sshArgs(info, info.files.knownHosts, info.hosts[B]!.address, 'test -e /run/ks-alive'));
    expect(up.code, up.stderr).toBe(0);
  }, 30_000);

  it('sandboxDown removes every namespace, link, process, mountpoint and file it made', async () => {
    const pids = [info.vault.pid, ...Object.values(info.hosts).flatMap((h) => [h.holderPid, h.sshdPid!])];
    const createdDirs = tryReadState(info.dir)!.resources.createdDirs; // e.g. /opt/krypton where it did not exist
    await sandboxDown();
    await sandboxDown(); // idempotent
    const netns = await run('ip', ['netns', 'list']);
    expect(netns.stdout.split('\n').filter((l) => l.startsWith(NETNS_PREFIX))).toEqual([]);
    expect((await run('ip', ['link', 'show', BRIDGE])).code).not.toBe(0);
    expect((await run('ip', ['-o', 'link'])).stdout).not.toMatch(new RegExp(`${VETH_PREFIX}\\d+[@:]`));
    await sleep(50);
    for (const p of pids) expect(existsSync(`/proc/${p}`), `pid ${p}`).toBe(false);
    expect(existsSync(info.dir)).toBe(false);
    for (const d of createdDirs) expect(existsSync(d), d).toBe(false);
  }, 60_000);
});
