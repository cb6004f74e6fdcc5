import { shortFingerprint } from '../core/secret.ts';
import { toKryptonError } from '../core/errors.ts';
import type { Host, Inventory } from '../model/inventory.ts';
import { JWT_FILE, refFor } from '../model/layout.ts';
import { LOADED_FILE, parseLoaded } from '../facts/secrets.ts';
import type { SecretStore } from '../model/store.ts';
import { shellQuote, type Transport } from '../core/transport.ts';
import { isAbsolute, relative, resolve } from 'node:path';

/** A JWT as the report names it: the backend version (null: a value it no longer has) and the short fingerprint. */
export interface JwtSeen {
  version: number | null;
  fingerprint: string;
}

/**
 * Per node: the JWT version jwt.hex holds (matched by SHA-256 fingerprint against the backend's live versions), the
 * backend's current version of that node's JWT (`current`: number and short fingerprint; null when the store has
 * none) and, where the tool recorded it (`/run/krypton-secrets/loaded`, written after each restart), what el and cl
 * loaded at their last restart. `pending`: jwt.hex and what el/cl loaded differ — the state a fault mid-change
 * leaves, which the next apply repairs first (node.restart-lockstep restarts both on the file).
 */
export type JwtVersionReport = Record<
  string,
  {
    version: number | null;
    fingerprint: string | null;
    unreachable?: true;
    current: { version: number; fingerprint: string } | null;
    /** The backend could not list the versions (then `version` and `current` are unknown: null). */
    storeError?: string;
    el?: JwtSeen;
    cl?: JwtSeen;
    pending?: string;
  }
>;

/**
 * Which node holds which Engine-API JWT version, by version number and fingerprint (never the value): one
 * `sha256sum` per node over its existing connection. `version: null` = a value the backend no longer has
 * (or none); `fingerprint: null` = no jwt.hex or the host is unreachable.
 */
export async function jwtVersionReport(hosts: Host[], connect: (h: Host) => Promise<Transport>, store: SecretStore, inv: Inventory): Promise<JwtVersionReport> {
  const out: JwtVersionReport = {};
  await Promise.all(
    hosts
      .filter((h) => h.kind === 'node')
      .map(async (h) => {
        // A backend that cannot answer (sealed, throttled) leaves the versions unknown; the fingerprints still count.
        let storeError: string | undefined;
        const versions = await store.versions(refFor(inv, 'engine-jwt', h.name)).catch((e: unknown) => {
          storeError = toKryptonError(e).message;
          return [];
        });
        // The store lists live versions newest first: the first is the current one.
        const cur = versions[0];
        const current = cur ? { version: cur.version, fingerprint: shortFingerprint(cur.fingerprint) } : null;
        let fp: string | null = null;
        let loaded: ReturnType<typeof parseLoaded> = {};
        try {
          const t = await connect(h);
          const r = await t.exec(['sh', '-c', 'sha256sum -- "$1" 2>/dev/null; echo @loaded; cat -- "$2" 2>/dev/null; true', 'sh', JWT_FILE, LOADED_FILE]);
          const [head = '', rest = ''] = r.stdout.split('@loaded\n');
          fp = /^[0-9a-f]{64}\b/.test(head) ? head.slice(0, 64) : null;
          loaded = parseLoaded(rest);
        } catch {
          out[h.name] = { version: null, fingerprint: null, unreachable: true, current, ...(storeError ? { storeError } : {}) };
          return;
        }
        const seen = (sha: string | undefined): JwtSeen | undefined =>
          sha === undefined ? undefined : { version: versions.find((x) => x.fingerprint === sha)?.version ?? null, fingerprint: shortFingerprint(sha) };
        const v = fp ? versions.find((x) => x.fingerprint === fp) : undefined;
        const el = loaded['el']?.['engine-jwt'];
        const cl = loaded['cl']?.['engine-jwt'];
        const entry: JwtVersionReport[string] = { version: v?.version ?? null, fingerprint: fp ? shortFingerprint(fp) : null, current, ...(storeError ? { storeError } : {}) };
        if (el !== undefined) entry.el = seen(el)!;
        if (cl !== undefined) entry.cl = seen(cl)!;
        const name = (x: JwtSeen | { version: number | null; fingerprint: string | null }) => `${x.version !== null ? `v${x.version}` : 'a value the backend no longer has'} (${x.fingerprint ?? 'none'})`;
        if (fp && ((el !== undefined && el !== fp) || (cl !== undefined && cl !== fp))) {
          const both = el === cl ? `el and cl loaded ${name(entry.el ?? entry.cl!)}` : `el loaded ${entry.el ? name(entry.el) : 'an unrecorded value'}, cl ${entry.cl ? name(entry.cl) : 'an unrecorded value'}`;
          entry.pending = `jwt.hex holds ${name(entry)} but ${both}: the next apply restarts el and cl on jwt.hex first`;
        }
        out[h.name] = entry;
      }),
  );
  return out;
}

/**
 * The report for people: one line per node (the version it holds, its fingerprint, and whether that is the backend's
 * current one), then — when the run did not finish (`halted`) — the one command that completes it.
 */
export function jwtReportLines(report: JwtVersionReport, completeWith?: string): string[] {
  const lines: string[] = [];
  for (const [h, v] of Object.entries(report)) {
    const holds = v.unreachable ? 'unreachable: unknown' : v.version !== null ? `v${v.version}` : v.storeError ? 'a value whose version the backend could not say' : v.fingerprint ? 'a value the backend no longer has' : 'no jwt.hex';
    const cur = v.storeError ? ` (the backend's versions: ${v.storeError})` : v.current ? (v.version === v.current.version ? ' = the current version' : `; the backend's current is v${v.current.version} (${v.current.fingerprint})`) : '';
    lines.push(`  ${h}: holds ${holds}${v.fingerprint ? ` (${v.fingerprint})` : ''}${cur}${v.pending ? `; ${v.pending.replace(/^jwt\.hex holds [^;]*? but /, '')}` : ''}`);
  }
  if (completeWith) {
    const behind = Object.entries(report).filter(([, v]) => !v.current || v.version !== v.current.version).map(([h]) => h);
    lines.push(`  ${behind.length ? `${behind.join(', ')} ${behind.length === 1 ? 'is' : 'are'} not on the current version` : 'every node holds the current version'}; complete the run with: ${completeWith}`);
  }
  return lines;
}

/** `krypton-secrets apply <playbook> -i <inventory> [-l …] --resume`, paths as the user can type them from here. */
export function resumeCommand(playbook: string, inventory: string, limit?: string[]): string {
  const shown = (p: string) => {
    const rel = relative(process.cwd(), resolve(p));
    return shellQuote(rel && !rel.startsWith('..') && !isAbsolute(rel) ? rel : resolve(p));
  };
  return ['krypton-secrets', 'apply', shown(playbook), '-i', shown(inventory), ...(limit?.length ? ['-l', shellQuote(limit.join(','))] : []), '--resume'].join(' ');
}
