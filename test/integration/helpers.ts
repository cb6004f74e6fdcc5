import { spawn } from 'node:child_process';
import { readFile, readdir } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { hostExec, type SandboxInfo } from '../sandbox/index.ts';

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
/** The checkout's entry (TypeScript through tsx); the package's compiled entry is tested by test/package/. */
export const BIN = join(REPO, 'bin/dev.js');

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
  /** Parsed `--json` lines. */
  events: Record<string, unknown>[];
  summary?: { ok: boolean; changed: number; unchanged: number; failed: number; hosts: Record<string, { status: string; error?: { code: string; message: string } }> };
}

/** Runs the real CLI (`bin/dev.js`, the sources) as an operator would, with the sandbox's env. */
export function cli(info: SandboxInfo, args: string[], extraEnv: Record<string, string> = {}): Promise<CliResult> {
  return new Promise((resolveP, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      cwd: REPO,
      env: { ...process.env, ...info.env, ...extraEnv, CI: 'true' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      const events = stdout
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as Record<string, unknown>);
      const summary = events.find((e) => e['type'] === 'summary') as CliResult['summary'];
      resolveP({ code: code ?? -1, stdout, stderr, events, summary });
    });
  });
}

/** Reads the network's Engine-API JWT from the sandbox OpenBao (KV v2) — in memory only. */
export async function vaultJwt(info: SandboxInfo): Promise<{ hex: string; version: number }> {
  const res = await fetch(`${info.vault.address}/v1/secret/data/krypton/${info.network}/engine-jwt`, {
    headers: { 'X-Vault-Token': info.vault.token },
  });
  if (res.status !== 200) throw new Error(`vault read ${res.status}`);
  const body = (await res.json()) as { data: { data: { hex: string }; metadata: { version: number } } };
  return { hex: body.data.data.hex, version: body.data.metadata.version };
}

export function sha256(s: string | Buffer): string {
  return createHash('sha256').update(s).digest('hex');
}

/**
 * Inside the node (no ssh): mint an HS256 token with the given 64-hex secret (sent on stdin) and call the
 * EL's Engine API at 127.0.0.1:8551. Returns the HTTP status (0: no answer).
 */
export async function engineStatusOnHost(host: string, jwtHex: string): Promise<number> {
  const script = `
const crypto = require('node:crypto'); const http = require('node:http');
let hex = ''; process.stdin.on('data', (c) => (hex += c)); process.stdin.on('end', () => {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const head = b64({ alg: 'HS256', typ: 'JWT' }) + '.' + b64({ iat: Math.floor(Date.now() / 1000) });
  const sig = crypto.createHmac('sha256', Buffer.from(hex.trim(), 'hex')).update(head).digest('base64url');
  const body = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'engine_exchangeCapabilities', params: [[]] });
  const req = http.request({ host: '127.0.0.1', port: 8551, method: 'POST', path: '/', headers: { 'content-type': 'application/json', authorization: 'Bearer ' + head + '.' + sig } }, (res) => { res.resume(); res.on('end', () => console.log(res.statusCode)); });
  req.on('error', () => console.log(0)); req.end(body);
});`;
  const r = await hostExec(host, ['node', '-e', script], { input: jwtHex });
  return Number(r.stdout.trim());
}

/** Everything a sandbox host keeps on persistent disk (its bind-mounted dirs), as text (latin1: byte-exact). */
export async function persistentText(info: SandboxInfo, host: string): Promise<string> {
  let all = '';
  const walk = async (d: string): Promise<void> => {
    for (const e of await readdir(d, { withFileTypes: true }).catch(() => [])) {
      const p = join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else if (e.isFile()) all += await readFile(p, 'latin1').catch(() => '');
    }
  };
  for (const dir of Object.values(info.hosts[host]!.binds)) await walk(dir);
  return all;
}
