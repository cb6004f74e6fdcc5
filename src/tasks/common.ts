/**
 * Pure helpers shared by the tasks: narrowing a host, judging each host secret's file against the store's
 * fingerprint, and judging the host's Vault Agent. The same for nodes and cosigners: a host's secrets come from
 * `hostSecrets` (src/model/layout.ts).
 */
import { z } from 'zod';
import { shortFingerprint } from '../core/secret.ts';
import type { CosignerHost, Host, NodeHost } from '../model/inventory.ts';
import { KIND_SPECS, describeRef, type HostSecret } from '../model/layout.ts';
import { refuse, type Plan } from '../model/task.ts';
import type { AgentFact, SecretFileFact, StoredFingerprint } from '../facts/secrets.ts';
import type { MountFact } from '../facts/mount.ts';

/** Params schema of tasks that take none. */
export const noParams = z.strictObject({}).prefault({});


/** Narrow a host to a node (tasks with `appliesTo: 'node'` only ever see nodes). */
export function asNode(h: Host): NodeHost {
  if (h.kind !== 'node') throw new Error(`internal: ${h.name} is not a node`);
  return h;
}

/** Narrow a host to a cosigner (tasks with `appliesTo: 'cosigner'` only ever see cosigners). */
export function asCosigner(h: Host): CosignerHost {
  if (h.kind !== 'cosigner') throw new Error(`internal: ${h.name} is not a cosigner`);
  return h;
}

/** `jwt.hex` for people: the file's base name. */
export function fileName(s: Pick<HostSecret, 'path'>): string {
  return s.path.slice(s.path.lastIndexOf('/') + 1);
}

/** The refusal when the store holds nothing for some of the host's secrets (the first one's hint). */
export function refuseMissing(host: Host, secrets: readonly HostSecret[], stored: Readonly<Record<string, StoredFingerprint | undefined>>): Plan | undefined {
  const missing = secrets.filter((s) => !stored[s.name]);
  if (!missing.length) return undefined;
  return refuse('E_INPUT', `the store holds no ${missing.map((s) => describeRef(s.ref).replace(/^the /, '')).join(' and no ')} (needed on ${host.name})`, KIND_SPECS[missing[0]!.ref.kind].missingHint);
}

/** Why the file's content must be (re)written, or undefined when it holds the stored value. */
export function contentProblem(s: HostSecret, live: SecretFileFact | undefined, want: StoredFingerprint): string | undefined {
  if (!live?.exists) return `${fileName(s)} is absent`;
  if (live.sha256 !== want.fingerprint) return `${fileName(s)} holds another value (${live.sha256 ? shortFingerprint(live.sha256) : 'unreadable'})`;
  if (s.format === 'hex64' && live.isHex64 === false) return `${fileName(s)} is not exactly 64 lowercase hex characters`;
  return undefined;
}

/** Why the file's mode/owner/group must be put back (content is right), or undefined. */
export function metaProblem(s: HostSecret, live: SecretFileFact): string | undefined {
  if (live.mode !== s.mode) return `${fileName(s)} has mode ${live.mode}, not ${s.mode}`;
  if (s.owner && live.owner !== s.owner && !/^\d+$/.test(s.owner)) return `${fileName(s)} is owned by ${live.owner}, not ${s.owner}`;
  if (s.group && live.group !== s.group && !/^\d+$/.test(s.group)) return `${fileName(s)} has group ${live.group}, not ${s.group}`;
  return undefined;
}

/** `jwt.hex = secret/krypton/473374/engine-jwt v3 (sha256:ab12…)`, for reasons. */
export function describeStored(secrets: readonly HostSecret[], stored: Readonly<Record<string, StoredFingerprint | undefined>>): string {
  return secrets
    .map((s) => {
      const v = stored[s.name];
      return `${fileName(s)} = ${v ? `${v.source} v${v.version} (${shortFingerprint(v.fingerprint)})` : 'absent'}`;
    })
    .join(', ');
}

/** The first content problem among the host's secrets, or undefined when every file holds its stored value. */
export function firstContentProblem(
  secrets: readonly HostSecret[],
  files: Readonly<Record<string, SecretFileFact>>,
  stored: Readonly<Record<string, StoredFingerprint | undefined>>,
): string | undefined {
  for (const s of secrets) {
    const want = stored[s.name];
    if (!want) return `${fileName(s)}: nothing stored`;
    const p = contentProblem(s, files[s.name], want);
    if (p) return p;
  }
  return undefined;
}

/**
 * Why the host's Vault Agent must be (re)started with a fresh secret_id, or undefined when it is fine. Daemon
 * mode: the agent must be running, hold a token, have started after its config and templates were last written,
 * and have rendered every stored value. Oneshot mode: only the rendered files matter (the agent exits).
 */
export function agentRestartReason(
  mode: 'daemon' | 'oneshot',
  a: AgentFact,
  secrets: readonly HostSecret[],
  files: Readonly<Record<string, SecretFileFact>>,
  stored: Readonly<Record<string, StoredFingerprint | undefined>>,
): string | undefined {
  const content = firstContentProblem(secrets, files, stored);
  if (mode === 'oneshot') {
    if (a.running) return 'an agent is still running (oneshot mode runs it only to render)';
    if (a.tokenSink) return 'a token sink is left on the host (oneshot mode keeps no token)';
    return content;
  }
  if (!a.running) return 'the agent is not running';
  if (!a.tokenSink) return 'the agent holds no token';
  if (a.configMtime !== undefined && a.startedAt !== undefined && a.configMtime > a.startedAt) return 'its config or templates changed after it started';
  return content;
}

/** The refusal when `dir` is not a tmpfs mount (nothing secret is ever written to persistent disk). */
export function refuseNotTmpfs(dir: string, mount: Pick<MountFact, 'fsType'> | undefined): Plan | undefined {
  if (mount?.fsType === 'tmpfs') return undefined;
  return refuse('E_PLAN_CONFLICT', `${dir} is not a tmpfs mount${mount ? ` (it is ${mount.fsType})` : ''}`, 'run mount.tmpfs first; secrets never go to persistent disk');
}

/** `owner:group`, `owner`, `:group`, or undefined. */
export function ownerSpec(s: Pick<HostSecret, 'owner' | 'group'>): string | undefined {
  if (s.owner) return `${s.owner}${s.group ? `:${s.group}` : ''}`;
  return s.group ? `:${s.group}` : undefined;
}
