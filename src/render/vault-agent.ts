/**
 * The Vault Agent / OpenBao agent side of a host, rendered from the host's secrets (src/model/layout.ts
 * `hostSecrets`) — the same for nodes and cosigners: `vault-agent.hcl`, one template per secret, and the host's
 * ACL policy. Pure text; nothing here is secret.
 */
import type { Host, Inventory } from '../model/inventory.ts';
import { AGENT_FILES, hostSecrets, kvDataPath, kvField, kvPath, policyName, roleName, templatePath, type HostSecret } from '../model/layout.ts';

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
interface AgentProfile {
  /** For the header comment, e.g. `val-1` or `cosigner cosigner-2`. */
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
function renderAgentHcl(inv: Inventory, p: AgentProfile): string {
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


/** `vault-agent.hcl` for a host: one template stanza per host secret, rendered with its mode/owner/group. */
export function renderAgentConfig(inv: Inventory, host: Host): string {
  return renderAgentHcl(inv, {
    title: host.kind === 'node' ? host.name : `cosigner ${host.name}`,
    role: roleName(inv, host),
    files: AGENT_FILES,
    templates: hostSecrets(inv, host).map((s) => ({ source: templatePath(s), destination: s.path, perms: s.mode, user: s.owner, group: s.group })),
  });
}

/**
 * The consul-template template that renders one host secret, byte for byte what the store's canonical form is:
 * a single field verbatim with nothing added (`hex` for the JWT: exactly 64 hex, no newline; `json` for a key
 * file), or for env-secrets every field as a `NAME='value'` line (Go's text/template ranges over a map in sorted
 * key order; `'` escaped as `\'`), as `renderEnvFile` in src/model/formats.ts writes them.
 */
export function renderTemplate(inv: Inventory, s: HostSecret): string {
  const path = kvDataPath(inv.vault.kvMount, kvPath(s.ref));
  const field = kvField(s.ref.kind);
  if (s.format === 'env') return `{{ with secret ${hclString(path)} }}{{ range $k, $v := .Data.data }}{{ $k }}='{{ $v | replaceAll "'" "\\\\'" }}'\n{{ end }}{{ end }}`;
  return `{{ with secret ${hclString(path)} }}{{ .Data.data.${field} }}{{ end }}`;
}

/** The host's ACL policy: `read` on the KV v2 data path of each of its own secrets, nothing else (no list, no metadata). */
export function renderPolicy(inv: Inventory, host: Host): string {
  return [
    `# krypton-secrets ${host.kind} policy ${policyName(inv, host)} (network ${inv.network}): read its own secrets, nothing else.`,
    ...hostSecrets(inv, host).flatMap((s) => [`path ${hclString(kvDataPath(inv.vault.kvMount, kvPath(s.ref)))} {`, '  capabilities = ["read"]', '}']),
    '',
  ].join('\n');
}

