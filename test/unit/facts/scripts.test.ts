/**
 * The fact scripts run for real with this machine's sh against real files (the parsers' fixtures are in the
 * sibling directories): the host secrets' files, the `loaded` record node.restart-lockstep and horcrux.start
 * write after a restart, the stray-copy scan of env-secrets, and the agent's state. Paths under
 * /run/krypton-secrets are redirected to a temp dir on /dev/shm (a tmpfs, as on a host).
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { sha256Hex } from '../../../src/core/secret.ts';
import { envValueCopies } from '../../../src/facts/copies.ts';
import { agentState, LOADED_FILE, loadedState, recordLoadedScript, secretFiles } from '../../../src/facts/secrets.ts';
import { parseInventory } from '../../../src/inventory/loader.ts';
import { hostSecrets } from '../../../src/model/layout.ts';
import { renderEnvFile } from '../../../src/model/formats.ts';
import { nodeRestartLockstep } from '../../../src/tasks/node-restart-lockstep.ts';
import type { ExecAction } from '../../../src/model/action.ts';

const shm = mkdtempSync('/dev/shm/ks-scripts-');
const disk = mkdtempSync(join(tmpdir(), 'ks-scripts-'));
afterAll(() => {
  rmSync(shm, { recursive: true, force: true });
  rmSync(disk, { recursive: true, force: true });
});

/** Runs a fact snippet as the executor does (a subshell, no stdin, stderr dropped), /run/krypton-secrets moved to `dir`. */
function run(script: string, dir: string): string {
  return execFileSync('sh', ['-c', `( ${script.replaceAll('/run/krypton-secrets', dir)}\n) </dev/null 2>/dev/null`], { encoding: 'utf8' });
}
const JWT = '0031fa90a884717ceee535c1cbae9f0bc4542a8cb58eb21d8abcc06978f0ff2e';

describe('secretFiles', () => {
  it('stats and hashes each file on the host, and checks the JWT is exactly 64 lowercase hex', () => {
    const d = mkdtempSync(join(shm, 'files-'));
    const secrets = [
      { name: 'engine-jwt', path: join(d, 'jwt.hex'), format: 'hex64' as const },
      { name: 'node-env', path: join(d, 'node.env'), format: 'env' as const },
      { name: 'ecies', path: join(d, 'missing.json'), format: 'json' as const },
    ];
    const env = renderEnvFile({ API_KEY: 'abc', PASS: "it's" }, 'test');
    writeFileSync(secrets[1]!.path, env.reveal(), { mode: 0o640 });
    const fact = secretFiles(secrets);
    for (const [text, hex] of [[JWT, true], [`${JWT}\n`, false], [`0x${JWT}`, false], [JWT.toUpperCase(), false], [`${JWT.slice(0, 32)}\n${JWT.slice(32)}`, false]] as const) {
      writeFileSync(secrets[0]!.path, text, { mode: 0o600 });
      const out = run(fact.script, d);
      expect(out).not.toContain(JWT.slice(8, 40));
      expect(out).not.toContain('abc');
      const f = fact.parse(out, 0);
      expect(f['engine-jwt'], JSON.stringify(text)).toMatchObject({ exists: true, mode: '0600', sha256: sha256Hex(text), isHex64: hex });
      expect(f['node-env']).toMatchObject({ exists: true, mode: '0640', sha256: env.fingerprint() });
      expect(f['node-env']!.isHex64).toBeUndefined();
      expect(f['ecies']).toEqual({ exists: false });
    }
  });
});

describe('the loaded record', () => {
  const inv = parseInventory('/f/env.yml', 'network: "473374"\ndefaults:\n  env: { services: [cl, mev-boost] }\nnodes:\n  val-1: { role: validator }\n');
  const ss = hostSecrets(inv, inv.nodes[0]!);

  it('recordLoadedScript replaces the restarted services\' lines only, atomically; loadedState reads it back', () => {
    const d = mkdtempSync(join(shm, 'loaded-'));
    const jwt = join(d, 'jwt.hex');
    const env = join(d, 'node.env');
    writeFileSync(jwt, JWT);
    writeFileSync(env, "API_KEY='one'\n");
    run(recordLoadedScript(['el', 'cl'], ss), d);
    expect(loadedState().parse(run(loadedState().script, d), 0)).toEqual({ el: { 'engine-jwt': sha256Hex(JWT) }, cl: { 'engine-jwt': sha256Hex(JWT), 'node-env': sha256Hex("API_KEY='one'\n") } });
    writeFileSync(env, "API_KEY='two'\n");
    run(recordLoadedScript(['cl', 'mev-boost'], ss), d);
    expect(loadedState().parse(run(loadedState().script, d), 0)).toEqual({
      el: { 'engine-jwt': sha256Hex(JWT) },
      cl: { 'engine-jwt': sha256Hex(JWT), 'node-env': sha256Hex("API_KEY='two'\n") },
      'mev-boost': { 'node-env': sha256Hex("API_KEY='two'\n") },
    });
    expect(readdirSync(d).sort()).toEqual(['jwt.hex', 'loaded', 'node.env']);
    expect(readFileSync(join(d, 'loaded'), 'utf8')).not.toContain('one');
  });

  it('a service whose file is missing gets no line (it loaded nothing from it)', () => {
    const d = mkdtempSync(join(shm, 'loaded-'));
    writeFileSync(join(d, 'jwt.hex'), JWT);
    run(recordLoadedScript(['cl'], ss), d);
    expect(loadedState().parse(run(loadedState().script, d), 0)).toEqual({ cl: { 'engine-jwt': sha256Hex(JWT) } });
    expect(LOADED_FILE).toBe('/run/krypton-secrets/loaded');
  });

  it("node.restart-lockstep's restart script: the restart runs under setsid -w; the record is written only after it succeeded", () => {
    const plan = nodeRestartLockstep.plan(
      nodeRestartLockstep.params.parse({}),
      {
        probe: { outcome: 'rejected', detail: 'x', version: 1, fingerprint: sha256Hex(JWT), source: 's' },
        loaded: {},
        files: { 'engine-jwt': { exists: true, sha256: sha256Hex(JWT) }, 'node-env': { exists: true, sha256: 'f'.repeat(64) } },
      },
      { host: inv.nodes[0]!, inventory: inv, restartPending: false, resume: false, store: { delivery: 'agent', hostCopies: false } },
    );
    expect(plan.kind).toBe('change');
    const action = (plan as { actions: ExecAction[] }).actions[0]!;
    expect(action.argv.slice(4)).toEqual(['docker', 'compose', 'restart', 'el', 'cl', 'mev-boost']);
    const d = mkdtempSync(join(shm, 'restart-'));
    writeFileSync(join(d, 'jwt.hex'), JWT);
    writeFileSync(join(d, 'node.env'), "A='1'\n");
    const argv = (restart: string[]) => [...action.argv.slice(0, 4).map((a) => a.replaceAll('/run/krypton-secrets', d)), ...restart];
    // A restart that fails: its exit status, and no record.
    const failed = spawnSync(argv(['sh', '-c', 'echo "no configuration file provided" >&2; exit 14'])[0]!, argv(['sh', '-c', 'echo "no configuration file provided" >&2; exit 14']).slice(1), { encoding: 'utf8' });
    expect(failed.status).toBe(14);
    expect(readdirSync(d)).not.toContain('loaded');
    // A restart that works (it runs in its own session: its sid is its own pid).
    const ok = spawnSync(argv(['sh', '-c', 'ps -o sid= -p $$ > "$0/sid"; echo $$ > "$0/pid"', d])[0]!, argv(['sh', '-c', 'ps -o sid= -p $$ > "$0/sid"; echo $$ > "$0/pid"', d]).slice(1), { encoding: 'utf8' });
    expect(ok.status, ok.stderr).toBe(0);
    expect(readFileSync(join(d, 'sid'), 'utf8').trim()).toBe(readFileSync(join(d, 'pid'), 'utf8').trim());
    expect(loadedState().parse(run(loadedState().script, d), 0)).toEqual({
      el: { 'engine-jwt': sha256Hex(JWT) },
      cl: { 'engine-jwt': sha256Hex(JWT), 'node-env': sha256Hex("A='1'\n") },
      'mev-boost': { 'node-env': sha256Hex("A='1'\n") },
    });
  });
});

describe('envValueCopies', () => {
  it('finds a copy of the env file, and of any one value in another file, by SHA-256 only — quotes as compose reads them', () => {
    const deploy = join(disk, 'deploy');
    mkdirSync(join(deploy, 'sub'), { recursive: true });
    const vars = { API_KEY: 'abc123-secret-value', PASS: "it's-a-long-value", DQ: 'double-quoted-value' };
    const file = renderEnvFile(vars, 'test');
    writeFileSync(join(deploy, 'node.env.bak'), file.reveal());
    writeFileSync(join(deploy, 'sub', 'notes.env'), `PASS='it\\'s-a-long-value'\n  export OTHER=abc123-secret-value\nDQ="double-quoted-value"\n`);
    const fact = envValueCopies(deploy);
    const out = execFileSync('sh', ['-c', fact.script], { encoding: 'utf8' });
    for (const v of Object.values(vars)) expect(out).not.toContain(v);
    const copies = fact.parse(out, 0);
    const where = (fp: string) => copies.filter((c) => c.fingerprint === fp).map((c) => c.where.slice(deploy.length + 1)).sort();
    expect(where(file.fingerprint())).toEqual(['node.env.bak']);
    expect(where(sha256Hex('abc123-secret-value'))).toEqual(['node.env.bak', 'sub/notes.env']);
    expect(where(sha256Hex("it's-a-long-value"))).toEqual(['node.env.bak', 'sub/notes.env']);
    expect(where(sha256Hex('double-quoted-value'))).toEqual(['node.env.bak', 'sub/notes.env']);
  });
});

describe('agentState', () => {
  it('a live pid is running (kill -0), a dead one is not', async () => {
    const d = mkdtempSync(join(shm, 'agent-'));
    const sleeper = spawn('sleep', ['30']);
    try {
      writeFileSync(join(d, 'agent.pid'), `${sleeper.pid}\n`);
      writeFileSync(join(d, 'agent-token'), 'hvs.x');
      const fact = agentState([{ name: 'engine-jwt' }]);
      expect(fact.parse(run(fact.script, d), 0)).toMatchObject({ running: true, pid: sleeper.pid, tokenSink: true });
    } finally {
      sleeper.kill();
      await new Promise((r) => sleeper.once('exit', r));
    }
    const fact = agentState([{ name: 'engine-jwt' }]);
    expect(fact.parse(run(fact.script, d), 0)).toMatchObject({ running: false, tokenSink: true });
  });
});
