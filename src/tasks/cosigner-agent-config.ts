import { act } from '../core/action.ts';
import { defineTask, change, noChange, refuse } from '../core/task.ts';
import { sha256Hex } from '../core/secret.ts';
import { fileAt } from '../facts/file.ts';
import { mountAt } from '../facts/mount.ts';
import { COSIGNER_AGENT_FILES, renderCosignerAgentConfig, renderKeyTemplate } from '../horcrux/agent.ts';
import { SECRETS_DIR } from '../inventory/model.ts';
import { noParams } from './common.ts';
import { asCosigner } from './cosigner-common.ts';

/**
 * cosigner.agent-config — write the cosigner's `vault-agent.hcl` and its two templates (`ecies_keys.ctmpl`,
 * `shard.ctmpl`) into the agent's tmpfs `/run/krypton-secrets` (0600, atomic SFTP writes). The templates
 * render into the key dir; nothing of the agent's lands there. Compares SHA-256 of the live files with the
 * rendered text and writes only what differs. Refuses when `/run/krypton-secrets` is not a tmpfs.
 */
export const cosignerAgentConfig = defineTask({
  id: 'cosigner.agent-config',
  summary: "render the cosigner's Vault Agent config and key templates",
  appliesTo: 'cosigner',
  backends: ['vault'],
  params: noParams,
  facts: () => ({
    mount: mountAt(SECRETS_DIR),
    config: fileAt(COSIGNER_AGENT_FILES.config, { digest: true }),
    eciesTemplate: fileAt(COSIGNER_AGENT_FILES.eciesTemplate, { digest: true }),
    shardTemplate: fileAt(COSIGNER_AGENT_FILES.shardTemplate, { digest: true }),
  }),
  plan(_p, { mount, config, eciesTemplate, shardTemplate }, { inventory, host }) {
    if (mount?.fsType !== 'tmpfs') return refuse('E_PLAN_CONFLICT', `${SECRETS_DIR} is not a tmpfs mount`, 'run mount.tmpfs (path /run/krypton-secrets) first');
    if (!inventory.vault.agentAddress) {
      return refuse('E_VAULT_CONFIG', 'no Vault address for the hosts\' agents: the inventory sets neither vault.address nor vault.agent_address, and BAO_ADDR/VAULT_ADDR are unset', 'set vault.agent_address (Vault as the hosts reach it) in the inventory');
    }
    const c = asCosigner(host);
    const want = [
      { path: COSIGNER_AGENT_FILES.config, text: renderCosignerAgentConfig(inventory, c), live: config },
      { path: COSIGNER_AGENT_FILES.eciesTemplate, text: renderKeyTemplate(inventory, c.name, 'ecies'), live: eciesTemplate },
      { path: COSIGNER_AGENT_FILES.shardTemplate, text: renderKeyTemplate(inventory, c.name, 'shard'), live: shardTemplate },
    ];
    const actions = want
      .filter((w) => w.live.sha256 !== sha256Hex(w.text) || w.live.mode !== '0600')
      .map((w) => act.put(w.path, w.text, '0600', `${w.live.exists ? 'update' : 'write'} ${w.path}`));
    return actions.length ? change(...actions) : noChange('vault-agent.hcl, ecies_keys.ctmpl and shard.ctmpl are current');
  },
});
