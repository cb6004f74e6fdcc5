/**
 * The Vault Agent side of a host (src/render/vault-agent.ts), golden text: one renderer for nodes and cosigners,
 * one template stanza and one policy path per host secret (src/model/layout.ts `hostSecrets`).
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parseInventory } from '../../../src/inventory/loader.ts';
import type { Host, Inventory } from '../../../src/model/inventory.ts';
import { hostSecrets } from '../../../src/model/layout.ts';
import { renderAgentConfig, renderPolicy, renderTemplate } from '../../../src/render/vault-agent.ts';

const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures');
const load = (name: string): Inventory => parseInventory(join(FIXTURES, name), readFileSync(join(FIXTURES, name), 'utf8'));
const host = (inv: Inventory, name: string): Host => [...inv.nodes, ...inv.cosigners].find((h) => h.name === name)!;

/** The part of every daemon-mode config before the template stanzas. */
const head = (title: string, role: string) => [
  `# Vault Agent config for ${title} (network 473374), rendered by krypton-secrets. Contains no secret.`,
  'pid_file = "/run/krypton-secrets/agent.pid"',
  'exit_after_auth = false',
  '',
  'vault {',
  '  address = "https://vault.test.internal:8200"',
  '}',
  '',
  'auto_auth {',
  '  method "approle" {',
  '    mount_path = "auth/approle"',
  '    config = {',
  '      role_id_file_path                   = "/run/krypton-secrets/role_id"',
  '      secret_id_file_path                 = "/run/krypton-secrets/secret_id"',
  '      remove_secret_id_file_after_reading = true',
  `      secret_id_response_wrapping_path    = "auth/approle/role/${role}/secret-id"`,
  '    }',
  '  }',
  '  sink "file" {',
  '    config = {',
  '      path = "/run/krypton-secrets/agent-token"',
  '      mode = 0600',
  '    }',
  '  }',
  '}',
  '',
  'template_config {',
  '  static_secret_render_interval = "5m"',
  '  exit_on_retry_failure         = true',
  '}',
  '',
];

describe('a node with env-secrets (env.yml val-2: its own values in el.env, 0640 krypton:krypton)', () => {
  const inv = load('env.yml');
  const val2 = host(inv, 'val-2');

  it('vault-agent.hcl: the JWT template, then the env template with its perms, user and group', () => {
    expect(renderAgentConfig(inv, val2)).toBe(
      [
        ...head('val-2', 'krypton-node-473374-val-2'),
        'template {',
        '  source               = "/run/krypton-secrets/jwt.ctmpl"',
        '  destination          = "/run/krypton-secrets/jwt.hex"',
        '  perms                = "0600"',
        '  backup               = false',
        '  error_on_missing_key = true',
        '}',
        '',
        'template {',
        '  source               = "/run/krypton-secrets/node-env.ctmpl"',
        '  destination          = "/run/krypton-secrets/el.env"',
        '  perms                = "0640"',
        '  user                 = "krypton"',
        '  group                = "krypton"',
        '  backup               = false',
        '  error_on_missing_key = true',
        '}',
        '',
      ].join('\n'),
    );
  });

  it('templates: the JWT field verbatim (no newline); every env field as a NAME=\'value\' line, quotes escaped as renderEnvFile does', () => {
    const [jwt, env] = hostSecrets(inv, val2);
    expect(renderTemplate(inv, jwt!)).toBe('{{ with secret "secret/data/krypton/473374/engine-jwt" }}{{ .Data.data.hex }}{{ end }}');
    expect(renderTemplate(inv, env!)).toBe(`{{ with secret "secret/data/krypton/473374/nodes/val-2/env" }}{{ range $k, $v := .Data.data }}{{ $k }}='{{ $v | replaceAll "'" "\\\\'" }}'\n{{ end }}{{ end }}`);
    // the network's env-secrets for a node without per_node
    const env1 = hostSecrets(inv, host(inv, 'val-1'))[1]!;
    expect(renderTemplate(inv, env1)).toContain('{{ with secret "secret/data/krypton/473374/env" }}');
  });

  it('policy: read on its own two data paths, nothing else (no list, no metadata, no wildcard)', () => {
    const policy = renderPolicy(inv, val2);
    expect(policy).toBe(
      [
        '# krypton-secrets node policy krypton-node-473374-val-2 (network 473374): read its own secrets, nothing else.',
        'path "secret/data/krypton/473374/engine-jwt" {',
        '  capabilities = ["read"]',
        '}',
        'path "secret/data/krypton/473374/nodes/val-2/env" {',
        '  capabilities = ["read"]',
        '}',
        '',
      ].join('\n'),
    );
    expect(policy).not.toMatch(/\*|list|metadata|val-1/);
  });

  it('a node without env: one template, one path', () => {
    const rpc = host(inv, 'rpc-1');
    expect(renderAgentConfig(inv, rpc).match(/^template \{$/gm)).toHaveLength(1);
    expect(renderPolicy(inv, rpc).match(/^path /gm)).toHaveLength(1);
  });
});

describe('a cosigner (cosigners.yml cosigner-3: key dir /var/lib/horcrux-keys, horcrux.owner horcrux)', () => {
  const inv = load('cosigners.yml');
  const c3 = host(inv, 'cosigner-3');

  it('vault-agent.hcl: its own role; both key files rendered into the key dir, 0600, owned by horcrux', () => {
    expect(renderAgentConfig(inv, c3)).toBe(
      [
        ...head('cosigner cosigner-3', 'krypton-cosigner-473374-cosigner-3'),
        'template {',
        '  source               = "/run/krypton-secrets/ecies_keys.ctmpl"',
        '  destination          = "/var/lib/horcrux-keys/ecies_keys.json"',
        '  perms                = "0600"',
        '  user                 = "horcrux"',
        '  group                = "horcrux"',
        '  backup               = false',
        '  error_on_missing_key = true',
        '}',
        '',
        'template {',
        '  source               = "/run/krypton-secrets/shard.ctmpl"',
        '  destination          = "/var/lib/horcrux-keys/473374_shard.json"',
        '  perms                = "0600"',
        '  user                 = "horcrux"',
        '  group                = "horcrux"',
        '  backup               = false',
        '  error_on_missing_key = true',
        '}',
        '',
      ].join('\n'),
    );
  });

  it('templates and policy: its own two paths only', () => {
    expect(hostSecrets(inv, c3).map((s) => renderTemplate(inv, s))).toEqual([
      '{{ with secret "secret/data/krypton/473374/horcrux/cosigner-3/ecies" }}{{ .Data.data.json }}{{ end }}',
      '{{ with secret "secret/data/krypton/473374/horcrux/cosigner-3/shard" }}{{ .Data.data.json }}{{ end }}',
    ]);
    const policy = renderPolicy(inv, c3);
    expect(policy).toBe(
      [
        '# krypton-secrets cosigner policy krypton-cosigner-473374-cosigner-3 (network 473374): read its own secrets, nothing else.',
        'path "secret/data/krypton/473374/horcrux/cosigner-3/ecies" {',
        '  capabilities = ["read"]',
        '}',
        'path "secret/data/krypton/473374/horcrux/cosigner-3/shard" {',
        '  capabilities = ["read"]',
        '}',
        '',
      ].join('\n'),
    );
    expect(policy).not.toMatch(/\*|list|metadata|cosigner-1|cosigner-2|engine-jwt/);
  });
});

describe('oneshot mode (other.yml: OpenBao, kv mount "kv", its own approle mount)', () => {
  it('exits after auth and keeps no token sink', () => {
    const inv = load('other.yml');
    const hcl = renderAgentConfig(inv, host(inv, 'val-1'));
    expect(hcl).toContain('exit_after_auth = true');
    expect(hcl).toContain('    mount_path = "auth/krypton-approle"');
    expect(hcl).toContain('secret_id_response_wrapping_path    = "auth/krypton-approle/role/krypton-node-47337-val-1/secret-id"');
    expect(hcl).not.toContain('sink');
    expect(renderTemplate(inv, hostSecrets(inv, host(inv, 'val-1'))[0]!)).toBe('{{ with secret "kv/data/krypton/47337/engine-jwt" }}{{ .Data.data.hex }}{{ end }}');
  });
});
