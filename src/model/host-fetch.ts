/**
 * The one host-side fetch of a secret (KMS blob or Secrets Manager secret, every kind), as pure data: a fixed
 * POSIX sh script and the argv that runs it. Nothing here holds or produces a secret: the argv carries paths,
 * an encryption context, a secret name, a digest — the value itself only ever exists on the host, on the aws
 * CLI's stdout, in a shell variable and in the tmpfs file.
 *
 * Run as `sh -c FETCH_SCRIPT sh <out> <mode> <owner> <group> <sha256> <decode> <format> <aws argv…>`
 * ({@link fetchArgv}; the boot-time step embeds the same script with {@link fetchScriptArgs}). Exit codes:
 * {@link FETCH_EXIT}.
 *
 * Debian's awscli v2 is `/usr/bin/aws` (another `aws` may come first on PATH) and ignores AWS_ENDPOINT_URL,
 * so the endpoint is passed with `--endpoint-url`; `kms decrypt --query Plaintext --output text` prints the
 * plaintext base64, `secretsmanager get-secret-value --query SecretString --output text` the string itself,
 * each followed by one newline. Debian's awscli depends on python3, which turns a JSON SecretString into the
 * env file (`env-json`).
 */
import type { Host, Inventory } from './inventory.ts';
import { encryptionContext, hostBlobPath, smSecretName, type HostSecret, type SecretFormat } from './layout.ts';
import type { AwsTarget } from './store.ts';

/** The AWS CLI the hosts run (absolute: another `aws` may be first on PATH). */
export const HOST_AWS_CLI = '/usr/bin/aws';

/**
 * How the aws CLI's stdout becomes the file's bytes:
 * - `base64`: KMS Decrypt's Plaintext (`--output text` prints it base64);
 * - `text`: a Secrets Manager SecretString that is the value itself (hex64, json);
 * - `env-json`: a Secrets Manager SecretString holding a JSON object of strings, rendered on the host by
 *   python3 as the canonical env file (sorted `NAME='value'` lines, `'` as `\'`: exactly `renderEnvFile`).
 */
export type FetchDecode = 'base64' | 'text' | 'env-json';

/** Exit codes of {@link FETCH_SCRIPT} (the apply step and the boot unit's journal name them). */
export const FETCH_EXIT = {
  /** The aws CLI failed; its error is on stderr. */
  aws: 2,
  /** The output's directory is not a tmpfs: nothing written. */
  notTmpfs: 3,
  /** The value is not valid for its format (or not base64 / not a JSON object of strings): nothing written. */
  badValue: 4,
  /** The value's SHA-256 differs from the one the operator expects: nothing written. */
  fingerprint: 5,
  /** `env-json` needs python3 and the host has none: nothing fetched. */
  noPython: 6,
  /** The output path is a symlink or a directory: nothing written. */
  target: 7,
  /** Creating, chmod/chown or renaming the file failed: the old file is left as it was. */
  write: 8,
  /** The script was called with wrong arguments (a bug on the laptop side). */
  usage: 9,
} as const;

export type FetchExitCode = (typeof FETCH_EXIT)[keyof typeof FETCH_EXIT];

/** What an exit code of the fetch means, in words (for messages; undefined for an unknown code). */
export function describeFetchExit(code: number): string | undefined {
  switch (code) {
    case FETCH_EXIT.aws:
      return 'the aws CLI failed';
    case FETCH_EXIT.notTmpfs:
      return 'the target directory is not a tmpfs';
    case FETCH_EXIT.badValue:
      return 'the fetched value is not valid for its format';
    case FETCH_EXIT.fingerprint:
      return "the fetched value's SHA-256 is not the expected one";
    case FETCH_EXIT.noPython:
      return 'python3 is missing on the host';
    case FETCH_EXIT.target:
      return 'the target path is a symlink or a directory';
    case FETCH_EXIT.write:
      return 'writing the file failed';
    case FETCH_EXIT.usage:
      return 'the fetch was called with wrong arguments';
    default:
      return undefined;
  }
}

/**
 * python3 program of `env-json`: stdin = the SecretString, stdout = the canonical env file; exit
 * {@link FETCH_EXIT.badValue} with a message naming names and problems, never a value (every decode/encode
 * error is caught: Python's own messages quote the offending characters). Mirrors `renderEnvFile`,
 * `envNameProblem` and `envValueProblem` of formats.ts. Holds no single quote: it travels in a sh `'…'` string.
 */
const ENV_JSON_PY = String.raw`import json, re, sys
q = chr(39)
def no(m):
    sys.stderr.write("krypton-secrets: " + m + "; nothing written\n")
    sys.exit(${FETCH_EXIT.badValue})
try:
    d = json.loads(sys.stdin.buffer.read().decode("utf-8"))
except Exception:
    no("the secret is not a JSON object of variables")
if not isinstance(d, dict) or not all(isinstance(v, str) for v in d.values()):
    no("the secret is not a JSON object whose values are all strings")
bad = []
for k in sorted(d):
    v = d[k]
    if not re.fullmatch("[A-Za-z_][A-Za-z0-9_]*", k):
        bad.append("a name that is not a variable name (expected [A-Za-z_][A-Za-z0-9_]*)")
    elif k == "JWT_PATH":
        bad.append("JWT_PATH would shadow the JWT_PATH krypton-secrets manages")
    elif re.search("[\r\n\x00]", v) or ("\\" + q) in v or v.endswith("\\"):
        bad.append(k + ": the value cannot go into a compose env file literally (line break, NUL or backslash)")
if bad:
    no("; ".join(bad))
try:
    out = "".join(k + "=" + q + d[k].replace(q, "\\" + q) + q + "\n" for k in sorted(d)).encode("utf-8")
except Exception:
    no("a value is not valid UTF-8 text")
sys.stdout.buffer.write(out)
`;

/**
 * The host-side fetch (see the file comment for how it is run). Step by step:
 * 1. checks its arguments; refuses (exit `notTmpfs`) unless `<out>`'s directory is a tmpfs, and (exit `target`)
 *    when `<out>` is a symlink or a directory; with `env-json`, refuses (exit `noPython`) without python3;
 * 2. creates a temp file in that same tmpfs directory with mktemp under umask 077 (0600 from the first byte),
 *    removed by a trap on any exit that does not rename it; it is named `.<file>.krypton-fetch-XXXXXXXXXX.tmp`,
 *    so a process killed outright leaves a name the leftover-temp-file check (`.*.krypton-*.tmp`) finds;
 * 3. runs the aws CLI (`"$@"`, the absolute `/usr/bin/aws` first): the value arrives on its stdout in a shell
 *    variable (a sentinel keeps trailing newlines exact; the CLI's own final newline is dropped) — never an
 *    argv, never a file on persistent disk; `printf` is a shell builtin;
 * 4. decodes it into the temp file (`base64 -d`, verbatim, or python3 for `env-json`);
 * 5. checks it per `<format>`: hex64 exactly 64 lowercase hex characters, no newline; env every line
 *    `NAME='…'`, ending with a newline, no CR/NUL, no `JWT_PATH`; json non-empty — and, when `<sha256>` is not
 *    empty, that its SHA-256 is that one (the laptop's pin; the boot step passes '');
 * 6. chmod `<mode>`, chown `<owner>[:<group>]` when either is given, `mv -f` over `<out>`.
 * On any failure `<out>` is left as it was.
 */
export const FETCH_SCRIPT = [
  'set -u',
  `if [ "$#" -lt 8 ]; then echo "krypton-secrets fetch: expected <out> <mode> <owner> <group> <sha256> <decode> <format> <aws argv...>" >&2; exit ${FETCH_EXIT.usage}; fi`,
  'out=$1 mode=$2 owner=$3 group=$4 want=$5 decode=$6 format=$7',
  'shift 7',
  `case $out in /?*) ;; *) echo "krypton-secrets: $out is not an absolute path; nothing written" >&2; exit ${FETCH_EXIT.usage} ;; esac`,
  `case $decode in base64|text|env-json) ;; *) echo "krypton-secrets: unknown decode $decode" >&2; exit ${FETCH_EXIT.usage} ;; esac`,
  `case $format in hex64|env|json) ;; *) echo "krypton-secrets: unknown format $format" >&2; exit ${FETCH_EXIT.usage} ;; esac`,
  'dir=${out%/*}',
  '[ -n "$dir" ] || dir=/',
  'fs=$(stat -f -c %T -- "$dir" 2>/dev/null) || fs=missing',
  `if [ "$fs" != tmpfs ]; then echo "krypton-secrets: $dir is not a tmpfs ($fs); nothing written" >&2; exit ${FETCH_EXIT.notTmpfs}; fi`,
  `if [ -L "$out" ] || [ -d "$out" ]; then echo "krypton-secrets: $out is a symlink or a directory; nothing written" >&2; exit ${FETCH_EXIT.target}; fi`,
  `if [ "$decode" = env-json ] && ! command -v python3 >/dev/null 2>&1; then echo "krypton-secrets: python3 is missing on this host (it turns the JSON secret into the env file; Debian's awscli depends on it); nothing fetched" >&2; exit ${FETCH_EXIT.noPython}; fi`,
  `py='${ENV_JSON_PY}'`,
  "nl=$(printf '\\nx'); nl=${nl%x}",
  'umask 077',
  'tmp=',
  `trap '[ -z "$tmp" ] || rm -f -- "$tmp"' EXIT`,
  "trap 'exit 129' HUP INT TERM",
  `tmp=$(mktemp "$dir/.\${out##*/}.krypton-fetch-XXXXXXXXXX.tmp") || { tmp=; echo "krypton-secrets: cannot create a temp file in $dir; nothing written" >&2; exit ${FETCH_EXIT.write}; }`,
  `val=$("$@" && printf x) || { val=; exit ${FETCH_EXIT.aws}; }`,
  'val=${val%x}',
  'val=${val%"$nl"}',
  'case $decode in',
  `  base64) printf '%s' "$val" | base64 -d > "$tmp" 2>/dev/null || { val=; echo "krypton-secrets: the plaintext KMS returned is not base64; nothing written" >&2; exit ${FETCH_EXIT.badValue}; } ;;`,
  `  env-json) printf '%s' "$val" | python3 -c "$py" > "$tmp" || { val=; exit ${FETCH_EXIT.badValue}; } ;;`,
  `  *) printf '%s' "$val" > "$tmp" ;;`,
  'esac',
  'val=',
  'case $format in',
  `  hex64) [ "$(wc -c < "$tmp")" -eq 64 ] && LC_ALL=C grep -qxE '[0-9a-f]{64}' "$tmp" || { echo "krypton-secrets: the value is not exactly 64 lowercase hex characters (no 0x, no newline); nothing written" >&2; exit ${FETCH_EXIT.badValue}; } ;;`,
  `  env) [ "$(LC_ALL=C tr -d '\\000\\r' < "$tmp" | wc -c)" -eq "$(wc -c < "$tmp")" ] && { [ ! -s "$tmp" ] || [ -z "$(tail -c 1 -- "$tmp")" ]; } && ! LC_ALL=C grep -qvE "^[A-Za-z_][A-Za-z0-9_]*='.*'\\$" "$tmp" && ! LC_ALL=C grep -q '^JWT_PATH=' "$tmp" || { echo "krypton-secrets: the value is not an env file in canonical form (NAME='value' lines, no CR/NUL, no JWT_PATH); nothing written" >&2; exit ${FETCH_EXIT.badValue}; } ;;`,
  `  json) [ -s "$tmp" ] || { echo "krypton-secrets: the value is empty; nothing written" >&2; exit ${FETCH_EXIT.badValue}; } ;;`,
  'esac',
  `if [ -n "$want" ] && [ "$(sha256sum < "$tmp" | cut -d' ' -f1)" != "$want" ]; then echo "krypton-secrets: the value's SHA-256 is not the expected $want; nothing written" >&2; exit ${FETCH_EXIT.fingerprint}; fi`,
  `chmod -- "$mode" "$tmp" || exit ${FETCH_EXIT.write}`,
  `if [ -n "$owner$group" ]; then chown -- "$owner\${group:+:$group}" "$tmp" || exit ${FETCH_EXIT.write}; fi`,
  `mv -f -- "$tmp" "$out" || exit ${FETCH_EXIT.write}`,
  'tmp=',
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

/** The aws CLI argv (after the binary) that reads a secret's current (or given) version's SecretString. */
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

/** What one fetch writes and how. */
export interface FetchSpec {
  /** Absolute path of the file on the host's tmpfs. */
  out: string;
  /** Octal mode string, e.g. "0600". */
  mode: string;
  owner?: string;
  group?: string;
  /** Full SHA-256 the value must have ('' or undefined: any valid value, as at boot). */
  sha256?: string;
  decode: FetchDecode;
  format: SecretFormat;
  /** The aws CLI argv after the binary ({@link kmsDecryptArgs} / {@link smGetArgs}). */
  awsArgs: string[];
}

/** How a value of `format` arrives from `backend`. */
export function fetchDecode(backend: 'kms' | 'secrets-manager', format: SecretFormat): FetchDecode {
  if (backend === 'kms') return 'base64';
  return format === 'env' ? 'env-json' : 'text';
}

/** The positional arguments of {@link FETCH_SCRIPT} (after `sh -c <script> sh`). */
export function fetchScriptArgs(s: FetchSpec): string[] {
  return [s.out, s.mode, s.owner ?? '', s.group ?? '', s.sha256 ?? '', s.decode, s.format, HOST_AWS_CLI, ...s.awsArgs];
}

/** The full argv of a fetch: `sh -c FETCH_SCRIPT sh <args…>` (every element quoted by the transport). */
export function fetchArgv(s: FetchSpec): string[] {
  return ['sh', '-c', FETCH_SCRIPT, 'sh', ...fetchScriptArgs(s)];
}

/**
 * The fetch of host secret `s` from a KMS blob: decrypt the host's copy (`hostBlobPath`) under the value's
 * encryption context, base64, into `s.path` with its mode/owner/group; `sha256` pins the value ('' at boot).
 */
export function kmsFetchSpec(inv: Inventory, host: Host, s: HostSecret, target: AwsTarget, sha256: string): FetchSpec {
  return specOf(s, sha256, 'kms', kmsDecryptArgs(hostBlobPath(inv, host, s), encryptionContext(s.ref), target));
}

/** The fetch of host secret `s` from Secrets Manager: its secret's AWSCURRENT SecretString (`env-json` for env). */
export function smFetchSpec(s: HostSecret, target: AwsTarget, sha256: string): FetchSpec {
  return specOf(s, sha256, 'secrets-manager', smGetArgs(smSecretName(s.ref), target));
}

function specOf(s: HostSecret, sha256: string, backend: 'kms' | 'secrets-manager', awsArgs: string[]): FetchSpec {
  return {
    out: s.path,
    mode: s.mode,
    ...(s.owner ? { owner: s.owner } : {}),
    ...(s.group ? { group: s.group } : {}),
    sha256,
    decode: fetchDecode(backend, s.format),
    format: s.format,
    awsArgs,
  };
}

/**
 * The argv of the host-side fetch of `s` for the inventory's backend — what the store's `hostFetch.fetchArgv`
 * gives, for the callers that have no store and must not load an SDK (the boot-time script `render` writes).
 * @throws Error for `backend: vault` (its hosts' agents render the values: there is no host-side fetch).
 */
export function hostFetchArgv(inv: Inventory, host: Host, s: HostSecret, target: AwsTarget, sha256: string): string[] {
  if (inv.backend === 'vault') throw new Error('internal: backend vault has no host-side fetch (the Vault Agent renders the values)');
  return fetchArgv(inv.backend === 'kms' ? kmsFetchSpec(inv, host, s, target, sha256) : smFetchSpec(s, target, sha256));
}
