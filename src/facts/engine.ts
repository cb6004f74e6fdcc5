import { request } from 'node:http';
import { SignJWT } from 'jose';
import type { Duplex } from 'node:stream';
import type { Secret } from '../core/secret.ts';
import { hostNowSeconds, type HostClock } from '../model/clock.ts';

/** Where a node's execution client serves the authenticated Engine API (authrpc). */
export const ENGINE_API = { host: '127.0.0.1', port: 8551 } as const;

/** Outcome of one authenticated Engine API call. */
export interface EngineProbe {
  /**
   * `accepted`: HTTP 200 with a JSON-RPC result; `rejected`: 401/403 or a JSON-RPC auth error; `unreachable`: no
   * answer; `skewed`: rejected while the laptop–host clock skew is beyond the Engine API's ±60 s (E_CLOCK_SKEW: not
   * a wrong JWT, so nothing may be restarted or delivered again for it).
   */
  outcome: 'accepted' | 'rejected' | 'unreachable' | 'skewed';
  httpStatus?: number;
  detail: string;
  /** Laptop minus host, seconds, when the host's clock was read (positive: the laptop is ahead). */
  skewSeconds?: number;
  /** Where the token's `iat` came from. */
  iatFrom?: 'host' | 'laptop';
}

/**
 * The token's `iat`, Unix seconds: from the host's clock when a reading is given (its value then, advanced by the
 * laptop's monotonic time since), else the laptop's clock.
 */
export function iatSeconds(clock: HostClock | undefined, monotonicNowMs = performance.now(), laptopNowMs = Date.now()): number {
  return Math.floor(clock ? hostNowSeconds(clock, monotonicNowMs) : laptopNowMs / 1000);
}

/**
 * Mints an HS256 JWT with `iat` = now, keyed by the 32 bytes the 64-hex secret decodes to
 * (ethereum/execution-apis src/engine/authentication.md). The token lives only in memory.
 */
export async function mintEngineToken(jwtHex: Secret, nowSeconds = Math.floor(Date.now() / 1000)): Promise<string> {
  const key = Buffer.from(jwtHex.revealText(), 'hex');
  return new SignJWT({}).setProtectedHeader({ alg: 'HS256', typ: 'JWT' }).setIssuedAt(nowSeconds).sign(key);
}

/**
 * Calls `engine_exchangeCapabilities` over `stream` (an SSH direct-tcpip channel to 127.0.0.1:8551 on the
 * node) with a fresh token whose `iat` comes from `clock` (the host's, see {@link iatSeconds}) when given. Never
 * throws: failures become `rejected` or `unreachable` with a detail that holds no secret. `timeoutMs` bounds the
 * whole call.
 */
export async function probeEngineApi(open: () => Promise<Duplex>, jwtHex: Secret, timeoutMs = 5000, clock?: HostClock): Promise<EngineProbe> {
  let stream: Duplex;
  try {
    stream = await open();
  } catch (err) {
    return { outcome: 'unreachable', detail: `nothing accepts connections on ${ENGINE_API.host}:${ENGINE_API.port} (${(err as Error).message})` };
  }
  const token = await mintEngineToken(jwtHex, iatSeconds(clock));
  const iatFrom = clock ? ('host' as const) : ('laptop' as const);
  const body = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'engine_exchangeCapabilities', params: [['engine_exchangeCapabilities']] });
  return new Promise<EngineProbe>((done) => {
    const resolve = (p: EngineProbe) => done({ ...p, iatFrom, ...(clock ? { skewSeconds: clock.skewSeconds } : {}) });
    const req = request(
      {
        createConnection: () => stream as never,
        method: 'POST',
        path: '/',
        headers: {
          host: `${ENGINE_API.host}:${ENGINE_API.port}`,
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(body),
          authorization: `Bearer ${token}`,
          connection: 'close',
        },
        timeout: timeoutMs,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const status = res.statusCode ?? 0;
          const text = Buffer.concat(chunks).toString('utf8').slice(0, 2000);
          if (status === 401 || status === 403) {
            resolve({ outcome: 'rejected', httpStatus: status, detail: `HTTP ${status}: the Engine API refused the token signed with the expected JWT` });
            return;
          }
          let parsed: { result?: unknown; error?: { code?: number; message?: string } } | undefined;
          try {
            parsed = JSON.parse(text);
          } catch {
            parsed = undefined;
          }
          if (status === 200 && parsed && parsed.result !== undefined) {
            resolve({ outcome: 'accepted', httpStatus: status, detail: 'engine_exchangeCapabilities answered (HTTP 200)' });
          } else if (parsed?.error && /auth|jwt|token/i.test(parsed.error.message ?? '')) {
            resolve({ outcome: 'rejected', httpStatus: status, detail: `JSON-RPC error ${parsed.error.code}: ${String(parsed.error.message).slice(0, 200)}` });
          } else {
            resolve({ outcome: 'unreachable', httpStatus: status, detail: `unexpected answer (HTTP ${status})` });
          }
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', (err) => resolve({ outcome: 'unreachable', detail: `Engine API call failed: ${err.message}` }));
    req.end(body);
  });
}
