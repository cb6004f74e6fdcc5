import { request } from 'node:http';
import { SignJWT } from 'jose';
import type { Duplex } from 'node:stream';
import type { Secret } from '../core/secret.ts';

/** Where a node's execution client serves the authenticated Engine API (authrpc). */
export const ENGINE_API = { host: '127.0.0.1', port: 8551 } as const;

/** Outcome of one authenticated Engine API call. */
export interface EngineProbe {
  /** `accepted`: HTTP 200 with a JSON-RPC result; `rejected`: 401/403 or a JSON-RPC auth error; `unreachable`: no answer. */
  outcome: 'accepted' | 'rejected' | 'unreachable';
  httpStatus?: number;
  detail: string;
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
 * node) with a fresh token. Never throws: failures become `rejected` or `unreachable` with a detail that
 * holds no secret. `timeoutMs` bounds the whole call.
 */
export async function probeEngineApi(open: () => Promise<Duplex>, jwtHex: Secret, timeoutMs = 5000): Promise<EngineProbe> {
  let stream: Duplex;
  try {
    stream = await open();
  } catch (err) {
    return { outcome: 'unreachable', detail: `nothing accepts connections on ${ENGINE_API.host}:${ENGINE_API.port} (${(err as Error).message})` };
  }
  const token = await mintEngineToken(jwtHex);
  const body = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'engine_exchangeCapabilities', params: [['engine_exchangeCapabilities']] });
  return new Promise<EngineProbe>((resolve) => {
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
