/**
 * The bad-input corpus (issue 10): every case under ./cases/<id>/ is one bad input — an inventory, a playbook, a
 * value in the store, a Horcrux bundle, an env file or a command line — run through the real CLI against one
 * sandbox fleet (real sshd, OpenBao, bao agents; nodes provisioned and cosigners brought up first, so "nothing
 * changed" is asserted on live hosts). Each case's `case.yml`:
 *
 *   what:  what is exercised
 *   run:   the CLI's argv; {dir} = the case's working copy, {sandbox} = the sandbox inventory, {inventory} = the
 *          case's inventory (the sandbox's, edited by `sandbox_inventory`), {playbooks} = <repo>/playbooks
 *   exit, code: the exit code and the error code the output must name
 *   where: the location the output must name: file:line:col, a host + task, or a store path and version
 *          ({v:<kv path>} = the version the case's own `store` write made)
 *   says:  further phrases the output must hold (optional)
 *   store: {<kv path>: {field: value}} written into KV v2 before the run, undone after (optional)
 *   sandbox_inventory: [[from, to], …] text replacements of the sandbox inventory for {inventory} (optional)
 *   bundle: edits of a copy of the sandbox's Horcrux key generation output at {dir}/bundle (optional)
 *
 * Each case asserts: that exit code and error code, the location, no stack trace, and that NOTHING changed —
 * a snapshot of every host (one exec per host: the tmpfs dirs and the persistent dirs the tool writes, listed with
 * mode/owner/size and SHA-256, mounts, the el/cl/agent/Horcrux processes, the witness log of restarts), of the store
 * (every KV v2 secret under krypton/ with its versions, the policies, the AppRole roles and their secret_id
 * accessors) and of the case's own input files is taken before the case and after it. Each case is recorded with
 * recordFigure (suite bad-inputs): clear = the code and location were as expected; changed = a snapshot differed.
 */
import { cp, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { readdirSync, readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hostExec, sandboxDown, sandboxUp, type SandboxInfo } from '../sandbox/index.ts';
import { cli, REPO } from '../integration/helpers.ts';
import { recordFigure } from '../figures/record.ts';

const CASES = join(dirname(fileURLToPath(import.meta.url)), 'cases');

interface Case {
  what: string;
  run: string[];
  exit: number;
  code: string;
  where: string;
  says?: string[];
  store?: Record<string, Record<string, string>>;
  sandbox_inventory?: [string, string][];
  bundle?: { write?: Record<string, string>; delete?: string[]; swap?: [string, string]; json?: Record<string, Record<string, unknown>>; clear?: boolean };
}

const ids = readdirSync(CASES).sort();
const cases = ids.map((id) => ({ id, c: parseYaml(readFileSync(join(CASES, id, 'case.yml'), 'utf8')) as Case }));

/** One exec per host: what the tool could have changed there, as text (hashes, never content). */
const HOST_SNAPSHOT = String.raw`
for d in /run/krypton-secrets /opt/horcrux/keys; do
  [ -d "$d" ] || continue
  find "$d" -xdev -printf 'tmpfs %p %m %u %g %s %y\n' | sort
  find "$d" -xdev -type f -exec sha256sum {} + | sort
done
for d in /opt/krypton /opt/horcrux /usr/local/sbin /etc/systemd/system /root/.aws; do
  [ -d "$d" ] || continue
  find "$d" -xdev \( -path /opt/horcrux/keys -o -path /opt/horcrux/state \) -prune -o -printf 'disk %p %m %u %g %s %y\n' | sort
  find "$d" -xdev \( -path /opt/horcrux/keys -o -path /opt/horcrux/state \) -prune -o -type f -exec sha256sum {} + | sort
done
[ -f /var/log/krypton/nodectl.log ] && sha256sum /var/log/krypton/nodectl.log
ls -ln /run/lock 2>/dev/null | sed 1d
awk '$5 ~ /krypton|horcrux/ { sep = 0; out = $5 " " $6; for (i = 7; i <= NF; i++) { if ($i == "-") sep = 1; if (sep) out = out " " $i } print "mount " out }' /proc/self/mountinfo | sort
self=$(readlink /proc/self/ns/net)
ls -l /proc/[0-9]*/ns/net 2>/dev/null | awk -v s="$self" '$NF == s { split($(NF-2), a, "/"); print a[3] }' | while read -r p; do
  cmd=$(tr '\0' ' ' < /proc/$p/cmdline 2>/dev/null)
  case "$cmd" in "sh -c"*) continue ;; *krypton-el*|*krypton-cl*|*" agent "*|*horcrux*) echo "proc $p $(cut -d' ' -f22 /proc/$p/stat 2>/dev/null) $cmd" ;; esac
done | sort
`;

describe('bad-input corpus: every case fails clearly and changes nothing', () => {
  let info: SandboxInfo;
  const vault = async (method: string, path: string, body?: unknown): Promise<{ status: number; json: any }> => {
    const res = await fetch(`${info.vault.address}/v1/${path}`, {
      method,
      headers: { 'X-Vault-Token': info.vault.token, ...(body ? { 'content-type': 'application/json' } : {}) },
      ...(body ? { body: JSON.stringify(body) } : {}),
    });
    const text = await res.text();
    return { status: res.status, json: text ? JSON.parse(text) : undefined };
  };

  /** Every leaf under secret/metadata/<prefix>, recursively. */
  const kvLeaves = async (prefix: string): Promise<string[]> => {
    const r = await vault('LIST', `secret/metadata/${prefix}`);
    if (r.status === 404) return [];
    const keys: string[] = r.json.data.keys;
    const out = await Promise.all(keys.map((k) => (k.endsWith('/') ? kvLeaves(`${prefix}${k}`) : Promise.resolve([`${prefix}${k}`]))));
    return out.flat();
  };

  const storeSnapshot = async (): Promise<string[]> => {
    const leaves = await kvLeaves('krypton/');
    const kv = await Promise.all(
      leaves.map(async (p) => {
        const m = (await vault('GET', `secret/metadata/${p}`)).json.data;
        const versions = Object.entries(m.versions as Record<string, { created_time: string; deletion_time: string; destroyed: boolean }>)
          .map(([v, d]) => `${v}@${d.created_time}${d.deletion_time ? ` deleted ${d.deletion_time}` : ''}${d.destroyed ? ' destroyed' : ''}`)
          .join(',');
        return `kv ${p} current=${m.current_version} ${versions}`;
      }),
    );
    const policies = ((await vault('LIST', 'sys/policies/acl')).json.data.keys as string[]).filter((p) => p.startsWith('krypton-'));
    const pol = await Promise.all(policies.map(async (p) => `policy ${p} ${sha((await vault('GET', `sys/policies/acl/${p}`)).json.data.policy)}`));
    const roles = (await vault('LIST', 'auth/approle/role')).json?.data?.keys ?? [];
    const role = await Promise.all(
      (roles as string[]).map(async (r) => {
        const cfg = (await vault('GET', `auth/approle/role/${r}`)).json.data;
        const ids = await vault('LIST', `auth/approle/role/${r}/secret-id`);
        return `role ${r} ${sha(JSON.stringify(cfg))} secret_ids=${(ids.json?.data?.keys ?? []).sort().join(',')}`;
      }),
    );
    return [...kv, ...pol, ...role].sort();
  };

  const hostSnapshot = async (): Promise<string[]> => {
    const hosts = [...info.nodes, ...info.cosigners];
    const outs = await Promise.all(hosts.map(async (h) => ({ h, r: await hostExec(h, ['sh', '-c', HOST_SNAPSHOT]) })));
    return outs.flatMap(({ h, r }) => r.stdout.split('\n').filter(Boolean).map((l) => `${h} ${l}`));
  };

  /** The case's own input files (a refused import must not shred them). */
  const filesSnapshot = async (dir: string): Promise<string[]> => {
    const out: string[] = [];
    for (const e of await readdir(dir, { recursive: true, withFileTypes: true })) {
      if (!e.isFile()) continue;
      const p = join(e.parentPath, e.name);
      out.push(`file ${p.slice(dir.length)} ${(await stat(p)).mode.toString(8)} ${sha(await readFile(p))}`);
    }
    return out.sort();
  };

  const snapshot = async (dir: string) => [...(await hostSnapshot()), ...(await storeSnapshot()), ...(await filesSnapshot(dir))];

  beforeAll(async () => {
    info = await sandboxUp({ hosts: 2, cosigners: 2 });
    // A live fleet: nodes provisioned, cosigners brought up — so every case's "nothing changed" is about real state.
    const imp = await cli(info, ['import-horcrux', info.files.horcruxKeys!, '-i', info.files.inventory]);
    expect(imp.code, imp.stdout + imp.stderr).toBe(0);
    const prov = await cli(info, ['apply', 'playbooks/provision.yml', '-i', info.files.inventory]);
    expect(prov.code, prov.stdout + prov.stderr).toBe(0);
    const bring = await cli(info, ['apply', 'playbooks/cosigner-bringup.yml', '-i', info.files.inventory]);
    expect(bring.code, bring.stdout + bring.stderr).toBe(0);
  }, 300_000);

  afterAll(async () => {
    await sandboxDown();
  }, 60_000);

  it(`holds at least 60 cases (${cases.length})`, () => {
    expect(cases.length).toBeGreaterThanOrEqual(60);
  });

  for (const { id, c } of cases) {
    it(`${id}: ${c.what}`, async () => {
      const dir = await mkdtemp(join(tmpdir(), `krypton-corpus-${id}-`));
      const undo: (() => Promise<unknown>)[] = [];
      try {
        // The case's files, and what it builds from the sandbox.
        for (const f of await readdir(join(CASES, id))) if (f !== 'case.yml') await cp(join(CASES, id, f), join(dir, f), { recursive: true });
        let inventory = info.files.inventory;
        if (c.sandbox_inventory) {
          let text = await readFile(info.files.inventory, 'utf8');
          for (const [from, to] of c.sandbox_inventory) {
            expect(text, `${id}: sandbox_inventory replaces ${JSON.stringify(from)}`).toContain(from);
            text = text.replace(from, to);
          }
          inventory = join(dir, 'inventory.yml');
          await writeFile(inventory, text);
        }
        if (c.bundle) await buildBundle(join(dir, 'bundle'), info.files.horcruxKeys!, c.bundle);
        const versions: Record<string, number> = {};
        for (const [path, data] of Object.entries(c.store ?? {})) {
          const before = await vault('GET', `secret/data/${path}`);
          undo.push(async () => {
            if (before.status === 200) await vault('POST', `secret/data/${path}`, { data: before.json.data.data });
            else await vault('DELETE', `secret/metadata/${path}`);
          });
          const w = await vault('POST', `secret/data/${path}`, { data });
          expect(w.status, `${id}: store write ${path}`).toBe(200);
          versions[path] = w.json.data.version;
        }
        const sub = (s: string) =>
          s
            .replaceAll('{dir}', dir)
            .replaceAll('{sandbox}', info.files.inventory)
            .replaceAll('{inventory}', inventory)
            .replaceAll('{playbooks}', join(REPO, 'playbooks'))
            .replace(/\{v:([^}]+)\}/g, (_, p: string) => String(versions[p]));

        const before = await snapshot(dir);
        const r = await cli(info, c.run.map(sub));
        const after = await snapshot(dir);

        const output = `${r.stdout}\n${r.stderr}`;
        const where = sub(c.where);
        const problems: string[] = [];
        if (r.code !== c.exit) problems.push(`exit ${r.code}, expected ${c.exit}`);
        if (!output.includes(c.code)) problems.push(`no ${c.code} in the output`);
        if (!output.includes(where)) problems.push(`the output does not name ${where}`);
        for (const s of c.says ?? []) if (!output.includes(sub(s))) problems.push(`the output does not say ${JSON.stringify(sub(s))}`);
        const stack = /^\s+at .+(:\d+:\d+\)?|\(native\))$|node:internal|Node\.js v\d/m.exec(output);
        if (stack) problems.push(`a stack trace: ${stack[0].trim()}`);
        const clear = problems.length === 0;
        const gone = before.filter((l) => !after.includes(l));
        const added = after.filter((l) => !before.includes(l));
        const changed = gone.length + added.length > 0;
        recordFigure({ suite: 'bad-inputs', id, clear, changed });

        expect(problems, `${id}: ${c.what}\n--- output:\n${output}`).toEqual([]);
        expect({ gone, added }, `${id}: something changed`).toEqual({ gone: [], added: [] });
      } finally {
        for (const u of undo.reverse()) await u();
        await rm(dir, { recursive: true, force: true });
      }
    });
  }
});

function sha(s: string | Buffer): string {
  return createHash('sha256').update(s).digest('hex').slice(0, 16);
}

/** A copy of the key generation output at `to`, with the case's edits. */
async function buildBundle(to: string, from: string, b: NonNullable<Case['bundle']>): Promise<void> {
  await cp(from, to, { recursive: true });
  if (b.clear) {
    await rm(to, { recursive: true, force: true });
    await mkdir(to);
  }
  for (const [f, text] of Object.entries(b.write ?? {})) await writeFile(join(to, f), text);
  for (const f of b.delete ?? []) await rm(join(to, f));
  if (b.swap) {
    const [x, y] = b.swap;
    const [tx, ty] = [await readFile(join(to, x)), await readFile(join(to, y))];
    await writeFile(join(to, x), ty);
    await writeFile(join(to, y), tx);
  }
  for (const [f, fields] of Object.entries(b.json ?? {})) {
    const obj = JSON.parse(await readFile(join(to, f), 'utf8')) as Record<string, unknown>;
    await writeFile(join(to, f), JSON.stringify({ ...obj, ...fields }));
  }
}
