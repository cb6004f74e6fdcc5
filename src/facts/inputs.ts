import type { GatherEnv, LaptopFact } from '../core/task.ts';
import type { EngineJwtValue } from '../backends/registry.ts';
import { ENGINE_API, probeEngineApi, type EngineProbe } from './engine.ts';

/** The backend's current Engine-API JWT for this host, read once per run per scope (re-read after a write). */
export function readEngineJwt(env: GatherEnv): Promise<EngineJwtValue | undefined> {
  return env.memo(`engine-jwt:${env.backends.jwtScope(env.host.name)}`, () => env.backends.engineJwt(env.host.name));
}

/** The backend's current Engine-API JWT, as a fact. */
export function expectedEngineJwt(): LaptopFact<EngineJwtValue | undefined> {
  return { kind: 'laptop', gather: readEngineJwt };
}

/** An authenticated `engine_exchangeCapabilities` call through the host's SSH connection (an `ssh -L` tunnel). */
export function engineProbe(): LaptopFact<EngineProbe | undefined> {
  return {
    kind: 'laptop',
    async gather(env) {
      const jwt = await readEngineJwt(env);
      if (!jwt) return undefined;
      return probeEngineApi(() => env.transport.forward(ENGINE_API.host, ENGINE_API.port), jwt.secret);
    },
  };
}
