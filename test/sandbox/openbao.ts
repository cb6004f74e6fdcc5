/**
 * The sandbox's OpenBao: the real `bao server -dev` (in-memory, no TLS) on the bridge address, so both
 * this machine and every host reach it at http://198.18.0.1:8200. Dev mode mounts KV v2 at `secret/`;
 * the harness adds the `approle` auth method.
 */
import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BRIDGE_ADDRESS, VAULT_ADDRESS, VAULT_PORT } from './layout.ts';
import { SandboxError, logTail, waitFor } from './proc.ts';

/** argv substring that identifies our dev server (used by teardown to find it). */
export const BAO_SERVER_MATCH = `-dev-listen-address=${BRIDGE_ADDRESS}:${VAULT_PORT}`;

/**
 * Spawns the dev server (detached, log in <dir>/bao/server.log); returns its pid without waiting.
 * `auditLog`: also a declarative file audit device `canary/` (OpenBao refuses to enable one through the API)
 * writing there with `log_raw` — every token and secret in clear, so the path must be on a tmpfs and deleted
 * by the caller; its config (<dir>/bao/audit.hcl) holds only the path.
 */
export function spawnBaoServer(dir: string, baoBin: string, rootToken: string, auditLog?: string): { pid: number; log: string; exited: () => string | undefined } {
  const home = join(dir, 'bao');
  mkdirSync(home, { recursive: true, mode: 0o700 });
  const log = join(home, 'server.log');
  const fd = openSync(log, 'a', 0o600);
  const config: string[] = [];
  if (auditLog) {
    const hcl = join(home, 'audit.hcl');
    writeFileSync(hcl, `audit "file" "canary" {\n  options {\n    file_path = ${JSON.stringify(auditLog)}\n    log_raw = "true"\n  }\n}\n`, { mode: 0o600 });
    config.push(`-config=${hcl}`);
  }
  const child = spawn(baoBin, ['server', '-dev', BAO_SERVER_MATCH, `-dev-root-token-id=${rootToken}`, '-dev-no-store-token', ...config], {
    cwd: home,
    detached: true,
    stdio: ['ignore', fd, fd],
    // A clean env: no VAULT_*/BAO_* from the caller's shell (e.g. a sourced older .sandbox/env).
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: home },
  });
  closeSync(fd);
  let exited: string | undefined;
  child.on('exit', (code, signal) => (exited = signal ?? `code ${code}`));
  child.on('error', (e) => (exited = e.message));
  child.unref();
  if (!child.pid) throw new SandboxError(`cannot start ${baoBin}`);
  return { pid: child.pid, log, exited: () => exited };
}

/** Calls the OpenBao HTTP API with the given token; returns status and parsed JSON body (if any). */
export async function baoApi(token: string, method: string, path: string, body?: unknown): Promise<{ status: number; json: unknown }> {
  const res = await fetch(`${VAULT_ADDRESS}/v1/${path}`, {
    method,
    headers: { 'X-Vault-Token': token, ...(body ? { 'content-type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
    signal: AbortSignal.timeout(5000),
  });
  const text = await res.text();
  return { status: res.status, json: text ? (JSON.parse(text) as unknown) : undefined };
}

/** Waits until /v1/sys/health answers 200 (initialised, unsealed, active), then enables AppRole at approle/. */
export async function readyBaoServer(server: { log: string; exited: () => string | undefined }, rootToken: string): Promise<void> {
  await waitFor(
    `OpenBao health at ${VAULT_ADDRESS}`,
    async () => {
      const gone = server.exited();
      if (gone) throw new SandboxError(`bao server exited (${gone})${logTail(server.log)}`);
      try {
        const res = await fetch(`${VAULT_ADDRESS}/v1/sys/health`, { signal: AbortSignal.timeout(500) });
        await res.arrayBuffer();
        return res.status === 200;
      } catch {
        return false;
      }
    },
    { timeoutMs: 30_000, intervalMs: 50 },
  );
  const r = await baoApi(rootToken, 'POST', 'sys/auth/approle', { type: 'approle' });
  if (r.status !== 204 && r.status !== 200) throw new SandboxError(`enabling approle auth failed: HTTP ${r.status} ${JSON.stringify(r.json)}`);
}
