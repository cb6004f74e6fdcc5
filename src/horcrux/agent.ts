/**
 * A cosigner's Vault Agent: the same AppRole auto-auth as a node's (trusted-orchestrator delivery of a
 * response-wrapped secret_id into `/run/krypton-secrets`), with two templates that render the cosigner's own
 * `ecies_keys.json` and `<chain-id>_shard.json` into its tmpfs key dir — 0600, no backup, error on a missing
 * key. The agent's own files (config, templates, role_id, secret_id, token sink, pid) stay in
 * `/run/krypton-secrets`, so the key dir holds exactly the two key files.
 *
 * The policy grants `read` on the cosigner's own two KV v2 data paths and nothing else: no list, no metadata,
 * no other cosigner's paths, no engine JWT.
 */
import { cosignerPolicyName, horcruxPath, kvDataPath, type HorcruxKind } from '../backends/vault-paths.ts';
import { SECRETS_DIR, type CosignerHost, type Inventory } from '../inventory/model.ts';
import { AGENT_FILES } from '../render/vault-agent.ts';
import { cosignerSettings } from './config.ts';
import { HORCRUX_KV_FIELD } from './store.ts';

/** The cosigner agent's files, all on the `/run/krypton-secrets` tmpfs (same names as a node's where shared). */
export const COSIGNER_AGENT_FILES = {
  config: AGENT_FILES.config,
  roleId: AGENT_FILES.roleId,
  secretId: AGENT_FILES.secretId,
  pid: AGENT_FILES.pid,
  tokenSink: AGENT_FILES.tokenSink,
  eciesTemplate: `${SECRETS_DIR}/ecies_keys.ctmpl`,
  shardTemplate: `${SECRETS_DIR}/shard.ctmpl`,
} as const;

/** Policy and AppRole role name of a cosigner: `krypton-cosigner-<network>-<cosigner>`. */
export function cosignerRoleName(inv: Inventory, cosigner: string): string {
  return cosignerPolicyName(inv.network, cosigner);
}

/** The consul-template template rendering one key file: the KV v2 field `json`, verbatim, nothing added. */
export function renderKeyTemplate(inv: Inventory, cosigner: string, kind: HorcruxKind): string {
  return `{{ with secret "${kvDataPath(inv.vault.kvMount, horcruxPath(inv.network, cosigner, kind))}" }}{{ .Data.data.${HORCRUX_KV_FIELD} }}{{ end }}`;
}

const hcl = (s: string): string => JSON.stringify(s);

/** `vault-agent.hcl` for a cosigner. Not secret. */
export function renderCosignerAgentConfig(inv: Inventory, c: CosignerHost): string {
  const v = inv.vault;
  const s = cosignerSettings(inv, c);
  const role = cosignerRoleName(inv, c.name);
  const address = v.agentAddress ?? v.address ?? '';
  const oneshot = v.agentMode === 'oneshot';
  const template = (source: string, destination: string) => [
    'template {',
    `  source               = ${hcl(source)}`,
    `  destination          = ${hcl(destination)}`,
    '  perms                = "0600"',
    ...(s.owner ? [`  user                 = ${hcl(s.owner)}`] : []),
    ...(s.group ? [`  group                = ${hcl(s.group)}`] : []),
    '  backup               = false',
    '  error_on_missing_key = true',
    '}',
    '',
  ];
  return [
    `# Vault Agent config for Horcrux cosigner ${c.name} (network ${inv.network}), rendered by krypton-secrets. Contains no secret.`,
    `pid_file = ${hcl(COSIGNER_AGENT_FILES.pid)}`,
    `exit_after_auth = ${oneshot}`,
    '',
    'vault {',
    `  address = ${hcl(address)}`,
    ...(v.caCert ? [`  ca_cert = ${hcl(v.caCert)}`] : []),
    '}',
    '',
    'auto_auth {',
    '  method "approle" {',
    `    mount_path = ${hcl(`auth/${v.approleMount}`)}`,
    ...(v.namespace ? [`    namespace = ${hcl(v.namespace)}`] : []),
    '    config = {',
    `      role_id_file_path                   = ${hcl(COSIGNER_AGENT_FILES.roleId)}`,
    `      secret_id_file_path                 = ${hcl(COSIGNER_AGENT_FILES.secretId)}`,
    '      remove_secret_id_file_after_reading = true',
    `      secret_id_response_wrapping_path    = ${hcl(`auth/${v.approleMount}/role/${role}/secret-id`)}`,
    '    }',
    '  }',
    ...(oneshot ? [] : ['  sink "file" {', '    config = {', `      path = ${hcl(COSIGNER_AGENT_FILES.tokenSink)}`, '      mode = 0600', '    }', '  }']),
    '}',
    '',
    'template_config {',
    '  static_secret_render_interval = "5m"',
    '  exit_on_retry_failure         = true',
    '}',
    '',
    ...template(COSIGNER_AGENT_FILES.eciesTemplate, s.keyFiles.ecies),
    ...template(COSIGNER_AGENT_FILES.shardTemplate, s.keyFiles.shard),
  ].join('\n');
}

/** The cosigner's ACL policy: read on its own two key files' KV v2 data paths, nothing else. */
export function renderCosignerPolicy(inv: Inventory, cosigner: string): string {
  return [
    `# krypton-secrets Horcrux cosigner policy (network ${inv.network}, ${cosigner}): read its own key files, nothing else.`,
    ...(['ecies', 'shard'] as const).flatMap((kind) => [
      `path ${hcl(kvDataPath(inv.vault.kvMount, horcruxPath(inv.network, cosigner, kind)))} {`,
      '  capabilities = ["read"]',
      '}',
    ]),
    '',
  ].join('\n');
}
