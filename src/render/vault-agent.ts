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

/** One `template` stanza: render `source` to `destination` with `perms` (octal string), no backup, strict keys. */
export interface AgentTemplate {
  source: string;
  destination: string;
  perms: string;
  user?: string;
  group?: string;
}

/** What differs between agents: whose they are, their AppRole role, their files, their templates. */
export interface AgentProfile {
  /** For the header comment, e.g. `val-1` or `Horcrux cosigner cosigner-2`. */
  title: string;
  role: string;
  files: { pid: string; roleId: string; secretId: string; tokenSink: string };
  templates: AgentTemplate[];
}

/**
 * A Vault Agent / OpenBao agent config (developer.hashicorp.com vault/docs/agent-and-proxy/agent: auto-auth
 * approle, sink file, template, template_config). AppRole auto-auth reads role_id and the response-wrapped
 * secret_id from tmpfs, checks the wrapping token's creation path (`secret_id_response_wrapping_path`) and
 * removes the secret_id file after reading; daemon mode keeps a token sink (0600), oneshot mode exits after
 * auth and keeps no token. Templates render with their perms, no backup, and an error on a missing key;
 * KV v2 re-renders every 5 m (`static_secret_render_interval`). Not secret.
 */
export function renderAgentHcl(inv: Inventory, p: AgentProfile): string {
  const v = inv.vault;
  const oneshot = v.agentMode === 'oneshot';
  return [
    `# Vault Agent config for ${p.title} (network ${inv.network}), rendered by krypton-secrets. Contains no secret.`,
    `pid_file = ${hclString(p.files.pid)}`,
    `exit_after_auth = ${oneshot}`,
    '',
    'vault {',
    `  address = ${hclString(v.agentAddress ?? v.address ?? '')}`,
    ...(v.caCert ? [`  ca_cert = ${hclString(v.caCert)}`] : []),
    '}',
    '',
    'auto_auth {',
    '  method "approle" {',
    `    mount_path = ${hclString(`auth/${v.approleMount}`)}`,
    ...(v.namespace ? [`    namespace = ${hclString(v.namespace)}`] : []),
    '    config = {',
    `      role_id_file_path                   = ${hclString(p.files.roleId)}`,
    `      secret_id_file_path                 = ${hclString(p.files.secretId)}`,
    '      remove_secret_id_file_after_reading = true',
    `      secret_id_response_wrapping_path    = ${hclString(`auth/${v.approleMount}/role/${p.role}/secret-id`)}`,
    '    }',
    '  }',
    ...(oneshot ? [] : ['  sink "file" {', '    config = {', `      path = ${hclString(p.files.tokenSink)}`, '      mode = 0600', '    }', '  }']),
    '}',
    '',
    'template_config {',
    '  static_secret_render_interval = "5m"',
    '  exit_on_retry_failure         = true',
    '}',
    '',
    ...p.templates.flatMap((t) => [
      'template {',
      `  source               = ${hclString(t.source)}`,
      `  destination          = ${hclString(t.destination)}`,
      `  perms                = ${hclString(t.perms)}`,
      ...(t.user ? [`  user                 = ${hclString(t.user)}`] : []),
      ...(t.group ? [`  group                = ${hclString(t.group)}`] : []),
      '  backup               = false',
      '  error_on_missing_key = true',
      '}',
      '',
    ]),
  ].join('\n');
}

/** `vault-agent.hcl` for one node: the JWT template to `/run/krypton-secrets/jwt.hex` with the node's mode/owner. */
export function renderAgentConfig(inv: Inventory, node: NodeHost): string {
  return renderAgentHcl(inv, {
    title: node.name,
    role: nodeRoleName(inv.network, node.name),
    files: AGENT_FILES,
    templates: [{ source: AGENT_FILES.template, destination: AGENT_FILES.jwt, perms: node.jwt.mode, user: node.jwt.owner, group: node.jwt.group }],
  });
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
