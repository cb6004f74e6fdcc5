import { defineTask, change, noChange, refuse } from '../model/task.ts';
import type { StoreWriteAction } from '../model/action.ts';
import { shortFingerprint } from '../core/secret.ts';
import { KIND_SPECS, describeRef, hostSecrets } from '../model/layout.ts';
import { keyDrifts, storeHeads, storedFingerprints } from '../facts/secrets.ts';
import { fileName, noParams } from './common.ts';

/**
 * secret.seed — make sure the store holds every secret the host needs (src/model/layout.ts `hostSecrets`): the
 * Engine-API JWT is minted (32 CSPRNG bytes as 64 lowercase hex, in memory at apply time) and written with
 * check-and-set on the head version, so two operators cannot both seed; imported kinds (env-secrets, Horcrux key
 * files) are refused with the command that stores them. A value the store holds under another key than the
 * inventory names (Secrets Manager) is written again under `kms.key_id`. Never changes a value (rotation is
 * jwt.rotate's job). Runs for one host at a time (`once`), so a network-wide value is seeded once.
 */
export const secretSeed = defineTask({
  id: 'secret.seed',
  summary: 'make sure the store holds the host\'s secrets (mint the JWT if absent)',
  appliesTo: 'any',
  once: true,
  params: noParams,
  facts: (_p, host, inv) => {
    const ss = hostSecrets(inv, host);
    return { stored: storedFingerprints(ss), heads: storeHeads(ss), drift: keyDrifts(ss) };
  },
  plan(_p, { stored, heads, drift }, { inventory, host }) {
    const actions: StoreWriteAction[] = [];
    const held: string[] = [];
    for (const s of hostSecrets(inventory, host)) {
      const v = stored[s.name];
      if (!v) {
        if (!KIND_SPECS[s.ref.kind].mintable) return refuse('E_INPUT', `the store holds no ${describeRef(s.ref).replace(/^the /, '')} (needed on ${host.name})`, KIND_SPECS[s.ref.kind].missingHint);
        actions.push({ kind: 'store-write', ref: s.ref, op: 'mint', expectVersion: heads[s.name] ?? 0, description: `write a fresh ${KIND_SPECS[s.ref.kind].label} (32 random bytes, hex) as ${describeRef(s.ref)}` });
      } else if (drift[s.name]) {
        actions.push({ kind: 'store-write', ref: s.ref, op: 'rewrite', expectVersion: v.version, description: `write ${v.source}'s current value (${shortFingerprint(v.fingerprint)}) again under kms.key_id: ${drift[s.name]}` });
      } else held.push(`${fileName(s)}: ${v.source} v${v.version}`);
    }
    return actions.length ? change(...actions) : noChange(`the store holds ${held.join(', ')}`);
  },
});
