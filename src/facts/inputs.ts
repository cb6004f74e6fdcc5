import type { GatherEnv, LaptopFact } from '../model/task.ts';
import { refFor, refKey } from '../model/layout.ts';
import type { StoredValue } from '../model/store.ts';
import { CLOCK_SKEW_BOUND_SECONDS, ENGINE_IAT_WINDOW_SECONDS, describeSkew, skewBeyond, skewPhrase } from '../model/clock.ts';
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

/**
 * An authenticated `engine_exchangeCapabilities` call through the host's SSH connection (a direct-tcpip channel to
 * 127.0.0.1:8551), signed with the stored JWT, `iat` from the host's clock as read in the step's facts exec
 * (`env.hostClock()`; the laptop's clock when no reading exists).
 *
 * On a refusal it reads the host's clock afresh. When the laptop–host skew is beyond the Engine API's ±60 s, a
 * token from the other clock settles what the refusal meant: the host's clock accepted -> `accepted`; only the
 * laptop's clock accepted -> `skewed` (the JWT is right, the Engine API's clock is not the host's `date`:
 * "clock skew of N s (±60 s allowed)", E_CLOCK_SKEW, nothing to restart); neither -> `rejected` (a wrong JWT,
 * whatever the clocks say). Within ±60 s a refusal is `rejected` as it stands.
 */
export function engineProbe(): LaptopFact<EngineProbeFact | undefined> {
  return {
    kind: 'laptop',
    async gather(env) {
      const jwt = await readEngineJwt(env);
      if (!jwt) return undefined;
      const open = () => env.transport.forward(ENGINE_API.host, ENGINE_API.port);
      const host = env.host.name;
      let probe = await probeEngineApi(open, jwt.secret, undefined, await env.hostClock?.());
      if (probe.outcome === 'rejected' && env.hostClock) {
        const fresh = await env.hostClock({ fresh: true });
        if (fresh && skewBeyond(fresh, ENGINE_IAT_WINDOW_SECONDS)) {
          const hostIat = await probeEngineApi(open, jwt.secret, undefined, fresh);
          const laptopIat = hostIat.outcome === 'rejected' ? await probeEngineApi(open, jwt.secret) : undefined;
          const skew = `${skewPhrase(fresh.skewSeconds)}: ${describeSkew(fresh.skewSeconds, host)}`;
          if (laptopIat?.outcome === 'accepted') {
            probe = { ...laptopIat, outcome: 'skewed', skewSeconds: fresh.skewSeconds, detail: `${skew}; the Engine API refused the token with iat from ${host}'s clock and accepted it with the laptop's, so the JWT is right and el's clock is not ${host}'s` };
          } else if (laptopIat) {
            probe = { ...hostIat, skewSeconds: fresh.skewSeconds, detail: `${hostIat.detail} (with iat from ${host}'s clock and from the laptop's: ${skew}, not the cause)` };
          } else {
            probe = hostIat;
          }
        }
      }
      if (probe.outcome === 'accepted' && probe.iatFrom === 'host' && probe.skewSeconds !== undefined && Math.abs(probe.skewSeconds) > CLOCK_SKEW_BOUND_SECONDS) {
        probe = { ...probe, detail: `${probe.detail}; iat from ${host}'s clock (${describeSkew(probe.skewSeconds, host)})` };
      }
      return { ...probe, version: jwt.version, fingerprint: jwt.secret.fingerprint(), source: jwt.source };
    },
  };
}
