/**
 * Reads the run's Vault secrets from OpenBao's file audit device (log_raw, on a tmpfs the test deletes): every
 * response-wrapping token, secret_id, role_id and token a run made or used — the values the test cannot choose
 * — become canaries. Field names from Vault's audit device docs (request/response entries: `auth.client_token`,
 * `request.data`, `response.data`, `response.wrap_info.token`, `response.auth.client_token`).
 */
import { openSync, readSync, closeSync, statSync } from 'node:fs';
import type { Canary, CanaryKind } from './canaries.ts';

interface AuditEntry {
  type?: string;
  auth?: { client_token?: string };
  request?: { path?: string; data?: Record<string, unknown> };
  response?: { data?: Record<string, unknown>; wrap_info?: { token?: string }; auth?: { client_token?: string } };
}

/** Incremental reader of one audit log file: each `read()` returns the canaries of the lines added since. */
export class AuditTail {
  private offset = 0;
  private rest = '';
  /** Lines read so far (for the test's own check that the device logs). */
  lines = 0;

  /** `ignore`: tokens that are not canaries (the sandbox's root token, which the test itself uses). */
  constructor(
    private readonly path: string,
    private readonly ignore: ReadonlySet<string>,
  ) {}

  read(): Canary[] {
    let size: number;
    try {
      size = statSync(this.path).size;
    } catch {
      return [];
    }
    if (size <= this.offset) return [];
    const buf = Buffer.alloc(size - this.offset);
    const fd = openSync(this.path, 'r');
    try {
      readSync(fd, buf, 0, buf.length, this.offset);
    } finally {
      closeSync(fd);
    }
    this.offset = size;
    const text = this.rest + buf.toString('utf8');
    const lines = text.split('\n');
    this.rest = lines.pop() ?? '';
    const out: Canary[] = [];
    const add = (kind: CanaryKind, v: unknown) => {
      if (typeof v === 'string' && v !== '' && !this.ignore.has(v)) out.push({ kind, text: v });
    };
    for (const line of lines) {
      if (!line.trim()) continue;
      this.lines++;
      const e = JSON.parse(line) as AuditEntry;
      add('wrapping-token', e.response?.wrap_info?.token);
      add('secret_id', e.request?.data?.['secret_id']);
      add('secret_id', e.response?.data?.['secret_id']);
      add('role_id', e.request?.data?.['role_id']);
      add('role_id', e.response?.data?.['role_id']);
      add('vault-token', e.response?.auth?.client_token);
      // A token used for a request (the agent's, verify's short-lived ones, a wrapping token on unwrap).
      add(e.request?.path === 'sys/wrapping/unwrap' ? 'wrapping-token' : 'vault-token', e.auth?.client_token);
      const token = e.request?.data?.['token'];
      if (e.request?.path?.startsWith('sys/wrapping/')) add('wrapping-token', token);
    }
    return out;
  }
}
