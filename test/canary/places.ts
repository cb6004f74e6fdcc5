/**
 * The places a run is searched for canaries (issue 10, the canary leak matrix), and the /proc cmdline sampler.
 *
 * Per run, on the laptop: the run's stdout, its stderr, the strings of its JSON events (decoded, so a JSON
 * `\u00xx` escape hides nothing), the checkout tree (without node_modules, .venv, .git objects and the fixtures
 * the test wrote on purpose), the OS temp dirs (/tmp, /var/tmp, /dev/shm), ~/.npm/_logs, the laptop's processes'
 * command lines, and the root filesystem the sandbox hosts share with the laptop (/etc, /root, /var/log, /opt:
 * a sandbox host has its own mount namespace but no root of its own); per host: its persistent dirs (every file
 * under the host's sandbox dir, i.e. the bind mounts /opt/krypton, /opt/horcrux, /var/log/krypton,
 * /usr/local/sbin, /root/.aws, /etc/systemd/system, and its sshd files), its agent log, and its processes'
 * command lines. Files are searched when created or changed (ctime) since the run started: a file not touched by
 * a run was searched after the run that last touched it. Only a host's tmpfs mounts (/run, the key dirs) are
 * never searched: they are where the secrets belong.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { readFileSync, readlinkSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tmpdir } from 'node:os';
import type { SandboxInfo } from '../sandbox/index.ts';
import type { CanarySet, Hit } from './canaries.ts';

const HERE = dirname(fileURLToPath(import.meta.url));
export const REPO = join(HERE, '../..');

/** One distinct command line seen by the sampler: its network namespace ("net:[…]") and raw bytes. */
export interface Cmdline {
  ns: string;
  raw: Buffer;
}

/**
 * Samples /proc/<pid>/cmdline of every process of this machine (the sandbox hosts share its pid namespace) every
 * few milliseconds in a child process (./proc-sampler.cjs); `drain()` returns the command lines first seen
 * since the previous drain, after one full sweep that started after the call.
 */
export class ProcSampler {
  private child?: ChildProcessWithoutNullStreams;
  private buf = '';
  private seen: Cmdline[] = [];
  private syncN = 0;
  private waiters = new Map<number, () => void>();
  private ready?: Promise<void>;

  /** Starts the sampler; resolves once it has swept once. */
  start(intervalMs = 5): Promise<void> {
    const child = spawn(process.execPath, [join(HERE, 'proc-sampler.cjs'), String(intervalMs)], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.child = child;
    this.ready = new Promise((resolve, reject) => {
      child.on('error', reject);
      child.stdout.on('data', (d: Buffer) => {
        this.buf += d.toString();
        let i;
        while ((i = this.buf.indexOf('\n')) >= 0) {
          const line = this.buf.slice(0, i);
          this.buf = this.buf.slice(i + 1);
          const m = JSON.parse(line) as { ready?: boolean; sync?: number; ns?: string; c?: string };
          if (m.ready) resolve();
          else if (m.sync !== undefined) this.waiters.get(m.sync)?.();
          else this.seen.push({ ns: m.ns ?? '', raw: Buffer.from(m.c ?? '', 'base64') });
        }
      });
    });
    return this.ready.then(() => this.drain().then(() => undefined));
  }

  /** Command lines first seen since the last drain (after a full sweep that began after this call). */
  async drain(): Promise<Cmdline[]> {
    const child = this.child;
    if (!child) throw new Error('sampler not started');
    const n = ++this.syncN;
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('the /proc sampler did not answer within 60 s')), 60_000);
      this.waiters.set(n, () => {
        clearTimeout(t);
        this.waiters.delete(n);
        resolve();
      });
      child.stdin.write(`sync ${n}\n`);
    });
    const out = this.seen;
    this.seen = [];
    return out;
  }

  /** Stops the sampler (closes its stdin; it exits). */
  async stop(): Promise<void> {
    const child = this.child;
    if (!child) return;
    this.child = undefined;
    await new Promise<void>((resolve) => {
      if (child.exitCode !== null) return resolve();
      child.on('exit', () => resolve());
      child.stdin.end();
    });
  }
}

/** The network namespace ("net:[inode]") of process `pid`. */
export function netnsOf(pid: number | 'self'): string {
  return readlinkSync(`/proc/${pid}/ns/net`);
}

/** Laptop dirs never searched: caches and toolchains of this machine, and the session machinery's own files. */
const PRUNE = [
  '/root/.npm/_cacache',
  '/root/.pyenv',
  '/root/.rustup',
  '/root/.cargo',
  '/root/go',
  '/root/.cache/go-build',
  '/tmp/bash_jobs.*',
  '/tmp/bash_tool_*',
];
const TEMP_ROOTS = [...new Set([tmpdir(), '/tmp', '/var/tmp', '/dev/shm'])];
const NPM_LOGS = '/root/.npm/_logs';
const SHARED_ROOTS = ['/etc', '/root', '/var/log', '/opt'];
const MAX_FILE = 64 * 1024 * 1024;

export interface SearchInput {
  stdout: string;
  stderr: string;
  /** ms since the epoch: files created or changed since then are searched. */
  since: number;
  cmdlines: Cmdline[];
}

export interface SearchResult {
  places: number;
  hits: Hit[];
  /** Files read, per place (for the test's own sanity checks). */
  files: Record<string, number>;
}

/** Files under `roots` created or changed since `sinceMs` (GNU find -newerct), skipping `prune` (globs). */
async function changedFiles(roots: string[], prune: string[], sinceMs: number): Promise<string[]> {
  const existing = roots.filter((r) => {
    try {
      return statSync(r).isDirectory();
    } catch {
      return false;
    }
  });
  if (!existing.length) return [];
  const pruneExpr = prune.flatMap((p, i) => [...(i ? ['-o'] : []), '-path', p]);
  const args = [...existing, '-xdev', ...(pruneExpr.length ? ['(', ...pruneExpr, ')', '-prune', '-o'] : []), '-type', 'f', '-newerct', `@${(sinceMs / 1000).toFixed(3)}`, '-print0'];
  return new Promise((resolve, reject) => {
    const child = spawn('find', args, { stdio: ['ignore', 'pipe', 'ignore'] });
    const chunks: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => chunks.push(c));
    child.on('error', reject);
    child.on('close', () => resolve(Buffer.concat(chunks).toString().split('\0').filter(Boolean)));
  });
}

/** Every string (and key) of a parsed JSON value, one per line. */
function jsonStrings(v: unknown, out: string[] = []): string[] {
  if (typeof v === 'string') out.push(v);
  else if (Array.isArray(v)) for (const x of v) jsonStrings(x, out);
  else if (v && typeof v === 'object') {
    for (const [k, x] of Object.entries(v)) {
      out.push(k);
      jsonStrings(x, out);
    }
  }
  return out;
}

/** The decoded strings of every JSON line of `text` (stdout with --json; a JSON error on either stream). */
export function jsonEventText(text: string): string {
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const t = line.trim();
    if (!t.startsWith('{')) continue;
    try {
      jsonStrings(JSON.parse(t), out);
    } catch {
      /* not JSON: searched as text on its stream */
    }
  }
  return out.join('\n');
}

export interface LeakSearchOptions {
  info: SandboxInfo;
  /** Paths (prefixes) written on purpose by the test (fixtures, the audit log): never searched. */
  fixtures: string[];
}

/** Searches one run's places; see the file comment. */
export class LeakSearch {
  private readonly hostNs = new Map<string, string>();
  readonly hostNames: string[];

  constructor(private readonly o: LeakSearchOptions) {
    this.hostNames = Object.keys(o.info.hosts);
    for (const [name, h] of Object.entries(o.info.hosts)) this.hostNs.set(netnsOf(h.holderPid), name);
  }

  /** The places searched per run: 8 on the laptop, 3 per host. Stable for a sandbox. */
  placeNames(): string[] {
    return [
      'stdout',
      'stderr',
      'JSON events',
      'laptop checkout',
      'laptop temp dirs',
      'laptop ~/.npm/_logs',
      'laptop /proc/*/cmdline',
      'shared root fs (/etc /root /var/log /opt)',
      ...this.hostNames.flatMap((h) => [`${h} persistent dirs`, `${h} agent log`, `${h} /proc/*/cmdline`]),
    ];
  }

  /** Which place a changed file belongs to, or undefined for a fixture. */
  private placeOf(path: string): string | undefined {
    if (this.o.fixtures.some((f) => path === f || path.startsWith(`${f}/`))) return undefined;
    for (const [name, h] of Object.entries(this.o.info.hosts)) {
      if (path.startsWith(`${h.hostDir}/`)) return path === join(h.hostDir, 'log', 'agent.log') ? `${name} agent log` : `${name} persistent dirs`;
    }
    if (path.startsWith(`${NPM_LOGS}/`)) return 'laptop ~/.npm/_logs';
    if (path.startsWith(`${REPO}/`)) return 'laptop checkout';
    if (TEMP_ROOTS.some((r) => path.startsWith(`${r}/`))) return 'laptop temp dirs';
    return 'shared root fs (/etc /root /var/log /opt)';
  }

  async search(run: SearchInput, canaries: CanarySet): Promise<SearchResult> {
    const places = this.placeNames();
    const hits: Hit[] = [];
    const files: Record<string, number> = {};
    hits.push(...canaries.search('stdout', run.stdout), ...canaries.search('stderr', run.stderr));
    hits.push(...canaries.search('JSON events', `${jsonEventText(run.stdout)}\n${jsonEventText(run.stderr)}`));

    const hostDirs = Object.values(this.o.info.hosts).map((h) => h.hostDir);
    const prune = [...PRUNE, join(REPO, 'node_modules'), join(REPO, '.venv'), join(REPO, '.git'), ...this.o.fixtures];
    // One second of slack: ctime has the filesystem's granularity and the run's first write may share its second.
    const changed = await changedFiles([REPO, ...hostDirs, ...TEMP_ROOTS, ...SHARED_ROOTS], prune, run.since - 1000);
    for (const path of new Set(changed)) {
      const place = this.placeOf(path);
      if (!place) continue;
      let data: Buffer;
      try {
        if (statSync(path).size > MAX_FILE) continue;
        data = readFileSync(path);
      } catch {
        continue; // gone meanwhile, or a socket/fifo
      }
      files[place] = (files[place] ?? 0) + 1;
      hits.push(...canaries.search(place, data, path.startsWith(`${REPO}/`) ? path.slice(REPO.length + 1) : path));
    }

    for (const c of run.cmdlines) {
      const host = this.hostNs.get(c.ns);
      const place = host ? `${host} /proc/*/cmdline` : 'laptop /proc/*/cmdline';
      files[place] = (files[place] ?? 0) + 1;
      const argv = c.raw.toString('latin1').split('\0').filter(Boolean);
      hits.push(...canaries.search(place, c.raw, `${argv[0] ?? '?'} (${argv.length} args)`));
    }
    return { places: places.length, hits, files };
  }
}
