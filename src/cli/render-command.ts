import { mkdir, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { KryptonError } from '../core/errors.ts';
import { checkLimit } from '../executor/select.ts';
import { loadInventory } from '../inventory/loader.ts';
import { renderAgentConfig, renderPolicy, renderTemplate } from '../render/vault-agent.ts';
import { hostSecrets, roleName, templatePath } from '../model/layout.ts';
import { desiredRole } from '../tasks/vault-approle.ts';
import { renderAwsReviewFiles } from '../render/iam-policy.ts';

/**
 * `krypton-secrets render`: writes, per host (node or cosigner), exactly what apply would use. With the Vault
 * backend: `<out>/<host>/vault-agent.hcl`, one template per host secret (`jwt.ctmpl`, `node-env.ctmpl`,
 * `ecies_keys.ctmpl`, `shard.ctmpl`), `policy.hcl` and `approle.json` (the role settings). With a `kms:` block
 * (backend kms or secrets-manager): per host `iam-policy.json` (least privilege: kms:Decrypt under its own
 * encryption contexts / GetSecretValue on its own secrets) and, when `kms.region` is known, the boot-time
 * `krypton-secrets-boot` + unit; once `<out>/iam-admin-policy.json` for the operator. No secret is in any of
 * them; no host and no backend is contacted (no AWS SDK, no node-vault loaded). Returns the exit code.
 */
export async function renderCommand(f: { inventory: string; out: string; limit?: string[] }, print: (l: string) => void): Promise<number> {
  const inv = await loadInventory(f.inventory);
  const limit = checkLimit(inv, f.limit);
  const selected = <H extends { name: string }>(hs: H[]) => hs.filter((h) => !limit || limit.has(h.name));
  const hosts = [...selected(inv.nodes), ...selected(inv.cosigners)];
  const aws = inv.kms && inv.backend !== 'vault' ? renderAwsReviewFiles(inv, selected(inv.nodes), selected(inv.cosigners)) : undefined;
  if (inv.backend === 'vault' && !inv.vault.agentAddress) {
    throw new KryptonError('E_VAULT_CONFIG', "no Vault address for the hosts' agents: the inventory sets neither vault.address nor vault.agent_address, and BAO_ADDR/VAULT_ADDR are unset", {
      hint: 'set vault.agent_address (Vault as the hosts reach it) in the inventory',
    });
  }
  await mkdir(f.out, { recursive: true });
  if (aws) {
    await writeFile(join(f.out, aws.admin[0]), aws.admin[1], { mode: 0o644 });
    print(`operator: ${join(f.out, aws.admin[0])}`);
  }
  for (const host of hosts) {
    const files: [string, string][] = [];
    if (inv.backend === 'vault') {
      const role = roleName(inv, host);
      files.push(
        ['vault-agent.hcl', renderAgentConfig(inv, host)],
        ...hostSecrets(inv, host).map((s): [string, string] => [basename(templatePath(s)), renderTemplate(inv, s)]),
        ['policy.hcl', renderPolicy(inv, host)],
        ['approle.json', `${JSON.stringify({ role, mount: `auth/${inv.vault.approleMount}`, settings: desiredRole(inv, role) }, null, 2)}\n`],
      );
    }
    files.push(...(aws?.perNode.get(host.name) ?? aws?.perCosigner.get(host.name) ?? []));
    if (!files.length) continue;
    const dir = join(f.out, host.name);
    await mkdir(dir, { recursive: true });
    for (const [name, text] of files) await writeFile(join(dir, name), text, { mode: 0o644 });
    print(`${host.name}: ${files.map(([n]) => join(dir, n)).join(', ')}`);
  }
  return 0;
}
