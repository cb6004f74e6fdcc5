/**
 * Facts of the KMS and Secrets Manager tasks: the JWT file on the tmpfs (stat, SHA-256, 64-hex check —
 * computed on the host; the content never leaves it), the boot-time step's files, and the laptop-side
 * state of the backend (the current blob, the secret's description, where the hosts' aws CLI must send
 * requests). Laptop facts are memoised per run and scope, and re-read after a backend write.
 */
import { KryptonError } from '../core/errors.ts';
import type { GatherEnv, LaptopFact, RemoteFact } from '../core/task.ts';
import type { KmsJwtStore, StoredBlob } from '../backends/kms.ts';
import type { SecretDescription, SecretsManagerBackend, SmJwtStore } from '../backends/secrets-manager.ts';
import type { KmsBackend } from '../backends/kms.ts';
import { shellQuote } from '../transport/transport.ts';
import type { AwsTarget } from '../render/kms-host.ts';
import { parseFileFact, type FileFact } from './file.ts';

/** The JWT file: stat and SHA-256 (see {@link FileFact}) plus whether it is exactly 64 lowercase hex characters. */
export type JwtFileFact = FileFact & { isHex64: boolean };

export function jwtFile(path: string): RemoteFact<JwtFileFact> {
  const p = shellQuote(path);
  return {
    kind: 'remote',
    script: `if [ -f ${p} ]; then stat -c '%a %U %G %s %.9Y' -- ${p}; sha256sum -- ${p} | cut -d' ' -f1; if [ "$(wc -c < ${p})" -eq 64 ] && grep -qxE '[0-9a-f]{64}' ${p}; then echo hex64; else echo nothex; fi; else echo absent; fi`,
    parse: parseJwtFile,
  };
}

export function parseJwtFile(stdout: string): JwtFileFact {
  const base = parseFileFact(stdout);
  const lines = stdout.split('\n').map((l) => l.trim()).filter(Boolean);
  return { ...base, isHex64: base.exists && lines[2] === 'hex64' };
}

/** The boot-time step on the host: its script and unit (stat + SHA-256) and which enablement links exist. */
export interface BootStepFact {
  script: FileFact;
  unit: FileFact;
  /** Link path -> its target (`readlink`), or null when absent. */
  links: Record<string, string | null>;
  /** True when systemd runs as init (`/run/systemd/system` exists): then `daemon-reload` is needed. */
  systemd: boolean;
}

export function bootStep(scriptPath: string, unitPath: string, links: string[]): RemoteFact<BootStepFact> {
  const stat = (p: string, tag: string) => {
    const q = shellQuote(p);
    return `if [ -f ${q} ]; then echo "@${tag} $(stat -c '%a %U %G %s %.9Y' -- ${q}) $(sha256sum -- ${q} | cut -d' ' -f1)"; else echo "@${tag} absent"; fi`;
  };
  const script = [
    stat(scriptPath, 'script'),
    stat(unitPath, 'unit'),
    ...links.map((l, i) => `if [ -L ${shellQuote(l)} ]; then echo "@link${i} $(readlink -- ${shellQuote(l)})"; else echo "@link${i} -"; fi`),
    '[ -d /run/systemd/system ] && echo "@systemd yes" || echo "@systemd no"',
  ].join('\n');
  return { kind: 'remote', script, parse: (out) => parseBootStep(out, links) };
}

export function parseBootStep(stdout: string, links: string[]): BootStepFact {
  const get = (tag: string) => stdout.split('\n').find((l) => l.startsWith(`@${tag} `))?.slice(tag.length + 2).trim() ?? '';
  const file = (tag: string): FileFact => {
    const v = get(tag);
    if (!v || v === 'absent') return { exists: false };
    const parts = v.split(/\s+/);
    return parseFileFact(`${parts.slice(0, 5).join(' ')}\n${parts[5] ?? ''}`);
  };
  const linkFacts: Record<string, string | null> = {};
  links.forEach((l, i) => {
    const v = get(`link${i}`);
    linkFacts[l] = v && v !== '-' ? v : null;
  });
  return { script: file('script'), unit: file('unit'), links: linkFacts, systemd: get('systemd') === 'yes' };
}

// ----------------------------------------------------------------------------------------------------------
// Laptop facts
// ----------------------------------------------------------------------------------------------------------

function need<T>(get: (() => T) | undefined, what: string): T {
  if (!get) throw new KryptonError('E_INTERNAL', `this build's backends have no ${what}`, { hint: 'report this: createBackends provides it' });
  return get();
}

export const kmsOf = (env: GatherEnv): KmsBackend => need(env.backends.kms?.bind(env.backends), 'KMS backend');
export const kmsJwtOf = (env: GatherEnv): KmsJwtStore => need(env.backends.kmsJwt?.bind(env.backends), 'KMS blob store');
export const smOf = (env: GatherEnv): SecretsManagerBackend => need(env.backends.secretsManager?.bind(env.backends), 'Secrets Manager backend');
export const smJwtOf = (env: GatherEnv): SmJwtStore => need(env.backends.smJwt?.bind(env.backends), 'Secrets Manager store');

/** The node's current KMS blob on the laptop (`blobs/…/v<N>.enc`), or undefined when none was made. */
export function currentBlob(): LaptopFact<StoredBlob | undefined> {
  return {
    kind: 'laptop',
    gather: (env) => env.memo(`kms-blob:${env.backends.jwtScope(env.host.name)}`, () => kmsJwtOf(env).currentBlob(env.host.name)),
  };
}

/** What a laptop fact says about the blob store's state for this node, for seed/plan messages. */
export interface BlobStoreFact {
  where: string;
  current?: { version: number; display: string; sha256: string; keyArn?: string };
}

export function blobStore(): LaptopFact<BlobStoreFact> {
  return {
    kind: 'laptop',
    async gather(env) {
      const store = kmsJwtOf(env);
      const b = await env.memo(`kms-blob:${env.backends.jwtScope(env.host.name)}`, () => store.currentBlob(env.host.name));
      return {
        where: store.where(env.host.name),
        ...(b ? { current: { version: b.version, display: b.display, sha256: b.sha256, ...(b.meta?.key_arn ? { keyArn: b.meta.key_arn } : {}) } } : {}),
      };
    },
  };
}

/** The region (as the laptop resolved it) and the inventory's endpoint: what the host's aws CLI is told. */
export function awsTarget(service: 'kms' | 'secrets-manager'): LaptopFact<AwsTarget> {
  return {
    kind: 'laptop',
    async gather(env) {
      const b = service === 'kms' ? kmsOf(env) : smOf(env);
      const { region } = await b.region();
      const endpointUrl = env.inventory.kms?.endpointUrl;
      return { region, ...(endpointUrl ? { endpointUrl } : {}) };
    },
  };
}

/** The secret's description (ARN, KMS key, deletion, versions), or undefined when it does not exist. */
export function secretDescription(): LaptopFact<SecretDescription | undefined> {
  return {
    kind: 'laptop',
    gather: (env) => env.memo(`sm-describe:${env.backends.jwtScope(env.host.name)}`, () => smOf(env).describe(smJwtOf(env).name(env.host.name))),
  };
}

/** The ARN the inventory's `kms.key_id` names (DescribeKey), memoised per run. */
export function inventoryKeyArn(): LaptopFact<string> {
  return {
    kind: 'laptop',
    gather: (env) => env.memo('kms-key-arn', async () => (await kmsOf(env).describeKey(env.inventory.kms?.keyId ?? '')).arn),
  };
}

/** The ARN of the key a secret is encrypted under (its KmsKeyId resolved with DescribeKey), or undefined for the AWS-managed key. */
export function secretKeyArn(): LaptopFact<string | undefined> {
  return {
    kind: 'laptop',
    async gather(env) {
      const d = await env.memo(`sm-describe:${env.backends.jwtScope(env.host.name)}`, () => smOf(env).describe(smJwtOf(env).name(env.host.name)));
      if (!d?.kmsKeyId) return undefined;
      const id = d.kmsKeyId;
      return env.memo(`kms-key-arn:${id}`, async () => (await kmsOf(env).describeKey(id)).arn);
    },
  };
}
