import { shortFingerprint } from '../core/secret.ts';
import type { Host, Inventory } from '../model/inventory.ts';
import { JWT_FILE, refFor } from '../model/layout.ts';
import { LOADED_FILE, parseLoaded } from '../facts/secrets.ts';
import type { SecretStore } from '../model/store.ts';
import type { Transport } from '../core/transport.ts';

/** A JWT as the report names it: the backend version (null: a value it no longer has) and the short fingerprint. */
export interface JwtSeen {
  version: number | null;
  fingerprint: string;
}

/**
 * Per node: the JWT version jwt.hex holds (matched by SHA-256 fingerprint against the backend's live versions) and,
 * where the tool recorded it (`/run/krypton-secrets/loaded`, written after each restart), what el and cl loaded at
 * their last restart. `pending`: jwt.hex and what el/cl loaded differ — the state a fault mid-change leaves, which
 * the next apply repairs first (node.restart-lockstep restarts both on the file).
 */
export type JwtVersionReport = Record<
  string,
  { version: number | null; fingerprint: string | null; unreachable?: true; el?: JwtSeen; cl?: JwtSeen; pending?: string }
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
        const versions = await store.versions(refFor(inv, 'engine-jwt', h.name));
        let fp: string | null = null;
        let loaded: ReturnType<typeof parseLoaded> = {};
        try {
          const t = await connect(h);
          const r = await t.exec(['sh', '-c', 'sha256sum -- "$1" 2>/dev/null; echo @loaded; cat -- "$2" 2>/dev/null; true', 'sh', JWT_FILE, LOADED_FILE]);
          const [head = '', rest = ''] = r.stdout.split('@loaded\n');
          fp = /^[0-9a-f]{64}\b/.test(head) ? head.slice(0, 64) : null;
          loaded = parseLoaded(rest);
        } catch {
          out[h.name] = { version: null, fingerprint: null, unreachable: true };
          return;
        }
        const seen = (sha: string | undefined): JwtSeen | undefined =>
          sha === undefined ? undefined : { version: versions.find((x) => x.fingerprint === sha)?.version ?? null, fingerprint: shortFingerprint(sha) };
        const v = fp ? versions.find((x) => x.fingerprint === fp) : undefined;
        const el = loaded['el']?.['engine-jwt'];
        const cl = loaded['cl']?.['engine-jwt'];
        const entry: JwtVersionReport[string] = { version: v?.version ?? null, fingerprint: fp ? shortFingerprint(fp) : null };
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
