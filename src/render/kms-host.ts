/**
 * What the KMS and Secrets Manager backends put on a node, as pure functions of the inventory: the encryption
 * context of a blob, where the blob and the secret live, the fixed host-side fetch script (run as
 * `sh -c <script> sh <args…>`, every value a positional argument), and the boot-time script + systemd unit
 * that fetch the JWT again before el/cl start after a reboot. Nothing here holds or produces a secret.
 *
 * Debian's awscli v2 is `/usr/bin/aws` (another `aws` may come first on PATH); it ignores AWS_ENDPOINT_URL,
 * so the endpoint is passed with `--endpoint-url`; `kms decrypt --output text` prints the plaintext base64.
 */
import { SECRETS_DIR, type Inventory, type NodeHost } from '../inventory/model.ts';
import { shellQuote } from '../transport/transport.ts';

/** The AWS CLI the hosts run (absolute: another `aws` may be first on PATH). */
export const HOST_AWS_CLI = '/usr/bin/aws';

/** `purpose` of the Engine-API JWT blob's encryption context. */
export const ENGINE_JWT_PURPOSE = 'krypton-engine-jwt';

/** The Engine-API JWT file on the tmpfs (the same path the Vault backend renders). */
export const JWT_FILE = `${SECRETS_DIR}/jwt.hex`;

/** Where the boot-time step lives on a node. */
export const BOOT_FILES = {
  script: '/usr/local/sbin/krypton-secrets-boot',
  unitName: 'krypton-secrets-boot.service',
  unitDir: '/etc/systemd/system',
} as const;

/** True when the inventory asks for one JWT per node (`kms.per_node`). */
export function kmsPerNode(inv: Inventory): boolean {
  return inv.kms?.perNode === true;
}

/**
 * The encryption context the node's Engine-API JWT blob is bound to: `purpose`, `network`, and `node` with
 * `kms.per_node`. KMS requires the identical context (case-sensitive) to decrypt.
 */
export function engineJwtContext(inv: Inventory, node?: string): Record<string, string> {
  const ctx: Record<string, string> = { purpose: ENGINE_JWT_PURPOSE, network: inv.network };
  if (kmsPerNode(inv)) {
    if (!node) throw new Error('internal: kms.per_node needs a node name for the encryption context');
    ctx['node'] = node;
  }
  return ctx;
}

/** `purpose=krypton-engine-jwt, network=473374[, node=val-1]` for messages. */
export function describeContext(ctx: Record<string, string>): string {
  return Object.entries(ctx)
    .map(([k, v]) => `${k}=${v}`)
    .join(', ');
}

/** The blob on the node: `<kms.blob_dir>/jwt.hex.enc` (not secret; persistent disk is fine). */
export function hostBlobPath(inv: Inventory): string {
  return `${inv.kms?.blobDir ?? '/opt/krypton/secrets'}/jwt.hex.enc`;
}

/** Secrets Manager name of the JWT a node uses: `krypton/<network>/engine-jwt`, or `krypton/<network>/nodes/<node>/engine-jwt` per node. */
export function smSecretName(inv: Inventory, node?: string): string {
  if (kmsPerNode(inv)) {
    if (!node) throw new Error('internal: kms.per_node needs a node name for the secret name');
    return `krypton/${inv.network}/nodes/${node}/engine-jwt`;
  }
  return `krypton/${inv.network}/engine-jwt`;
}

/** Secrets Manager VersionId krypton-secrets gives version `n` (ClientRequestToken: 32–64 characters). */
export function smVersionId(n: number): string {
  return `krypton-engine-jwt-v${String(n).padStart(13, '0')}`;
}

/** The version number of a VersionId written by {@link smVersionId}; undefined for any other id. */
export function parseSmVersionId(id: string | undefined): number | undefined {
  const m = id ? /^krypton-engine-jwt-v(\d{13})$/.exec(id) : null;
  return m ? Number(m[1]) : undefined;
}

/** Where the AWS CLI on the host sends requests: the KMS/Secrets Manager region and, when set, the endpoint. */
export interface AwsTarget {
  region: string;
  endpointUrl?: string;
}

/** Exit codes of {@link FETCH_SCRIPT} (documented: the apply step and the boot unit's journal name them). */
export const FETCH_EXIT = {
  /** The aws CLI failed; its error is on stderr. */
  aws: 2,
  /** The target dir is not a tmpfs: nothing written. */
  notTmpfs: 3,
  /** The value is not exactly 64 lowercase hex characters: nothing written. */
  notHex: 4,
  /** The value's SHA-256 differs from the one the operator expects: nothing written. */
  fingerprint: 5,
} as const;

/**
 * The host-side fetch, a fixed POSIX sh script run as `sh -c FETCH_SCRIPT sh <out> <mode> <owner> <group>
 * <sha256> <decode> <aws argv…>`. It refuses unless the output's directory is a tmpfs, runs the aws CLI with
 * its argv (the secret comes back on stdout into a shell variable, never into an argv or a file on disk),
 * decodes it (`base64` for `kms decrypt`, `text` for `secretsmanager get-secret-value`) into a temp file in
 * the same tmpfs created under umask 077, checks it is exactly 64 lowercase hex characters and, when
 * `<sha256>` is not empty, that its SHA-256 is that one; then chmod/chown and rename over `<out>`. On any
 * failure the temp file is removed and `<out>` is left as it was. Exit codes: {@link FETCH_EXIT}.
 */
export const FETCH_SCRIPT = [
  'set -u',
  'out=$1 mode=$2 owner=$3 group=$4 want=$5 decode=$6',
  'shift 6',
  'dir=${out%/*}',
  'fs=$(stat -f -c %T -- "$dir" 2>/dev/null) || fs=missing',
  `if [ "$fs" != tmpfs ]; then echo "krypton-secrets: $dir is not a tmpfs ($fs); nothing written" >&2; exit ${FETCH_EXIT.notTmpfs}; fi`,
  'umask 077',
  'tmp="$dir/.jwt.hex.tmp.$$"',
  "trap 'rm -f -- \"$tmp\"' EXIT",
  "trap 'exit 129' HUP INT TERM",
  `val=$("$@") || exit ${FETCH_EXIT.aws}`,
  'case $decode in',
  `  base64) printf '%s' "$val" | base64 -d > "$tmp" 2>/dev/null || { val=; echo "krypton-secrets: the plaintext KMS returned is not base64; nothing written" >&2; exit ${FETCH_EXIT.notHex}; } ;;`,
  `  *) printf '%s' "$val" > "$tmp" ;;`,
  'esac',
  'val=',
  `if [ "$(wc -c < "$tmp")" -ne 64 ] || ! grep -qxE '[0-9a-f]{64}' "$tmp"; then echo "krypton-secrets: the value is not exactly 64 lowercase hex characters; nothing written" >&2; exit ${FETCH_EXIT.notHex}; fi`,
  `if [ -n "$want" ] && [ "$(sha256sum < "$tmp" | cut -d' ' -f1)" != "$want" ]; then echo "krypton-secrets: the value's SHA-256 is not the expected $want; nothing written" >&2; exit ${FETCH_EXIT.fingerprint}; fi`,
  'chmod -- "$mode" "$tmp"',
  'if [ -n "$owner$group" ]; then chown -- "$owner${group:+:$group}" "$tmp"; fi',
  'mv -f -- "$tmp" "$out"',
].join('\n');

/** The aws CLI argv (after the binary) that decrypts the host's blob under its encryption context. */
export function kmsDecryptArgs(blobPath: string, ctx: Record<string, string>, target: AwsTarget): string[] {
  return [
    'kms',
    'decrypt',
    '--ciphertext-blob',
    `fileb://${blobPath}`,
    '--encryption-context',
    JSON.stringify(ctx),
    '--region',
    target.region,
    ...(target.endpointUrl ? ['--endpoint-url', target.endpointUrl] : []),
    '--query',
    'Plaintext',
    '--output',
    'text',
  ];
}

/** The aws CLI argv (after the binary) that reads the secret's current (or given) version. */
export function smGetArgs(secretName: string, target: AwsTarget, versionId?: string): string[] {
  return [
    'secretsmanager',
    'get-secret-value',
    '--secret-id',
    secretName,
    ...(versionId ? ['--version-id', versionId] : []),
    '--region',
    target.region,
    ...(target.endpointUrl ? ['--endpoint-url', target.endpointUrl] : []),
    '--query',
    'SecretString',
    '--output',
    'text',
  ];
}

/** What the fetch writes and how. */
export interface FetchSpec {
  backend: 'kms' | 'secrets-manager';
  out: string;
  mode: string;
  owner?: string;
  group?: string;
  /** Full SHA-256 the value must have ('' or undefined: any valid 64-hex value). */
  sha256?: string;
  /** The aws CLI argv after the binary ({@link kmsDecryptArgs} / {@link smGetArgs}). */
  awsArgs: string[];
}

/** The positional arguments of {@link FETCH_SCRIPT}. */
export function fetchScriptArgs(s: FetchSpec): string[] {
  return [s.out, s.mode, s.owner ?? '', s.group ?? '', s.sha256 ?? '', s.backend === 'kms' ? 'base64' : 'text', HOST_AWS_CLI, ...s.awsArgs];
}

/** The full argv of an apply-time fetch: `sh -c FETCH_SCRIPT sh <args…>`. */
export function fetchArgv(s: FetchSpec): string[] {
  return ['sh', '-c', FETCH_SCRIPT, 'sh', ...fetchScriptArgs(s)];
}

/** The fetch a node runs at boot: the current blob / the secret's AWSCURRENT version, no fingerprint pin. */
export function bootFetchSpec(inv: Inventory, node: NodeHost, target: AwsTarget): FetchSpec {
  const awsArgs =
    inv.backend === 'secrets-manager'
      ? smGetArgs(smSecretName(inv, node.name), target)
      : kmsDecryptArgs(hostBlobPath(inv), engineJwtContext(inv, node.name), target);
  return { backend: inv.backend === 'secrets-manager' ? 'secrets-manager' : 'kms', out: JWT_FILE, mode: node.jwt.mode, owner: node.jwt.owner, group: node.jwt.group, awsArgs };
}

/** Options of the boot-time step (task params). */
export interface BootOptions {
  /** Bytes of the tmpfs the script mounts when nothing is mounted yet (as mount.tmpfs does). */
  tmpfsSizeBytes: number;
  /** Attempts when the aws CLI fails (KMS may be unreachable for a moment after boot), 2 s apart. */
  attempts: number;
  /** Units that start el and cl: ordered after this one, and not started when it fails. */
  before: string[];
}

/**
 * `/usr/local/sbin/krypton-secrets-boot`: mounts the secrets tmpfs when it is not mounted (size, mode 0700,
 * nosuid,nodev,noexec, noswap where the kernel has it) and runs {@link FETCH_SCRIPT} with this node's
 * arguments, retrying when the aws CLI fails. Exits non-zero when the JWT could not be put in place, so the
 * unit fails and el/cl do not start on a missing file (geth would silently make a new secret). No secret.
 */
export function renderBootScript(inv: Inventory, node: NodeHost, target: AwsTarget, o: BootOptions): string {
  const spec = bootFetchSpec(inv, node, target);
  const source = inv.backend === 'secrets-manager' ? `Secrets Manager ${smSecretName(inv, node.name)}` : `the KMS blob ${hostBlobPath(inv)} (context ${describeContext(engineJwtContext(inv, node.name))})`;
  const opts = `size=${o.tmpfsSizeBytes},mode=700,nosuid,nodev,noexec`;
  return [
    '#!/bin/sh',
    `# krypton-secrets boot step for ${node.name} (network ${inv.network}), rendered by krypton-secrets. No secret in here.`,
    `# Before el and cl start: mount ${SECRETS_DIR} (tmpfs) and put the Engine-API JWT from`,
    `# ${source} into ${JWT_FILE} with this host's AWS identity (${HOST_AWS_CLI}).`,
    '# Exit status: 0 done; 2 the aws CLI failed (message above); 3 not a tmpfs; 4 not 64 lowercase hex.',
    'set -u',
    `d=${shellQuote(SECRETS_DIR)}`,
    'if ! mountpoint -q "$d"; then',
    '  mkdir -p -m 0700 "$d" || exit 3',
    `  mount -t tmpfs -o ${opts},noswap krypton-secrets "$d" 2>/dev/null || mount -t tmpfs -o ${opts} krypton-secrets "$d" || exit 3`,
    'fi',
    `fetch=${shellQuote(FETCH_SCRIPT)}`,
    `set -- ${fetchScriptArgs(spec).map(shellQuote).join(' ')}`,
    'n=0',
    'while :; do',
    '  sh -c "$fetch" sh "$@"; rc=$?',
    `  n=$((n + 1)); if [ "$rc" -ne ${FETCH_EXIT.aws} ] || [ "$n" -ge ${o.attempts} ]; then break; fi`,
    '  sleep 2',
    'done',
    `[ "$rc" -eq 0 ] && echo "krypton-secrets: ${JWT_FILE} is in place" >&2`,
    'exit "$rc"',
    '',
  ].join('\n');
}

/**
 * The systemd unit that runs the boot script once per boot after the network is up and before the units that
 * start el and cl (`before`, default docker.service), which also require it: when the JWT cannot be put in
 * place they do not start. Enabled by links in `multi-user.target.wants/` and `<unit>.requires/`.
 */
export function renderBootUnit(inv: Inventory, node: NodeHost, o: BootOptions): string {
  return [
    `# krypton-secrets boot step for ${node.name} (network ${inv.network}), rendered by krypton-secrets. No secret in here.`,
    '[Unit]',
    'Description=krypton-secrets: Engine-API JWT into /run/krypton-secrets before el and cl start',
    'Wants=network-online.target',
    'After=network-online.target',
    ...(o.before.length ? [`Before=${o.before.join(' ')}`] : []),
    '',
    '[Service]',
    'Type=oneshot',
    'RemainAfterExit=yes',
    `ExecStart=${BOOT_FILES.script}`,
    '',
    '[Install]',
    'WantedBy=multi-user.target',
    ...(o.before.length ? [`RequiredBy=${o.before.join(' ')}`] : []),
    '',
  ].join('\n');
}

/** The enablement links `systemctl enable` would make for the unit: `<dir>/<target>.{wants,requires}/<unit>`. */
export function bootUnitLinks(o: Pick<BootOptions, 'before'>, unitDir: string = BOOT_FILES.unitDir): string[] {
  return [`${unitDir}/multi-user.target.wants/${BOOT_FILES.unitName}`, ...o.before.map((u) => `${unitDir}/${u}.requires/${BOOT_FILES.unitName}`)];
}
