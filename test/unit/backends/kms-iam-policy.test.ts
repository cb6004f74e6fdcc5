/**
 * Least-privilege IAM policies `krypton-secrets render` writes (src/render/iam-policy.ts), and the plan of
 * kms.install-boot-step when what is installed is exactly what it renders. The sandbox attaches these very
 * documents to moto's IAM users (test/sandbox/moto.ts), so kms.int.test.ts proves them against IAM evaluation.
 */
import { describe, expect, it } from 'vitest';
import { sha256Hex } from '../../../src/core/secret.ts';
import { parseInventory } from '../../../src/inventory/loader.ts';
import type { NodeHost } from '../../../src/inventory/model.ts';
import { renderAdminIamPolicy, renderAwsReviewFiles, renderNodeIamPolicy } from '../../../src/render/iam-policy.ts';
import { BOOT_FILES, bootUnitLinks, renderBootScript, renderBootUnit } from '../../../src/render/kms-host.ts';
import { installBootStepParams, kmsInstallBootStep } from '../../../src/tasks/kms-install-boot-step.ts';

const inv = (backend: string, kms: string) => parseInventory('/f/inv.yml', `network: "473374"\nbackend: ${backend}\nkms:\n${kms}nodes:\n  val-1: { role: validator }\n  val-2: { role: validator }\n`);

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

  it('secrets-manager: GetSecretValue on its own secret (-?????? suffix) and kms:Decrypt only via Secrets Manager for it', () => {
    const doc = renderNodeIamPolicy(inv('secrets-manager', '  key_id: alias/krypton-engine-jwt\n  region: eu-west-1\n'), 'val-1', { accountId: '123456789012', keyArn: 'arn:aws:kms:eu-west-1:123456789012:key/k' });
    expect(doc.Statement[0]).toEqual({ Sid: 'ReadOwnEngineJwtSecret', Effect: 'Allow', Action: 'secretsmanager:GetSecretValue', Resource: 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:krypton/473374/engine-jwt-??????' });
    expect(doc.Statement[1]!.Condition).toEqual({
      StringEquals: { 'kms:ViaService': 'secretsmanager.eu-west-1.amazonaws.com' },
      StringLike: { 'kms:EncryptionContext:SecretARN': 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:krypton/473374/engine-jwt-??????' },
    });
  });
});

describe('admin policy', () => {
  it('kms: Encrypt/Decrypt for this network\'s Engine-API JWT and Horcrux contexts, DescribeKey', () => {
    const doc = renderAdminIamPolicy(inv('kms', '  key_id: alias/krypton-engine-jwt\n  region: eu-west-1\n'), { keyArn: 'arn:aws:kms:eu-west-1:1:key/k' });
    expect(doc.Statement.map((s) => s.Action)).toEqual(['kms:DescribeKey', ['kms:Encrypt', 'kms:Decrypt'], ['kms:Encrypt', 'kms:Decrypt']]);
    expect(doc.Statement[1]!.Condition).toEqual({ StringEquals: { 'kms:EncryptionContext:purpose': 'krypton-engine-jwt', 'kms:EncryptionContext:network': '473374' } });
    expect(doc.Statement[2]!.Condition).toEqual({
      StringEquals: { 'kms:EncryptionContext:purpose': ['krypton-horcrux-ecies', 'krypton-horcrux-shard'], 'kms:EncryptionContext:network': '473374' },
    });
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
  });
});

describe('kms.install-boot-step when installed', () => {
  const i = inv('kms', '  key_id: alias/krypton-engine-jwt\n  region: eu-west-1\n  endpoint_url: http://198.18.0.1:5000\n');
  const node = i.nodes[0] as NodeHost;
  const p = installBootStepParams.parse({});
  const o = { tmpfsSizeBytes: p.tmpfs_size_bytes, attempts: p.attempts, before: p.before };
  const target = { region: 'eu-west-1', endpointUrl: 'http://198.18.0.1:5000' };
  const file = (text: string, mode: string) => ({ exists: true, mode, owner: 'root', group: 'root', sizeBytes: text.length, mtime: 1, sha256: sha256Hex(text) });
  const unitPath = `${BOOT_FILES.unitDir}/${BOOT_FILES.unitName}`;
  const boot = (script: string, systemd = true) => ({
    script: file(script, '0755'),
    unit: file(renderBootUnit(i, node, o), '0644'),
    links: Object.fromEntries(bootUnitLinks(o).map((l) => [l, unitPath])),
    systemd,
  });
  const ctx = { host: node, inventory: i, restartPending: false, resume: false };

  it('nothing to do when script, unit and links are what it renders', () => {
    const plan = kmsInstallBootStep.plan(p, { boot: boot(renderBootScript(i, node, target, o)), target }, ctx);
    expect(plan).toEqual({ kind: 'noChange', reason: `${BOOT_FILES.script} and ${BOOT_FILES.unitName} are current and enabled (before docker.service)` });
  });

  it('a region change rewrites only the script (no daemon-reload: the unit did not change)', () => {
    const plan = kmsInstallBootStep.plan(p, { boot: boot(renderBootScript(i, node, { region: 'eu-central-1' }, o)), target }, ctx);
    expect(plan.kind).toBe('change');
    if (plan.kind === 'change') expect(plan.actions.map((a) => a.description)).toEqual([`update ${BOOT_FILES.script} (region eu-west-1)`]);
  });
});
