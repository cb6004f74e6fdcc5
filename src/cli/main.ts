#!/usr/bin/env node
import { Command, InvalidArgumentError, Option } from 'commander';
import { ERROR_CODES, EXIT_HOSTS_FAILED, KryptonError, toKryptonError } from '../core/errors.ts';
import type { RunEvent } from '../core/events.ts';
import { createBackends } from '../backends/registry.ts';
import { loadInventory } from '../inventory/loader.ts';
import { loadPlaybook } from '../playbook/loader.ts';
import { runPlaybook } from '../executor/run.ts';
import { selectHosts, checkLimit } from '../executor/select.ts';
import { makeConnector } from './connect.ts';
import { eventToJson, formatFailure, plainRenderer } from './render-events.ts';
import { listrRenderer } from './listr-renderer.ts';
import { renderCommand } from './render-command.ts';

const out = (line: string) => process.stdout.write(`${line}\n`);
const err = (line: string) => process.stderr.write(`${line}\n`);

interface RunFlags {
  inventory: string;
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

async function run(mode: 'plan' | 'apply', playbookFile: string, flags: RunFlags): Promise<number> {
  const inventory = await loadInventory(flags.inventory);
  const playbook = await loadPlaybook(playbookFile);
  const limit = checkLimit(inventory, flags.limit);
  const hosts = [...new Set(playbook.plays.flatMap((p) => selectHosts(inventory, p.hosts).map((h) => h.name)))].filter((h) => !limit || limit.has(h));
  const connector = makeConnector(inventory, { acceptNew: flags.acceptNew ?? false });
  let sink: (e: RunEvent) => void;
  let done = async (): Promise<void> => {};
  if (flags.json) sink = (e) => out(eventToJson(e));
  else if (process.stdout.isTTY && !process.env['CI']) ({ sink, done } = listrRenderer(hosts, out));
  else sink = plainRenderer(out);
  try {
    const summary = await runPlaybook({
      inventory,
      playbook,
      mode,
      limit: flags.limit,
      concurrency: flags.concurrency,
      sink,
      backends: createBackends(inventory),
      connect: (h) => connector.get(h),
    });
    await done();
    return summary.ok ? 0 : EXIT_HOSTS_FAILED;
  } finally {
    await connector.closeAll();
  }
}

export async function main(argv: string[]): Promise<number> {
  const program = new Command('krypton-secrets')
    .description("Put a Krypton fleet's non-consensus secrets in place over SSH, into tmpfs, from Vault/OpenBao or AWS KMS.")
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
  runFlags(program.command('apply').argument('<playbook>', 'playbook YAML').description('converge the hosts to the playbook')).action(
    async (pb: string, f: RunFlags) => {
      jsonErrors = !!f.json;
      debug = !!f.debug;
      code = await run('apply', pb, f);
    },
  );
  program
    .command('render')
    .description('write each node’s vault-agent.hcl, jwt.ctmpl, policy and AppRole settings to a directory for review; touches no host and no backend')
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
