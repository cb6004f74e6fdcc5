import { z } from 'zod';
import { defineTask, change, noChange, refuse, laptopFact } from '../model/task.ts';
import { fileAt } from '../facts/file.ts';
import { expectedEngineJwt } from '../facts/inputs.ts';
import { refFor, refKey } from '../model/layout.ts';
import { asNode } from './common.ts';
import { shortFingerprint } from '../core/secret.ts';

/**
 * jwt.rotate — write a fresh Engine-API JWT (32 CSPRNG bytes, hex) as a new backend version: a new KV v2
 * version (check-and-set on the current one), a new KMS blob or a new Secrets Manager version. Once per run
 * and scope (the network's JWT, or each node's with `jwt_per_node`): later hosts and waves see it done.
 * With `--resume` it writes nothing and the run continues towards the current version. `when:
 * plaintext-matches` rotates only if the node's old plaintext file holds the backend's current value (that
 * value is then compromised) — the migration playbook uses it. Refuses when nothing was ever seeded.
 */
export const jwtRotate = defineTask({
  id: 'jwt.rotate',
  summary: 'write a new Engine-API JWT version',
  appliesTo: 'node',
  once: true,
  params: z.strictObject({ when: z.enum(['always', 'plaintext-matches']).default('always') }).prefault({}),
  facts: (_p, host) => ({
    current: expectedEngineJwt(),
    rotated: laptopFact(async (env) => env.runState.get(`rotated:${refKey(refFor(env.inventory, 'engine-jwt', env.host.name))}`) as number | undefined),
    legacy: fileAt(asNode(host).legacyJwtPath, { digest: true }),
  }),
  plan(p, { current, rotated, legacy }, { resume, host, inventory }) {
    if (rotated !== undefined) return noChange(`rotated to v${rotated} earlier in this run`);
    if (!current) return refuse('E_INPUT', 'there is no Engine-API JWT to rotate yet', 'run playbooks/provision.yml first (it seeds one)');
    if (resume) return noChange(`--resume: continuing towards v${current.version} (${shortFingerprint(current.fingerprint)}); no new version written`);
    if (p.when === 'plaintext-matches') {
      const node = asNode(host);
      if (!(legacy.exists && legacy.sha256 === current.fingerprint)) {
        return noChange(`${current.source} v${current.version} is not the value in ${node.legacyJwtPath}; it stays`);
      }
    }
    return change({
      kind: 'store-write',
      ref: refFor(inventory, 'engine-jwt', host.name),
      op: 'mint',
      rotation: true,
      expectVersion: current.version,
      description: `write a new Engine-API JWT after v${current.version} (${shortFingerprint(current.fingerprint)}) to ${current.source}`,
    });
  },
});
