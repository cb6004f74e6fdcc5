import { act } from '../core/action.ts';
import { defineTask, change, noChange, refuse } from '../core/task.ts';
import { sha256Hex } from '../core/secret.ts';
import { accounts, fileAt } from '../facts/file.ts';
import { mountAt } from '../facts/mount.ts';
import { SECRETS_DIR } from '../inventory/model.ts';
import { AGENT_FILES, renderAgentConfig, renderJwtTemplate } from '../render/vault-agent.ts';
import { asNode, noParams } from './common.ts';

/**
 * agent.render-config — write the node's `vault-agent.hcl` and `jwt.ctmpl` into the secrets tmpfs (0600,
 * atomic SFTP writes). Compares SHA-256 of the live files with the rendered text and writes only what
 * differs. Refuses when the secrets dir is not a tmpfs (nothing is written to persistent disk).
 */
export const agentRenderConfig = defineTask({
  id: 'agent.render-config',
  summary: 'render the Vault Agent config and JWT template',
  appliesTo: 'node',
  backends: ['vault'],
  params: noParams,
  facts: (_p, host) => ({
    // Only when the inventory names an owner or group (else there is nothing to look up).
    ...((asNode(host).jwt.owner || asNode(host).jwt.group ? { accounts: accounts(asNode(host).jwt.owner, asNode(host).jwt.group) } : {}) as {
      accounts?: ReturnType<typeof accounts>;
    }),
    mount: mountAt(SECRETS_DIR),
    config: fileAt(AGENT_FILES.config, { digest: true }),
    template: fileAt(AGENT_FILES.template, { digest: true }),
  }),
  plan(_p, facts, { inventory, host }) {
    const { mount, config, template } = facts;
    const acc = (facts as { accounts?: { user?: boolean; group?: boolean } }).accounts;
    if (mount?.fsType !== 'tmpfs') return refuse('E_PLAN_CONFLICT', `${SECRETS_DIR} is not a tmpfs mount`, 'run mount.tmpfs first');
    const node = asNode(host);
    // Checked before anything changes: the agent could not render jwt.hex for an account that does not exist.
    if (acc?.user === false) return refuse('E_PLAN_CONFLICT', `jwt.owner ${node.jwt.owner} does not exist on ${host.name}`, 'fix jwt.owner in the inventory (a user name or uid on the host)');
    if (acc?.group === false) return refuse('E_PLAN_CONFLICT', `jwt.group ${node.jwt.group} does not exist on ${host.name}`, 'fix jwt.group in the inventory (a group name or gid on the host)');
    if (!inventory.vault.agentAddress) {
      return refuse('E_VAULT_CONFIG', 'no Vault address for the hosts\' agents: the inventory sets neither vault.address nor vault.agent_address, and BAO_ADDR/VAULT_ADDR are unset', 'set vault.agent_address (Vault as the hosts reach it) in the inventory');
    }
    const want = [
      { path: AGENT_FILES.config, text: renderAgentConfig(inventory, node), live: config },
      { path: AGENT_FILES.template, text: renderJwtTemplate(inventory, host.name), live: template },
    ];
    const actions = want
      .filter((w) => w.live.sha256 !== sha256Hex(w.text) || w.live.mode !== '0600')
      .map((w) => act.put(w.path, w.text, '0600', `${w.live.exists ? 'update' : 'write'} ${w.path}`));
    return actions.length ? change(...actions) : noChange('vault-agent.hcl and jwt.ctmpl are current');
  },
});
