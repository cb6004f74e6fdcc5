import { shortFingerprint } from '../core/secret.ts';
import type { Host, Inventory } from '../model/inventory.ts';
import { JWT_FILE, refFor } from '../model/layout.ts';
import type { SecretStore } from '../model/store.ts';
import type { Transport } from '../core/transport.ts';

/** Per node: the JWT version it holds (matched by SHA-256 fingerprint against the backend's live versions). */
export type JwtVersionReport = Record<string, { version: number | null; fingerprint: string | null; unreachable?: true }>;

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
        try {
          const t = await connect(h);
          const r = await t.exec(['sha256sum', '--', JWT_FILE]);
          fp = r.code === 0 ? (r.stdout.trim().split(/\s+/)[0] ?? null) : null;
        } catch {
          out[h.name] = { version: null, fingerprint: null, unreachable: true };
          return;
        }
        const v = fp ? versions.find((x) => x.fingerprint === fp) : undefined;
        out[h.name] = { version: v?.version ?? null, fingerprint: fp ? shortFingerprint(fp) : null };
      }),
  );
  return out;
}
