import { act } from '../model/action.ts';
import { defineTask, change, noChange, refuse } from '../model/task.ts';
import { envKey } from '../facts/file.ts';
import type { Host } from '../model/inventory.ts';
import { JWT_FILE } from '../model/layout.ts';
import { asNode, noParams } from './common.ts';

/**
 * node.set-jwt-path — make the node's compose env file say `JWT_PATH=/run/krypton-secrets/jwt.hex`, touching
 * no other line (sed in place on the host; only the JWT_PATH line's value is ever read back). Appends the
 * line when absent. Refuses when the env file does not exist (a wrong deploy dir is more likely than a
 * node without one).
 */
export const nodeSetJwtPath = defineTask({
  id: 'node.set-jwt-path',
  summary: 'point JWT_PATH at the tmpfs',
  appliesTo: 'node',
  params: noParams,
  facts: (_p, host: Host) => ({ env: envKey(asNode(host).envFile, 'JWT_PATH') }),
  plan(_p, { env }, { host }) {
    const file = asNode(host).envFile;
    const want = JWT_FILE;
    if (!env.fileExists) return refuse('E_PLAN_CONFLICT', `compose env file ${file} does not exist`, 'set env_file (or deploy_dir) for this node in the inventory');
    if (env.values.length >= 1 && env.values.every((v) => v === want)) return noChange(`${file} already has JWT_PATH=${want}`);
    if (env.values.length === 0) {
      // Start a new line first when the file does not end with one, so the last line is not extended.
      const script = 'if [ -s "$2" ] && [ -n "$(tail -c 1 -- "$2")" ]; then printf "\\n" >> "$2"; fi; printf "%s\\n" "$1" >> "$2"';
      return change(act.exec(['sh', '-c', script, 'sh', `JWT_PATH=${want}`, file], `append JWT_PATH=${want} to ${file}`));
    }
    return change(
      act.exec(['sed', '-i', '-E', `s#^([[:space:]]*(export[[:space:]]+)?)JWT_PATH=.*#\\1JWT_PATH=${want}#`, file], `set JWT_PATH=${want} in ${file} (was ${env.values.join(', ')})`),
    );
  },
  settle: { intervalMs: 200, timeoutMs: 5000 },
  triggersRestart: true,
  jwtUnit: 'opens',
});
