/**
 * A Horcrux cosigner's non-secret settings, resolved in one place from the inventory (`horcrux:` block
 * defaults, then the cosigner's own values), the checks on them, and its `config.yaml`.
 *
 * config.yaml follows Horcrux v3's on-disk format (signer/config.go): `keyDir`, `signMode: threshold`,
 * `thresholdMode: {threshold, cosigners: [{shardID, p2pAddr}], grpcTimeout, raftTimeout}`,
 * `chainNodes: [{privValAddr}]`. Horcrux itself refuses a `0.0.0.0` peer and a threshold not above half the
 * shards; we refuse those (and loopback peers, and layouts that would put `state/` on the tmpfs) before
 * anything is written.
 */
import { posix } from 'node:path';
import { SECRETS_DIR, type CosignerHost, type Inventory } from '../model/inventory.ts';
import { HORCRUX_DEFAULTS, chainNodes, cosignerSettings, type CosignerSettings } from '../model/layout.ts';
import { thresholdProblem } from './keys.ts';

const UNSPECIFIED = /^(0\.0\.0\.0|::|\[::\]|0+(\.0+){0,3}|\[?0*:0*:0*:0*:0*:0*:0*:0*\]?)$/;
const LOOPBACK = /^(127\.\d+\.\d+\.\d+|localhost|::1|\[::1\])$/i;

/** Why a peer address is unusable by the other cosigners, or undefined when it is fine. */
export function peerAddressProblem(p2pAddr: string): string | undefined {
  let url: URL;
  try {
    url = new URL(p2pAddr);
  } catch {
    return `${p2pAddr} is not a tcp://host:port address`;
  }
  const host = url.hostname;
  if (url.protocol !== 'tcp:' || !host || !url.port) return `${p2pAddr} is not a tcp://host:port address`;
  if (UNSPECIFIED.test(host)) return `${p2pAddr} is the unspecified address: other cosigners cannot dial it (Horcrux refuses 0.0.0.0 peers)`;
  if (LOOPBACK.test(host)) return `${p2pAddr} is a loopback address: other cosigners cannot dial it`;
  return undefined;
}

function within(child: string, parent: string): boolean {
  const rel = posix.relative(parent, child);
  return rel === '' || (!rel.startsWith('..') && !posix.isAbsolute(rel));
}

/**
 * Static layout checks: the key dir becomes a tmpfs, so it must not be (or contain) the home or `state/`
 * (double-sign high-water marks must survive a reboot), must not sit inside `state/`, and must not overlap the
 * agent's own tmpfs (`/run/krypton-secrets`).
 */
export function layoutProblems(s: CosignerSettings): string[] {
  const out: string[] = [];
  const keyDir = posix.normalize(s.keyDir);
  if (keyDir === '/') out.push('key_dir is /');
  if (within(s.home, keyDir)) out.push(`key_dir ${s.keyDir} would put the Horcrux home ${s.home} (config.yaml, state/) on the tmpfs; state/ must stay on persistent disk`);
  else if (within(s.stateDir, keyDir)) out.push(`key_dir ${s.keyDir} would put ${s.stateDir} on the tmpfs; state/ must stay on persistent disk`);
  if (within(keyDir, s.stateDir)) out.push(`key_dir ${s.keyDir} is inside ${s.stateDir}: keep keys (tmpfs) and state (persistent disk) apart`);
  if (within(keyDir, SECRETS_DIR) || within(SECRETS_DIR, keyDir)) out.push(`key_dir ${s.keyDir} overlaps ${SECRETS_DIR}, where the Vault Agent keeps its own files`);
  return out;
}

/** A problem with the inventory's Horcrux settings, with the inventory path it belongs to (for file:line:col). */
export interface InventoryProblem {
  path: (string | number)[];
  message: string;
}

/**
 * Every static problem with the inventory's cosigners: threshold vs shard count, shard ids 1..n, peer
 * addresses, key dir / home layout. Empty when there are no cosigners.
 */
export function horcruxInventoryProblems(inv: Inventory): InventoryProblem[] {
  const out: InventoryProblem[] = [];
  const n = inv.cosigners.length;
  if (n === 0 || !inv.horcrux) return out;
  const tp = thresholdProblem(inv.horcrux.threshold, n);
  if (tp) out.push({ path: ['horcrux', 'threshold'], message: tp });
  const ids = inv.cosigners.map((c) => c.shardId).sort((a, b) => a - b);
  if (ids.some((id, i) => id !== i + 1)) {
    out.push({ path: ['cosigners'], message: `shard ids must be 1..${n}, one per cosigner (Horcrux numbers cosigners 1..n); found ${ids.join(', ')}` });
  }
  const peers = new Map<string, string>();
  for (const c of inv.cosigners) {
    const s = cosignerSettings(inv, c);
    const pp = peerAddressProblem(s.p2pAddr);
    if (pp) out.push({ path: ['cosigners', c.name, c.p2pAddress ? 'p2p_address' : 'address'], message: `${c.name}: ${pp}` });
    const other = peers.get(s.p2pAddr);
    if (other) out.push({ path: ['cosigners', c.name], message: `${c.name} has the same p2p address as ${other} (${s.p2pAddr})` });
    peers.set(s.p2pAddr, c.name);
    for (const m of layoutProblems(s)) out.push({ path: ['cosigners', c.name, 'key_dir'], message: `${c.name}: ${m}` });
  }
  for (const [i, a] of chainNodes(inv).entries()) {
    try {
      const u = new URL(a);
      if (u.protocol !== 'tcp:' || !u.hostname || !u.port) throw new Error();
    } catch {
      out.push({ path: ['horcrux', 'chain_nodes', i], message: `chain node ${a} is not a tcp://host:port address` });
    }
  }
  return out;
}

/** Double-quoted YAML scalar (JSON strings are valid YAML). */
const q = (s: string): string => JSON.stringify(s);

/**
 * `config.yaml` for one cosigner (Horcrux v3 threshold mode). Not secret. Deterministic, so a byte compare of
 * the live file decides whether to write.
 */
export function renderHorcruxConfig(inv: Inventory, c: CosignerHost): string {
  const s = cosignerSettings(inv, c);
  const all = [...inv.cosigners].sort((a, b) => a.shardId - b.shardId).map((x) => cosignerSettings(inv, x));
  const lines = [
    `# Horcrux config for ${c.name} (shard ${s.shardId} of ${all.length}, chain ${s.chainId}), rendered by krypton-secrets. Contains no secret.`,
    `# The key files in keyDir come from Vault/KMS into a tmpfs; state/ stays on persistent disk.`,
    `keyDir: ${q(s.keyDir)}`,
    'signMode: threshold',
    'thresholdMode:',
    `  threshold: ${s.threshold}`,
    '  cosigners:',
    ...all.flatMap((x) => [`    - shardID: ${x.shardId}`, `      p2pAddr: ${q(x.p2pAddr)}`]),
    `  grpcTimeout: ${q(inv.horcrux?.grpcTimeout ?? HORCRUX_DEFAULTS.grpcTimeout)}`,
    `  raftTimeout: ${q(inv.horcrux?.raftTimeout ?? HORCRUX_DEFAULTS.raftTimeout)}`,
    'chainNodes:',
    ...chainNodes(inv).map((a) => `  - privValAddr: ${q(a)}`),
    'debugAddr: ""',
    'grpcAddr: ""',
    '',
  ];
  return lines.join('\n');
}
