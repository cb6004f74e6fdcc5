/**
 * A fault injector in front of a real backend (the sandbox's OpenBao or moto): an HTTP proxy on the sandbox
 * bridge address, so the laptop and every host reach it. Each request is buffered, shown to `rule`, and then
 * forwarded unchanged (optionally running a hook after the backend answered, before the client sees the answer),
 * answered by the proxy itself (a 503, a ThrottlingException), or held open and dropped. Not a fake: every request
 * it forwards is served by the real server.
 */
import { request as httpRequest, createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ProxiedRequest {
  method: string;
  /** Path with query, e.g. `/v1/secret/data/krypton/473374/engine-jwt`. */
  path: string;
  headers: IncomingHttpHeaders;
  body: Buffer;
  /** The client's IPv4 address (a host's bridge address, or the bridge's own for the laptop). */
  from: string;
}

export type ProxyAction =
  | { kind: 'forward'; /** Runs after the backend answered, before the answer goes back. */ after?: () => Promise<void> }
  | { kind: 'respond'; status: number; headers?: Record<string, string>; body: string }
  /** Keep the request open until `until` settles, then drop the connection. */
  | { kind: 'hold'; until: Promise<unknown> };

export interface FaultProxy {
  /** `http://<bridge>:<port>` */
  readonly url: string;
  /** Decides per request; undefined (or no rule) forwards. Set and cleared by the test. */
  rule: ((r: ProxiedRequest) => ProxyAction | undefined) | undefined;
  /** How many requests the proxy answered itself or held (faults injected). */
  injected: number;
  close(): Promise<void>;
}

/** Starts a proxy to `upstream` (`http://host:port`) listening on `host` (a free port). */
export async function startFaultProxy(upstream: string, host: string): Promise<FaultProxy> {
  const up = new URL(upstream);
  const proxy: FaultProxy = {
    url: '',
    rule: undefined,
    injected: 0,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const r: ProxiedRequest = { method: req.method ?? 'GET', path: req.url ?? '/', headers: req.headers, body: Buffer.concat(chunks), from: (req.socket.remoteAddress ?? '').replace(/^::ffff:/, '') };
      let action: ProxyAction | undefined;
      try {
        action = proxy.rule?.(r);
      } catch {
        action = undefined;
      }
      if (action?.kind === 'respond') {
        proxy.injected++;
        res.writeHead(action.status, { 'content-type': 'application/json', ...action.headers }).end(action.body);
        return;
      }
      if (action?.kind === 'hold') {
        proxy.injected++;
        void action.until.finally(() => req.socket.destroy());
        return;
      }
      const after = action?.kind === 'forward' ? action.after : undefined;
      // Headers unchanged, Host included: an AWS SigV4 signature covers it.
      const fwd = httpRequest({ host: up.hostname, port: up.port, method: r.method, path: r.path, headers: req.headers }, (upRes) => {
        const body: Buffer[] = [];
        upRes.on('data', (c: Buffer) => body.push(c));
        upRes.on('end', () => {
          void (after ? after() : Promise.resolve())
            .catch(() => undefined)
            .then(() => {
              res.writeHead(upRes.statusCode ?? 502, upRes.headers).end(Buffer.concat(body));
            });
        });
      });
      fwd.on('error', () => res.destroy());
      fwd.end(r.body);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => resolve());
  });
  (proxy as { url: string }).url = `http://${host}:${(server.address() as AddressInfo).port}`;
  return proxy;
}
