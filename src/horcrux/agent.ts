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
import { AGENT_FILES, renderAgentHcl } from '../render/vault-agent.ts';
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

/** `vault-agent.hcl` for a cosigner: its two key files rendered into its key dir (0600). Not secret. */
export function renderCosignerAgentConfig(inv: Inventory, c: CosignerHost): string {
  const s = cosignerSettings(inv, c);
  const template = (source: string, destination: string) => ({ source, destination, perms: '0600', user: s.owner, group: s.group });
  return renderAgentHcl(inv, {
    title: `Horcrux cosigner ${c.name}`,
    role: cosignerRoleName(inv, c.name),
    files: COSIGNER_AGENT_FILES,
    templates: [template(COSIGNER_AGENT_FILES.eciesTemplate, s.keyFiles.ecies), template(COSIGNER_AGENT_FILES.shardTemplate, s.keyFiles.shard)],
  });
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
