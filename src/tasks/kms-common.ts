/**
 * Pure helpers shared by the KMS and Secrets Manager host tasks (kms.decrypt-on-host, sm.fetch-on-host):
 * when jwt.hex on the tmpfs is right, and the operator-side delivery (`kms.decrypt: operator`).
 */
import { act, type Action } from '../core/action.ts';
import type { Plan } from '../core/task.ts';
import { noChange, refuse } from '../core/task.ts';
import type { EngineJwtValue } from '../backends/registry.ts';
import type { JwtFileFact } from '../facts/kms.ts';
import type { MountFact } from '../facts/mount.ts';
import type { Inventory, NodeHost } from '../inventory/model.ts';
import { SECRETS_DIR } from '../inventory/model.ts';
import { JWT_FILE } from '../render/kms-host.ts';

/** Why jwt.hex must be (re)written, or undefined when it is exactly the expected value, mode and owner. */
export function jwtFileProblem(node: NodeHost, jwt: JwtFileFact, expected: EngineJwtValue): string | undefined {
  if (!jwt.exists) return 'jwt.hex is absent';
  if (jwt.sha256 !== expected.secret.fingerprint()) return `jwt.hex holds another value (sha256:${(jwt.sha256 ?? '?').slice(0, 12)})`;
  if (!jwt.isHex64) return 'jwt.hex is not exactly 64 lowercase hex characters';
  if (jwt.mode !== node.jwt.mode) return `jwt.hex has mode ${jwt.mode}, not ${node.jwt.mode}`;
  if (node.jwt.owner && jwt.owner !== node.jwt.owner) return `jwt.hex is owned by ${jwt.owner}, not ${node.jwt.owner}`;
  if (node.jwt.group && jwt.group !== node.jwt.group) return `jwt.hex has group ${jwt.group}, not ${node.jwt.group}`;
  return undefined;
}

/** The checks every host task makes first: the tmpfs is mounted and the backend holds a JWT. */
export function preflight(mount: MountFact | undefined, expected: EngineJwtValue | undefined, seedTask: string): Plan | undefined {
  if (mount?.fsType !== 'tmpfs') return refuse('E_PLAN_CONFLICT', `${SECRETS_DIR} is not a tmpfs mount${mount ? ` (it is ${mount.fsType})` : ''}`, 'run mount.tmpfs first; the JWT never goes to persistent disk');
  if (!expected) return refuse('E_INPUT', 'the backend holds no Engine-API JWT for this node yet', `run ${seedTask} first (playbooks/provision.yml does)`);
  return undefined;
}

/** noChange when jwt.hex is right. */
export function jwtCurrent(node: NodeHost, expected: EngineJwtValue): Plan {
  return noChange(`jwt.hex matches ${expected.source} v${expected.version} (${expected.secret.shortFingerprint()}), mode ${node.jwt.mode}, on tmpfs`);
}

/** `kms.decrypt: operator`: the value the laptop holds in memory, written to the tmpfs over SFTP (mode from the inventory). */
export function operatorDelivery(node: NodeHost, expected: EngineJwtValue, why: string): Action {
  return act.put(
    JWT_FILE,
    expected.secret,
    node.jwt.mode,
    `write jwt.hex (${expected.source} v${expected.version}, ${expected.secret.shortFingerprint()}) decrypted on the operator's machine, over SFTP: ${why}`,
    { owner: node.jwt.owner, group: node.jwt.group },
  );
}

/**
 * The part of kms.decrypt-on-host and sm.fetch-on-host before the host-side fetch: refuse without a tmpfs or
 * a backend value, nothing to do when jwt.hex is right, the laptop delivers with `decrypt: operator`.
 * Returns that plan, or why the host must fetch (with the value it must end up holding).
 */
export function beforeHostFetch(
  node: NodeHost,
  inv: Inventory,
  mount: MountFact | undefined,
  jwt: JwtFileFact,
  expected: EngineJwtValue | undefined,
  seedTask: string,
): { plan: Plan } | { why: string; expected: EngineJwtValue } {
  const pre = preflight(mount, expected, seedTask);
  if (pre || !expected) return { plan: pre! };
  const why = jwtFileProblem(node, jwt, expected);
  if (!why) return { plan: jwtCurrent(node, expected) };
  if (inv.kms?.decrypt === 'operator') return { plan: { kind: 'change', actions: [operatorDelivery(node, expected, why)] } };
  return { why, expected };
}
