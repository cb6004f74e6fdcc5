/**
 * `npm run demo [-- --keep] [-- --hosts N]`: on a Linux machine as root, installs the sandbox's system
 * parts if missing (.ci/install-deps.sh), brings up N sandbox nodes (default 3) with real sshd and OpenBao,
 * runs `plan` and `apply playbooks/provision.yml` through the real CLI, checks each node's Engine API with
 * the value in Vault, prints a short summary, and tears the sandbox down (unless --keep).
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { hostExec, sandboxDown, sandboxUp } from './index.ts';
import { REPO_ROOT } from './layout.ts';

const args = process.argv.slice(2);
const keep = args.includes('--keep');
const hostsArg = args.indexOf('--hosts');
const hosts = hostsArg >= 0 ? Number(args[hostsArg + 1]) : 3;

function step(title: string): void {
  process.stdout.write(`\n\x1b[1m== ${title}\x1b[0m\n`);
}

function runCli(cliArgs: string[], env: Record<string, string>): number {
  const r = spawnSync(process.execPath, [join(REPO_ROOT, 'bin/krypton-secrets.js'), ...cliArgs], { stdio: 'inherit', env: { ...process.env, ...env } });
  return r.status ?? 1;
}

async function main(): Promise<number> {
  step('install the sandbox parts if missing (sshd, awscli, OpenBao, moto)');
  const deps = spawnSync('bash', [join(REPO_ROOT, '.ci/install-deps.sh')], { stdio: 'inherit' });
  if (deps.status !== 0) return deps.status ?? 1;

  step(`bring up ${hosts} sandbox nodes (network namespaces, real sshd, OpenBao dev server)`);
  const info = await sandboxUp({ hosts });
  try {
    const inv = info.files.inventory;
    step('plan: what would change (nothing is touched)');
    runCli(['plan', 'playbooks/provision.yml', '-i', inv], info.env);
    step('apply: provision the Engine-API JWT through Vault Agent into tmpfs');
    const code = runCli(['apply', 'playbooks/provision.yml', '-i', inv], info.env);
    step('apply again: a converged fleet changes nothing');
    runCli(['apply', 'playbooks/provision.yml', '-i', inv], info.env);

    step('check each node from inside (no ssh): tmpfs, jwt.hex mode, Engine API');
    let good = 0;
    for (const n of info.nodes) {
      const mnt = await hostExec(n, ['findmnt', '-n', '-o', 'FSTYPE', '--mountpoint', '/run/krypton-secrets']);
      const st = await hostExec(n, ['stat', '-c', '%a', '/run/krypton-secrets/jwt.hex']);
      const cl = await hostExec(n, ['sh', '-c', 'tail -n 1 /var/log/krypton/cl.log']);
      const ok = mnt.stdout.trim() === 'tmpfs' && st.stdout.trim() === '600' && / 200$/.test(cl.stdout.trim());
      if (ok) good++;
      process.stdout.write(`${ok ? '✔' : '✖'} ${n}: /run/krypton-secrets ${mnt.stdout.trim() || 'not mounted'}, jwt.hex mode ${st.stdout.trim() || '-'}, CL's last Engine API call: HTTP ${cl.stdout.trim().split(' ')[1] ?? '-'}\n`);
    }
    step('summary');
    process.stdout.write(`${good} of ${info.nodes.length} nodes provisioned (apply exit code ${code})\n`);
    if (keep) process.stdout.write(`sandbox left up: source ${info.files.env}; npm run sandbox:down when done\n`);
    return code === 0 && good === info.nodes.length ? 0 : 1;
  } finally {
    if (!keep) {
      step('tear the sandbox down');
      await sandboxDown();
    }
  }
}

main().then(
  (c) => process.exit(c),
  (e) => {
    process.stderr.write(`demo failed: ${(e as Error).message}\n`);
    process.exit(1);
  },
);
