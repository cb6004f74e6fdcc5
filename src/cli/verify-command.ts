import { EXIT_HOSTS_FAILED } from '../core/errors.ts';
import { openStore } from '../backends/index.ts';
import { checkLimit } from '../executor/select.ts';
import { loadInventory } from '../inventory/loader.ts';
import { runVerify } from '../verify/run.ts';
import type { CheckRow } from '../verify/checks.ts';
import { makeConnector } from './connect.ts';
import { boundTransport, execBound } from '../executor/timeouts.ts';

/**
 * `krypton-secrets verify -i <inventory>`: prints `<host>  <check>  pass|FAIL  <detail>` rows (or `--json`
 * objects `{"type":"check",…}` then `{"type":"summary",…}`); exit 0 when every check passes, 1 otherwise.
 */
export async function verifyCommand(
  f: { inventory: string; limit?: string[]; concurrency: number; json?: boolean; timeout?: number },
  out: (line: string) => void,
  /** Serialises one `--json` object with the run's `ts` and `run_id` (default: plain JSON). */
  jsonLine: (o: { type: string } & Record<string, unknown>) => string = (o) => JSON.stringify(o),
): Promise<number> {
  const inventory = await loadInventory(f.inventory);
  const limit = checkLimit(inventory, f.limit);
  const connector = makeConnector(inventory, { acceptNew: false });
  const rows: CheckRow[] = [];
  try {
    const summary = await runVerify({
      inventory,
      limit,
      concurrency: f.concurrency,
      store: await openStore(inventory),
      // Every command on a host runs under its exec bound (timeouts.exec_seconds, --timeout).
      connect: async (h) => boundTransport(await connector.get(h), execBound(h, undefined, f.timeout)),
      onRow: (r) => (f.json ? out(jsonLine({ type: 'check', ...r })) : rows.push(r)),
    });
    // Plain output: grouped by host in inventory order (JSON rows stream as they come).
    const order = [...inventory.nodes, ...inventory.cosigners].map((h) => h.name);
    rows.sort((a, b) => order.indexOf(a.host) - order.indexOf(b.host));
    for (const r of rows) out(`${r.host}  ${r.check}  ${r.ok ? 'pass' : 'FAIL'}  ${r.code ? `${r.code}: ` : ''}${r.detail}`);
    if (f.json) out(jsonLine({ type: 'summary', ...summary }));
    else out(`${summary.ok ? '✔' : '✖'} ${summary.passed} passed, ${summary.failed} failed${summary.ok ? '' : ` (${Object.entries(summary.hosts).filter(([, h]) => !h.ok).map(([n, h]) => `${n}: ${h.failed.join(', ')}`).join('; ')})`}`);
    return summary.ok ? 0 : EXIT_HOSTS_FAILED;
  } finally {
    await connector.closeAll();
  }
}
