/**
 * Least-privilege IAM policies `krypton-secrets render` writes (src/render/iam-policy.ts: one renderer for every
 * host, over its secrets in the layout), and the plan of kms.install-boot-step when what is installed is exactly what
 * it renders. The sandbox attaches these very documents to moto's IAM users (test/sandbox/moto.ts), so
 * kms.int.test.ts proves them against IAM evaluation.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { renderCommand } from '../../../src/cli/render-command.ts';
import { sha256Hex } from '../../../src/core/secret.ts';
import { loadInventory, parseInventory } from '../../../src/inventory/loader.ts';
import type { NodeHost } from '../../../src/model/inventory.ts';
import { hostSecrets, tmpfsDirs } from '../../../src/model/layout.ts';
import { renderAdminIamPolicy, renderAwsReviewFiles, renderCosignerIamPolicy, renderHostIamPolicy, renderNodeIamPolicy, type IamStatement } from '../../../src/render/iam-policy.ts';
import { BOOT_FILES, bootUnitLinks, renderBootScript, renderBootUnit } from '../../../src/render/boot.ts';
import { installBootStepParams, kmsInstallBootStep } from '../../../src/tasks/kms-install-boot-step.ts';

const inv = (backend: string, kms: string, extra = '') =>
  parseInventory('/f/inv.yml', `network: "473374"\nbackend: ${backend}\nkms:\n${kms}${extra}nodes:\n  val-1: { role: validator }\n  val-2: { role: validator }\n`);
/** The same fleet, with the network's env-secrets on every node and val-2's own. */
const ENV = 'defaults:\n  env: {}\n';
const withEnv = (backend: string, kms: string) =>
  parseInventory('/f/inv.yml', `network: "473374"\nbackend: ${backend}\nkms:\n${kms}${ENV}nodes:\n  val-1: { role: validator }\n  val-2: { role: validator, env: { per_node: true } }\n  rpc-1: { role: rpc, env: false }\n`);

describe('node policy', () => {
  it('kms: only kms:Decrypt, on the key ARN, only under its own encryption context', () => {
    const doc = renderNodeIamPolicy(inv('kms', '  key_id: arn:aws:kms:eu-west-1:111122223333:key/k-1\n  per_node: true\n'), 'val-2');
    expect(doc.Statement).toEqual([
      {
        Sid: 'DecryptOwnEngineJwtBlob',
        Effect: 'Allow',
        Action: 'kms:Decrypt',
        Resource: 'arn:aws:kms:eu-west-1:111122223333:key/k-1',
        Condition: { StringEquals: { 'kms:EncryptionContext:purpose': 'krypton-engine-jwt', 'kms:EncryptionContext:network': '473374', 'kms:EncryptionContext:node': 'val-2' } },
      },
    ]);
    expect(JSON.stringify(doc)).not.toMatch(/Encrypt"|GenerateDataKey|\*"/);
  });

  it('kms with an alias: any key in the region that carries the alias (kms:ResourceAliases)', () => {
    const [st] = renderNodeIamPolicy(inv('kms', '  key_id: alias/krypton-engine-jwt\n  region: eu-west-1\n'), 'val-1').Statement;
    expect(st!.Resource).toBe('arn:aws:kms:eu-west-1:*:key/*');
    expect(st!.Condition).toEqual({
      StringEquals: { 'kms:EncryptionContext:purpose': 'krypton-engine-jwt', 'kms:EncryptionContext:network': '473374' },
      'ForAnyValue:StringEquals': { 'kms:ResourceAliases': 'alias/krypton-engine-jwt' },
    });
  });

  it('kms with env-secrets: one Decrypt statement per host secret — the JWT\'s context and the env-secrets\' (the network\'s, or the node\'s own)', () => {
    const i = withEnv('kms', '  key_id: arn:aws:kms:eu-west-1:111122223333:key/k-1\n');
    const ctx = (doc: ReturnType<typeof renderNodeIamPolicy>) => doc.Statement.map((s) => [s.Sid, s.Action, s.Condition]);
    expect(ctx(renderNodeIamPolicy(i, 'val-1'))).toEqual([
      ['DecryptOwnEngineJwtBlob', 'kms:Decrypt', { StringEquals: { 'kms:EncryptionContext:purpose': 'krypton-engine-jwt', 'kms:EncryptionContext:network': '473374' } }],
      ['DecryptOwnNodeEnvBlob', 'kms:Decrypt', { StringEquals: { 'kms:EncryptionContext:purpose': 'krypton-node-env', 'kms:EncryptionContext:network': '473374' } }],
    ]);
    expect(ctx(renderNodeIamPolicy(i, 'val-2'))[1]).toEqual(['DecryptOwnNodeEnvBlob', 'kms:Decrypt', { StringEquals: { 'kms:EncryptionContext:purpose': 'krypton-node-env', 'kms:EncryptionContext:network': '473374', 'kms:EncryptionContext:node': 'val-2' } }]);
    // a node without env-secrets gets no env statement
    expect(ctx(renderNodeIamPolicy(i, 'rpc-1')).map(([sid]) => sid)).toEqual(['DecryptOwnEngineJwtBlob']);
    for (const n of i.nodes) expect(renderNodeIamPolicy(i, n.name).Statement).toHaveLength(hostSecrets(i, n).length);
  });

  it('secrets-manager: GetSecretValue on its own secrets (-?????? suffix) and kms:Decrypt only via Secrets Manager for them', () => {
    const o = { accountId: '123456789012', keyArn: 'arn:aws:kms:eu-west-1:123456789012:key/k' };
    const doc = renderNodeIamPolicy(inv('secrets-manager', '  key_id: alias/krypton-engine-jwt\n  region: eu-west-1\n'), 'val-1', o);
    expect(doc.Statement[0]).toEqual({ Sid: 'ReadOwnSecrets', Effect: 'Allow', Action: 'secretsmanager:GetSecretValue', Resource: 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:krypton/473374/engine-jwt-??????' });
    expect(doc.Statement[1]!.Condition).toEqual({
      StringEquals: { 'kms:ViaService': 'secretsmanager.eu-west-1.amazonaws.com' },
      StringLike: { 'kms:EncryptionContext:SecretARN': 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:krypton/473374/engine-jwt-??????' },
    });
    // with env-secrets: both secrets, and no other node's
    const env = renderNodeIamPolicy(withEnv('secrets-manager', '  key_id: alias/krypton-engine-jwt\n  region: eu-west-1\n'), 'val-2', o);
    const own = ['arn:aws:secretsmanager:eu-west-1:123456789012:secret:krypton/473374/engine-jwt-??????', 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:krypton/473374/nodes/val-2/env-??????'];
    expect(env.Statement[0]!.Resource).toEqual(own);
    expect(env.Statement[1]!.Condition!['StringLike']).toEqual({ 'kms:EncryptionContext:SecretARN': own });
  });

  it('the node and cosigner renderers are the one host renderer', () => {
    const i = withEnv('kms', '  key_id: alias/krypton-engine-jwt\n  region: eu-west-1\n');
    for (const n of i.nodes) expect(renderNodeIamPolicy(i, n.name)).toEqual(renderHostIamPolicy(i, n));
    expect(() => renderNodeIamPolicy(i, 'cosigner-9')).toThrow(/not a node/);
  });
});

describe('admin policy', () => {
  it("kms: Encrypt/Decrypt under this network's contexts of every kind (JWT, env-secrets, Horcrux key files), and DescribeKey", () => {
    const doc = renderAdminIamPolicy(inv('kms', '  key_id: alias/krypton-engine-jwt\n  region: eu-west-1\n'), { keyArn: 'arn:aws:kms:eu-west-1:1:key/k' });
    expect(doc.Statement.map((s) => s.Action)).toEqual(['kms:DescribeKey', ['kms:Encrypt', 'kms:Decrypt']]);
    expect(doc.Statement[1]!.Condition).toEqual({
      StringEquals: { 'kms:EncryptionContext:purpose': ['krypton-engine-jwt', 'krypton-node-env', 'krypton-horcrux-ecies', 'krypton-horcrux-shard'], 'kms:EncryptionContext:network': '473374' },
    });
    expect(doc.Statement.every((s) => s.Resource === 'arn:aws:kms:eu-west-1:1:key/k')).toBe(true);
  });

  it("secrets-manager: the network's krypton/<network>/* secrets, and the key only via Secrets Manager", () => {
    const doc = renderAdminIamPolicy(inv('secrets-manager', '  key_id: alias/krypton-engine-jwt\n'));
    expect(doc.Statement[1]!.Resource).toBe('arn:aws:secretsmanager:*:*:secret:krypton/473374/*');
    expect(doc.Statement[2]!.Condition!['StringLike']).toEqual({ 'kms:ViaService': 'secretsmanager.*.amazonaws.com' });
  });

  it('render writes one admin policy and, per node, its policy plus the boot script and unit', () => {
    const i = inv('kms', '  key_id: alias/krypton-engine-jwt\n  region: eu-west-1\n');
    const files = renderAwsReviewFiles(i, i.nodes);
    expect(files.admin[0]).toBe('iam-admin-policy.json');
    expect(files.perNode.get('val-2')!.map(([n]) => n)).toEqual(['iam-policy.json', 'krypton-secrets-boot', 'krypton-secrets-boot.service']);
    // kms.decrypt: operator: hosts fetch nothing, so no boot step
    const op = inv('kms', '  key_id: alias/krypton-engine-jwt\n  region: eu-west-1\n  decrypt: operator\n');
    expect(renderAwsReviewFiles(op, op.nodes).perNode.get('val-1')!.map(([n]) => n)).toEqual(['iam-policy.json']);
  });
});

describe('kms.install-boot-step when installed', () => {
  const i = inv('kms', '  key_id: alias/krypton-engine-jwt\n  region: eu-west-1\n  endpoint_url: http://198.18.0.1:5000\n');
  const node = i.nodes[0] as NodeHost;
  const p = installBootStepParams.parse({});
  const o = { tmpfsSizeBytes: p.tmpfs_size_bytes, attempts: p.attempts, before: p.before };
  /** The `fetches` fact: what the store's host fetch would run at boot for each host secret (fixed stand-ins here). */
  const fetches = (region: string) => ({ region, list: hostSecrets(i, node).map((s) => ({ path: s.path, argv: ['sh', '-c', '<fetch>', 'sh', s.path, '--region', region] })) });
  const script = (region: string) => renderBootScript(i, node, tmpfsDirs(i, node), fetches(region).list, o);
  const file = (text: string, mode: string) => ({ exists: true, mode, owner: 'root', group: 'root', sizeBytes: text.length, mtime: 1, sha256: sha256Hex(text) });
  const unitPath = `${BOOT_FILES.unitDir}/${BOOT_FILES.unitName}`;
  const boot = (text: string, systemd = true) => ({
    script: file(text, '0755'),
    unit: file(renderBootUnit(i, node, o), '0644'),
    links: Object.fromEntries(bootUnitLinks(o).map((l) => [l, unitPath])),
    systemd,
  });
  const ctx = { host: node, inventory: i, restartPending: false, resume: false, store: { delivery: 'host-fetch' as const, hostCopies: true } };

  it('nothing to do when script, unit and links are what it renders', () => {
    const plan = kmsInstallBootStep.plan(p, { boot: boot(script('eu-west-1')), fetches: fetches('eu-west-1') }, ctx);
    expect(plan).toEqual({ kind: 'noChange', reason: `${BOOT_FILES.script} and ${BOOT_FILES.unitName} are current and enabled (before docker.service)` });
  });

  it('a region change rewrites only the script (no daemon-reload: the unit did not change)', () => {
    const plan = kmsInstallBootStep.plan(p, { boot: boot(script('eu-central-1')), fetches: fetches('eu-west-1') }, ctx);
    expect(plan.kind).toBe('change');
    if (plan.kind === 'change') expect(plan.actions.map((a) => a.description)).toEqual([`update ${BOOT_FILES.script} (region eu-west-1)`]);
  });
});

// Issue 8, defect 2: the Horcrux copy of the key resolver had no alias-ARN case, so `kms.key_id:
// arn:aws:kms:…:alias/…` gave cosigner and Horcrux-operator statements a Resource `arn:aws:kms:<r>:<a>:key/arn:aws:…`.
// AWS: a KMS key is named in an IAM Resource by its key ARN only (never a key id, alias name or alias ARN); a key
// named by alias is `arn:aws:kms:<region>:<account>:key/*` limited by `kms:ResourceAliases` (values `alias/…`).
describe('the KMS key in every statement, for each way kms.key_id may name it', () => {
  const KEY_ID = '1234abcd-12ab-34cd-56ef-1234567890ab';
  /** `arn:aws:kms:<region>:<account>:key/<key id or *>` — the only Resource form kms:Decrypt/Encrypt/DescribeKey authorise on. */
  const KEY_RESOURCE = /^arn:aws:kms:([a-z]{2}(-[a-z]+)+-\d|\*):(\d{12}|\*):key\/((mrk-)?[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}|mrk-[0-9a-f]{32}|\*)$/;
  const forms: { form: string; keyId: string; resource: string; alias?: string }[] = [
    { form: 'key id', keyId: KEY_ID, resource: `arn:aws:kms:eu-west-1:*:key/${KEY_ID}` },
    { form: 'key ARN', keyId: `arn:aws:kms:eu-west-1:123456789012:key/${KEY_ID}`, resource: `arn:aws:kms:eu-west-1:123456789012:key/${KEY_ID}` },
    { form: 'alias name', keyId: 'alias/krypton-engine-jwt', resource: 'arn:aws:kms:eu-west-1:*:key/*', alias: 'alias/krypton-engine-jwt' },
    { form: 'alias ARN', keyId: 'arn:aws:kms:eu-west-1:123456789012:alias/krypton-engine-jwt', resource: 'arn:aws:kms:eu-west-1:123456789012:key/*', alias: 'alias/krypton-engine-jwt' },
  ];
  const fleet = (keyId: string) =>
    parseInventory(
      '/f/inv.yml',
      `network: "473374"\nbackend: kms\nkms:\n  key_id: ${keyId}\n  region: eu-west-1\nnodes:\n  val-1: { role: validator }\ncosigners:\n  cosigner-1: { address: 10.20.1.11, shard_id: 1, key_dir: /opt/horcrux/keys }\n  cosigner-2: { address: 10.20.1.12, shard_id: 2, key_dir: /opt/horcrux/keys }\nhorcrux:\n  threshold: 2\n`,
    );
  /** How a statement names the key: its Resource and its kms:ResourceAliases condition (if any). */
  const keyOf = (s: IamStatement) => ({ resource: s.Resource, alias: s.Condition?.['ForAnyValue:StringEquals']?.['kms:ResourceAliases'] });
  const statements = (keyId: string) => {
    const i = fleet(keyId);
    return {
      node: renderNodeIamPolicy(i, 'val-1').Statement,
      cosigner: renderCosignerIamPolicy(i, 'cosigner-2').Statement,
      admin: renderAdminIamPolicy(i).Statement,
    };
  };

  it.each(forms)('$form: node, cosigner and operator statements all name the key as $resource', ({ keyId, resource, alias }) => {
    const all = statements(keyId);
    for (const [who, sts] of Object.entries(all)) {
      expect(sts.length, who).toBeGreaterThan(0);
      for (const s of sts) {
        expect(s.Resource, `${who} ${s.Sid}`).toMatch(KEY_RESOURCE);
        expect(keyOf(s), `${who} ${s.Sid}`).toEqual({ resource, alias });
        // key/* is least privilege only together with the alias condition
        if (String(s.Resource).endsWith(':key/*')) expect(alias, `${who} ${s.Sid}: key/* without kms:ResourceAliases`).toMatch(/^alias\/[A-Za-z0-9/_-]+$/);
      }
    }
    // node and cosigner statements resolve the key identically (one resolver)
    expect(new Set([...all.node, ...all.cosigner, ...all.admin].map((s) => JSON.stringify(keyOf(s)))).size).toBe(1);
  });

  it.each(forms)('$form: the cosigner policy keeps its own two encryption contexts and nothing more', ({ keyId, alias }) => {
    const doc = renderCosignerIamPolicy(fleet(keyId), 'cosigner-2');
    expect(doc.Statement.map((s) => [s.Action, s.Condition])).toEqual(
      (['krypton-horcrux-ecies', 'krypton-horcrux-shard'] as const).map((purpose) => [
        'kms:Decrypt',
        {
          StringEquals: { 'kms:EncryptionContext:purpose': purpose, 'kms:EncryptionContext:network': '473374', 'kms:EncryptionContext:cosigner': 'cosigner-2' },
          ...(alias ? { 'ForAnyValue:StringEquals': { 'kms:ResourceAliases': alias } } : {}),
        },
      ]),
    );
  });

  it('a known key ARN (render options) wins over an alias ARN, for node and cosigner alike, with no alias condition', () => {
    const i = fleet('arn:aws:kms:eu-west-1:123456789012:alias/krypton-engine-jwt');
    const o = { keyArn: `arn:aws:kms:eu-west-1:123456789012:key/${KEY_ID}` };
    for (const s of [...renderNodeIamPolicy(i, 'val-1', o).Statement, ...renderCosignerIamPolicy(i, 'cosigner-1', o).Statement, ...renderAdminIamPolicy(i, o).Statement]) {
      expect(keyOf(s), s.Sid).toEqual({ resource: o.keyArn, alias: undefined });
    }
  });

  it('a bare key id with the account known becomes the full key ARN', () => {
    const i = fleet(KEY_ID);
    const o = { accountId: '123456789012' };
    for (const s of [...renderNodeIamPolicy(i, 'val-1', o).Statement, ...renderCosignerIamPolicy(i, 'cosigner-1', o).Statement]) {
      expect(s.Resource, s.Sid).toBe(`arn:aws:kms:eu-west-1:123456789012:key/${KEY_ID}`);
    }
  });
});

// Issue 8, defect 3: README ("the policy `render` writes for it") and the host-side fetch's error hint
// ("krypton-secrets render writes <host>/iam-policy.json") promise a cosigner policy that render never wrote.
describe('krypton-secrets render: every cosigner gets its iam-policy.json with backend kms', () => {
  const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures');
  const dirs: string[] = [];
  afterEach(async () => {
    await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
  });
  const render = async (fixture: string, limit?: string[]) => {
    const out = await mkdtemp(join(tmpdir(), 'krypton-render-'));
    dirs.push(out);
    const lines: string[] = [];
    const code = await renderCommand({ inventory: join(FIXTURES, fixture), out, ...(limit ? { limit } : {}) }, (l) => lines.push(l));
    return { out, code, lines, inv: await loadInventory(join(FIXTURES, fixture)) };
  };

  it('writes <out>/<cosigner>/iam-policy.json for each cosigner: the very policy the sandbox gives its identity, Decrypt of its own two blobs only', async () => {
    const { out, code, lines, inv } = await render('horcrux-kms.yml');
    expect(code).toBe(0);
    expect(inv.cosigners.map((c) => c.name)).toEqual(['cosigner-1', 'cosigner-2', 'cosigner-3']);
    for (const c of inv.cosigners) {
      const file = join(out, c.name, 'iam-policy.json');
      expect(existsSync(file), file).toBe(true);
      const text = await readFile(file, 'utf8');
      const doc = JSON.parse(text) as { Statement: IamStatement[] };
      expect(doc).toEqual(renderCosignerIamPolicy(inv, c.name)); // test/sandbox/moto.ts attaches this renderer's output
      expect(doc.Statement.map((s) => [s.Action, s.Condition?.['StringEquals']])).toEqual(
        (['krypton-horcrux-ecies', 'krypton-horcrux-shard'] as const).map((purpose) => [
          'kms:Decrypt',
          { 'kms:EncryptionContext:purpose': purpose, 'kms:EncryptionContext:network': '473374', 'kms:EncryptionContext:cosigner': c.name },
        ]),
      );
      for (const other of inv.cosigners.filter((o) => o.name !== c.name)) expect(text).not.toContain(other.name);
      expect(text).not.toMatch(/Encrypt"|"krypton-engine-jwt"/); // no Encrypt, not the Engine-API JWT's purpose
      expect(lines).toContainEqual(`${c.name}: ${file}`);
    }
    // the nodes and the operator keep their files
    expect(existsSync(join(out, 'iam-admin-policy.json'))).toBe(true);
    for (const n of inv.nodes) expect(existsSync(join(out, n.name, 'iam-policy.json')), n.name).toBe(true);
  });

  it('--limit cosigner-2 writes that cosigner only', async () => {
    const { out } = await render('horcrux-kms.yml', ['cosigner-2']);
    expect((await readdir(out)).sort()).toEqual(['cosigner-2', 'iam-admin-policy.json']);
    expect(await readdir(join(out, 'cosigner-2'))).toEqual(['iam-policy.json']);
  });

  it('backend vault: no IAM policy for cosigners (their access is the Vault policy, rendered with their agent files)', async () => {
    const { out, code } = await render('horcrux.yml');
    expect(code).toBe(0);
    expect(existsSync(join(out, 'cosigner-1', 'iam-policy.json'))).toBe(false);
    expect((await readdir(join(out, 'cosigner-1'))).sort()).toEqual(['approle.json', 'ecies_keys.ctmpl', 'policy.hcl', 'shard.ctmpl', 'vault-agent.hcl']);
    expect(await readFile(join(out, 'cosigner-1', 'policy.hcl'), 'utf8')).not.toContain('cosigner-2');
  });
});
