/**
 * Shared, pure helpers of the cosigner tasks (cosigner.* and horcrux.*): narrowing a host to a cosigner, and
 * judging the key dir and the cosigner's Vault Agent against the backend's fingerprints.
 */
import { posix } from 'node:path';
import { shortFingerprint } from '../core/secret.ts';
import type { CosignerHost, Host } from '../inventory/model.ts';
import type { CosignerSettings } from '../horcrux/config.ts';
import type { CosignerAgentFact, KeyDirFact } from '../horcrux/facts.ts';
import type { StoredFingerprints } from '../horcrux/store.ts';
import type { HorcruxKind } from '../backends/vault-paths.ts';

/** Narrow a host to a cosigner (tasks with `appliesTo: 'cosigner'` only ever see cosigners). */
export function asCosigner(h: Host): CosignerHost {
  if (h.kind !== 'cosigner') throw new Error(`internal: ${h.name} is not a cosigner`);
  return h;
}

/** How each key file in the key dir compares with the backend. */
export interface KeyFileStatus {
  kind: HorcruxKind;
  name: string;
  /** Present as a regular file. */
  present: boolean;
  /** SHA-256 equals the stored value's. */
  matches: boolean;
  mode?: string;
  owner?: string;
}

export function keyFileStatus(k: KeyDirFact, stored: StoredFingerprints, s: CosignerSettings): KeyFileStatus[] {
  return (['ecies', 'shard'] as const).map((kind) => {
    const name = posix.basename(s.keyFiles[kind]);
    const e = k.entries.find((x) => x.name === name && x.type === 'file');
    const want = stored[kind]?.fingerprint;
    return { kind, name, present: !!e, matches: !!e && !!want && e.sha256 === want, mode: e?.mode, owner: e?.owner };
  });
}

/** `ecies_keys.json and 473374_shard.json are not rendered` / `… differs from the backend`, or undefined when both match. */
export function keysMismatch(k: KeyDirFact, stored: StoredFingerprints, s: CosignerSettings): string | undefined {
  const st = keyFileStatus(k, stored, s);
  const missing = st.filter((x) => !x.present).map((x) => x.name);
  const differ = st.filter((x) => x.present && !x.matches).map((x) => x.name);
  if (missing.length) return `${missing.join(' and ')} ${missing.length > 1 ? 'are' : 'is'} not rendered`;
  if (differ.length) return `${differ.join(' and ')} ${differ.length > 1 ? 'differ' : 'differs'} from the backend`;
  return undefined;
}

/**
 * Why the cosigner's Vault Agent must be (re)started with a fresh secret_id, or undefined when it is fine.
 * Daemon mode: running, holding a token, started after its config and templates were last written, and the
 * key files match the backend. Oneshot mode: only the key files matter (the agent exits after rendering).
 */
export function cosignerAgentRestartReason(mode: 'daemon' | 'oneshot', a: CosignerAgentFact, k: KeyDirFact, stored: StoredFingerprints, s: CosignerSettings): string | undefined {
  const keys = keysMismatch(k, stored, s);
  if (mode === 'oneshot') return keys;
  if (!a.running) return 'the agent is not running';
  if (!a.tokenSink) return 'the agent holds no token';
  if (a.configMtime !== undefined && a.startedAt !== undefined && a.configMtime > a.startedAt) return 'its config or templates changed after it started';
  return keys;
}

/** `ecies_keys.json v1 (sha256:ab12…)`, for reasons. */
export function describeStored(stored: StoredFingerprints, s: CosignerSettings): string {
  return (['ecies', 'shard'] as const)
    .map((kind) => {
      const v = stored[kind];
      return `${posix.basename(s.keyFiles[kind])} = ${v ? `${v.source} v${v.version} (${shortFingerprint(v.fingerprint)})` : 'absent'}`;
    })
    .join(', ');
}

/** The import hint when the backend holds no key files for a cosigner. */
export function missingKeysHint(): string {
  return 'import the key generation output first: krypton-secrets import-horcrux <dir> -i <inventory>';
}
