import type { LaptopFact } from '../core/task.ts';
import type { EngineJwtValue } from '../backends/registry.ts';
import { ENGINE_API, probeEngineApi, type EngineProbe } from './engine.ts';

/** The backend's current Engine-API JWT (read once per run and shared by every host; re-read after a write). */
export function expectedEngineJwt(): LaptopFact<EngineJwtValue | undefined> {
  return { kind: 'laptop', gather: (env) => env.memo('engine-jwt', () => env.backends.engineJwt()) };
}

/** An authenticated `engine_exchangeCapabilities` call through the host's SSH connection (an `ssh -L` tunnel). */
export function engineProbe(): LaptopFact<EngineProbe | undefined> {
  return {
    kind: 'laptop',
    async gather(env) {
      const jwt = await env.memo('engine-jwt', () => env.backends.engineJwt());
      if (!jwt) return undefined;
      return probeEngineApi(() => env.transport.forward(ENGINE_API.host, ENGINE_API.port), jwt.secret);
    },
  };
}
