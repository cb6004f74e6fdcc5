import { defineTask, change, noChange, refuse } from '../model/task.ts';
import { act } from '../model/action.ts';
import { envKey, fileAt, looksLikeJwtFile } from '../facts/file.ts';
import { describeGit, gitStatusOf } from '../facts/git.ts';
import { expectedEngineJwt } from '../facts/inputs.ts';
import type { Host } from '../model/inventory.ts';
import { JWT_FILE } from '../model/layout.ts';
import { shortFingerprint } from '../core/secret.ts';
import { asNode, noParams } from './common.ts';

/**
 * node.remove-plaintext-jwt — after a node runs on the tmpfs JWT, shred the old plaintext file bootstrap.sh
 * wrote (`legacy_jwt_path`, default `<deploy_dir>/jwt.hex`: overwrite and unlink, `shred -u` where present)
 * and report whether a git work tree tracks it or its history holds it (report only: history is never
 * rewritten, bootstrap.sh is never edited). Refuses while JWT_PATH still points at the file, and while the
 * backend's current value equals the file's (rotate first: that value is compromised).
 */
export const nodeRemovePlaintextJwt = defineTask({
  id: 'node.remove-plaintext-jwt',
  summary: 'shred the old plaintext jwt.hex',
  appliesTo: 'node',
  params: noParams,
  facts: (_p, host: Host) => {
    const node = asNode(host);
    return {
      legacy: fileAt(node.legacyJwtPath, { digest: true }),
      looksLikeJwt: looksLikeJwtFile(node.legacyJwtPath),
      env: envKey(node.envFile, 'JWT_PATH'),
      git: gitStatusOf(node.legacyJwtPath),
      jwt: expectedEngineJwt(),
    };
  },
  plan(_p, { legacy, looksLikeJwt, env, git, jwt }, { host }) {
    const node = asNode(host);
    const path = node.legacyJwtPath;
    const gitNote = describeGit(path, git);
    if (env.values.includes(path)) {
      return refuse('E_PLAN_CONFLICT', `JWT_PATH in ${node.envFile} still points at the plaintext ${path}`, `run node.set-jwt-path and node.restart-lockstep first (JWT_PATH=${JWT_FILE})`);
    }
    if (!legacy.exists) return noChange(`no plaintext JWT at ${path}${gitNote ? `; ${gitNote}` : ''}`);
    if (!looksLikeJwt) {
      // Shredding is irreversible: only a file that is a JWT (64 hex, optional 0x, optional newline) goes.
      return refuse('E_PLAN_CONFLICT', `${path} does not look like a JWT file (64 hex characters); not shredding it`, 'check legacy_jwt_path for this node in the inventory');
    }
    if (jwt && legacy.sha256 === jwt.fingerprint) {
      return refuse('E_PLAN_CONFLICT', `${path} holds the backend's current value (${shortFingerprint(jwt.fingerprint)}): it is compromised`, 'run jwt.rotate (when: plaintext-matches) before removing it');
    }
    return change(act.remove(path, `shred ${path} (the old plaintext JWT)${gitNote ? `; ${gitNote}` : ''}`, true));
  },
  settle: { intervalMs: 200, timeoutMs: 5000 },
});
