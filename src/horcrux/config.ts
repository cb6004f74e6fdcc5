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
import { SECRETS_DIR, type CosignerHost, type Inventory } from '../inventory/model.ts';
import { shardFileName, ECIES_FILE, thresholdProblem } from './keys.ts';

/** Defaults for the `horcrux:` block (ARCHITECTURE.md "Horcrux"). */
export const HORCRUX_DEFAULTS = {
  home: '/opt/horcrux',
  p2pPort: 2222,
  privValPort: 1234,
  grpcTimeout: '1000ms',
  raftTimeout: '1000ms',
  start: ['systemctl', 'start', 'horcrux'],
  stop: ['systemctl', 'stop', 'horcrux'],
  status: ['systemctl', 'is-active', '--quiet', 'horcrux'],
  keyDirSizeBytes: 1 << 20,
} as const;

/** Everything a task needs to know about one cosigner, defaults filled in. */
export interface CosignerSettings {
  name: string;
  shardId: number;
  /** Horcrux home: config.yaml and state/ (persistent disk). */
  home: string;
  configFile: string;
  stateDir: string;
  /** The tmpfs key dir. */
  keyDir: string;
  /** The two key files in the key dir. */
  keyFiles: { ecies: string; shard: string };
  chainId: string;
  threshold: number;
  /** `tcp://<host>:<port>` other cosigners reach this one at. */
  p2pAddr: string;
  start: string[];
  stop: string[];
  /** Exit 0 when Horcrux is running. */
  status: string[];
  /** Owner/group of the key dir, key files, config.yaml and state/ (default: the SSH user, i.e. unchanged). */
  owner?: string;
  group?: string;
}

function hostForUrl(h: string): string {
  return h.includes(':') && !h.startsWith('[') ? `[${h}]` : h;
}

/** The chain id Horcrux names shard files with (`horcrux.chain_id`, default the network). */
export function horcruxChainId(inv: Inventory): string {
  return inv.horcrux?.chainId ?? inv.network;
}

/**
 * Resolves one cosigner's settings. `undefined` threshold is allowed here (tasks refuse it with a hint); the
 * inventory's `horcrux:` block is optional so node-only inventories need none.
 */
export function cosignerSettings(inv: Inventory, c: CosignerHost): CosignerSettings {
  const h = inv.horcrux;
    const home = c.home ?? h?.home ?? HORCRUX_DEFAULTS.home;
  const chainId = horcruxChainId(inv);
  const p2pHost = c.p2pAddress ?? c.conn.address;
  return {
    name: c.name,
    shardId: c.shardId,
    home,
    configFile: posix.join(home, 'config.yaml'),
    stateDir: posix.join(home, 'state'),
    keyDir: c.keyDir,
    keyFiles: { ecies: posix.join(c.keyDir, ECIES_FILE), shard: posix.join(c.keyDir, shardFileName(chainId)) },
    chainId,
    threshold: h?.threshold ?? 0,
    p2pAddr: `tcp://${hostForUrl(p2pHost)}:${c.p2pPort ?? h?.p2pPort ?? HORCRUX_DEFAULTS.p2pPort}`,
    start: c.start ?? h?.start ?? [...HORCRUX_DEFAULTS.start],
    stop: c.stop ?? h?.stop ?? [...HORCRUX_DEFAULTS.stop],
    status: c.status ?? h?.status ?? [...HORCRUX_DEFAULTS.status],
    ...(h?.owner ? { owner: h.owner } : {}),
    ...(h?.group ? { group: h.group } : {}),
  };
}

/** `privValAddr` of every chain node the cosigners sign for: `horcrux.chain_nodes`, else every validator on `priv_val_port`. */
export function chainNodes(inv: Inventory): string[] {
  if (inv.horcrux?.chainNodes?.length) return [...inv.horcrux.chainNodes];
  const port = inv.horcrux?.privValPort ?? HORCRUX_DEFAULTS.privValPort;
  return inv.nodes.filter((n) => n.role === 'validator').map((n) => `tcp://${hostForUrl(n.conn.address)}:${port}`);
}

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
