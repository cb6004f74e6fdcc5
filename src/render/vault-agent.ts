import { SECRETS_DIR, type Inventory, type NodeHost } from '../inventory/model.ts';
import { engineJwtPath, nodeRoleName } from '../backends/vault-paths.ts';

/** Paths of the files a node's Vault Agent uses, all on the tmpfs. */
export const AGENT_FILES = {
  config: `${SECRETS_DIR}/vault-agent.hcl`,
  template: `${SECRETS_DIR}/jwt.ctmpl`,
  roleId: `${SECRETS_DIR}/role_id`,
  secretId: `${SECRETS_DIR}/secret_id`,
  pid: `${SECRETS_DIR}/agent.pid`,
  tokenSink: `${SECRETS_DIR}/agent-token`,
  jwt: `${SECRETS_DIR}/jwt.hex`,
} as const;

export { nodeRoleName };

/**
 * KV v2 logical path (below the mount) of the Engine-API JWT a node uses: the network's
 * `krypton/<network>/engine-jwt`, or with `jwt_per_node` the node's own `krypton/<network>/nodes/<node>/engine-jwt`.
 */
export function engineJwtKvPath(inv: Inventory, node?: string): string {
  return inv.vault.jwtPerNode && node ? `krypton/${inv.network}/nodes/${node}/engine-jwt` : engineJwtPath(inv.network);
}

/**
 * `jwt.ctmpl`: a consul-template template that renders the KV v2 field `hex` — and nothing else, no newline
 * (the JWT file must be exactly 64 hex characters).
 */
export function renderJwtTemplate(inv: Inventory, node: string): string {
  return `{{ with secret "${inv.vault.kvMount}/data/${engineJwtKvPath(inv, node)}" }}{{ .Data.data.hex }}{{ end }}`;
}

function hclString(s: string): string {
  return JSON.stringify(s);
}

/**
 * `vault-agent.hcl` for one node (Vault Agent / OpenBao agent config; see developer.hashicorp.com
 * vault/docs/agent-and-proxy/agent, auto-auth approle and template). AppRole auto-auth reading role_id and
 * the response-wrapped secret_id from tmpfs, checking the wrapping token's creation path
 * (`secret_id_response_wrapping_path`) and removing the secret_id file after reading; daemon mode keeps a
 * token sink in tmpfs (0600), oneshot mode exits after auth and keeps no token. One template renders the
 * JWT with perms 0600, no backup, and an error on a missing key. Not secret.
 */
export function renderAgentConfig(inv: Inventory, node: NodeHost): string {
  const v = inv.vault;
  const role = nodeRoleName(inv.network, node.name);
  const address = v.agentAddress ?? v.address ?? '';
  const oneshot = v.agentMode === 'oneshot';
  const lines = [
    `# Vault Agent config for ${node.name} (network ${inv.network}), rendered by krypton-secrets. Contains no secret.`,
    `pid_file = ${hclString(AGENT_FILES.pid)}`,
    `exit_after_auth = ${oneshot}`,
    '',
    'vault {',
    `  address = ${hclString(address)}`,
    ...(v.caCert ? [`  ca_cert = ${hclString(v.caCert)}`] : []),
    '}',
    '',
    'auto_auth {',
    '  method "approle" {',
    `    mount_path = ${hclString(`auth/${v.approleMount}`)}`,
    ...(v.namespace ? [`    namespace = ${hclString(v.namespace)}`] : []),
    '    config = {',
    `      role_id_file_path                   = ${hclString(AGENT_FILES.roleId)}`,
    `      secret_id_file_path                 = ${hclString(AGENT_FILES.secretId)}`,
    '      remove_secret_id_file_after_reading = true',
    `      secret_id_response_wrapping_path    = ${hclString(`auth/${v.approleMount}/role/${role}/secret-id`)}`,
    '    }',
    '  }',
    ...(oneshot
      ? []
      : ['  sink "file" {', '    config = {', `      path = ${hclString(AGENT_FILES.tokenSink)}`, '      mode = 0600', '    }', '  }']),
    '}',
    '',
    'template_config {',
    '  static_secret_render_interval = "5m"',
    '  exit_on_retry_failure         = true',
    '}',
    '',
    'template {',
    `  source               = ${hclString(AGENT_FILES.template)}`,
    `  destination          = ${hclString(AGENT_FILES.jwt)}`,
    `  perms                = ${hclString(node.jwt.mode)}`,
    ...(node.jwt.owner ? [`  user                 = ${hclString(node.jwt.owner)}`] : []),
    ...(node.jwt.group ? [`  group                = ${hclString(node.jwt.group)}`] : []),
    '  backup               = false',
    '  error_on_missing_key = true',
    '}',
    '',
  ];
  return lines.join('\n');
}

/**
 * The node's ACL policy: read on its network's engine-jwt KV v2 data path, nothing else (no list, no
 * metadata, no other node's or cosigner's paths).
 */
export function renderNodePolicy(inv: Inventory, node: string): string {
  return [
    `# krypton-secrets node policy (network ${inv.network}): read the Engine-API JWT, nothing else.`,
    `path ${hclString(`${inv.vault.kvMount}/data/${engineJwtKvPath(inv, node)}`)} {`,
    '  capabilities = ["read"]',
    '}',
    '',
  ].join('\n');
}
