/**
 * `npm run bench [-- --hosts N]`: provisioning speed on the sandbox (real sshd, OpenBao, bao agent).
 * Measures wall time of a cold `apply playbooks/provision.yml` over N nodes (default 12), a converged
 * re-apply, a `plan`, a `verify` and a rotation, and counts SSH sessions per host from sshd's logs (one
 * connection per host is the target). Prints one JSON object. A benchmark, not a test: no pass/fail.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { sandboxDown, sandboxUp } from '../test/sandbox/index.ts';
import { REPO_ROOT } from '../test/sandbox/layout.ts';

const args = process.argv.slice(2);
const hostsArg = args.indexOf('--hosts');
const hosts = hostsArg >= 0 ? Number(args[hostsArg + 1]) : 12;

function timed(cliArgs: string[], env: Record<string, string>): { ms: number; code: number } {
  const t0 = performance.now();
  const r = spawnSync(process.execPath, [join(REPO_ROOT, 'bin/krypton-secrets.js'), ...cliArgs, '--json'], { env: { ...process.env, ...env }, encoding: 'utf8' });
  return { ms: Math.round(performance.now() - t0), code: r.status ?? -1 };
}

function sessions(hostDir: string): number {
  try {
    return (readFileSync(join(hostDir, 'sshd.log'), 'utf8').match(/Accepted publickey/g) ?? []).length;
  } catch {
    return -1;
  }
}

const info = await sandboxUp({ hosts });
try {
  const inv = info.files.inventory;
  const cold = timed(['apply', 'playbooks/provision.yml', '-i', inv], info.env);
  const perHostAfterCold = info.nodes.map((n) => sessions(info.hosts[n]!.hostDir));
  const warm = timed(['apply', 'playbooks/provision.yml', '-i', inv], info.env);
  const plan = timed(['plan', 'playbooks/provision.yml', '-i', inv], info.env);
  const verify = timed(['verify', '-i', inv], info.env);
  const rotate = timed(['apply', 'playbooks/rotate-jwt.yml', '-i', inv], info.env);
  process.stdout.write(
    `${JSON.stringify(
      {
        hosts,
        cold_apply_ms: cold.ms,
        converged_apply_ms: warm.ms,
        plan_ms: plan.ms,
        verify_ms: verify.ms,
        rotation_ms: rotate.ms,
        exit_codes: { cold: cold.code, warm: warm.code, plan: plan.code, verify: verify.code, rotate: rotate.code },
        ssh_connections_per_host_cold_apply: { min: Math.min(...perHostAfterCold), max: Math.max(...perHostAfterCold) },
      },
      null,
      2,
    )}\n`,
  );
} finally {
  await sandboxDown();
}
