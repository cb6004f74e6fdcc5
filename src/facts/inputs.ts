import type { GatherEnv, LaptopFact } from '../model/task.ts';
import { refFor, refKey } from '../model/layout.ts';
import type { StoredValue } from '../model/store.ts';
import { ENGINE_API, probeEngineApi, type EngineProbe } from './engine.ts';
import type { StoredFingerprint } from './secrets.ts';

/** The store's current Engine-API JWT for this host, read once per run per reference (re-read after a write). */
export function readEngineJwt(env: GatherEnv): Promise<StoredValue | undefined> {
  const ref = refFor(env.inventory, 'engine-jwt', env.host.name);
  return env.memo(`stored:${refKey(ref)}`, () => env.store.current(ref));
}

/** The store's current Engine-API JWT for this host as plans see it (version and fingerprint, never the value). */
export function expectedEngineJwt(): LaptopFact<StoredFingerprint | undefined> {
  return {
    kind: 'laptop',
    async gather(env) {
      const v = await readEngineJwt(env);
      return v ? { version: v.version, fingerprint: v.secret.fingerprint(), source: v.source } : undefined;
    },
  };
}

/** The probe and the version it was made with. */
export type EngineProbeFact = EngineProbe & { version: number; fingerprint: string; source: string };

/** An authenticated `engine_exchangeCapabilities` call through the host's SSH connection (an `ssh -L` tunnel), signed with the stored JWT. */
export function engineProbe(): LaptopFact<EngineProbeFact | undefined> {
  return {
    kind: 'laptop',
    async gather(env) {
      const jwt = await readEngineJwt(env);
      if (!jwt) return undefined;
      const probe = await probeEngineApi(() => env.transport.forward(ENGINE_API.host, ENGINE_API.port), jwt.secret);
      return { ...probe, version: jwt.version, fingerprint: jwt.secret.fingerprint(), source: jwt.source };
    },
  };
}
