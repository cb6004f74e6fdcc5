#!/usr/bin/env node
import { appendFileSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command, InvalidArgumentError, Option } from 'commander';
import { ERROR_CODES, EXIT_HOSTS_FAILED, KryptonError, toKryptonError } from '../core/errors.ts';
import type { RunEvent, RunSummary } from '../core/events.ts';
import { openStore } from '../backends/index.ts';
import { NETWORK_SCOPE, refFor, refKey, type SecretRef } from '../model/layout.ts';
import type { SecretStore } from '../model/store.ts';
import { loadInventory } from '../inventory/loader.ts';
import { loadPlaybook } from '../playbook/loader.ts';
import { resolvePlaybookPath, shippedPlaybooks } from '../playbook/shipped.ts';
import { acquireHostLocks, runPlaybook, type HostLock } from '../executor/run.ts';
import { selectHosts, checkLimit } from '../executor/select.ts';
import { makeConnector } from './connect.ts';
import { eventToJson, plainRenderer, reportError, withDebugStacks } from './render-events.ts';
import { listrRenderer } from './listr-renderer.ts';
import { renderCommand } from './render-command.ts';
import { INIT_BACKENDS, writeStarterInventory, type InitBackend } from './init.ts';
import { COMPLETION_SHELLS, completionScript, type CompletionShell } from './completion.ts';
import { verifyCommand } from './verify-command.ts';
import { importEnvCommand, importHorcruxCommand } from './import-horcrux.ts';
import { jwtReportLines, jwtVersionReport, resumeCommand, type JwtVersionReport } from './jwt-report.ts';
import { boundTransport, execBound } from '../executor/timeouts.ts';
import type { Host } from '../model/inventory.ts';

const out = (line: string) => process.stdout.write(`${line}\n`);
/** One id per CLI run: on every `--json` and `--log` line, so lines of one run can be told from another's. */
const RUN_ID = randomBytes(8).toString('hex');
/** A JSON line of this run that is not a run event (rollback, retry file, host key, run-level error). */
const jsonLine = ({ type, ...rest }: { type: string } & Record<string, unknown>) => JSON.stringify({ type, ts: new Date().toISOString(), run_id: RUN_ID, ...rest });

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
  log?: string;
  detailedExitcode?: boolean;
  resume?: boolean;
  /** apply: write a stored JWT's canonical form as a new version when only its form is wrong (see runPlaybook). */
  fixFormat?: boolean;
  limit?: string[];
  concurrency: number;
  json?: boolean;
  acceptNew?: boolean;
  debug?: boolean;
  /** `--timeout <seconds>`: every wait and every remote command's bound (src/executor/timeouts.ts). */
  timeout?: number;
}

function positiveInt(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('expected a whole number >= 1');
  return n;
}

/**
 * `--limit` values: each `-l` split at commas and added to the ones before (so `-l a -l b` is `a,b`); an `@file`
 * item is replaced by the file's patterns (one or more per line, comma-separated; `#` starts a comment), e.g. the
 * retry file a failed run writes. Patterns are resolved against the inventory by checkLimit.
 */
function limitList(v: string, prev: string[] | undefined): string[] {
  const items = v.split(',').map((s) => s.trim()).filter(Boolean);
  const out = [...(prev ?? [])];
  for (const item of items) {
    if (!item.startsWith('@')) {
      out.push(item);
      continue;
    }
    let text: string;
    try {
      text = readFileSync(item.slice(1), 'utf8');
    } catch (e) {
      throw new InvalidArgumentError(`cannot read ${item.slice(1)}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    const patterns = text.split('\n').map((l) => l.replace(/#.*/, '')).flatMap((l) => l.split(',')).map((s) => s.trim()).filter(Boolean);
    // A wrong @file (an env file, a key) must not be echoed by an error: only host-name-like patterns pass.
    const odd = patterns.filter((x) => !/^!?[A-Za-z0-9*?[\]!._-]{1,64}$/.test(x));
    if (odd.length) throw new InvalidArgumentError(`${item.slice(1)} does not look like a list of hosts: ${odd.length} line(s) are not host names, globs or groups (not shown)`);
    out.push(...patterns);
  }
  return out;
}
const LIMIT_HELP = 'only these hosts: names, globs (val-*), groups, roles (validators, rpc, cosigners), !negation, @file; comma-separated, repeatable';

/** Where a failed run of `inventory` lists the hosts to retry (`--limit @<file>`): next to the inventory. */
function retryFile(inventory: string): string {
  return `${inventory}.retry`;
}

function runFlags(cmd: Command): Command {
  return cmd
    .requiredOption('-i, --inventory <file>', 'inventory YAML')
    .option('-l, --limit <patterns>', LIMIT_HELP, limitList)
    .addOption(new Option('-f, --concurrency <n>', 'hosts worked on at once').argParser(positiveInt).default(16))
    .option('--json', 'one JSON object per line; the last is the summary')
    .option('--accept-new', 'record the host key of a host not yet in known_hosts (never a changed one); says what it recorded')
    .option('--log <file>', 'also append every event as a JSON line (with ts and run_id; never a secret) to this file')
    .addOption(timeoutOption())
    .option('--debug', 'print stack traces of internal errors');
}

/** `--timeout <seconds>`: over the playbook's and the inventory's timeout settings. */
function timeoutOption(): Option {
  return new Option('--timeout <seconds>', 'bound every wait (a step converging) and every remote command to this many seconds, over the playbook\'s and inventory\'s timeouts').argParser((v) => {
    const n = positiveInt(v);
    if (n > 3600) throw new InvalidArgumentError('expected seconds 1..3600');
    return n;
  });
}

/** Picks the renderer: `--json` lines, listr2 in a terminal, plain lines otherwise. */
function renderer(json: boolean | undefined, hosts: string[], log?: string): { sink: (e: RunEvent) => void; done: () => Promise<void> } {
  const meta = { runId: RUN_ID };
  const r = json
    ? { sink: (e: RunEvent) => out(eventToJson(e, meta)), done: async () => {} }
    : process.stdout.isTTY && !process.env['CI']
      ? listrRenderer(hosts, out)
      : { sink: plainRenderer(out), done: async () => {} };
  if (!log) return r;
  // The run log: the same JSON lines as --json, appended (a run log must survive the next run), 0600.
  const tee = (e: RunEvent) => {
    try {
      appendFileSync(log, `${eventToJson(e, meta)}\n`, { mode: 0o600 });
    } catch (x) {
      throw new KryptonError('E_USAGE', `cannot write the run log ${log}: ${(x as NodeJS.ErrnoException).code ?? (x as Error).message}`, { hint: 'give --log a writable file' });
    }
  };
  return { sink: (e) => (tee(e), r.sink(e)), done: r.done };
}

async function run(mode: 'plan' | 'apply', playbookFile: string, flags: RunFlags, before?: (store: SecretStore) => Promise<void>): Promise<number> {
  const inventory = await loadInventory(flags.inventory);
  // `apply provision` or `playbooks/provision.yml` find the shipped playbook when no such file is here.
  const playbook = await loadPlaybook(resolvePlaybookPath(playbookFile, PACKAGE_ROOT));
  const limit = checkLimit(inventory, flags.limit);
  const hosts = [...new Set(playbook.plays.flatMap((p) => selectHosts(inventory, p.hosts, p.hostsAt).map((h) => h.name)))].filter((h) => !limit || limit.has(h));
  const connector = makeConnector(inventory, {
    acceptNew: flags.acceptNew ?? false,
    onWarning: (m) => err(`warning: ${m}`),
    // --accept-new never records silently: each key it adds is said (stderr) and emitted (--json).
    onHostKeyAccepted: (k) => {
      if (flags.json) out(jsonLine({ type: 'host-key-recorded', host: k.host, key_type: k.keyType, fingerprint: k.fingerprint, file: k.file }));
      else err(`recorded the ${k.keyType} host key of ${k.host} (${k.fingerprint}) in ${k.file}`);
    },
  });
  if (flags.log) {
    try {
      writeFileSync(flags.log, '', { flag: 'a', mode: 0o600 });
    } catch (x) {
      throw new KryptonError('E_USAGE', `cannot write the run log ${flags.log}: ${(x as NodeJS.ErrnoException).code ?? (x as Error).message}`, { hint: 'give --log a writable file (its directory must exist)' });
    }
  }
  // Every command on a host runs under its exec bound (the inventory's timeouts.exec_seconds, --timeout).
  const connect = async (h: Host) => boundTransport(await connector.get(h), execBound(h, undefined, flags.timeout));
  const store = await openStore(inventory);
  const completeWith = resumeCommand(playbookFile, flags.inventory, flags.limit);
  const shared = (node: string) => refFor(inventory, 'engine-jwt', node).scope === NETWORK_SCOPE;
  const rotates = playbook.plays.some((p) => p.steps.some((s) => s.task.id === 'jwt.rotate'));
  // --fix-format writes to the store: only for playbooks that own the store's JWT (provision seeds it, rotate-jwt
  // rotates it), never as a side effect of a migration or a cosigner bring-up.
  if (flags.fixFormat && !playbook.plays.some((p) => p.steps.some((s) => s.task.id === 'secret.seed' || s.task.id === 'jwt.rotate'))) {
    throw new KryptonError('E_USAGE', `--fix-format applies to playbooks that seed or rotate the Engine-API JWT (secret.seed or jwt.rotate), and ${playbookFile} has neither`, {
      hint: 'run it with playbooks/provision.yml or playbooks/rotate-jwt.yml',
    });
  }
  // Which JWT each node holds (and el/cl loaded) after any run that may move it: a rotation, or one that restarts el/cl.
  const reportsJwt = playbook.plays.some((p) => p.steps.some((s) => s.task.id === 'jwt.rotate' || s.task.jwtUnit === 'closes'));
  // A rotation (or a rollback, which writes a version before it runs) that reaches only some nodes of a shared
  // JWT would leave the others on a value the backend no longer has as current. Conditional rotations
  // (`when: plaintext-matches`: the value is compromised anyway) may go node by node.
  const unconditional = playbook.plays.filter((p) => p.steps.some((s) => s.task.id === 'jwt.rotate' && (s.params as { when?: string }).when !== 'plaintext-matches'));
  if (mode === 'apply' && (!flags.resume || before !== undefined)) {
    const plays = before !== undefined ? playbook.plays : unconditional;
    for (const p of plays) {
      const reached = new Set(selectHosts(inventory, p.hosts, p.hostsAt).filter((h) => !limit || limit.has(h.name)).map((h) => h.name));
      const sharedReached = inventory.nodes.some((n) => reached.has(n.name) && shared(n.name));
      const left = inventory.nodes.filter((n) => !reached.has(n.name) && shared(n.name));
      if (sharedReached && left.length) {
        throw new KryptonError('E_USAGE', `"${p.name}" would write a new version of the network's shared JWT but move only ${[...reached].join(', ')} (not ${left.map((n) => n.name).join(', ')})`, {
          hint: 'rotate the whole fleet (the playbook\'s serial: waves are the canary), use jwt_per_node for per-node values, or add --resume to move some nodes to the current version',
        });
      }
    }
  }
  // A rotation's JWT versions before the run: a run that stops (Ctrl-C, a failure) is finished with --resume only
  // when it wrote a new version; before that, running it again is what finishes it.
  const jwtRefs = rotates && mode === 'apply' ? [...new Map(inventory.nodes.filter((n) => hosts.includes(n.name)).map((n) => { const r = refFor(inventory, 'engine-jwt', n.name); return [refKey(r), r] as const; })).values()] : [];
  const heads = () => Promise.all(jwtRefs.map((r) => store.head(r).catch(() => -1)));
  const headsBefore = await heads();
  const wroteVersion = async () => flags.resume === true || (await heads()).some((h, i) => h !== headsBefore[i]);
  const shown = renderer(flags.json, hosts, flags.log);
  const done = shown.done;
  const sink = flags.debug ? withDebugStacks(shown.sink, err) : shown.sink;
  let locks: Map<string, Promise<HostLock>> | undefined;
  let wrote = false;
  try {
    if (before) {
      // Lock every host first: a backend write must not race a run already working on the fleet.
      locks = await acquireHostLocks(
        inventory.nodes.filter((n) => hosts.includes(n.name)),
        connect,
      );
      await before(store);
      wrote = true;
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
      timeoutSeconds: flags.timeout,
      signal: interrupt.signal,
      locks,
      inventory,
      playbook,
      mode,
      limit: flags.limit,
      concurrency: flags.concurrency,
      resume: flags.resume,
      fixFormat: flags.fixFormat ?? false,
      sink,
      store,
      connect,
      // A rotation or rollback says which node holds which version; one that did not finish, the command that completes it.
      report: reportsJwt
        ? async (hs, s) => ({ jwt_versions: await jwtVersionReport(hs, connect, store, inventory), ...(mode === 'apply' && !s.ok && rotates ? { complete_with: completeWith } : {}) })
        : undefined,
    });
    const halted = summary.notes?.['complete_with'] !== undefined;
    await done();
    if (!flags.json && summary.notes?.['jwt_versions']) {
      for (const line of jwtReportLines(summary.notes['jwt_versions'] as JwtVersionReport, halted ? completeWith : undefined)) out(line);
    }
    const resume = mode === 'apply' && rotates && (await wroteVersion()) ? ' --resume' : '';
    if (mode === 'apply') await writeRetryFile(flags.inventory, summary, flags.json ?? false, `krypton-secrets apply ${playbookFile} -i ${flags.inventory}${resume}`);
    if (interrupt.signal.aborted) {
      // The summary is above (or the last --json line); say how to finish what the interrupt left.
      const left = Object.values(summary.hosts).filter((h) => h.status === 'skipped' || h.status === 'failed').length;
      const again = `krypton-secrets ${mode} ${playbookFile} -i ${flags.inventory}${resume}`;
      if (flags.json) out(jsonLine({ type: 'interrupted', hosts_left: left, complete_with: again }));
      else err(`interrupted: the steps under way finished, ${left} host(s) not done; finish with: ${again}`);
      return 130;
    }
    // plan --detailed-exitcode (as terraform's): 0 converged, 2 changes pending, 1 an error.
    if (mode === 'plan' && flags.detailedExitcode) return summary.failed > 0 || summary.skipped > 0 ? EXIT_HOSTS_FAILED : summary.changed > 0 ? 2 : 0;
    return summary.ok ? 0 : EXIT_HOSTS_FAILED;
  } catch (e) {
    // A rollback wrote its version, then the run stopped before moving the nodes: say how to finish it.
    if (wrote) {
      const k = toKryptonError(e);
      throw new KryptonError(k.code, `${k.message} (after the rollback wrote the restored version: the nodes are still on the one before)`, {
        hint: `${k.hint ? `${k.hint}; then ` : ''}complete the rollback with: ${completeWith}`,
        ...(k.host ? { host: k.host } : {}),
      });
    }
    throw e;
  } finally {
    process.removeAllListeners('SIGINT');
    await connector.closeAll();
  }
}

/**
 * After an apply: when hosts failed or were not reached (halted, interrupted), lists them one per line in the retry
 * file next to the inventory and says how to use it (`--limit @<file>`); a run with nothing left to retry removes
 * an old one. Host names only: nothing secret. A file that cannot be written is a warning, not a failure.
 */
async function writeRetryFile(inventory: string, summary: RunSummary, json: boolean, again: string): Promise<void> {
  const file = retryFile(inventory);
  const left = Object.entries(summary.hosts).filter(([, h]) => h.status === 'failed' || h.status === 'skipped').map(([n]) => n);
  try {
    if (!left.length) {
      rmSync(file, { force: true });
      return;
    }
    writeFileSync(file, `# hosts a krypton-secrets apply left failed or not run (${new Date().toISOString()})\n${left.join('\n')}\n`, { mode: 0o644 });
    if (json) out(jsonLine({ type: 'retry-file', file, hosts: left }));
    else out(`retry the ${left.length === 1 ? 'host' : `${left.length} hosts`} left: ${again} --limit @${file}`);
  } catch (e) {
    err(`warning: could not write the retry file ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

export async function main(argv: string[]): Promise<number> {
  const program = new Command('krypton-secrets')
    .description("Put a Krypton fleet's non-consensus secrets in place over SSH, into tmpfs, from Vault/OpenBao or AWS KMS.")
    .version(PACKAGE_VERSION, '-V, --version')
    // A bad command line reads like every other failure: the code, what is wrong, a hint (not the whole help).
    .configureOutput({ outputError: (text, write) => write(`✖  E_USAGE\n  ${text.trim().replace(/^error: /, '')}\n`) })
    .showHelpAfterError('  hint: add --help for the commands and their options')
    .exitOverride();
  let code = 0;
  let jsonErrors = false;
  let debug = false;
  // plan/apply: --detailed-exitcode makes every error exit 1 (2 means "changes pending"); --log records it too.
  let detailed = false;
  let logFile: string | undefined;
  program
    .command('hosts')
    .description('list the hosts an inventory (and --limit) selects: name, kind, role, address, groups; touches no host')
    .requiredOption('-i, --inventory <file>', 'inventory YAML')
    .option('-l, --limit <patterns>', LIMIT_HELP, limitList)
    .option('--json', 'one JSON object per host')
    .action(async (f: { inventory: string; limit?: string[]; json?: boolean }) => {
      jsonErrors = !!f.json;
      const inv = await loadInventory(f.inventory);
      const only = checkLimit(inv, f.limit);
      for (const h of [...inv.nodes, ...inv.cosigners].filter((x) => !only || only.has(x.name))) {
        const groups = Object.entries(inv.groups ?? {}).filter(([, m]) => m.includes(h.name)).map(([g]) => g);
        const role = h.kind === 'node' ? h.role : 'cosigner';
        if (f.json) out(JSON.stringify({ name: h.name, kind: h.kind, role, address: h.conn.address, ...(h.conn.port ? { port: h.conn.port } : {}), groups }));
        else out(`${h.name.padEnd(16)} ${role.padEnd(10)} ${`${h.conn.address}${h.conn.port ? `:${h.conn.port}` : ''}`.padEnd(22)} ${groups.join(',')}`.trimEnd());
      }
    });
  program
    .command('playbooks')
    .description('list the playbooks shipped with krypton-secrets (plan/apply find them by name, e.g. `apply provision`)')
    .action(() => {
      for (const p of shippedPlaybooks(PACKAGE_ROOT)) out(`${p.name.padEnd(20)} ${p.summary}`);
    });
  runFlags(program.command('plan').argument('<playbook>', 'playbook YAML').description('show per host what apply would change; changes nothing'))
    .option('--detailed-exitcode', 'exit 0 when converged, 2 when changes are pending, 1 on an error')
    .action(async (pb: string, f: RunFlags) => {
      jsonErrors = !!f.json;
      debug = !!f.debug;
      detailed = !!f.detailedExitcode;
      logFile = f.log;
      code = await run('plan', pb, f);
    });
  runFlags(program.command('apply').argument('<playbook>', 'playbook YAML').description('converge the hosts to the playbook'))
    .option('--resume', 'continue a halted rotation: write no new JWT version, move the remaining nodes to the current one')
    .option('--fix-format', "provision / rotate-jwt: when a stored Engine-API JWT is only in the wrong form (0x, uppercase, CR LF), write its canonical form as a new version first (reported by fingerprint)")
    .option('--check', 'change nothing: the same as plan')
    .option('--detailed-exitcode', 'with --check: exit 0 when converged, 2 when changes are pending, 1 on an error')
    .action(async (pb: string, f: RunFlags & { check?: boolean }) => {
      jsonErrors = !!f.json;
      debug = !!f.debug;
      detailed = !!f.check && !!f.detailedExitcode;
      logFile = f.log;
      code = await run(f.check ? 'plan' : 'apply', pb, f);
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
        const only = checkLimit(inv, f.limit);
        for (const n of inv.nodes.filter((n) => !only || only.has(n.name))) {
          const ref = refFor(inv, 'engine-jwt', n.name);
          refs.set(refKey(ref), ref);
        }
        for (const ref of refs.values()) {
          const node = ref.scope === NETWORK_SCOPE ? undefined : ref.scope;
          const versions = await store.versions(ref);
          // The newest version may not be a usable JWT (invalid, deleted): then the newest usable one is the one to
          // go back to, and nothing usable is "current".
          const head = await store.head(ref);
          const newestUsable = versions[0]?.version;
          const currentUnusable = newestUsable !== undefined && head > newestUsable;
          const target = f.toVersion ?? (currentUnusable ? newestUsable : versions[1]?.version);
          if (target !== undefined && target === (currentUnusable ? head : newestUsable)) {
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
          else out(jsonLine({ type: 'rollback', node: node ?? null, restoredFrom: r.restoredFrom, version: r.version }));
        }
      });
    });
  program
    .command('verify')
    .description('read-only audit: one row per host and check; exits non-zero when any check fails')
    .requiredOption('-i, --inventory <file>', 'inventory YAML')
    .option('-l, --limit <patterns>', LIMIT_HELP, limitList)
    .addOption(new Option('-f, --concurrency <n>', 'hosts audited at once').argParser(positiveInt).default(16))
    .option('--json', 'one JSON object per row; the last is the summary')
    .addOption(timeoutOption())
    .option('--debug', 'print stack traces of internal errors')
    .action(async (f: { inventory: string; limit?: string[]; concurrency: number; json?: boolean; debug?: boolean; timeout?: number }) => {
      jsonErrors = !!f.json;
      debug = !!f.debug;
      code = await verifyCommand(f, out, jsonLine);
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
    .option('-l, --limit <patterns>', LIMIT_HELP, limitList)
    .action(async (f: { inventory: string; out: string; limit?: string[] }) => {
      code = await renderCommand(f, out);
    });

  program
    .command('init')
    .description('write a commented starter inventory for a backend (vault, kms, secrets-manager); never overwrites a file')
    .addOption(new Option('-b, --backend <backend>', 'secret store').choices([...INIT_BACKENDS]).default('vault'))
    .addOption(new Option('-n, --network <chain-id>', 'chain id: 473374 testnet, 47337 mainnet').default('473374'))
    .option('-o, --out <file>', 'inventory file to write', 'inventory.yml')
    .action((f: { backend: InitBackend; network: string; out: string }) => {
      if (!/^[1-9][0-9]*$/.test(f.network)) throw new KryptonError('E_USAGE', `--network ${f.network} is not a chain id`, { hint: 'give it in decimal, e.g. 473374 (testnet) or 47337 (mainnet)' });
      writeStarterInventory(f.out, f.backend, f.network);
      out(`wrote ${f.out} (backend ${f.backend}, network ${f.network}): replace its addresses, then run krypton-secrets hosts -i ${f.out}`);
    });
  program
    .command('completion')
    .argument('<shell>', COMPLETION_SHELLS.join(' | '))
    .description('print a shell completion script (bash, zsh, fish) for every command and flag')
    .addHelpText('after', `
Examples:
  source <(krypton-secrets completion bash)                                   # bash, this shell
  krypton-secrets completion zsh > "\${fpath[1]}/_krypton-secrets"             # zsh
  krypton-secrets completion fish > ~/.config/fish/completions/krypton-secrets.fish`)
    .action((shell: string) => {
      if (!(COMPLETION_SHELLS as readonly string[]).includes(shell)) {
        throw new KryptonError('E_USAGE', `no completion for shell ${shell}`, { hint: `pick one of ${COMPLETION_SHELLS.join(', ')}` });
      }
      process.stdout.write(completionScript(shell as CompletionShell, program));
    });
  addExamples(program);

  try {
    await program.parseAsync(argv, { from: 'user' });
    return code;
  } catch (e) {
    const ce = e as { code?: string; exitCode?: number };
    if (typeof ce.code === 'string' && ce.code.startsWith('commander.')) {
      return ce.code === 'commander.helpDisplayed' || ce.code === 'commander.version' ? 0 : ERROR_CODES.E_USAGE;
    }
    const failed = reportError(e, { json: jsonErrors, debug, jsonLine }, out, err);
    if (logFile) {
      try {
        appendFileSync(logFile, `${jsonLine({ type: 'error', error: toKryptonError(e).toJSON() })}\n`, { mode: 0o600 });
      } catch {
        /* the error itself is reported above */
      }
    }
    return detailed ? EXIT_HOSTS_FAILED : failed;
  }
}

/** Examples shown after each command's --help (the inventory and playbook names are the shipped ones). */
const EXAMPLES: Record<string, string[]> = {
  plan: ['krypton-secrets plan provision -i inventory/testnet.yml', 'krypton-secrets plan rotate-jwt -i inventory/testnet.yml --limit canary --detailed-exitcode'],
  apply: [
    'krypton-secrets apply provision -i inventory/testnet.yml',
    "krypton-secrets apply rotate-jwt -i inventory/testnet.yml --limit 'val-*,!val-2'",
    'krypton-secrets apply rotate-jwt -i inventory/testnet.yml --resume        # finish a halted rotation',
    'krypton-secrets apply provision -i inventory/testnet.yml --limit @inventory/testnet.yml.retry',
  ],
  'rollback-jwt': ['krypton-secrets rollback-jwt -i inventory/testnet.yml', 'krypton-secrets rollback-jwt -i inventory/testnet.yml --to-version 3'],
  verify: ['krypton-secrets verify -i inventory/testnet.yml', 'krypton-secrets verify -i inventory/testnet.yml --limit validators --json'],
  'import-horcrux': ['krypton-secrets import-horcrux ./horcrux-keys -i inventory/testnet.yml', 'krypton-secrets import-horcrux ./horcrux-keys -i inventory/testnet.yml --shred-source'],
  'import-env': ['krypton-secrets import-env node.env -i inventory/testnet.yml', 'krypton-secrets import-env val-1.env -i inventory/testnet.yml --node val-1 --replace'],
  render: ['krypton-secrets render -i inventory/testnet.yml -o /tmp/rendered'],
  hosts: ['krypton-secrets hosts -i inventory/testnet.yml', "krypton-secrets hosts -i inventory/testnet.yml --limit 'validators,!canary'"],
  playbooks: ['krypton-secrets playbooks'],
  init: ['krypton-secrets init -o inventory/testnet.yml', 'krypton-secrets init --backend kms --network 47337 -o inventory/mainnet.yml'],
};

function addExamples(program: Command): void {
  for (const c of program.commands) {
    const ex = EXAMPLES[c.name()];
    if (ex) c.addHelpText('after', `\nExamples:\n${ex.map((l) => `  ${l}`).join('\n')}`);
  }
  program.addHelpText('after', `\nExamples:\n  krypton-secrets playbooks\n  krypton-secrets plan provision -i inventory/testnet.yml\n  krypton-secrets apply provision -i inventory/testnet.yml\n  krypton-secrets verify -i inventory/testnet.yml\n\nRun krypton-secrets <command> --help for a command's flags and examples.`);
}
