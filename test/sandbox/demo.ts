/**
 * `npm run demo [-- --keep] [-- --hosts N] [-- --runtime docker]`: on a Linux machine as root, installs the
 * sandbox's system parts if missing (.ci/install-deps.sh: Debian packages, OpenBao, moto, and the cached Go builds
 * of geth and the compose plugin), brings up N sandbox nodes (default 3; 2 with docker) with real sshd and OpenBao,
 * runs `plan` and `apply playbooks/provision.yml` through the real CLI, checks each node with the value in Vault,
 * prints a short summary, and tears the sandbox down (unless --keep). With `--runtime docker` each node runs its own
 * dockerd with the real geth as `el` and the CL stand-in as `cl` under docker compose; the check also reads
 * `docker compose ps`, geth's `Loaded JWT secret file … crc32` line against the stored value, and ends with
 * `verify` (what each container really holds) and a rotation (restart in lockstep, geth on the new value).
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { composePs, engineJwtCrc32, gethLoadedJwtCrc32, hostExec, sandboxDown, sandboxUp, type Runtime, type SandboxInfo } from './index.ts';
import { REPO_ROOT } from './layout.ts';
import { waitFor } from './proc.ts';

const args = process.argv.slice(2);
const keep = args.includes('--keep');
const arg = (name: string) => (args.indexOf(name) >= 0 ? args[args.indexOf(name) + 1] : undefined);
const runtime = (arg('--runtime') ?? 'standin') as Runtime;
const hosts = arg('--hosts') ? Number(arg('--hosts')) : runtime === 'docker' ? 2 : 3;

function step(title: string): void {
  process.stdout.write(`\n\x1b[1m== ${title}\x1b[0m\n`);
}

function runCli(cliArgs: string[], env: Record<string, string>): number {
  const r = spawnSync(process.execPath, [join(REPO_ROOT, 'bin/dev.js'), ...cliArgs], { stdio: 'inherit', env: { ...process.env, ...env } });
  return r.status ?? 1;
}

/** The stored JWT as hex, from the sandbox's OpenBao (in memory only: for the demo's own check). */
async function vaultJwtHex(info: SandboxInfo): Promise<string | undefined> {
  const res = await fetch(`${info.vault.address}/v1/secret/data/krypton/${info.network}/engine-jwt`, { headers: { 'X-Vault-Token': info.vault.token } });
  if (res.status !== 200) return undefined;
  return ((await res.json()) as { data: { data: { hex: string } } }).data.data.hex;
}

/** Docker runtime: el and cl running under compose, geth loaded the stored value (crc32), the CL's last call 200. */
async function checkDockerNode(info: SandboxInfo, n: string): Promise<boolean> {
  const hex = await vaultJwtHex(info);
  const want = hex ? engineJwtCrc32(hex) : undefined;
  let line = '';
  const ok = await waitFor(
    `${n} to run on the stored JWT`,
    async () => {
      const ps = await composePs(n);
      const running = ['el', 'cl'].every((s) => ps.some((r) => r.service === s && r.state === 'running'));
      const loaded = await gethLoadedJwtCrc32(n);
      const cl = (await hostExec(n, ['sh', '-c', 'tail -n 1 /var/log/krypton/cl.log'])).stdout.trim();
      line = `${n}: docker compose ps: ${ps.map((r) => `${r.service} ${r.state}`).join(', ') || 'nothing'}; geth loaded crc32 ${loaded?.crc32 ?? '-'} (stored value: ${want ?? '-'}); CL's last Engine API call: HTTP ${cl.split(' ')[1] ?? '-'}`;
      return running && !!want && loaded?.crc32 === want && / 200$/.test(cl);
    },
    { timeoutMs: 120_000, intervalMs: 500 },
  ).catch(() => false);
  process.stdout.write(`${ok ? '✔' : '✖'} ${line}\n`);
  return ok;
}

async function main(): Promise<number> {
  if (runtime !== 'standin' && runtime !== 'docker') {
    process.stderr.write(`unknown runtime ${runtime} (standin|docker)\n`);
    return 2;
  }
  step(`install the sandbox parts if missing (sshd, awscli, OpenBao, moto${runtime === 'docker' ? ', docker.io, and the geth / compose builds (first run: minutes)' : ''})`);
  const deps = spawnSync('bash', [join(REPO_ROOT, '.ci/install-deps.sh')], { stdio: 'inherit' });
  if (deps.status !== 0) return deps.status ?? 1;

  step(`bring up ${hosts} sandbox nodes (network namespaces, real sshd, OpenBao dev server${runtime === 'docker' ? '; per node its own dockerd, geth and the CL stand-in under docker compose' : ''})`);
  const info = await sandboxUp({ hosts, runtime });
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
    if (runtime === 'docker') {
      for (const n of info.nodes) if (await checkDockerNode(info, n)) good++;
      step('verify: what each container really holds (el.holds, cl.holds) and what geth loaded (el.loaded)');
      const verified = runCli(['verify', '-i', inv], info.env);
      step('rotate the JWT: one validator at a time, el and cl restarted together, geth on the new value');
      const rotated = runCli(['apply', 'playbooks/rotate-jwt.yml', '-i', inv], info.env);
      let after = 0;
      for (const n of info.nodes) if (await checkDockerNode(info, n)) after++;
      step('summary');
      process.stdout.write(`${good} of ${info.nodes.length} nodes provisioned (apply exit code ${code}); verify exit code ${verified}; rotation exit code ${rotated}, ${after} of ${info.nodes.length} on the new value\n`);
      if (keep) process.stdout.write(`sandbox left up: source ${info.files.env}; npm run sandbox:down when done\n`);
      return code === 0 && verified === 0 && rotated === 0 && good === info.nodes.length && after === info.nodes.length ? 0 : 1;
    }
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
