#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command, InvalidArgumentError, Option } from 'commander';
import { ERROR_CODES, EXIT_HOSTS_FAILED, KryptonError, toKryptonError } from '../core/errors.ts';
import type { RunEvent } from '../core/events.ts';
import { openStore } from '../backends/index.ts';
import { NETWORK_SCOPE, refFor, refKey, type SecretRef } from '../model/layout.ts';
import type { SecretStore } from '../model/store.ts';
import { loadInventory } from '../inventory/loader.ts';
import { loadPlaybook } from '../playbook/loader.ts';
import { acquireHostLocks, runPlaybook, type HostLock } from '../executor/run.ts';
import { selectHosts, checkLimit } from '../executor/select.ts';
import { makeConnector } from './connect.ts';
import { eventToJson, formatFailure, plainRenderer } from './render-events.ts';
import { listrRenderer } from './listr-renderer.ts';
import { renderCommand } from './render-command.ts';
import { verifyCommand } from './verify-command.ts';
import { importEnvCommand, importHorcruxCommand } from './import-horcrux.ts';
import { jwtVersionReport, type JwtVersionReport } from './jwt-report.ts';

const out = (line: string) => process.stdout.write(`${line}\n`);

// `krypton-secrets verify | head -1`: a closed pipe ends the output quietly, not with a stack trace.
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw e;
});

const PACKAGE_ROOT = fileURLToPath(new URL('../..', import.meta.url));
const PACKAGE_VERSION = (JSON.parse(readFileSync(join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { version: string }).version;
/** The shipped rotation playbook, found next to the package whatever the current directory. */
const DEFAULT_ROTATE_PLAYBOOK = join(PACKAGE_ROOT, 'playbooks/rotate-jwt.yml');
const err = (line: string) => process.stderr.write(`${line}\n`);

interface RunFlags {
  inventory: string;
  resume?: boolean;
  limit?: string[];
  concurrency: number;
  json?: boolean;
  acceptNew?: boolean;
  debug?: boolean;
}

function positiveInt(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('expected a whole number >= 1');
  return n;
}

function hostList(v: string): string[] {
  return v.split(',').map((s) => s.trim()).filter(Boolean);
}

function runFlags(cmd: Command): Command {
  return cmd
    .requiredOption('-i, --inventory <file>', 'inventory YAML')
    .option('-l, --limit <hosts>', 'only these hosts (comma-separated inventory names)', hostList)
    .addOption(new Option('-f, --concurrency <n>', 'hosts worked on at once').argParser(positiveInt).default(16))
    .option('--json', 'one JSON object per line; the last is the summary')
    .option('--accept-new', 'record the host key of a host not yet in known_hosts (never a changed one)')
    .option('--debug', 'print stack traces of internal errors');
}

/** Picks the renderer: `--json` lines, listr2 in a terminal, plain lines otherwise. */
function renderer(json: boolean | undefined, hosts: string[]): { sink: (e: RunEvent) => void; done: () => Promise<void> } {
  if (json) return { sink: (e) => out(eventToJson(e)), done: async () => {} };
  if (process.stdout.isTTY && !process.env['CI']) return listrRenderer(hosts, out);
  return { sink: plainRenderer(out), done: async () => {} };
}

async function run(mode: 'plan' | 'apply', playbookFile: string, flags: RunFlags, before?: (store: SecretStore) => Promise<void>): Promise<number> {
  const inventory = await loadInventory(flags.inventory);
  const playbook = await loadPlaybook(playbookFile);
  const limit = checkLimit(inventory, flags.limit);
  const hosts = [...new Set(playbook.plays.flatMap((p) => selectHosts(inventory, p.hosts).map((h) => h.name)))].filter((h) => !limit || limit.has(h));
  const connector = makeConnector(inventory, { acceptNew: flags.acceptNew ?? false, onWarning: (m) => err(`warning: ${m}`) });
  const store = await openStore(inventory);
  const shared = (node: string) => refFor(inventory, 'engine-jwt', node).scope === NETWORK_SCOPE;
  // Which JWT each node holds (and el/cl loaded) after any run that may move it: a rotation, or one that restarts el/cl.
  const reportsJwt = playbook.plays.some((p) => p.steps.some((s) => s.task.id === 'jwt.rotate' || s.task.jwtUnit === 'closes'));
  // A rotation (or a rollback, which writes a version before it runs) that reaches only some nodes of a shared
  // JWT would leave the others on a value the backend no longer has as current. Conditional rotations
  // (`when: plaintext-matches`: the value is compromised anyway) may go node by node.
  const unconditional = playbook.plays.filter((p) => p.steps.some((s) => s.task.id === 'jwt.rotate' && (s.params as { when?: string }).when !== 'plaintext-matches'));
  if (mode === 'apply' && (!flags.resume || before !== undefined)) {
    const plays = before !== undefined ? playbook.plays : unconditional;
    for (const p of plays) {
      const reached = new Set(selectHosts(inventory, p.hosts).filter((h) => !limit || limit.has(h.name)).map((h) => h.name));
      const sharedReached = inventory.nodes.some((n) => reached.has(n.name) && shared(n.name));
      const left = inventory.nodes.filter((n) => !reached.has(n.name) && shared(n.name));
      if (sharedReached && left.length) {
        throw new KryptonError('E_USAGE', `"${p.name}" would write a new version of the network's shared JWT but move only ${[...reached].join(', ')} (not ${left.map((n) => n.name).join(', ')})`, {
          hint: 'rotate the whole fleet (the playbook\'s serial: waves are the canary), use jwt_per_node for per-node values, or add --resume to move some nodes to the current version',
        });
      }
    }
  }
  const { sink, done } = renderer(flags.json, hosts);
  let locks: Map<string, Promise<HostLock>> | undefined;
  try {
    if (before) {
      // Lock every host first: a backend write must not race a run already working on the fleet.
      locks = await acquireHostLocks(
        inventory.nodes.filter((n) => hosts.includes(n.name)),
        (h) => connector.get(h),
      );
      await before(store);
    }
    // Ctrl-C: finish the steps under way (no host is left half-written), start nothing new, report, exit.
    const interrupt = new AbortController();
    const onSigint = () => {
      if (interrupt.signal.aborted) process.exit(130);
      interrupt.abort();
      process.stderr.write('\ninterrupted: finishing the steps under way (Ctrl-C again to quit at once)\n');
    };
    process.on('SIGINT', onSigint);
    const summary = await runPlaybook({
      signal: interrupt.signal,
      locks,
      inventory,
      playbook,
      mode,
      limit: flags.limit,
      concurrency: flags.concurrency,
      resume: flags.resume,
      sink,
      store,
      connect: (h) => connector.get(h),
      report: reportsJwt ? async (hs) => ({ jwt_versions: await jwtVersionReport(hs, (h) => connector.get(h), store, inventory) }) : undefined,
    });
    await done();
    if (!flags.json && summary.notes?.['jwt_versions']) {
      for (const [h, v] of Object.entries(summary.notes['jwt_versions'] as JwtVersionReport)) {
        const holds = v.unreachable ? 'unreachable: unknown' : v.version !== null ? `v${v.version}` : v.fingerprint ? 'a value the backend no longer has' : 'no jwt.hex';
        out(`  ${h}: holds ${holds}${v.fingerprint ? ` (${v.fingerprint})` : ''}${v.pending ? `; ${v.pending.replace(/^jwt\.hex holds [^;]*? but /, '')}` : ''}`);
      }
    }
    if (interrupt.signal.aborted) return 130;
    return summary.ok ? 0 : EXIT_HOSTS_FAILED;
  } finally {
    process.removeAllListeners('SIGINT');
    await connector.closeAll();
  }
}

export async function main(argv: string[]): Promise<number> {
  const program = new Command('krypton-secrets')
    .description("Put a Krypton fleet's non-consensus secrets in place over SSH, into tmpfs, from Vault/OpenBao or AWS KMS.")
    .version(PACKAGE_VERSION, '-V, --version')
    .showHelpAfterError()
    .exitOverride();
  let code = 0;
  let jsonErrors = false;
  let debug = false;
  runFlags(program.command('plan').argument('<playbook>', 'playbook YAML').description('show per host what apply would change; changes nothing')).action(
    async (pb: string, f: RunFlags) => {
      jsonErrors = !!f.json;
      debug = !!f.debug;
      code = await run('plan', pb, f);
    },
  );
  runFlags(program.command('apply').argument('<playbook>', 'playbook YAML').description('converge the hosts to the playbook'))
    .option('--resume', 'continue a halted rotation: write no new JWT version, move the remaining nodes to the current one')
    .action(async (pb: string, f: RunFlags) => {
      jsonErrors = !!f.json;
      debug = !!f.debug;
      code = await run('apply', pb, f);
    });
  runFlags(program.command('rollback-jwt').description('write the previous Engine-API JWT version back as the current one, then move the nodes to it (rotate-jwt waves)'))
    .option('--to-version <n>', 'roll back to this version instead of the one before the current', positiveInt)
    .option('-p, --playbook <file>', 'the rotation playbook whose waves move the nodes', DEFAULT_ROTATE_PLAYBOOK)
    .action(async (f: RunFlags & { toVersion?: number; playbook: string }) => {
      jsonErrors = !!f.json;
      debug = !!f.debug;
      code = await run('apply', f.playbook, { ...f, resume: true }, async (store) => {
        const inv = await loadInventory(f.inventory);
        const refs = new Map<string, SecretRef>();
        for (const n of inv.nodes.filter((n) => !f.limit || f.limit.includes(n.name))) {
          const ref = refFor(inv, 'engine-jwt', n.name);
          refs.set(refKey(ref), ref);
        }
        for (const ref of refs.values()) {
          const node = ref.scope === NETWORK_SCOPE ? undefined : ref.scope;
          const versions = await store.versions(ref);
          const target = f.toVersion ?? versions[1]?.version;
          if (target !== undefined && target === versions[0]?.version) {
            throw new KryptonError('E_INPUT', `v${target} is already the current Engine-API JWT${node ? ` of ${node}` : ''}: nothing to roll back to`, {
              hint: `pick an older live version (${versions.slice(1).map((v) => `v${v.version}`).join(', ') || 'none'}), or run apply ${f.playbook} --resume to move the nodes to the current one`,
            });
          }
          if (target === undefined || !versions.some((v) => v.version === target)) {
            throw new KryptonError('E_INPUT', `no live version ${target ?? '(previous)'} of the Engine-API JWT${node ? ` of ${node}` : ''} to roll back to (live: ${versions.map((v) => `v${v.version}`).join(', ') || 'none'})`, {
              hint: 'pass --to-version with a live version',
            });
          }
          const r = await store.restore(ref, target);
          if (!f.json) out(`rolled back${node ? ` ${node}` : ''}: v${r.restoredFrom}'s value is now v${r.version}`);
          else out(JSON.stringify({ type: 'rollback', node: node ?? null, restoredFrom: r.restoredFrom, version: r.version }));
        }
      });
    });
  program
    .command('verify')
    .description('read-only audit: one row per host and check; exits non-zero when any check fails')
    .requiredOption('-i, --inventory <file>', 'inventory YAML')
    .option('-l, --limit <hosts>', 'only these hosts (comma-separated inventory names)', hostList)
    .addOption(new Option('-f, --concurrency <n>', 'hosts audited at once').argParser(positiveInt).default(16))
    .option('--json', 'one JSON object per row; the last is the summary')
    .option('--debug', 'print stack traces of internal errors')
    .action(async (f: { inventory: string; limit?: string[]; concurrency: number; json?: boolean; debug?: boolean }) => {
      jsonErrors = !!f.json;
      debug = !!f.debug;
      code = await verifyCommand(f, out);
    });
  program
    .command('import-horcrux')
    .argument('<dir>', 'output of horcrux create-ecies-shards / create-ed25519-shards (cosigner_1/, cosigner_2/, …)')
    .description("check every Horcrux key file and store each cosigner's ecies_keys.json and shard in the backend, all or nothing")
    .requiredOption('-i, --inventory <file>', 'inventory YAML (cosigners with shard_id, horcrux.threshold)')
    .option('--shred-source', 'after a verified import, overwrite and delete the local key files')
    .option('--replace', 'replace stored key files that differ (default: refuse)')
    .option('--json', 'one JSON object with the result')
    .option('--debug', 'print stack traces of internal errors')
    .action(async (dir: string, f: { inventory: string; shredSource?: boolean; replace?: boolean; json?: boolean; debug?: boolean }) => {
      jsonErrors = !!f.json;
      debug = !!f.debug;
      code = await importHorcruxCommand(dir, f, out);
    });
  program
    .command('import-env')
    .argument('<file>', 'a plaintext compose env file (NAME=value lines) holding the node env-secrets')
    .description('check every line of an env file and store its variables as the node env-secrets (network-wide, or one node with --node); values never printed')
    .requiredOption('-i, --inventory <file>', 'inventory YAML')
    .option('--node <name>', "store them as this node's own env-secrets (its env.per_node must be set)")
    .option('--replace', 'replace stored env-secrets that differ (default: refuse)')
    .option('--shred-source', 'after a verified import, overwrite and delete the file')
    .option('--json', 'one JSON object with the result')
    .option('--debug', 'print stack traces of internal errors')
    .action(async (file: string, f: { inventory: string; node?: string; replace?: boolean; shredSource?: boolean; json?: boolean; debug?: boolean }) => {
      jsonErrors = !!f.json;
      debug = !!f.debug;
      code = await importEnvCommand(file, f, out);
    });
  program
    .command('render')
    .description('write each node’s vault-agent.hcl, jwt.ctmpl, policy and AppRole settings (with kms / secrets-manager also the nodes’, cosigners’ and operator’s IAM policies) to a directory for review; touches no host and no backend')
    .requiredOption('-i, --inventory <file>', 'inventory YAML')
    .requiredOption('-o, --out <dir>', 'output directory (created)')
    .option('-l, --limit <hosts>', 'only these hosts', hostList)
    .action(async (f: { inventory: string; out: string; limit?: string[] }) => {
      code = await renderCommand(f, out);
    });

  try {
    await program.parseAsync(argv, { from: 'user' });
    return code;
  } catch (e) {
    const ce = e as { code?: string; exitCode?: number };
    if (typeof ce.code === 'string' && ce.code.startsWith('commander.')) {
      return ce.code === 'commander.helpDisplayed' || ce.code === 'commander.version' ? 0 : ERROR_CODES.E_USAGE;
    }
    const ke = toKryptonError(e);
    if (jsonErrors) out(JSON.stringify({ type: 'error', error: ke.toJSON() }));
    else err(formatFailure(ke));
    if (debug && !(e instanceof KryptonError)) err(String((e as Error)?.stack ?? e));
    return ERROR_CODES[ke.code] ?? 1;
  }
}
