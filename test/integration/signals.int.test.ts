/**
 * Ctrl-C in a terminal (issue 11): the CLI runs under a real pseudo-terminal (test/integration/tools/pty-run.py),
 * so stdout is a TTY and the listr2 display is on, and Ctrl-C is pressed during a rotation's canary wave. The run
 * must behave as in a pipe: the steps under way finish, no new step starts, the summary and the command that
 * finishes the rotation (--resume) are printed, exit 130; and `--resume` then completes it.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sandboxDown, sandboxUp, type SandboxInfo } from '../sandbox/index.ts';
import { BIN, REPO, cli, vaultJwt } from './helpers.ts';

function underPty(info: SandboxInfo, trigger: string, args: string[]): Promise<{ code: number; sent: boolean; output: string }> {
  return new Promise((resolve, reject) => {
    const env: Record<string, string | undefined> = { ...process.env, ...info.env, TERM: 'xterm-256color', COLUMNS: '160' };
    delete env['CI']; // a CI variable switches the display to plain lines
    const child = spawn('python3', [join(REPO, 'test/integration/tools/pty-run.py'), trigger, '200', '--', process.execPath, BIN, ...args], { cwd: REPO, env, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.on('error', reject);
    child.on('close', () => {
      try {
        resolve(JSON.parse(out) as { code: number; sent: boolean; output: string });
      } catch (e) {
        reject(new Error(`pty-run printed no result: ${out.slice(0, 500)} (${String(e)})`));
      }
    });
  });
}

describe('Ctrl-C in a terminal during a rotation', () => {
  let info: SandboxInfo;

  beforeAll(async () => {
    info = await sandboxUp({ hosts: 3 });
    const r = await cli(info, ['apply', 'playbooks/provision.yml', '-i', info.files.inventory, '--json']);
    expect(r.code).toBe(0);
  }, 300_000);

  afterAll(async () => {
    await sandboxDown();
  }, 120_000);

  it('finishes the steps under way, prints the summary and the --resume command, exits 130; --resume completes', async () => {
    const before = await vaultJwt(info);
    // jwt.rotate is the canary wave's first step: Ctrl-C lands while the canary works, before the later waves.
    const r = await underPty(info, 'jwt.rotate', ['apply', 'playbooks/rotate-jwt.yml', '-i', info.files.inventory]);
    expect(r.sent, r.output).toBe(true);
    expect(r.code, r.output).toBe(130);
    expect(r.output).toMatch(/interrupted: finishing the steps under way/);
    expect(r.output).toMatch(/host\(s\) ok/); // the summary line
    expect(r.output).toMatch(/finish with: krypton-secrets apply playbooks\/rotate-jwt\.yml -i \S+ --resume/);
    expect(r.output).not.toMatch(/\n\s+at .+\(.+:\d+:\d+\)/); // no stack trace
    const after = await vaultJwt(info);
    expect(after.version).toBe(before.version + 1); // the rotation wrote its one version before the interrupt

    const resumed = await cli(info, ['apply', 'playbooks/rotate-jwt.yml', '-i', info.files.inventory, '--resume', '--json']);
    expect(resumed.code, resumed.stdout).toBe(0);
    expect((await vaultJwt(info)).version).toBe(after.version); // --resume writes no new version
    const again = await cli(info, ['apply', 'playbooks/rotate-jwt.yml', '-i', info.files.inventory, '--resume', '--json']);
    expect(again.summary?.changed).toBe(0);
  });
});
