import { act } from '../model/action.ts';
import { defineTask, change, noChange, refuse } from '../model/task.ts';
import { sha256Hex } from '../core/secret.ts';
import { accounts, fileAt } from '../facts/file.ts';
import { mountAt } from '../facts/mount.ts';
import { factList } from '../facts/list.ts';
import { SECRETS_DIR } from '../model/inventory.ts';
import { AGENT_FILES, hostSecrets, templatePath } from '../model/layout.ts';
import { renderAgentConfig, renderTemplate } from '../render/vault-agent.ts';
import { noParams } from './common.ts';

/**
 * agent.render-config — write the host's `vault-agent.hcl` and one template per host secret (`jwt.ctmpl`,
 * `node-env.ctmpl`, `ecies_keys.ctmpl`, `shard.ctmpl`) into the secrets tmpfs (0600, atomic SFTP writes); the
 * templates render each secret to its own path (a cosigner's key files into its key dir). Compares SHA-256 of the
 * live files with the rendered text and writes only what differs. Refuses, before writing anything, when the
 * secrets dir is not a tmpfs, when a secret's owner or group does not exist on the host, or when no Vault address
 * for the agents is known.
 */
export const agentRenderConfig = defineTask({
  id: 'agent.render-config',
  summary: 'render the Vault Agent config and templates',
  appliesTo: 'any',
  delivery: ['agent'],
  params: noParams,
  facts: (_p, host, inv) => {
    const ss = hostSecrets(inv, host);
    return {
      // Per host secret (in hostSecrets order): its owner and group may differ (el's JWT, cl's env-secrets).
      accounts: factList(ss.map((s) => accounts(s.owner, s.group)), 'accounts'),
      mount: mountAt(SECRETS_DIR),
      config: fileAt(AGENT_FILES.config, { digest: true }),
      templates: factList(ss.map((s) => fileAt(templatePath(s), { digest: true })), 'file'),
    };
  },
  plan(_p, { accounts: acc, mount, config, templates }, { inventory, host }) {
    if (mount?.fsType !== 'tmpfs') return refuse('E_PLAN_CONFLICT', `${SECRETS_DIR} is not a tmpfs mount`, 'run mount.tmpfs first');
    const ss = hostSecrets(inventory, host);
    // Checked before anything changes: the agent could not render a file for an account that does not exist.
    for (const [i, s] of ss.entries()) {
      if (s.owner && acc[i]?.user === false) return refuse('E_PLAN_CONFLICT', `owner ${s.owner} of ${s.path} does not exist on ${host.name}`, 'fix the owner in the inventory (a user name or uid on the host)');
      if (s.group && acc[i]?.group === false) return refuse('E_PLAN_CONFLICT', `group ${s.group} of ${s.path} does not exist on ${host.name}`, 'fix the group in the inventory (a group name or gid on the host)');
    }
    if (!inventory.vault.agentAddress) {
      return refuse('E_VAULT_CONFIG', "no Vault address for the hosts' agents: the inventory sets neither vault.address nor vault.agent_address, and BAO_ADDR/VAULT_ADDR are unset", 'set vault.agent_address (Vault as the hosts reach it) in the inventory');
    }
    const want = [
      { path: AGENT_FILES.config, text: renderAgentConfig(inventory, host), live: config },
      ...ss.map((s, i) => ({ path: templatePath(s), text: renderTemplate(inventory, s), live: templates[i] ?? { exists: false } })),
    ];
    const actions = want
      .filter((w) => w.live.sha256 !== sha256Hex(w.text) || w.live.mode !== '0600')
      .map((w) => act.put(w.path, w.text, '0600', `${w.live.exists ? 'update' : 'write'} ${w.path}`));
    return actions.length ? change(...actions) : noChange(`${want.map((w) => w.path.slice(w.path.lastIndexOf('/') + 1)).join(', ')} are current`);
  },
});
