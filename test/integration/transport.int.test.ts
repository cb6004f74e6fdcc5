/**
 * The SSH transport against a real OpenSSH sshd that this file starts itself on 127.0.0.1 (random high
 * port, temp host key, temp authorized_keys, runs as root; `sshd -D -E <log> -f <config>`). Needs Debian's /usr/sbin/sshd and ssh-keygen,
 * ssh-agent, ssh-add (openssh-server / openssh-client).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ssh2 from 'ssh2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KryptonError } from '../../src/core/errors.ts';
import { Secret } from '../../src/core/secret.ts';
import { sha256Fingerprint } from '../../src/transport/known-hosts.ts';
import { ConnectionPool, connectSsh, type ConnectOptions, type SshTarget, type SshTransport } from '../../src/transport/ssh.ts';

// ---------------------------------------------------------------------------------------------------------
// A throwaway sshd

function keygen(file: string, type = 'ed25519', passphrase = ''): { pub: string; blob: Buffer; fingerprint: string } {
  execFileSync('ssh-keygen', ['-q', '-t', type, '-N', passphrase, '-C', 'krypton-test', '-f', file]);
  const pub = readFileSync(`${file}.pub`, 'utf8').trim();
  const blob = Buffer.from(pub.split(' ')[1]!, 'base64');
  return { pub, blob, fingerprint: sha256Fingerprint(blob) };
}

async function freePort(): Promise<number> {
  const s = createServer();
  s.listen(0, '127.0.0.1');
  await once(s, 'listening');
  const port = (s.address() as AddressInfo).port;
  s.close();
  await once(s, 'close');
  return port;
}

/** Every descendant pid of `pid` (children first found by ppid in /proc). */
function descendants(pid: number): number[] {
  const byParent = new Map<number, number[]>();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      byParent.set(ppid, [...(byParent.get(ppid) ?? []), Number(d)]);
    } catch {
      /* gone */
    }
  }
  const out: number[] = [];
  const walk = (p: number) => {
    for (const c of byParent.get(p) ?? []) {
      out.push(c);
      walk(c);
    }
  };
  walk(pid);
  return out;
}

class Sshd {
  proc!: ChildProcess;
  port = 0;
  logFile = '';
  hostKey!: ReturnType<typeof keygen>;
  constructor(readonly dir: string, readonly authorizedKeys: string) {}

  /** sshd's log so far (-E file: with -e, sshd would leak debug lines into sessions' stderr). */
  get log(): string {
    try {
      return readFileSync(this.logFile, 'utf8');
    } catch {
      return '';
    }
  }

  async start(extra: string[] = []): Promise<void> {
    mkdirSync('/run/sshd', { recursive: true, mode: 0o755 }); // privilege separation directory
    this.hostKey ??= keygen(join(this.dir, 'ssh_host_ed25519_key'));
    this.port = await freePort();
    const cfg = join(this.dir, `sshd_config.${this.port}`);
    writeFileSync(
      cfg,
      [
        `Port ${this.port}`,
        'ListenAddress 127.0.0.1',
        `HostKey ${join(this.dir, 'ssh_host_ed25519_key')}`,
        `AuthorizedKeysFile ${this.authorizedKeys}`,
        'StrictModes no',
        'UsePAM no',
        `PidFile ${join(this.dir, `sshd.${this.port}.pid`)}`,
        // A narrow umask in the SFTP server proves put() sets the exact mode (0644 stays 0644).
        'Subsystem sftp internal-sftp -u 0077',
        'PermitRootLogin prohibit-password',
        'PasswordAuthentication no',
        'KbdInteractiveAuthentication no',
        'MaxSessions 10',
        'AllowTcpForwarding yes',
        'LogLevel DEBUG1',
        ...extra,
        '',
      ]
        // sshd takes a keyword's first value: a line in `extra` replaces the default one.
        .filter((l, i, all) => i >= all.length - extra.length - 1 || !extra.some((x) => x.split(' ')[0] === l.split(' ')[0]))
        .join('\n'),
    );
    this.logFile = join(this.dir, `sshd.${this.port}.log`);
    this.proc = spawn('/usr/sbin/sshd', ['-D', '-E', this.logFile, '-f', cfg], { stdio: 'ignore' });
    const deadline = Date.now() + 10_000;
    while (!this.log.includes('Server listening')) {
      if (this.proc.exitCode !== null || Date.now() > deadline) throw new Error(`sshd did not start:\n${this.log}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** SIGKILL sshd and every per-connection process it forked (what a crashed/rebooted host looks like). */
  killAll(): void {
    const pid = this.proc.pid!;
    const kids = descendants(pid);
    for (const p of [pid, ...kids]) {
      try {
        process.kill(p, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
  }

  async stop(): Promise<void> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    const exited = once(this.proc, 'exit');
    this.killAll();
    await exited;
  }
}

// ---------------------------------------------------------------------------------------------------------

let dir: string;
let sshd: Sshd;
let clientKey: string;
let knownHosts: string;
const NO_AGENT: ConnectOptions = { env: {} };

function target(over: Partial<SshTarget> = {}): SshTarget {
  return {
    name: 'int-host',
    address: '127.0.0.1',
    port: sshd.port,
    user: 'root',
    identityFile: clientKey,
    knownHostsFile: knownHosts,
    connectTimeoutMs: 10_000,
    ...over,
  };
}

async function expectKrypton(p: Promise<unknown>, code: string): Promise<KryptonError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(KryptonError);
  expect((err as KryptonError).code).toBe(code);
  return err as KryptonError;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'krypton-transport-'));
  chmodSync(dir, 0o755);
  clientKey = join(dir, 'id_ed25519');
  const client = keygen(clientKey);
  writeFileSync(join(dir, 'authorized_keys'), `${client.pub}\n`);
  sshd = new Sshd(dir, join(dir, 'authorized_keys'));
  await sshd.start();
  knownHosts = join(dir, 'known_hosts');
  writeFileSync(knownHosts, `[127.0.0.1]:${sshd.port} ${sshd.hostKey.pub.split(' ').slice(0, 2).join(' ')}\n`);
});

afterAll(async () => {
  await sshd?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('exec', () => {
  let t: SshTransport;
  const sent: string[] = [];
  beforeAll(async () => {
    t = await connectSsh(target(), { ...NO_AGENT, onCommand: (_h, line) => sent.push(line) });
  });
  afterAll(() => t?.close());

  it('runs argv, returns stdout/stderr as text and the exit code', async () => {
    const r = await t.exec(['sh', '-c', 'echo out; echo err >&2; exit 3']);
    expect(r).toEqual({ code: 3, stdout: 'out\n', stderr: 'err\n' });
    expect((await t.exec(['true'])).code).toBe(0);
    expect((await t.exec(['printf', '%s', 'ünïcødé ✓'])).stdout).toBe('ünïcødé ✓');
  });

  it('gives 128+n when the command dies of a signal', async () => {
    expect((await t.exec(['sh', '-c', 'kill -TERM $$'])).code).toBe(128 + 15);
    expect((await t.exec(['sh', '-c', 'kill -KILL $$'])).code).toBe(128 + 9);
  });

  it('runs in cwd, and does not run the command when cd fails', async () => {
    mkdirSync(join(dir, 'work dir'), { recursive: true });
    expect((await t.exec(['pwd'], { cwd: join(dir, 'work dir') })).stdout).toBe(`${join(dir, 'work dir')}\n`);
    const r = await t.exec(['touch', join(dir, 'should-not-exist')], { cwd: join(dir, 'missing') });
    expect(r.code).not.toBe(0);
    expect(existsSync(join(dir, 'should-not-exist'))).toBe(false);
  });

  it('sends a Secret on stdin only: never in the command line sent, nor in the server log', async () => {
    const secret = Secret.random(32);
    const secretHex = secret.reveal().toString('hex');
    // Wrap ssh2's own exec: this is the exact string that goes into the SSH "exec" request.
    const wire: string[] = [];
    const proto = ssh2.Client.prototype as unknown as { exec: (...a: unknown[]) => unknown };
    const realExec = proto.exec;
    proto.exec = function (this: unknown, ...args: unknown[]) {
      wire.push(String(args[0]));
      return realExec.apply(this, args);
    };
    try {
      const r = await t.exec(['sha256sum'], { stdin: secret });
      expect(r.stdout.split(' ')[0]).toBe(secret.fingerprint());
      const hexR = await t.exec(['od', '-An', '-tx1', '-v'], { stdin: secret });
      expect(hexR.stdout.replace(/\s+/g, '')).toBe(secretHex);
    } finally {
      proto.exec = realExec;
    }
    expect(wire).toEqual(['sha256sum', 'od -An -tx1 -v']);
    for (const line of [...wire, ...sent]) {
      expect(line).not.toContain(secretHex);
      expect(line).not.toContain(secret.reveal().toString('latin1'));
    }
    expect(sshd.log).not.toContain(secretHex);
  });

  it('closes stdin when none is given (a reader does not hang)', async () => {
    expect(await t.exec(['cat'], { timeoutMs: 5_000 })).toEqual({ code: 0, stdout: '', stderr: '' });
  });

  it('times out with E_SSH_EXEC and frees the channel', async () => {
    const started = Date.now();
    const err = await expectKrypton(t.exec(['sleep', '30'], { timeoutMs: 300 }), 'E_SSH_EXEC');
    expect(err.message).toMatch(/sleep on int-host: timed out after 300 ms/);
    expect(Date.now() - started).toBeLessThan(5_000);
    const all = await Promise.all(Array.from({ length: 8 }, () => t.exec(['true'])));
    expect(all.every((r) => r.code === 0)).toBe(true);
  });

  it('20 concurrent execs on one connection all succeed (at most 8 channels; sshd MaxSessions 10)', async () => {
    const started = Date.now();
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => t.exec(['sh', '-c', `sleep 0.3; echo ${i}`])));
    expect(results.map((r) => r.stdout.trim())).toEqual(Array.from({ length: 20 }, (_, i) => String(i)));
    expect(results.every((r) => r.code === 0)).toBe(true);
    // 20 commands through 8 channels take at least 3 rounds of 0.3 s.
    expect(Date.now() - started).toBeGreaterThanOrEqual(850);
  });

  it('…and a refused channel is back-pressure: with 40 allowed here, sshd refuses beyond MaxSessions, and the refused opens are retried on fewer channels until all 20 succeed', async () => {
    const pressure: number[] = [];
    const raw = await connectSsh(target(), { ...NO_AGENT, maxChannels: 40, onBackPressure: (_h, i) => pressure.push(i.limit) });
    try {
      const results = await Promise.all(Array.from({ length: 20 }, (_, i) => raw.exec(['sh', '-c', `sleep 0.5; echo ${i}`])));
      expect(results.map((r) => r.stdout.trim())).toEqual(Array.from({ length: 20 }, (_, i) => String(i)));
      expect(pressure.length, 'sshd refused some opens').toBeGreaterThan(0);
      expect(Math.min(...pressure)).toBeLessThanOrEqual(10); // lowered to what sshd allowed (MaxSessions 10)
    } finally {
      await raw.close();
    }
  });
});

describe('sshd with a low MaxSessions', () => {
  it('MaxSessions 1: concurrent execs, puts and a held run lock all work (the lock has a connection of its own; an idle SFTP session gives its channel back)', async () => {
    const one = new Sshd(dir, join(dir, 'authorized_keys'));
    one.hostKey = sshd.hostKey;
    await one.start(['MaxSessions 1']);
    const kh = join(dir, 'kh-one');
    writeFileSync(kh, `[127.0.0.1]:${one.port} ${sshd.hostKey.pub.split(' ').slice(0, 2).join(' ')}\n`);
    const t = await connectSsh(target({ port: one.port, knownHostsFile: kh }), { ...NO_AGENT, channelRetry: { attempts: 8, baseDelayMs: 50, maxDelayMs: 400 } });
    try {
      const lock = await t.hold!(['sh', '-c', 'echo held; exec cat >/dev/null'], 'held');
      expect(lock.held).toBe(true);
      const d = mkdtempSync(join(dir, 'ms1-'));
      const work = await Promise.all([
        ...Array.from({ length: 6 }, (_, i) => t.exec(['sh', '-c', `echo ${i}`]).then((r) => r.stdout.trim())),
        ...Array.from({ length: 3 }, (_, i) => t.put(join(d, `f${i}`), `v${i}`, { mode: 0o600 }).then(() => `put ${i}`)),
        t.exec(['sh', '-c', 'echo after']).then((r) => r.stdout.trim()),
      ]);
      expect(work).toEqual(['0', '1', '2', '3', '4', '5', 'put 0', 'put 1', 'put 2', 'after']);
      expect(readFileSync(join(d, 'f2'), 'utf8')).toBe('v2');
      if (lock.held) lock.release();
    } finally {
      await t.close();
      await one.stop();
    }
  });

  it('MaxSessions 0 (no sessions at all): after the bounded retries the exec fails with E_SSH_EXEC naming MaxSessions', async () => {
    const none = new Sshd(dir, join(dir, 'authorized_keys'));
    none.hostKey = sshd.hostKey;
    await none.start(['MaxSessions 0']);
    const kh = join(dir, 'kh-none');
    writeFileSync(kh, `[127.0.0.1]:${none.port} ${sshd.hostKey.pub.split(' ').slice(0, 2).join(' ')}\n`);
    let retries = 0;
    const t = await connectSsh(target({ port: none.port, knownHostsFile: kh }), { ...NO_AGENT, channelRetry: { attempts: 3, baseDelayMs: 20, maxDelayMs: 40 }, onBackPressure: () => retries++ });
    try {
      const err = await expectKrypton(t.exec(['true']), 'E_SSH_EXEC');
      expect(err.message).toMatch(/int-host: sshd refused to open a channel 3 times/);
      expect(err.hint).toMatch(/MaxSessions/);
      expect(retries).toBe(2);
    } finally {
      await t.close();
      await none.stop();
    }
  });
});

describe('put (SFTP)', () => {
  let t: SshTransport;
  let putDir: string;
  let logMark = 0;
  beforeAll(async () => {
    logMark = sshd.log.length;
    t = await connectSsh(target(), NO_AGENT);
    putDir = join(dir, 'put');
    mkdirSync(putDir, { mode: 0o755 });
  });
  afterAll(() => t?.close());

  it('creates files with the exact mode even under a 077 umask', async () => {
    const s = new Secret('top secret\n');
    await t.put(join(putDir, 'secret'), s, { mode: 0o600 });
    await t.put(join(putDir, 'public'), 'hello\n', { mode: 0o644 });
    await t.put(join(putDir, 'wide'), Buffer.from('x'), { mode: 0o666 });
    expect(statSync(join(putDir, 'secret')).mode & 0o7777).toBe(0o600);
    expect(statSync(join(putDir, 'public')).mode & 0o7777).toBe(0o644);
    expect(statSync(join(putDir, 'wide')).mode & 0o7777).toBe(0o666);
    expect(readFileSync(join(putDir, 'secret'), 'utf8')).toBe('top secret\n');
    expect(readFileSync(join(putDir, 'public'), 'utf8')).toBe('hello\n');
  });

  it('replaces an existing file atomically: new inode, new content, no temp file left', async () => {
    const p = join(putDir, 'replace-me');
    writeFileSync(p, 'old');
    const before = statSync(p).ino;
    await t.put(p, new Secret('new'), { mode: 0o600 });
    expect(statSync(p).ino).not.toBe(before);
    expect(readFileSync(p, 'utf8')).toBe('new');
    expect(readdirSync(putDir).filter((f) => f.includes('krypton'))).toEqual([]);
  });

  it('writes large content (several SFTP packets) and many puts at once share one SFTP session', async () => {
    const big = Buffer.alloc(300_000, 7);
    await Promise.all([
      t.put(join(putDir, 'big'), big, { mode: 0o600 }),
      ...Array.from({ length: 10 }, (_, i) => t.put(join(putDir, `many-${i}`), `n${i}`, { mode: 0o640 })),
    ]);
    expect(readFileSync(join(putDir, 'big')).equals(big)).toBe(true);
    for (let i = 0; i < 10; i++) expect(readFileSync(join(putDir, `many-${i}`), 'utf8')).toBe(`n${i}`);
    // Every put of this describe block went through one lazily opened, reused SFTP session.
    expect((sshd.log.slice(logMark).match(/Starting session: subsystem 'sftp'/g) ?? []).length).toBe(1);
  });

  it('sets owner and group by name (resolved on the host) or by id', async () => {
    const uid = Number(execFileSync('id', ['-u', 'nobody'], { encoding: 'utf8' }).trim());
    const gid = Number(execFileSync('getent', ['group', 'nogroup'], { encoding: 'utf8' }).split(':')[2]);
    await t.put(join(putDir, 'owned'), 'x', { mode: 0o640, owner: 'nobody', group: 'nogroup' });
    let st = statSync(join(putDir, 'owned'));
    expect([st.uid, st.gid, st.mode & 0o7777]).toEqual([uid, gid, 0o640]);
    await t.put(join(putDir, 'owned2'), 'x', { mode: 0o600, owner: String(uid) });
    st = statSync(join(putDir, 'owned2'));
    expect([st.uid, st.gid]).toEqual([uid, 0]);
    const err = await expectKrypton(t.put(join(putDir, 'x'), 'x', { mode: 0o600, owner: 'no-such-user-krypton' }), 'E_SFTP');
    expect(err.message).toContain('no-such-user-krypton');
  });

  it('fails with E_SFTP naming the path when the directory is missing, and never shows the content', async () => {
    const p = join(putDir, 'missing-dir', 'file');
    const err = await expectKrypton(t.put(p, new Secret('do-not-print-me'), { mode: 0o600 }), 'E_SFTP');
    expect(err.message).toContain(p);
    expect(err.message).toMatch(/no such file/);
    expect(err.hint).toContain(join(putDir, 'missing-dir'));
    expect(JSON.stringify({ m: err.message, h: err.hint, c: String(err.cause) })).not.toContain('do-not-print-me');
  });

  it('removes the temp file when a step after create fails (rename over a directory)', async () => {
    const err = await expectKrypton(t.put('relative/path', 'x', { mode: 0o600 }), 'E_SFTP');
    expect(err.message).toMatch(/absolute/);
    mkdirSync(join(putDir, 'a-directory'));
    const renameErr = await expectKrypton(t.put(join(putDir, 'a-directory'), 'x', { mode: 0o600 }), 'E_SFTP');
    expect(renameErr.message).toMatch(/at rename/);
    expect(readdirSync(putDir).filter((f) => f.includes('krypton'))).toEqual([]);
  });
});

describe('forward', () => {
  let server: Server;
  let port: number;
  beforeAll(async () => {
    server = createServer((sock) => sock.on('data', (d) => sock.write(`pong:${d.toString()}`)));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    port = (server.address() as AddressInfo).port;
  });
  afterAll(() => server?.close());

  it('opens a TCP stream to host:port as seen from the remote host', async () => {
    const t = await connectSsh(target(), NO_AGENT);
    try {
      const s = await t.forward('127.0.0.1', port);
      s.write('ping');
      const [data] = (await once(s, 'data')) as [Buffer];
      expect(data.toString()).toBe('pong:ping');
      s.end();
      const closedPort = await freePort();
      await expectKrypton(t.forward('127.0.0.1', closedPort), 'E_SSH_EXEC');
    } finally {
      await t.close();
    }
  });
});

describe('host key verification', () => {
  function logSince(mark: number): string {
    return sshd.log.slice(mark);
  }

  it('refuses an unknown host key with E_SSH_HOSTKEY before any auth attempt or channel', async () => {
    const empty = join(dir, 'kh-empty');
    writeFileSync(empty, '');
    const mark = sshd.log.length;
    const err = await expectKrypton(connectSsh(target({ knownHostsFile: empty }), NO_AGENT), 'E_SSH_HOSTKEY');
    expect(err.message).toContain('unknown');
    expect(err.message).toContain(sshd.hostKey.fingerprint);
    expect(err.message).toContain('int-host');
    expect(err.hint).toMatch(/ssh-keyscan|--accept-new/);
    await new Promise((r) => setTimeout(r, 300)); // let sshd log the disconnect
    const log = logSince(mark);
    expect(log).toContain('Connection from 127.0.0.1');
    expect(log).not.toMatch(/userauth|Accepted|session_new|channel/i);
  });

  it('refuses a CHANGED host key, naming the known_hosts file and line', async () => {
    const other = keygen(join(dir, 'other_host_key'));
    const kh = join(dir, 'kh-changed');
    writeFileSync(kh, `# comment\nsomeone-else ${other.pub.split(' ').slice(0, 2).join(' ')}\n[127.0.0.1]:${sshd.port} ${other.pub.split(' ').slice(0, 2).join(' ')}\n`);
    const mark = sshd.log.length;
    const err = await expectKrypton(connectSsh(target({ knownHostsFile: kh, acceptNew: true }), NO_AGENT), 'E_SSH_HOSTKEY');
    expect(err.message).toContain('CHANGED');
    expect(err.message).toContain(`${kh} line 3`);
    expect(err.hint).toContain('ssh-keygen -R');
    expect(readFileSync(kh, 'utf8').split('\n').filter(Boolean)).toHaveLength(3); // acceptNew never records a changed key
    await new Promise((r) => setTimeout(r, 200));
    expect(logSince(mark)).not.toMatch(/userauth|Accepted/);
  });

  it('refuses a revoked key even if a plain line matches it', async () => {
    const kh = join(dir, 'kh-revoked');
    const keyPart = sshd.hostKey.pub.split(' ').slice(0, 2).join(' ');
    writeFileSync(kh, `[127.0.0.1]:${sshd.port} ${keyPart}\n@revoked * ${keyPart}\n`);
    const err = await expectKrypton(connectSsh(target({ knownHostsFile: kh }), NO_AGENT), 'E_SSH_HOSTKEY');
    expect(err.message).toContain('REVOKED');
  });

  it('accepts a hashed known_hosts entry (ssh-keygen -H)', async () => {
    const kh = join(dir, 'kh-hashed');
    writeFileSync(kh, readFileSync(knownHosts));
    execFileSync('ssh-keygen', ['-H', '-f', kh], { stdio: 'ignore' });
    expect(readFileSync(kh, 'utf8')).toMatch(/^\|1\|/);
    const t = await connectSsh(target({ knownHostsFile: kh }), NO_AGENT);
    expect((await t.exec(['true'])).code).toBe(0);
    await t.close();
  });

  it('a pinned fingerprint replaces known_hosts; a wrong pin is refused', async () => {
    const t = await connectSsh(target({ knownHostsFile: join(dir, 'does-not-exist'), hostKey: sshd.hostKey.fingerprint }), NO_AGENT);
    expect((await t.exec(['echo', 'pinned'])).stdout).toBe('pinned\n');
    await t.close();
    const wrong = sha256Fingerprint(Buffer.from('not the key'));
    const err = await expectKrypton(connectSsh(target({ hostKey: wrong }), NO_AGENT), 'E_SSH_HOSTKEY');
    expect(err.message).toContain('CHANGED');
    expect(err.message).toContain(wrong);
  });

  it('acceptNew records an unknown key, which then verifies without acceptNew', async () => {
    const kh = join(dir, 'new', 'known_hosts');
    const accepted: string[] = [];
    const t = await connectSsh(target({ knownHostsFile: kh, acceptNew: true }), { ...NO_AGENT, onHostKeyAccepted: (i) => accepted.push(i.fingerprint) });
    await t.close();
    expect(accepted).toEqual([sshd.hostKey.fingerprint]);
    const found = execFileSync('ssh-keygen', ['-F', `[127.0.0.1]:${sshd.port}`, '-f', kh], { encoding: 'utf8' });
    expect(found).toContain(sshd.hostKey.pub.split(' ')[1]);
    const t2 = await connectSsh(target({ knownHostsFile: kh }), NO_AGENT);
    await t2.close();
    expect(readFileSync(kh, 'utf8').trim().split('\n')).toHaveLength(1);
  });
});

describe('authentication and connection errors', () => {
  it('a wrong client key fails with E_SSH_AUTH naming user@host', async () => {
    const wrongKey = join(dir, 'wrong_key');
    keygen(wrongKey, 'ecdsa');
    const err = await expectKrypton(connectSsh(target({ identityFile: wrongKey }), NO_AGENT), 'E_SSH_AUTH');
    expect(err.message).toContain('root@int-host');
  });

  it('an rsa identity file works too', async () => {
    const rsa = join(dir, 'id_rsa');
    const k = keygen(rsa, 'rsa');
    writeFileSync(join(dir, 'authorized_keys'), `${readFileSync(join(dir, 'authorized_keys'), 'utf8')}${k.pub}\n`);
    const t = await connectSsh(target({ identityFile: rsa }), NO_AGENT);
    expect((await t.exec(['true'])).code).toBe(0);
    await t.close();
  });

  it('an encrypted key without an agent is a clear E_SSH_AUTH asking for ssh-agent', async () => {
    const enc = join(dir, 'id_encrypted');
    keygen(enc, 'ed25519', 'correct horse');
    const err = await expectKrypton(connectSsh(target({ identityFile: enc }), NO_AGENT), 'E_SSH_AUTH');
    expect(err.message).toMatch(/passphrase/);
    expect(err.hint).toMatch(/ssh-agent|ssh-add/);
  });

  it('authenticates through ssh-agent (SSH_AUTH_SOCK), e.g. for an encrypted key loaded with ssh-add', async () => {
    const enc = join(dir, 'id_agent_encrypted');
    const k = keygen(enc, 'ed25519', 'battery staple');
    writeFileSync(join(dir, 'authorized_keys'), `${readFileSync(join(dir, 'authorized_keys'), 'utf8')}${k.pub}\n`);
    const sock = join(dir, 'agent.sock');
    const agent = spawn('ssh-agent', ['-D', '-a', sock], { stdio: 'ignore' });
    try {
      for (let i = 0; i < 100 && !existsSync(sock); i++) await new Promise((r) => setTimeout(r, 20));
      const askpass = join(dir, 'askpass.sh');
      writeFileSync(askpass, '#!/bin/sh\necho "battery staple"\n', { mode: 0o700 });
      execFileSync('ssh-add', [enc], { env: { ...process.env, SSH_AUTH_SOCK: sock, SSH_ASKPASS: askpass, SSH_ASKPASS_REQUIRE: 'force', DISPLAY: ':0' }, stdio: ['ignore', 'ignore', 'ignore'] });
      // The encrypted file is skipped (the agent may hold it) and the agent's key is used.
      const t = await connectSsh(target({ identityFile: enc }), { env: { SSH_AUTH_SOCK: sock } });
      expect((await t.exec(['echo', 'agent'])).stdout).toBe('agent\n');
      await t.close();
      const t2 = await connectSsh(target({ identityFile: undefined }), { env: { SSH_AUTH_SOCK: sock } });
      await t2.close();
    } finally {
      agent.kill('SIGTERM');
    }
  });

  it('connection refused is E_SSH_CONNECT, quickly', async () => {
    const port = await freePort();
    const started = Date.now();
    const err = await expectKrypton(connectSsh(target({ port }), NO_AGENT), 'E_SSH_CONNECT');
    expect(err.message).toContain('connection refused');
    expect(err.message).toContain(`127.0.0.1:${port}`);
    expect(Date.now() - started).toBeLessThan(2_000);
  });

  it('a server that never speaks SSH times out with E_SSH_CONNECT', async () => {
    const silent = createServer(() => {});
    silent.listen(0, '127.0.0.1');
    await once(silent, 'listening');
    try {
      const err = await expectKrypton(connectSsh(target({ port: (silent.address() as AddressInfo).port, connectTimeoutMs: 500 }), NO_AGENT), 'E_SSH_CONNECT');
      expect(err.message).toMatch(/timed out after 500 ms/);
    } finally {
      silent.close();
    }
  });
});

describe('ProxyJump and the pool', () => {
  it('reaches the host through a jump host, each hop verified', async () => {
    const jump = target({ name: 'jump' });
    const t = await connectSsh(target({ proxyJump: [jump] }), NO_AGENT);
    const r = await t.exec(['sh', '-c', 'echo $SSH_CONNECTION']);
    expect(r.stdout.split(' ')[0]).toBe('127.0.0.1');
    await t.close();
    // A jump host whose key is unknown is refused (and named).
    const empty = join(dir, 'kh-empty-jump');
    writeFileSync(empty, '');
    const err = await expectKrypton(connectSsh(target({ proxyJump: [target({ name: 'jump', knownHostsFile: empty })] }), NO_AGENT), 'E_SSH_HOSTKEY');
    expect(err.message).toContain('jump');
  });

  it('shares one connection per host name between concurrent callers', async () => {
    const pool = new ConnectionPool(NO_AGENT);
    const mark = sshd.log.length;
    const [a, b] = await Promise.all([pool.get(target()), pool.get(target())]);
    expect(a).toBe(b);
    await Promise.all([a.exec(['true']), b.exec(['true'])]);
    expect((sshd.log.slice(mark).match(/Accepted publickey/g) ?? []).length).toBe(1);
    await pool.closeAll();
    expect((a as SshTransport).isOpen).toBe(false);
  });
});

describe('a host that dies mid-session', () => {
  it('rejects the running exec and the queued ones instead of hanging', async () => {
    const dying = new Sshd(dir, join(dir, 'authorized_keys'));
    dying.hostKey = sshd.hostKey; // same host key file
    await dying.start();
    try {
      const kh = join(dir, 'kh-dying');
      writeFileSync(kh, `[127.0.0.1]:${dying.port} ${sshd.hostKey.pub.split(' ').slice(0, 2).join(' ')}\n`);
      const t = await connectSsh(target({ port: dying.port, knownHostsFile: kh }), { ...NO_AGENT, maxChannels: 2 });
      const pending = [t.exec(['sleep', '60']), t.exec(['sleep', '60']), t.exec(['sleep', '60'])]; // 2 running, 1 queued
      const settled = Promise.allSettled(pending);
      await new Promise((r) => setTimeout(r, 500));
      const started = Date.now();
      dying.killAll();
      const results = await settled;
      expect(Date.now() - started).toBeLessThan(5_000);
      for (const r of results) {
        expect(r.status).toBe('rejected');
        expect((r as PromiseRejectedResult).reason).toMatchObject({ code: 'E_SSH_EXEC' });
      }
      expect(t.isOpen).toBe(false);
      await expectKrypton(t.exec(['true']), 'E_SSH_EXEC');
      await expectKrypton(t.put('/tmp/x', 'x', { mode: 0o600 }), 'E_SFTP');
      await t.close();
    } finally {
      await dying.stop();
    }
  });
});
