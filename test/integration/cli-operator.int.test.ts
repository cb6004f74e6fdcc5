/**
 * The operator-facing CLI pieces of issue 11 on a real sandbox (sshd hosts, OpenBao): `--json` lines carry `ts`
 * and one `run_id`; `--log FILE` writes the same lines; `plan --detailed-exitcode` (and `apply --check`) says 2
 * while changes are pending and 0 once converged, changing nothing; `--limit` patterns and groups select what they
 * say; a failed apply writes the retry file that `--limit @file` reads; `apply provision` finds the shipped playbook.
 */
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hostExec, sandboxDown, sandboxUp, startHostSshd, stopHostSshd, type SandboxInfo } from '../sandbox/index.ts';
import { cli, vaultJwt } from './helpers.ts';

describe('operator CLI: json metadata, run log, detailed exit codes, host selection, retry file', () => {
  let info: SandboxInfo;
  let inv: string;

  beforeAll(async () => {
    info = await sandboxUp({ hosts: 3 });
    inv = join(info.dir, 'inventory.groups.yml');
    await writeFile(inv, `${await readFile(info.files.inventory, 'utf8')}\ngroups:\n  canary: [val-1]\n  rest: [val-2, val-3]\n`);
  }, 300_000);

  afterAll(async () => {
    await sandboxDown();
  }, 120_000);

  it('plan --detailed-exitcode exits 2 with changes pending and touches nothing; --json lines carry ts and one run_id', async () => {
    const r = await cli(info, ['plan', 'provision', '-i', inv, '--json', '--detailed-exitcode']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(2);
    expect(r.summary?.changed).toBeGreaterThan(0);
    const ids = new Set(r.events.map((e) => e['run_id']));
    expect(ids.size).toBe(1);
    expect([...ids][0]).toMatch(/^[0-9a-f]{16}$/);
    for (const e of r.events) expect(Date.parse(String(e['ts']))).not.toBeNaN();
    const check = await cli(info, ['apply', 'provision', '-i', inv, '--check', '--detailed-exitcode', '--json']);
    expect(check.code).toBe(2);
    expect(check.events.find((e) => e['type'] === 'run-start')?.['command']).toBe('plan');
    expect(check.events[0]?.['run_id']).not.toBe(r.events[0]?.['run_id']);
    const mount = await hostExec('val-1', ['findmnt', '-n', '/run/krypton-secrets']);
    expect(mount.stdout.trim()).toBe('');
  });

  it("--limit 'val-*,!val-2' and a group from groups: select what they say", async () => {
    const a = await cli(info, ['plan', 'provision', '-i', inv, '--json', '--limit', 'val-*,!val-2']);
    expect(Object.keys(a.summary?.hosts ?? {}).sort()).toEqual(['val-1', 'val-3']);
    const b = await cli(info, ['plan', 'provision', '-i', inv, '--json', '-l', 'canary', '-l', 'val-3']);
    expect(Object.keys(b.summary?.hosts ?? {}).sort()).toEqual(['val-1', 'val-3']);
    const h = await cli(info, ['hosts', '-i', inv, '-l', 'rest', '--json']);
    expect(h.events.map((e) => e['name'])).toEqual(['val-2', 'val-3']);
    const none = await cli(info, ['plan', 'provision', '-i', inv, '-l', 'db-*']);
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/--limit db-\* matches no host/);
  });

  it('a failed apply writes the retry file; --limit @file runs just those hosts; --log holds the run as JSON lines', async () => {
    const log = join(info.dir, 'run.log');
    await rm(log, { force: true });
    await stopHostSshd('val-2');
    let first;
    try {
      first = await cli(info, ['apply', 'provision', '-i', inv, '--log', log]);
    } finally {
      await startHostSshd('val-2');
    }
    expect(first.code).toBe(1);
    const retry = `${inv}.retry`;
    expect(first.stdout).toContain(`--limit @${retry}`);
    const listed = (await readFile(retry, 'utf8')).split('\n').filter((l) => l && !l.startsWith('#'));
    expect(listed).toEqual(['val-2']);
    const lines = (await readFile(log, 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.at(-1)?.['type']).toBe('summary');
    expect(new Set(lines.map((l) => l['run_id'])).size).toBe(1);
    expect((await readFile(log, 'utf8'))).not.toContain((await vaultJwt(info)).hex);

    const second = await cli(info, ['apply', 'provision', '-i', inv, '--limit', `@${retry}`, '--json']);
    expect(second.code).toBe(0);
    expect(Object.keys(second.summary?.hosts ?? {})).toEqual(['val-2']);
    expect(second.summary?.hosts['val-2']?.status).toBe('changed');
    await expect(readFile(retry, 'utf8')).rejects.toThrow(/ENOENT/);

    const converged = await cli(info, ['plan', 'provision', '-i', inv, '--detailed-exitcode']);
    expect(converged.code).toBe(0);
  });

  it('rollback-jwt when the newest stored version is not a valid JWT goes back to the newest valid one (the one the fleet runs)', async () => {
    const good = await vaultJwt(info);
    const put = await fetch(`${info.vault.address}/v1/secret/data/krypton/${info.network}/engine-jwt`, {
      method: 'POST',
      headers: { 'X-Vault-Token': info.vault.token, 'Content-Type': 'application/json' },
      body: JSON.stringify({ data: { hex: good.hex.slice(0, 62) } }), // 31 bytes
    });
    expect(put.status).toBe(200);
    const detailed = await cli(info, ['plan', 'provision', '-i', inv, '--detailed-exitcode']);
    expect(detailed.code).toBe(1); // an error (E_INPUT, exit 3 without the flag) is 1, never 2
    const r = await cli(info, ['rollback-jwt', '-i', inv, '--json']);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const rb = r.events.find((e) => e['type'] === 'rollback');
    expect(rb?.['restoredFrom']).toBe(good.version);
    const now = await vaultJwt(info);
    expect(now.version).toBe(good.version + 2);
    expect(now.hex).toBe(good.hex);
    expect(r.summary?.changed).toBe(0); // the fleet already ran that value: nothing restarted
  });
});
