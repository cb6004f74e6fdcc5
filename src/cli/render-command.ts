import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { KryptonError } from '../core/errors.ts';
import { checkLimit } from '../executor/select.ts';
import { loadInventory } from '../inventory/loader.ts';
import { renderAgentConfig, renderJwtTemplate, renderNodePolicy, nodeRoleName } from '../render/vault-agent.ts';
import { desiredRole } from '../tasks/vault-node-approle.ts';
import { renderAwsReviewFiles } from '../render/iam-policy.ts';

/**
 * `krypton-secrets render`: writes, per node, `<out>/<node>/vault-agent.hcl`, `jwt.ctmpl`, `policy.hcl` and
 * `approle.json` (the role settings), exactly as apply would use them. With a `kms:` block (backend kms or
 * secrets-manager) also, per node, `iam-policy.json` (least privilege: kms:Decrypt under its encryption
 * context / GetSecretValue on its secret) and the boot-time `krypton-secrets-boot` + unit, and once
 * `<out>/iam-admin-policy.json` for the operator. No secret is in any of them; no host and no backend is
 * contacted. Returns the exit code.
 */
export async function renderCommand(f: { inventory: string; out: string; limit?: string[] }, print: (l: string) => void): Promise<number> {
  const inv = await loadInventory(f.inventory);
  const limit = checkLimit(inv, f.limit);
  const aws = inv.kms && inv.backend !== 'vault' ? renderAwsReviewFiles(inv, inv.nodes.filter((n) => !limit || limit.has(n.name))) : undefined;
  if (aws) {
    await mkdir(f.out, { recursive: true });
    await writeFile(join(f.out, aws.admin[0]), aws.admin[1], { mode: 0o644 });
    print(`operator: ${join(f.out, aws.admin[0])}`);
  }
  if (inv.backend === 'vault' && !inv.vault.agentAddress) {
    throw new KryptonError('E_VAULT_CONFIG', 'no Vault address for the hosts\' agents: the inventory sets neither vault.address nor vault.agent_address, and BAO_ADDR/VAULT_ADDR are unset', {
      hint: 'set vault.agent_address (Vault as the hosts reach it) in the inventory',
    });
  }
  for (const node of inv.nodes.filter((n) => !limit || limit.has(n.name))) {
    const dir = join(f.out, node.name);
    await mkdir(dir, { recursive: true });
    const role = nodeRoleName(inv.network, node.name);
    const files: [string, string][] = [
      ['vault-agent.hcl', renderAgentConfig(inv, node)],
      ['jwt.ctmpl', renderJwtTemplate(inv, node.name)],
      ['policy.hcl', renderNodePolicy(inv, node.name)],
      ['approle.json', `${JSON.stringify({ role, mount: `auth/${inv.vault.approleMount}`, settings: desiredRole(inv, role) }, null, 2)}\n`],
      ...(aws?.perNode.get(node.name) ?? []),
    ];
    for (const [name, text] of files) await writeFile(join(dir, name), text, { mode: 0o644 });
    print(`${node.name}: ${files.map(([n]) => join(dir, n)).join(', ')}`);
  }
  return 0;
}
